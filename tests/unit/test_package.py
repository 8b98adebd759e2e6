"""The core imports without ROS: nothing outside plas_ros.nodes may pull in rospy."""
import subprocess
import sys

CORE = ['plas_ros', 'plas_ros.algos', 'plas_ros.data', 'plas_ros.env', 'plas_ros.hardware', 'plas_ros.sim']


def test_core_packages_import_without_rospy():
    code = ('import sys, pkgutil, importlib\n'
            'import plas_ros\n'
            'mods = %r\n'
            'for pkg in list(mods):\n'
            '    m = importlib.import_module(pkg)\n'
            '    if pkg != "plas_ros":\n'
            '        mods += [pkg + "." + i.name for i in pkgutil.iter_modules(m.__path__)]\n'
            'for name in mods:\n'
            '    importlib.import_module(name)\n'
            'bad = [m for m in sys.modules if m.split(".")[0] in ("rospy", "rosbag", "roslaunch")]\n'
            'assert not bad, bad\n'
            'print(len(mods))\n' % CORE)
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
