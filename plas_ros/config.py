"""The package's configuration: where `config/` is, reading its YAML files and loading sections strictly.

Every default of the package lives in one YAML file under `config/`; code, node parameters and launch
arguments refer to it instead of repeating the value. A section becomes a dataclass through `load_section`,
strictly: an unknown key, a missing key or a value of the wrong type is a `ConfigError` naming the file and
the key (dotted, e.g. `gripper.width_step_mm`).

    from plas_ros.config import config_path, load_section, load_yaml, lookup
    gripper = load_section(GripperConfig, 'env.yaml', 'gripper')
    threshold = lookup('env.yaml', 'gripper.contact_taxel_threshold')

A contract module: it imports nothing from plas_ros, so every layer (hardware, env, sim, algos, nodes) may use it.
"""
import dataclasses
import functools
import os
import typing
from collections import abc
from typing import Any, Mapping, Optional, Tuple, Union

import yaml

PACKAGE = 'plas_ros'
CONFIG_FOLDER = 'config'
_MISSING = object()


class ConfigError(ValueError):
    """A configuration file (or a parameter overlaid on it) that is missing, malformed or has a bad key.

    `path` is the file, `key` the dotted key (None for the whole file); `in_text=False` when `problem` names
    the key itself ("steps must be an integer")."""

    def __init__(self, path, key, problem, in_text=True):
        self.path = str(path) if path is not None else None
        self.key = key
        self.problem = problem
        where = [part for part in (self.path, key if in_text else None) if part]
        super().__init__('%s: %s' % (': '.join(where), problem) if where else problem)


# ------------------------------------------------------------------------------------------------- finding

@functools.lru_cache(maxsize=None)
def config_dir() -> str:
    """The package's `config/` folder.

    From a source checkout and from the catkin devel space (whose generated `plas_ros/__init__.py` puts the
    source folder on the package's path) it is the folder next to this module's package; an installed
    package (catkin install space) keeps it in the package's share folder, which rospkg knows.
    """
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), CONFIG_FOLDER)
    if os.path.isdir(here):
        return here
    try:
        import rospkg  # only an installed package needs ROS to find its share folder
        shared = os.path.join(rospkg.RosPack().get_path(PACKAGE), CONFIG_FOLDER)
    except Exception as exc:  # rospkg absent, or the package unknown to ROS_PACKAGE_PATH
        raise ConfigError(None, None, 'cannot find the %s config folder: not at %s and not through rospkg (%s)'
                          % (PACKAGE, here, exc)) from None
    if not os.path.isdir(shared):
        raise ConfigError(shared, None, 'the %s config folder does not exist' % PACKAGE)
    return shared


def config_path(name: str) -> str:
    """The absolute path of the file `name` (e.g. 'env.yaml') in config_dir()."""
    return os.path.join(config_dir(), name)


def resolve(name_or_path: str) -> str:
    """A bare file name ('env.yaml') is a file of config_dir(); anything with a folder part is a path."""
    name_or_path = os.fspath(name_or_path)
    if os.path.dirname(name_or_path):
        return name_or_path
    return config_path(name_or_path)


# The folder a user ran the command from, for nodes: the launch files set it to $PWD, because roslaunch runs every
# node in ROS_HOME (~/.ros), where a relative path the user typed would otherwise be resolved.
CALLER_FOLDER_ENV = 'PLAS_ROS_CWD'


def caller_path(path: Optional[str], folder: Optional[str] = None) -> Optional[str]:
    """A path a user typed (a launch argument, a node parameter, an option), absolute: a relative one is taken
    from the folder the command ran in (`folder` when given, else $PLAS_ROS_CWD when set, else the working
    folder). Empty stays empty."""
    if not path or os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(folder or os.environ.get(CALLER_FOLDER_ENV) or os.getcwd(), path))


def package_file(path: str, folder: Optional[str] = None) -> str:
    """A file a node was given: the path as given (see caller_path) when it exists, else relative to the
    package's folder ('config/train_mujoco.yaml'), else as given."""
    if not path or os.path.isabs(path):
        return path
    given = caller_path(path, folder)
    if os.path.exists(given):
        return given
    inside = os.path.join(os.path.dirname(config_dir()), path)
    return inside if os.path.exists(inside) else given


def user_path(path: Optional[str], default_name: str) -> str:
    """A configuration file a user named (a command-line option, a node parameter): that path as given
    (relative to the caller's folder, see caller_path; never looked up in config/), or config/<default_name>
    when empty."""
    return caller_path(path) if path else config_path(default_name)


def job_seed(job: str, given=None) -> int:
    """The seed of a job (collect, train_offline, deploy, drivers): `given` when it is set (not None or ''),
    else config/run.yaml seeds.<job>, the one place the jobs' default seeds live."""
    if given is not None and str(given).strip() != '':
        try:
            return int(given)
        except (TypeError, ValueError):
            raise ConfigError(None, None, 'seed must be an integer, got %r' % (given,)) from None
    value = lookup('run.yaml', 'seeds.%s' % job)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(config_path('run.yaml'), 'seeds.%s' % job, 'expected an integer, got %r' % (value,))
    return value


# ------------------------------------------------------------------------------------------------- reading

def load_yaml(name_or_path) -> dict:
    """The mapping at the top of a YAML file (see `resolve`); an empty file is {}. ConfigError when the file
    is missing, is not YAML, or holds something other than a mapping."""
    path = resolve(name_or_path)
    try:
        with open(path) as f:
            raw = yaml.safe_load(f)
    except OSError as exc:
        raise ConfigError(path, None, 'cannot read: %s' % (exc.strerror or exc)) from None
    except yaml.YAMLError as exc:
        raise ConfigError(path, None, 'not valid YAML: %s' % exc) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(path, None, 'expected a mapping at the top, got %s' % type(raw).__name__)
    return raw


def _raw_and_path(raw_or_path, path):
    if isinstance(raw_or_path, abc.Mapping):
        return raw_or_path, path
    resolved = resolve(raw_or_path)
    return load_yaml(resolved), path or resolved


def section(raw_or_path, key: Optional[str], path=None) -> dict:
    """The mapping at dotted `key` ('node', 'arm', 'a.b') of a YAML mapping or file; None or '' is the whole."""
    raw, path = _raw_and_path(raw_or_path, path)
    node = raw
    for depth, part in enumerate(key.split('.') if key else ()):
        node = node.get(part, _MISSING) if isinstance(node, abc.Mapping) else _MISSING
        if node is _MISSING or not isinstance(node, abc.Mapping):
            where = '.'.join(key.split('.')[:depth + 1])
            raise ConfigError(path, where, 'section missing or not a mapping')
    return dict(node)


def lookup(raw_or_path, key: str, path=None):
    """The value at dotted `key` ('gripper.contact_taxel_threshold') of a YAML mapping or file."""
    raw, path = _raw_and_path(raw_or_path, path)
    parent, _, leaf = key.rpartition('.')
    values = section(raw, parent, path)
    if leaf not in values:
        raise ConfigError(path, key, 'missing')
    return values[leaf]


# ------------------------------------------------------------------------------------------------- checking

def _describe(value):
    return '%r (%s)' % (value, type(value).__name__)


def _is_dataclass_type(kind):
    return isinstance(kind, type) and dataclasses.is_dataclass(kind)


def convert(kind, value, path, key):
    """`value` checked against the type annotation `kind`: bool, int, float (an int is fine), str, Optional,
    Tuple (from a list: fixed length or `...`), List, Dict, Any and nested dataclasses (from a mapping)."""
    if kind is Any or kind is object:
        return value
    if _is_dataclass_type(kind):
        if not isinstance(value, abc.Mapping):
            raise ConfigError(path, key, 'expected a mapping, got %s' % _describe(value))
        return from_mapping(kind, value, path, key)
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin is Union:
        options = [a for a in args if a is not type(None)]
        if value is None and len(options) < len(args):
            return None
        if len(options) == 1:
            return convert(options[0], value, path, key)
        for option in options:
            try:
                return convert(option, value, path, key)
            except ConfigError:
                continue
        raise ConfigError(path, key, 'expected one of %s, got %s' % (options, _describe(value)))
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(path, key, 'expected a list, got %s' % _describe(value))
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise ConfigError(path, key, 'expected a list of %d, got %s' % (len(args), _describe(value)))
            items = [convert(a, v, path, '%s[%d]' % (key, i)) for i, (a, v) in enumerate(zip(args, value))]
        else:
            item = args[0] if args else Any
            items = [convert(item, v, path, '%s[%d]' % (key, i)) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, abc.Mapping):
            raise ConfigError(path, key, 'expected a mapping, got %s' % _describe(value))
        kinds = args or (Any, Any)
        return {convert(kinds[0], k, path, key): convert(kinds[1], v, path, '%s.%s' % (key, k))
                for k, v in value.items()}
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(path, key, 'expected true or false, got %s' % _describe(value))
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, key, 'expected an integer, got %s' % _describe(value))
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(path, key, 'expected a number, got %s' % _describe(value))
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(path, key, 'expected a string, got %s' % _describe(value))
        return value
    if isinstance(kind, type):
        if not isinstance(value, kind):
            raise ConfigError(path, key, 'expected %s, got %s' % (kind.__name__, _describe(value)))
        return value
    raise TypeError('plas_ros.config cannot check values of type %r (%s)' % (kind, key))


def _dotted(prefix, name):
    return '%s.%s' % (prefix, name) if prefix else name


def from_mapping(cls, values: Mapping, path=None, prefix: str = '', where: Optional[Mapping] = None):
    """cls(**values), strictly: every field given (one with a default may be left out), nothing else, each of
    its annotated type.

    `prefix` is the section's dotted key; `where` may map a key to its dotted name when `values` was
    gathered from several sections (the error then names those)."""
    if not isinstance(values, abc.Mapping):
        raise ConfigError(path, prefix or None, 'expected a mapping, got %s' % _describe(values))
    kinds = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls) if f.init]
    optional = [f.name for f in dataclasses.fields(cls) if f.init and (
        f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING)]
    check_keys(values, fields, path, prefix, optional=optional, where=where)
    converted = {}
    for name in (f for f in fields if f in values):
        key = (where or {}).get(name) or _dotted(prefix, name)
        converted[name] = convert(kinds[name], values[name], path, key)
    return cls(**converted)


def load_section(cls, raw_or_path, key: Optional[str] = None, path=None):
    """The dataclass `cls` from the section at dotted `key` of a YAML mapping or file (None: the whole file),
    strictly (see from_mapping). `path` names the file in errors when `raw_or_path` is a mapping."""
    raw, path = _raw_and_path(raw_or_path, path)
    return from_mapping(cls, section(raw, key, path), path, key or '')


def check_keys(values: Mapping, known, path=None, prefix: str = '', optional=(), where: Optional[Mapping] = None):
    """ConfigError unless `values` has exactly the keys `known` (those in `optional` may be absent), naming
    every missing and unknown key (dotted: `prefix`.key, or where[key])."""
    missing = [k for k in known if k not in values and k not in optional]
    unknown = sorted(str(k) for k in values if k not in known)
    if not missing and not unknown:
        return
    dotted = [(where or {}).get(k) or _dotted(prefix, k) for k in missing + unknown]
    parts = (['missing keys %s' % missing] if missing else []) + (['unknown keys %s' % unknown] if unknown else [])
    raise ConfigError(path, dotted[0], '%s%s (%s)' % ('section %r: ' % prefix if prefix else '', ', '.join(parts),
                                                      ', '.join(dotted)), in_text=False)


def refer(values: Mapping, references: Mapping[str, Tuple[str, Any]], path=None, prefix: str = '') -> dict:
    """`values` plus the keys another file owns, {key: (where it lives, value)}, e.g.
    {'start_width_mm': ('config/env.yaml calibration.start_width_mm', 4.0)}. Giving such a key in `values`
    as well is a ConfigError saying where it lives: a value has one owner."""
    out = dict(values)
    for key, (owner, value) in references.items():
        if key in values:
            raise ConfigError(path, _dotted(prefix, key), 'owned by %s; do not repeat it here' % owner)
        out[key] = value
    return out


def reference(name: str, key: str):
    """(where it lives, value) of dotted `key` in config/<name>, for `refer`."""
    return 'config/%s %s' % (name, key), lookup(name, key)


# ------------------------------------------------------------------------------------------------- overlays

def like(default, value, path, key):
    """A parameter `value` given over a YAML `default`: of the default's type (an int for a float is fine;
    a null default takes anything)."""
    if default is None:
        return value
    if isinstance(default, bool):
        return convert(bool, value, path, key)
    if isinstance(default, int):
        return convert(int, value, path, key)
    if isinstance(default, float):
        return convert(float, value, path, key)
    if isinstance(default, str):
        return convert(str, value, path, key)
    if isinstance(default, (list, tuple)):
        return convert(list, value, path, key)
    if isinstance(default, abc.Mapping):
        return convert(dict, value, path, key)
    return value


def overlay(defaults: Mapping, given: Mapping, path=None, prefix: str = '', required=()) -> dict:
    """`defaults` (a YAML section) with the `given` values on top, each checked against its default's type.

    An empty string given for a key means "the default" (a launch argument left empty); a key of
    `required` whose value ends up null is a ConfigError, as is a given key that has no default."""
    unknown = sorted(k for k in given if k not in defaults)
    if unknown:
        raise ConfigError(path, _dotted(prefix, unknown[0]), 'unknown parameter(s) %s (known: %s)'
                          % (', '.join(unknown), ', '.join(sorted(defaults))))
    out = dict(defaults)
    for key, value in given.items():
        if isinstance(value, str) and value == '':
            continue
        out[key] = like(defaults[key], value, path, _dotted(prefix, key))
    for key in required:
        if out.get(key) is None:
            raise ConfigError(path, _dotted(prefix, key), 'required, and has no value')
    return out
