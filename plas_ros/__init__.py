"""plas_ros: offline RL (PLAS) for tactile cloth sliding on a Sawyer arm, as a ROS 1 package.

The core (algos, data, env, hardware, sim) imports no ROS; only plas_ros.nodes does.
"""
import pkgutil

# The generated messages (plas_ros.msg, plas_ros.srv) live in the catkin devel space, in another
# directory of the same package name: let both halves be found whichever comes first on sys.path.
__path__ = pkgutil.extend_path(__path__, __name__)

__version__ = '0.1.0'
