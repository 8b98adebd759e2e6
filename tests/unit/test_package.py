"""Everything below plas_ros.nodes imports without ROS: the core packages (with every module in them) and the
top-level application modules, each group imported in a fresh interpreter, so that rospy imported earlier in
this process (or by another group) cannot hide a module that pulls it in. tests/unit/test_layers.py checks
the import statements themselves; this test checks what importing the modules really loads."""
import json
import subprocess
import sys

import pytest

CORE = ['plas_ros.algos', 'plas_ros.data', 'plas_ros.env', 'plas_ros.hardware', 'plas_ros.sim']
APPS = ['plas_ros.train', 'plas_ros.policy', 'plas_ros.deploy', 'plas_ros.collect', 'plas_ros.reproduce',
        'plas_ros.normaliser']
# ROS client libraries and the generated messages: only plas_ros.nodes may load them.
ROS = ['rospy', 'rosgraph', 'roslaunch', 'rosbag', 'plas_ros.msg', 'plas_ros.srv']

# Imports `root` and every module under it (a package's submodules, recursively); prints
# [[module, ROS module it loaded first], ...] as JSON.
CHILD = '''
import importlib, json, pkgutil, sys
root, forbidden = sys.argv[1], json.loads(sys.argv[2])

def loaded():
    return {f for f in forbidden if any(m == f or m.startswith(f + ".") for m in sys.modules)}

found, seen = [], loaded()
names = [root]
while names:
    name = names.pop(0)
    module = importlib.import_module(name)
    found += [[name, m] for m in sorted(loaded() - seen)]
    seen = loaded()
    if hasattr(module, "__path__"):
        names += sorted(name + "." + info.name for info in pkgutil.iter_modules(module.__path__))
print(json.dumps(found))
'''


def ros_loaded_by(root):
    out = subprocess.run([sys.executable, '-c', CHILD, root, json.dumps(ROS)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, 'importing %s failed:\n%s' % (root, out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize('root', CORE + APPS)  # each also imports plas_ros/__init__.py first
def test_imports_without_ros(root):
    found = ros_loaded_by(root)
    assert not found, 'ROS loaded below plas_ros.nodes: ' + '; '.join(
        'importing %s loaded %s' % (module, ros) for module, ros in found)
