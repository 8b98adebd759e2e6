#!/usr/bin/env bash
# The test suite: lint, the Python 3.8 compatibility check, then pytest (unit, integration, replay).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY_SOURCES=$(for d in plas_ros scripts tests bench tools; do [ -d "$d" ] && echo "$d"; done)
echo "== ruff (target py38)"
ruff check $PY_SOURCES
echo "== vermin: every file must run on Python 3.8"
vermin --no-tips --violations --eval-annotations -t=3.8- --backport typing_extensions $PY_SOURCES
[ "${1:-}" = --lint-only ] && exit 0
echo "== pytest"
exec python3 -m pytest "${@}"
