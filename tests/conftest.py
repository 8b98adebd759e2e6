"""Shared test fixtures: a private ROS master per test process, rospy in this process, managed subprocesses
(nodes, roslaunch, rosbag) that are always stopped with their whole process group, the files a test module
needs (`pytest.mark.needs`), and one trained checkpoint per test process. The helpers behind them are in
tests/helpers.

Unit tests (tests/unit) use none of the ROS fixtures and run without ROS.
"""
import os
import tempfile

import pytest

from tests.helpers.common import free_port
from tests.helpers.deploy import train_tiny_checkpoint
from tests.helpers.ros import ManagedProcess, roslaunch_command, start_master
from tests.helpers.tree import missing_from_tree


@pytest.fixture(autouse=True)
def needed_files(request):
    """Fails (never skips) a test whose `needs` marks name files that are not in the tree:
    `pytestmark = pytest.mark.needs('scripts/env_node', 'launch/drivers.launch')` (paths relative to the
    repository root, or absolute)."""
    paths = [p for mark in request.node.iter_markers('needs') for p in mark.args]
    missing = missing_from_tree(paths)
    assert not missing, 'not in the tree: %s' % ', '.join(missing)


@pytest.fixture(scope='session')
def ros_home(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('ros_home'))
    os.environ['ROS_HOME'] = path
    os.environ['ROS_LOG_DIR'] = os.path.join(path, 'log')
    return path


@pytest.fixture(scope='session')
def ros_master(ros_home):
    """A private `rosmaster --core` on a free port; ROS_MASTER_URI points at it for this process."""
    port = free_port()
    uri = 'http://127.0.0.1:%d' % port
    os.environ['ROS_MASTER_URI'] = uri
    os.environ['ROS_IP'] = '127.0.0.1'  # always: the private master is on loopback, so is everything it serves
    os.environ.pop('ROS_HOSTNAME', None)
    master = start_master(port, ros_home)
    yield uri
    master.stop()


@pytest.fixture(scope='session')
def rospy_node(ros_master):
    """rospy initialised in the test process (possible only once per process)."""
    import rospy
    rospy.init_node('pytest_%d' % os.getpid(), anonymous=False, disable_signals=True)
    yield rospy
    rospy.signal_shutdown('tests done')


@pytest.fixture
def processes(ros_master, ros_home):
    """Factory for managed subprocesses that share this test's master; all stopped at teardown.

    start(['roslaunch', 'plas_ros', 'x.launch', 'a:=1'], name='x') -> ManagedProcess
    """
    started = []
    log_dir = tempfile.mkdtemp(prefix='procs_', dir=ros_home)

    def start(args, name=None, env=None):
        name = name or os.path.basename(str(args[0]))
        proc = ManagedProcess(args, log_dir, '%s_%d' % (name, len(started)), env=env)
        started.append(proc)
        return proc

    before = set(_param_names())
    yield start
    for proc in reversed(started):
        proc.stop()
    _delete_params(set(_param_names()) - before)


def _master():
    import rosgraph
    return rosgraph.Master('/pytest_params')


def _param_names():
    return _master().getParamNames()


def _delete_params(names):
    """The parameters a test's nodes and launches set die with the test: the session shares one master, and a
    node of the same name in a later test (recorder, cloth_env) would read them as its own."""
    master = _master()
    for name in sorted(names, key=len, reverse=True):
        try:
            master.deleteParam(name)
        except Exception:  # a parent deleted first took it along
            pass


@pytest.fixture
def roslaunch(processes):
    """Start `roslaunch plas_ros <file> key:=value ...` under the test's master (no own roscore)."""
    def start(launch_file, name=None, **args):
        return processes(roslaunch_command(launch_file, **args),
                         name=name or os.path.basename(launch_file).replace('.launch', ''))
    return start


@pytest.fixture(scope='session')
def checkpoint(tmp_path_factory):
    """One checkpoint trained by `python -m plas_ros.train` on a tiny dataset, shared by the deployment tests."""
    return train_tiny_checkpoint(str(tmp_path_factory.mktemp('deploy_ckpt')))
