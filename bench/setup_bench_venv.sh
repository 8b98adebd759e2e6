#!/usr/bin/env bash
# Create .venv-bench (git-ignored through its own .gitignore) with d3rlpy 2.8.1 for bench/train_throughput.py.
# The project's .venv is never touched. torch comes from /opt/wheels when a wheel is there (no big download).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=.venv-bench
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
echo '*' > "$VENV/.gitignore"   # keep the whole venv out of git without touching the project's .gitignore
FIND_LINKS=()
[ -d /opt/wheels ] && FIND_LINKS=(--find-links /opt/wheels)
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "${FIND_LINKS[@]}" -r bench/requirements-bench.txt
"$VENV/bin/python" -c 'import d3rlpy, torch; print("d3rlpy", d3rlpy.__version__, "torch", torch.__version__)'
