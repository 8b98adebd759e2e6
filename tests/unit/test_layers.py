"""Import directions: no module under plas_ros/ imports a layer above its own.

Every module's source is read with `ast` (nothing is imported or run) and every import in it is checked:
`import x`, `from x import y` (y counts as the module x.y when plas_ros/ has such a module), relative imports,
imports inside functions or under `if`, and `importlib.import_module('x')` / `__import__('x')` with a literal
name. tests/unit/test_package.py checks what importing the modules really loads.
"""
import ast
import os

import pytest

from tests.helpers.tree import REPO_ROOT

# ----------------------------------------------------------------------------------------------------------------
# The architecture, from the bottom up: (layer, the modules in it, extra rules for packages in it).
#
# A module belongs to the longest prefix (at a dot) that names it, and may import modules of its own layer and
# of the layers below. Names outside plas_ros listed here (the ROS client libraries) belong to their layer like
# the project's modules; any other third-party name may be imported unless a rule names it.
# A rule {package: (may not import, except)} holds for every module of that package, the contract modules in it
# included, on top of the layer order.
# plas_ros/__init__.py is neutral: every layer may import it, and it imports no layer (everything imports it).
ARCHITECTURE = [
    ('contract', ['plas_ros.config',          # the config loader
                  'plas_ros.hardware.finger', # the tactile finger's geometry
                  'plas_ros.env.layout',      # observation and action layout
                  'plas_ros.data.schema',     # the dataset file format
                  'plas_ros.data.episodes'],  # step record, episode segmentation, outcome
     {}),
    ('core', ['plas_ros.hardware', 'plas_ros.algos', 'plas_ros.data', 'plas_ros.env'],
     {'plas_ros.env': (['plas_ros.algos', 'plas_ros.sim', 'plas_ros.data', 'torch'],
                       ['plas_ros.data.episodes', 'plas_ros.data.schema']),
      'plas_ros.data': (['plas_ros.env', 'plas_ros.algos', 'plas_ros.hardware', 'plas_ros.sim', 'torch'],
                        ['plas_ros.hardware.finger', 'plas_ros.hardware.tactile_image']),  # the plots' colours
      'plas_ros.hardware': (['plas_ros', 'torch'], ['plas_ros.hardware', 'plas_ros.config']),
      'plas_ros.algos': (['plas_ros.env', 'plas_ros.hardware', 'plas_ros.sim'], [])}),
    ('sim', ['plas_ros.sim'],  # the device twins, the cloth model, the gymnasium env over the simulator
     {'plas_ros.sim.wsg': (['plas_ros.hardware.wsg'],  # a twin models the device, never from our driver
                           ['plas_ros.hardware.wsg.protocol'])}),
    ('apps', ['plas_ros.collect', 'plas_ros.policy', 'plas_ros.train', 'plas_ros.deploy', 'plas_ros.reproduce',
              'plas_ros.normaliser', 'plas_ros.launcher'],
     {}),
    ('ros', ['plas_ros.nodes', 'plas_ros.msg', 'plas_ros.srv', 'rospy', 'rosgraph', 'roslaunch', 'rosbag'],
     {}),
]
NEUTRAL = 'plas_ros'
# ----------------------------------------------------------------------------------------------------------------

PACKAGE_DIR = os.path.join(REPO_ROOT, 'plas_ros')
RANK = {layer: rank for rank, (layer, _, _) in enumerate(ARCHITECTURE)}
LAYER_OF_PREFIX = {prefix: layer for layer, prefixes, _ in ARCHITECTURE for prefix in prefixes}
RULES = {package: rule for _, _, rules in ARCHITECTURE for package, rule in rules.items()}


def under(name, prefix):
    return name == prefix or name.startswith(prefix + '.')


def layer_of(name):
    """The layer of a module name, 'neutral' for plas_ros itself, None when no prefix of the table names it."""
    if name == NEUTRAL:
        return 'neutral'
    prefixes = [p for p in LAYER_OF_PREFIX if under(name, p)]
    return LAYER_OF_PREFIX[max(prefixes, key=len)] if prefixes else None


def rank_of(layer):
    return -1 if layer == 'neutral' else RANK[layer]


def project_modules():
    """{module name: source path} of every .py file under plas_ros/."""
    modules = {}
    for directory, dirs, files in os.walk(PACKAGE_DIR):
        dirs[:] = sorted(d for d in dirs if d != '__pycache__')
        for file in sorted(f for f in files if f.endswith('.py')):
            parts = os.path.relpath(os.path.join(directory, file), REPO_ROOT)[:-3].split(os.sep)
            if parts[-1] == '__init__':
                parts.pop()
            modules['.'.join(parts)] = os.path.join(directory, file)
    return modules


def imports_of(module, source, is_package, known):
    """[(line, imported module name)] of every import in `source`, the source of `module`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the package of `module`, `level - 1` packages up
                package = module.split('.') if is_package else module.split('.')[:-1]
                base = '.'.join(package[:len(package) - (node.level - 1)] + ([node.module] if node.module else []))
            else:
                base = node.module
            for alias in node.names:
                candidate = '%s.%s' % (base, alias.name)
                found.append((node.lineno, candidate if candidate in known else base))
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and (isinstance(node.func, ast.Name) and node.func.id == '__import__'
                   or isinstance(node.func, ast.Attribute) and node.func.attr == 'import_module')):
            found.append((node.lineno, node.args[0].value))
    return sorted(set(found))


def violations_of(module, imported):
    """Why `module` may not import `imported` (one reason per rule it breaks; empty when it may)."""
    if imported == NEUTRAL:
        return []
    importer_layer, imported_layer = layer_of(module), layer_of(imported)
    reasons = []
    if imported_layer is None and under(imported, 'plas_ros'):
        reasons.append('%s is in no layer of the table' % imported)
    elif imported_layer is not None and rank_of(imported_layer) > rank_of(importer_layer):
        reasons.append('the %s layer may not import the %s layer above it' % (importer_layer, imported_layer))
    for package, (forbidden, allowed) in sorted(RULES.items()):
        if not under(module, package):
            continue
        for prefix in forbidden:
            if under(imported, prefix) and not any(under(imported, a) for a in allowed):
                excepted = [a for a in allowed if under(a, prefix)]
                reasons.append('%s may not import %s%s' % (
                    package, prefix, ' (except %s)' % ', '.join(excepted) if excepted else ''))
    return reasons


def check(modules):
    """Every violation in `modules` ({name: source path}), one line each."""
    lines = []
    for module, path in sorted(modules.items()):
        if layer_of(module) is None:
            lines.append('%s: in no layer of the table' % module)
            continue
        with open(path) as f:
            source = f.read()
        is_package = os.path.basename(path) == '__init__.py'
        for line, imported in imports_of(module, source, is_package, modules):
            for reason in violations_of(module, imported):
                lines.append('%s imports %s (%s:%d): %s' % (
                    module, imported, os.path.relpath(path, REPO_ROOT), line, reason))
    return lines


def test_no_module_imports_a_layer_above_it():
    modules = project_modules()
    assert 'plas_ros.env.layout' in modules and 'plas_ros.nodes.env_node' in modules, sorted(modules)
    violations = check(modules)
    assert not violations, '%d import(s) against the architecture:\n  %s' % (len(violations),
                                                                            '\n  '.join(violations))


SAMPLE = '''
import numpy
import torch.nn
from plas_ros.env import layout
from plas_ros.env import config
from . import schema
from .loader import read_file
from plas_ros.msg import Transition


def later():
    import rospy
    importlib.import_module('plas_ros.sim.cloth')
'''


@pytest.mark.parametrize('module, expected', [
    ('plas_ros.data.writer', [
        (3, 'torch.nn', 'plas_ros.data may not import torch'),
        (4, 'plas_ros.env.layout', 'plas_ros.data may not import plas_ros.env'),
        (5, 'plas_ros.env.config', 'plas_ros.data may not import plas_ros.env'),
        (8, 'plas_ros.msg', 'the core layer may not import the ros layer above it'),
        (12, 'rospy', 'the core layer may not import the ros layer above it'),
        (13, 'plas_ros.sim.cloth', 'the core layer may not import the sim layer above it'),
        (13, 'plas_ros.sim.cloth', 'plas_ros.data may not import plas_ros.sim')]),
    ('plas_ros.data.schema', [  # a contract module: only the contract below it
        (3, 'torch.nn', 'plas_ros.data may not import torch'),
        (4, 'plas_ros.env.layout', 'plas_ros.data may not import plas_ros.env'),
        (5, 'plas_ros.env.config', 'the contract layer may not import the core layer above it'),
        (5, 'plas_ros.env.config', 'plas_ros.data may not import plas_ros.env'),
        (7, 'plas_ros.data.loader', 'the contract layer may not import the core layer above it'),
        (8, 'plas_ros.msg', 'the contract layer may not import the ros layer above it'),
        (12, 'rospy', 'the contract layer may not import the ros layer above it'),
        (13, 'plas_ros.sim.cloth', 'the contract layer may not import the sim layer above it'),
        (13, 'plas_ros.sim.cloth', 'plas_ros.data may not import plas_ros.sim')]),
    ('plas_ros.nodes.recorder_node', []),
])
def test_the_check_sees_every_kind_of_import(module, expected):
    """The checker itself, on a sample module: top-level, `from` (of a module and of a name), relative,
    function-level and importlib imports are all seen and resolved."""
    known = set(project_modules())
    found = [(line, imported, reason) for line, imported in imports_of(module, SAMPLE, False, known)
             for reason in violations_of(module, imported)]
    assert found == expected
    if module == 'plas_ros.data.writer':
        assert imports_of(module, SAMPLE, False, known)[4:6] == [(6, 'plas_ros.data.schema'),
                                                                  (7, 'plas_ros.data.loader')]
