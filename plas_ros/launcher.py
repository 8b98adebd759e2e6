"""`rosrun plas_ros run JOB ARG:=VALUE ...`, the part without ROS: which launch file a job is, the arguments it
declares, checking what the user gave against them and making path arguments absolute.

roslaunch itself ignores an argument a launch file does not declare (`episode:=2` for `episodes`), resolves a
relative path in ROS_HOME (where it runs the nodes) and exits 0 when a required node failed. The run entry point
(plas_ros/nodes/run.py) does all three right; this module is its argument checking, tested without a master:

    declared = declared_args(launch_path('collect'))
    given = check_args(declared, parse_assignments(['episodes:=3', 'output:=x.h5']), 'collect.launch')
    given = resolve_paths(given, os.getcwd())      # {'episodes': '3', 'output': '/where/you/are/x.h5'}

Which arguments name files, and which of those must exist: config/run.yaml `paths`.
"""
import difflib
import os
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence

from plas_ros.config import caller_path, config_dir, lookup, package_file
from plas_ros.hardware.diagnostics import missing_ros_modules

LAUNCH_FOLDER = 'launch'
RUN_CONFIG = 'run.yaml'


class LaunchArgError(ValueError):
    """What the user asked for cannot be launched: an unknown job or argument, a missing required argument, an
    input path that does not exist. The message is one line naming it."""


@dataclass(frozen=True)
class LaunchArg:
    """One `<arg>` a launch file declares at its top level."""
    name: str
    default: Optional[str]   # None: no default
    doc: Optional[str]
    fixed: bool = False      # has value=: set by the launch file itself, not an argument to give

    @property
    def required(self):
        return self.default is None and not self.fixed


def package_folder() -> str:
    """The package's folder (the one holding config/ and launch/)."""
    return os.path.dirname(config_dir())


def launch_names() -> List[str]:
    """The launch files of the package, without `.launch`."""
    folder = os.path.join(package_folder(), LAUNCH_FOLDER)
    return sorted(name[:-len('.launch')] for name in os.listdir(folder) if name.endswith('.launch'))


def launch_path(job: str) -> str:
    """The launch file of `job` ('collect' or 'collect.launch'); LaunchArgError naming the known ones."""
    name = job[:-len('.launch')] if job.endswith('.launch') else job
    known = launch_names()
    if name not in known:
        raise LaunchArgError('unknown job %r%s (known: %s)' % (job, _suggestion(name, known), ', '.join(known)))
    return os.path.join(package_folder(), LAUNCH_FOLDER, name + '.launch')


def declared_args(path: str) -> Dict[str, LaunchArg]:
    """The `<arg>` elements at the top level of a launch file, by name, in file order (an `<arg>` inside
    `<include>` passes a value to the included file and declares nothing)."""
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError) as exc:
        raise LaunchArgError('%s: cannot read the launch file (%s)' % (path, exc)) from None
    declared = {}
    for element in root.findall('arg'):
        name = element.get('name')
        declared[name] = LaunchArg(name, element.get('default'), element.get('doc'), fixed='value' in element.attrib)
    return declared


def parse_assignments(argv: Sequence[str]) -> Dict[str, str]:
    """['episodes:=3', 'output:=x.h5'] -> {'episodes': '3', 'output': 'x.h5'}; anything else is an error."""
    given = {}
    for text in argv:
        name, sep, value = text.partition(':=')
        if not sep or not name:
            raise LaunchArgError('expected ARG:=VALUE, got %r' % text)
        if name in given:
            raise LaunchArgError('argument %r given twice' % name)
        given[name] = value
    return given


def _suggestion(name, known):
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return '; did you mean %r?' % close[0] if close else ''


def check_args(declared: Mapping[str, LaunchArg], given: Mapping[str, str], where: str) -> Dict[str, str]:
    """`given` when the launch file declares every name in it and every required argument is there; else a
    LaunchArgError naming the first problem (with the closest declared name for a typo)."""
    settable = [name for name, arg in declared.items() if not arg.fixed]
    for name in given:
        if name not in declared:
            raise LaunchArgError('%s has no argument %r%s (its arguments: %s)'
                                 % (where, name, _suggestion(name, settable), ', '.join(settable)))
        if declared[name].fixed:
            raise LaunchArgError('%s: %r is set by the launch file itself, not an argument to give (%s)'
                                 % (where, name, declared[name].doc or 'no doc'))
    missing = [name for name, arg in declared.items() if arg.required and name not in given]
    if missing:
        arg = declared[missing[0]]
        raise LaunchArgError('%s needs %s:=... (%s)' % (where, arg.name, arg.doc or 'no doc'))
    return dict(given)


def path_kinds() -> Dict[str, str]:
    """{argument name: 'input' | 'output'} for the launch arguments that name files (config/run.yaml paths)."""
    kinds = {name: 'output' for name in lookup(RUN_CONFIG, 'paths.outputs')}
    kinds.update({name: 'input' for name in lookup(RUN_CONFIG, 'paths.inputs')})
    return kinds


def _absolute_input(name, path, cwd):
    # config:=config/train_mujoco.yaml is found in the package from anywhere
    found = package_file(path, cwd) if name == 'config' else caller_path(path, cwd)
    if os.path.exists(found):
        return found
    raise LaunchArgError('%s:=%s: no such file or folder (looked for %s)' % (name, path, caller_path(path, cwd)))


def resolve_paths(given: Mapping[str, str], cwd: str, kinds: Optional[Mapping[str, str]] = None) -> Dict[str, str]:
    """`given` with every path argument absolute against `cwd`; an input that does not exist is a
    LaunchArgError naming it. An empty value stays empty (the launch file's default)."""
    kinds = path_kinds() if kinds is None else kinds
    out = dict(given)
    for name, value in given.items():
        kind = kinds.get(name)
        if kind is None or not value.strip():
            continue
        if kind == 'output':
            out[name] = caller_path(value, cwd)
            continue
        parts = value.split() if name == 'dataset' else [value]
        out[name] = ' '.join(_absolute_input(name, part, cwd) for part in parts)
    return out


def prepare(job: str, argv: Sequence[str], cwd: str):
    """(launch file path, its checked and resolved arguments as ['name:=value', ...]) for `job`; LaunchArgError
    before anything starts when the request is wrong or a ROS module the nodes need is missing."""
    path = launch_path(job)
    missing = missing_ros_modules()  # the drivers' own check, here before any node (or the master) starts
    if missing:
        raise LaunchArgError('; '.join(missing))
    given = check_args(declared_args(path), parse_assignments(argv), os.path.basename(path))
    return path, ['%s:=%s' % item for item in resolve_paths(given, cwd).items()]


INTERRUPTED = 130  # the run's status when it was stopped (Ctrl-C, SIGTERM) before its job ended


class JobWatch:
    """What ends a run and its exit status, from the processes that die.

    The job is what the launch file marks required="true" (the recorder, the trainer, the deployment's env and
    inference node, the sim world): the first of them to exit ends the run with its exit status, 0 for a job
    that finished. Any other node that dies with an error and is not respawned (a behaviour policy that cannot
    load its checkpoint) also ends it, with that status: the job could never finish. A node that exits 0, or
    one roslaunch respawns (the drivers), does not.

    Process names are roslaunch's: the node's full name without the leading slash, a dash and a counter
    (`recorder-9`, `wsg/wsg_driver-2`).
    """

    def __init__(self, jobs, respawned=()):
        self.jobs = set(jobs)
        self.respawned = set(respawned)
        self.ended_by = None   # (node, exit status) of the process that ended the run
        self.status = None

    @staticmethod
    def node_of(process_name):
        return process_name.rsplit('-', 1)[0]

    @property
    def done(self):
        return self.status is not None

    def died(self, process_name, exit_code):
        """Take a process's death; True when it ends the run."""
        node = self.node_of(process_name)
        failed = exit_code != 0
        if self.done or not (node in self.jobs or (failed and node not in self.respawned)):
            return False
        self.ended_by = (node, exit_code)
        self.status = 1 if exit_code is None else int(exit_code)
        return True

    def summary(self, where):
        """One line: how the run ended."""
        if not self.done:
            return '%s: stopped before its job ended' % where
        node, code = self.ended_by
        if self.status == 0:
            return '%s: %s finished; the other nodes were stopped' % (where, node)
        return '%s failed: %s exited with status %s' % (where, node, 'unknown' if code is None else code)
