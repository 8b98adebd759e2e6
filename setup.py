# Used by catkin_python_setup(); do not call directly (see README).
from catkin_pkg.python_setup import generate_distutils_setup
from setuptools import setup

setup(**generate_distutils_setup(packages=[
    'plas_ros', 'plas_ros.algos', 'plas_ros.data', 'plas_ros.env',
    'plas_ros.hardware', 'plas_ros.hardware.dsa', 'plas_ros.sim', 'plas_ros.sim.dsa', 'plas_ros.nodes',
], package_dir={'': '.'}))
