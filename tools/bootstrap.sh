#!/usr/bin/env bash
# Sets up everything plas_ros needs, idempotently: ROS 1 (Noetic if present, else Debian's packages),
# a venv on ROS's interpreter, pinned Python requirements and the catkin build in build/ws/
# (under build/, which rosrun skips inside a package, so the devel-space wrappers are found once).
# A second run only checks and returns in a few seconds.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
WS="$ROOT/build/ws"
STAMPS="$WS/stamps"
say() { printf '[bootstrap] %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

DEBIAN_ROS_PACKAGES="python3-rospy python3-roslaunch python3-rosbag python3-rostest python3-rosunit
 python3-rostopic python3-rosnode python3-rosmsg python3-rosservice rosbash python3-std-msgs
 python3-geometry-msgs python3-sensor-msgs python3-std-srvs python3-genpy python3-tf2-ros python3-tf2-msgs
 python3-diagnostic-updater python3-diagnostic-msgs
 ros-std-msgs ros-geometry-msgs ros-sensor-msgs ros-std-srvs python3-venv catkin ros-message-generation
 ros-message-runtime
 libstd-msgs-dev libgeometry-msgs-dev libsensor-msgs-dev libstd-srvs-dev"

# On Noetic the ROS installation is used as it is, with these few packages added where missing.
NOETIC_ROS_PACKAGES="ros-noetic-tf2-ros ros-noetic-diagnostic-updater"

install_missing() {  # $1: what they are, the rest: package names
  local what="$1" missing=() p
  shift
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing $what: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

install_ros() {
  if [ -f /opt/ros/noetic/setup.bash ]; then
    say "using ROS Noetic from /opt/ros/noetic"
    # shellcheck disable=SC2086
    install_missing "ROS Noetic packages" $NOETIC_ROS_PACKAGES
    return
  fi
  # shellcheck disable=SC2086
  install_missing "Debian's ROS 1 packages" $DEBIAN_ROS_PACKAGES
}

source_ros() {
  # ROS setup scripts read unset variables.
  set +u
  if [ -f /opt/ros/noetic/setup.bash ]; then source /opt/ros/noetic/setup.bash; fi
  set -u
}

install_venv() {
  local py=/usr/bin/python3
  if [ ! -x "$VENV/bin/python3" ]; then
    say "creating venv on $py (with system site packages, for rospy)"
    "$py" -m venv --system-site-packages "$VENV"
  fi
  local want
  want=$(cat requirements.txt | sha1sum | cut -c1-16)
  mkdir -p "$STAMPS"
  if [ "$(cat "$STAMPS/requirements" 2>/dev/null)" != "$want" ]; then
    say "installing Python requirements"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r requirements.txt >"$STAMPS/pip.log" 2>&1 \
      || { tail -n 40 "$STAMPS/pip.log"; exit 1; }
    echo "$want" > "$STAMPS/requirements"
  fi
}

link_package() {
  # The workspace sees the package through a folder of links to the repo's top-level entries (not one link
  # to the repo, which holds the workspace: rosrun's `find -L` would loop through it and see every
  # executable twice). Refreshed on every run, so new top-level files appear.
  local pkg="$WS/src/plas_ros" entry
  [ -L "$pkg" ] && rm "$pkg"
  mkdir -p "$pkg"
  find "$pkg" -maxdepth 1 -type l -delete
  for entry in "$ROOT"/*; do
    [ "$(basename "$entry")" = build ] || ln -s "$entry" "$pkg/"
  done
}

build_catkin() {
  link_package
  local want
  want=$(cat package.xml CMakeLists.txt setup.py msg/*.msg srv/*.srv | sha1sum | cut -c1-16)
  want="$want-$({ ls scripts 2>/dev/null || true; } | sha1sum | cut -c1-8)"
  if [ "$(cat "$STAMPS/catkin" 2>/dev/null)" != "$want" ] || [ ! -f "$WS/devel/setup.bash" ]; then
    say "building the catkin workspace"
    (cd "$WS" && set +u && catkin_make --force-cmake -DPYTHON_EXECUTABLE="$VENV/bin/python3" >"$WS/catkin_make.log" 2>&1) \
      || { tail -n 40 "$WS/catkin_make.log"; exit 1; }
    echo "$want" > "$STAMPS/catkin"
  fi
}

install_ros
source_ros
install_venv
build_catkin
say "ready: source $ROOT/env.sh"
