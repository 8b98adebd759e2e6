#!/usr/bin/env bash
# Runs a command with ROS, the catkin devel space and the venv active (see env.sh).
set -e
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
set +u
source "$ROOT/env.sh"
exec "$@"
