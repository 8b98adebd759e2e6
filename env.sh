# Source this file to use plas_ros from a shell: ROS, the catkin devel space and the venv.
#   source env.sh
_plas_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)"
if [ -f /opt/ros/noetic/setup.bash ]; then source /opt/ros/noetic/setup.bash; fi
source "$_plas_root/build/ws/devel/setup.bash"
source "$_plas_root/.venv/bin/activate"
# Debian's ROS command-line tools run under /usr/bin/python3: the devel space (on PYTHONPATH via
# setup.bash) gives them the generated plas_ros messages.
unset _plas_root
