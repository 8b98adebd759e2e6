# Source this file to use plas_ros from a shell: ROS, the catkin devel space and the venv.
#   source env.sh
_plas_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)"
if [ -f /opt/ros/noetic/setup.bash ]; then source /opt/ros/noetic/setup.bash; fi
source "$_plas_root/build/ws/devel/setup.bash"
source "$_plas_root/.venv/bin/activate"
# Debian's ROS command-line tools run under /usr/bin/python3: the devel space (on PYTHONPATH via
# setup.bash) gives them the generated plas_ros messages.
# Loopback unless told otherwise: with ROS_IP=127.0.0.1 rosgraph binds the master's, roslaunch's and every
# node's XML-RPC and TCPROS servers to 127.0.0.1 (without it: 0.0.0.0, every interface). Kept as the user set
# it when ROS_IP or ROS_HOSTNAME is set, or when ROS_MASTER_URI names a host other than loopback (a robot
# network: set ROS_IP to this machine's address there, doc/install.md "Which interface ROS listens on").
if [ -z "${ROS_IP:-}" ] && [ -z "${ROS_HOSTNAME:-}" ]; then
    case "${ROS_MASTER_URI:-http://localhost:11311}" in
        http://localhost|http://localhost[:/]*|http://127.*|http://\[::1\]*) export ROS_IP=127.0.0.1 ;;
    esac
fi
# On loopback, the core that roslaunch (or roscore) starts runs a rospy rosout (tools/ros_etc/roscore.xml): the
# C++ rosout's XML-RPC server listens on every interface whatever ROS_IP says. ROS_ETC_DIR only locates that
# file here (ROS's setup.bash sets it to /etc/ros; python_logging.conf is found in rosgraph's conf then).
case "${ROS_HOSTNAME:-${ROS_IP:-}}" in
    127.*|localhost|::1) export ROS_ETC_DIR="$_plas_root/tools/ros_etc" ;;
esac
unset _plas_root
