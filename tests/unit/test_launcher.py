"""The run entry point's argument checking (plas_ros.launcher), without a master: the launch files' declared
arguments (every one documented), unknown and missing arguments, path resolution, what ends a run, the seeds."""
import glob
import os
import xml.etree.ElementTree as ElementTree

import pytest

from plas_ros import launcher
from plas_ros.config import CALLER_FOLDER_ENV, caller_path, job_seed, lookup, package_file
from plas_ros.launcher import JobWatch, LaunchArgError
from tests.helpers.tree import REPO_ROOT

LAUNCH_FILES = sorted(glob.glob(os.path.join(REPO_ROOT, 'launch', '*.launch')))
JOBS = ('collect', 'train_offline', 'deploy')


def declarations(element):
    """Every <arg> a launch file declares: all but those inside <include> (they pass values to the included file)."""
    for child in element:
        if child.tag == 'arg':
            yield child
        elif child.tag != 'include':
            yield from declarations(child)


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=os.path.basename)
def test_every_launch_argument_has_a_doc(path):
    declared = list(declarations(ElementTree.parse(path).getroot()))
    undocumented = [a.get('name') for a in declared if not a.get('doc')]
    assert declared and not undocumented, '%s: arguments without doc=: %s' % (path, undocumented)


def test_declared_arguments_come_from_the_top_level_only():
    args = launcher.declared_args(launcher.launch_path('deploy'))
    assert args['checkpoint'].required and not args['episodes'].required
    assert args['recording'].fixed and not args['recording'].required
    assert 'sim_seed' not in args  # passed to drivers.launch inside <include>, not declared by deploy.launch
    assert launcher.launch_path('collect.launch') == launcher.launch_path('collect')


def test_an_unknown_argument_is_refused_with_the_closest_name():
    declared = launcher.declared_args(launcher.launch_path('collect'))
    with pytest.raises(LaunchArgError, match=r"collect.launch has no argument 'episode'; did you mean 'episodes'\?"):
        launcher.check_args(declared, {'episode': '2'}, 'collect.launch')
    with pytest.raises(LaunchArgError, match=r"no argument 'zzz' \(its arguments: sim, drivers, policy, episodes"):
        launcher.check_args(declared, {'zzz': '2'}, 'collect.launch')
    assert launcher.check_args(declared, {'episodes': '2'}, 'collect.launch') == {'episodes': '2'}


def test_a_missing_required_or_a_fixed_argument_is_refused():
    declared = launcher.declared_args(launcher.launch_path('deploy'))
    with pytest.raises(LaunchArgError, match=r'deploy.launch needs checkpoint:=\.\.\. \(policy folder'):
        launcher.check_args(declared, {'episodes': '2'}, 'deploy.launch')
    with pytest.raises(LaunchArgError, match="'recording' is set by the launch file itself"):
        launcher.check_args(declared, {'checkpoint': 'x', 'recording': 'true'}, 'deploy.launch')


def test_an_unknown_job_names_the_known_ones():
    with pytest.raises(LaunchArgError, match=r"unknown job 'colect'; did you mean 'collect'\? \(known: collect, "):
        launcher.launch_path('colect')


@pytest.mark.parametrize('argv, problem', [(['episodes=2'], "expected ARG:=VALUE, got 'episodes=2'"),
                                           ([':=2'], 'expected ARG:=VALUE'),
                                           (['a:=1', 'a:=2'], "argument 'a' given twice")])
def test_assignments_must_be_name_colon_equals_value(argv, problem):
    with pytest.raises(LaunchArgError, match=problem):
        launcher.parse_assignments(argv)


def test_assignments_keep_values_with_spaces_and_colons():
    assert launcher.parse_assignments(['dataset:=a.h5 b.h5', 'x:=http://h:1', 'e:=']) == {
        'dataset': 'a.h5 b.h5', 'x': 'http://h:1', 'e': ''}


def test_relative_paths_resolve_against_the_callers_folder(tmp_path):
    (tmp_path / 'a.h5').write_bytes(b'')
    (tmp_path / 'sub').mkdir()
    (tmp_path / 'sub' / 'b.h5').write_bytes(b'')
    given = {'dataset': 'a.h5 sub/b.h5', 'out': 'run', 'output': '/abs/x.h5', 'episodes': '3', 'record': ''}
    resolved = launcher.resolve_paths(given, str(tmp_path))
    assert resolved == {'dataset': '%s %s' % (tmp_path / 'a.h5', tmp_path / 'sub' / 'b.h5'),
                        'out': str(tmp_path / 'run'), 'output': '/abs/x.h5', 'episodes': '3', 'record': ''}


def test_a_config_is_found_in_the_package_when_not_in_the_callers_folder(tmp_path):
    resolved = launcher.resolve_paths({'config': 'config/train_mujoco.yaml'}, str(tmp_path))
    assert resolved['config'] == os.path.join(REPO_ROOT, 'config', 'train_mujoco.yaml')


@pytest.mark.parametrize('name', ['dataset', 'checkpoint', 'config'])
def test_an_input_that_does_not_exist_is_refused_naming_it(tmp_path, name):
    with pytest.raises(LaunchArgError, match=r'%s:=nope/x: no such file or folder \(looked for %s\)'
                       % (name, tmp_path / 'nope' / 'x')):
        launcher.resolve_paths({name: 'nope/x'}, str(tmp_path))


def test_prepare_checks_then_resolves(tmp_path):
    path, args = launcher.prepare('collect', ['episodes:=2', 'output:=x.h5'], str(tmp_path))
    assert path == os.path.join(REPO_ROOT, 'launch', 'collect.launch')
    assert args == ['episodes:=2', 'output:=%s' % (tmp_path / 'x.h5')]


def test_a_missing_ros_module_is_refused_before_anything_starts(monkeypatch, tmp_path):
    from plas_ros.hardware import diagnostics
    monkeypatch.setattr(diagnostics, 'ROS_MODULES', dict(diagnostics.ROS_MODULES, plas_no_such_module=(
        'python3-plas-no-such', 'ros-noetic-plas-no-such')))
    with pytest.raises(LaunchArgError, match='plas_no_such_module is missing: install python3-plas-no-such'):
        launcher.prepare('collect', ['episodes:=2'], str(tmp_path))


def test_the_path_arguments_of_run_yaml_are_launch_arguments():
    declared = set()
    for path in LAUNCH_FILES:
        declared |= set(launcher.declared_args(path))
    assert set(launcher.path_kinds()) <= declared


def test_no_launch_default_writes_into_the_package():
    for path in LAUNCH_FILES:
        for name, arg in launcher.declared_args(path).items():
            if launcher.path_kinds().get(name) == 'output' and arg.default:
                assert '$(find plas_ros)' not in arg.default and 'ROS_HOME' in arg.default or \
                    arg.default.startswith('/tmp/'), (path, name, arg.default)


# ------------------------------------------------------------------------------------------ what ends a run

def test_a_job_that_exits_0_ends_the_run_with_0():
    watch = JobWatch(jobs={'recorder', 'sim_world'}, respawned={'wsg/wsg_driver'})
    assert not watch.died('wsg/wsg_driver-3', 1)      # respawned by roslaunch
    assert not watch.died('helper-4', 0)              # not a job, ended well
    assert watch.died('recorder-9', 0) and watch.status == 0
    assert not watch.died('sim_world-2', 1)           # the run has already ended
    assert watch.summary('collect.launch') == 'collect.launch: recorder finished; the other nodes were stopped'


@pytest.mark.parametrize('process, code, status', [('train_offline-1', 1, 1), ('train_offline-1', None, 1),
                                                    ('behaviour_policy-7', 3, 3), ('ns/inference-2', -11, -11)])
def test_a_failed_job_or_node_ends_the_run_with_its_status(process, code, status):
    watch = JobWatch(jobs={'train_offline', 'ns/inference'})
    assert watch.died(process, code) and watch.status == status
    assert 'failed: %s exited with status' % JobWatch.node_of(process) in watch.summary('x.launch')


def test_a_run_stopped_before_its_job_ended():
    assert not JobWatch({'recorder'}).done
    assert JobWatch({'recorder'}).summary('x') == 'x: stopped before its job ended'


# ------------------------------------------------------------------------------------------ seeds and paths

def test_each_job_has_its_own_default_seed():
    seeds = [job_seed(job) for job in JOBS + ('drivers',)]
    assert len(set(seeds)) == len(seeds)
    assert seeds[0] == lookup('run.yaml', 'seeds.collect')
    assert job_seed('deploy', '7') == 7 and job_seed('deploy', 0) == 0 and job_seed('deploy', '') == seeds[2]


def test_caller_path_takes_the_folder_the_launch_file_passes(monkeypatch, tmp_path):
    monkeypatch.setenv(CALLER_FOLDER_ENV, str(tmp_path))
    assert caller_path('a/b.h5') == str(tmp_path / 'a' / 'b.h5')
    assert caller_path('/x.h5') == '/x.h5' and caller_path('') == ''
    assert package_file('config/train_mujoco.yaml') == os.path.join(REPO_ROOT, 'config', 'train_mujoco.yaml')
    (tmp_path / 'config').mkdir()
    (tmp_path / 'config' / 'train_mujoco.yaml').write_text('{}')
    assert package_file('config/train_mujoco.yaml') == str(tmp_path / 'config' / 'train_mujoco.yaml')
    monkeypatch.delenv(CALLER_FOLDER_ENV)
    assert caller_path('a.h5') == os.path.join(os.getcwd(), 'a.h5')
