"""The graph split the way a lab runs it, on two "machines": two network namespaces joined by a veth pair.

The robot PC (10.200.N.1) runs the master, the simulated devices and their drivers (`drivers.launch`); the
workstation (10.200.N.2) runs collection, training and deployment with `drivers:=false`, every node of both
reaching the others only over the veth link. ROS_MASTER_URI and ROS_IP are set on each side exactly as the
README's section *Two machines* tells users to. One short collect -> train -> deploy run; the recorded files
and the deployment's result are checked. Skipped (saying why) only where the machine forbids namespaces.
"""
import contextlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.helpers.common import wait_for
from tests.helpers.ros import ManagedProcess, digest, roslaunch_command
from tests.helpers.tree import REPO_ROOT

pytestmark = pytest.mark.needs('launch/drivers.launch', 'launch/collect.launch', 'launch/train_offline.launch',
                               'launch/deploy.launch')

MASTER_PORT = 11311  # each namespace has its own ports: the README's default master port is free there


def _ip(*args):
    return subprocess.run(['ip'] + list(args), capture_output=True, text=True, timeout=30)


def namespaces_forbidden():
    """Why this machine cannot make network namespaces, or None (probed with a throwaway one)."""
    probe = 'plasprobe%d' % os.getpid()
    try:
        made = _ip('netns', 'add', probe)
    except FileNotFoundError:
        return 'no `ip` command (iproute2) on this machine'
    if made.returncode != 0:
        return '`ip netns add` is refused here: %s' % made.stderr.strip()
    try:
        entered = subprocess.run(['ip', 'netns', 'exec', probe, 'true'], capture_output=True, text=True, timeout=30)
    finally:
        _ip('netns', 'delete', probe)
    if entered.returncode != 0:
        return '`ip netns exec` is refused here: %s' % entered.stderr.strip()
    return None


def _kill_leftovers(ns, grace=10.0):
    """The processes still inside namespace `ns` (all started by this test) `grace` s after their launches were
    stopped, killed; their pids."""
    def pids():
        return [int(p) for p in _ip('netns', 'pids', ns).stdout.split()]
    deadline = time.monotonic() + grace
    while pids() and time.monotonic() < deadline:  # children still exiting after their roslaunch
        time.sleep(0.2)
    left = pids()
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return left


class Machine:
    """One network namespace with an address on the veth link; runs commands as that machine."""

    def __init__(self, name, address, master, home):
        self.name, self.address, self.home = name, address, home
        os.makedirs(home, exist_ok=True)
        # What the README's "Two machines" section says to set on every machine.
        self.env = dict(os.environ, ROS_MASTER_URI=master, ROS_IP=address, ROS_HOME=home,
                        ROS_LOG_DIR=os.path.join(home, 'log'), PYTHONUNBUFFERED='1')
        self.env.pop('ROS_HOSTNAME', None)
        self.started = []

    def start(self, args, label):
        proc = ManagedProcess(['ip', 'netns', 'exec', self.name] + list(args), self.home,
                              '%s_%d' % (label, len(self.started)), env=self.env)
        self.started.append(proc)
        return proc

    def run(self, args, timeout=60):
        return subprocess.run(['ip', 'netns', 'exec', self.name] + list(args), env=self.env, cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=timeout)

    def stop_all(self):
        for proc in reversed(self.started):
            proc.stop()


def _link_up(robot_ns, station_ns, subnet):
    """Two namespaces joined by a veth pair, both ends and both loopbacks up."""
    pid = os.getpid()
    robot_if, station_if = 'plr%d' % pid, 'plw%d' % pid  # interface names: at most 15 characters
    commands = [('netns', 'add', robot_ns), ('netns', 'add', station_ns),
                ('link', 'add', robot_if, 'netns', robot_ns, 'type', 'veth', 'peer', 'name', station_if,
                 'netns', station_ns),
                ('-n', robot_ns, 'addr', 'add', subnet + '.1/24', 'dev', robot_if),
                ('-n', station_ns, 'addr', 'add', subnet + '.2/24', 'dev', station_if),
                ('-n', robot_ns, 'link', 'set', robot_if, 'up'), ('-n', station_ns, 'link', 'set', station_if, 'up'),
                ('-n', robot_ns, 'link', 'set', 'lo', 'up'), ('-n', station_ns, 'link', 'set', 'lo', 'up')]
    for command in commands:
        done = _ip(*command)
        assert done.returncode == 0, 'ip %s: %s' % (' '.join(command), done.stderr.strip())


@contextlib.contextmanager
def machines(home):
    """(robot PC, workstation), each a Machine, the robot PC running the master. Everything is removed on the way
    out, also when the body fails: the processes first (their whole groups, then any left in the namespaces),
    then the namespaces (with the veth pair). AssertionError afterwards if anything outlived that."""
    pid = os.getpid()
    robot_ns, station_ns = 'plas_robot_%d' % pid, 'plas_ws_%d' % pid
    subnet = '10.200.%d' % (pid % 250 + 1)  # per test process: helpers running side by side do not meet
    master = 'http://%s.1:%d' % (subnet, MASTER_PORT)
    robot = Machine(robot_ns, subnet + '.1', master, os.path.join(home, 'robot_pc'))
    station = Machine(station_ns, subnet + '.2', master, os.path.join(home, 'workstation'))
    try:
        _link_up(robot_ns, station_ns, subnet)
        robot.start(['rosmaster', '--core', '-p', str(MASTER_PORT)], 'rosmaster')
        wait_for(lambda: station.run(['rosnode', 'list'], timeout=20).returncode == 0, 30,
                 interval=0.5, what='the master on the robot PC, seen from the workstation')
        yield robot, station
    finally:
        station.stop_all()
        robot.stop_all()
        leftovers = {ns: _kill_leftovers(ns) for ns in (station_ns, robot_ns)}
        for ns in (station_ns, robot_ns):
            _ip('netns', 'delete', ns)
        left = [ns for ns in (robot_ns, station_ns) if ns in _ip('netns', 'list').stdout.split()]
        assert not left, 'network namespaces left behind: %s' % left
        assert not any(leftovers.values()), 'processes outlived their launch (killed): %s' % leftovers


@pytest.fixture
def two_machines(tmp_path):
    why = namespaces_forbidden()
    if why:
        pytest.skip('network namespaces are not available: %s' % why)
    with machines(str(tmp_path)) as pair:
        yield pair


def test_a_failing_test_leaves_no_namespace_and_no_process_behind(tmp_path):
    why = namespaces_forbidden()
    if why:
        pytest.skip('network namespaces are not available: %s' % why)
    with pytest.raises(RuntimeError, match='the test failed'):
        with machines(str(tmp_path)) as (robot, station):
            sleepers = [robot.start(['sleep', '600'], 'sleep'), station.start(['sleep', '600'], 'sleep')]
            wait_for(lambda: all(_ip('netns', 'pids', m.name).stdout.split() for m in (robot, station)), 10,
                     what='a process in each namespace')
            raise RuntimeError('the test failed')
    assert not any(s.running() for s in sleepers)
    names = _ip('netns', 'list').stdout.split()
    assert robot.name not in names and station.name not in names  # the veth pair lived only in them


def node_address(machine, node):
    """The host part of `node`'s URI as the master knows it (asked from `machine`), or None."""
    code = ('import sys, rosgraph; from urllib.parse import urlparse\n'
            'try:\n    print(urlparse(rosgraph.Master("/q").lookupNode(sys.argv[1])).hostname)\n'
            'except Exception:\n    pass')
    found = machine.run([sys.executable, '-c', code, node], timeout=20).stdout.strip()
    return found or None


def test_drivers_on_the_robot_pc_collection_training_and_deployment_on_the_workstation(two_machines, tmp_path):
    import h5py
    robot, station = two_machines
    drivers = robot.start(roslaunch_command('drivers.launch', sim='true', sim_seed=2,
                                            sim_dsa_link=str(tmp_path / 'dsa')), 'drivers')
    wait_for(lambda: node_address(station, '/arm/arm_driver'), 60, interval=0.5, what='the arm driver')

    collected = str(tmp_path / 'collected.h5')
    collect = station.start(roslaunch_command('collect.launch', drivers='false', policy='expert', episodes=2,
                                              seed=3, output=collected), 'collect')
    wait_for(lambda: node_address(station, '/cloth_env') or not collect.running(), 60, interval=0.5,
             what='the env node on the workstation')
    nodes = ('/cloth_env', '/recorder', '/behaviour_policy', '/arm/arm_driver', '/wsg/wsg_driver', '/dsa/dsa_driver')
    addresses = {node: node_address(station, node) for node in nodes}
    assert collect.wait(timeout=180) == 0, digest(collect.output)
    assert addresses == {'/cloth_env': station.address, '/recorder': station.address,
                         '/behaviour_policy': station.address, '/arm/arm_driver': robot.address,
                         '/wsg/wsg_driver': robot.address, '/dsa/dsa_driver': robot.address}, addresses
    with h5py.File(collected, 'r') as f:
        ends = f['terminals'][:] | f['timeouts'][:]
        assert f.attrs['source'] == 'sim' and not f['infos/errors'][:].any()
        assert len(np.unique(f['infos/episode_ids'][:])) == 2 and ends.sum() == 2 and ends[-1]
        assert np.all(np.isfinite(f['infos/timestamps'][:])) and np.all(np.diff(f['infos/timestamps'][:]) > 0)

    checkpoint = str(tmp_path / 'run')
    train = station.start(roslaunch_command('train_offline.launch', dataset=collected, out=checkpoint, steps=20,
                                            vae_steps=20, eval='false'), 'train')
    assert train.wait(timeout=300) == 0, digest(train.output)

    deployed = str(tmp_path / 'deploy.h5')
    deploy = station.start(roslaunch_command('deploy.launch', drivers='false', checkpoint=checkpoint, episodes=1,
                                             record=deployed), 'deploy')
    assert deploy.wait(timeout=180) == 0, digest(deploy.output)
    assert 'episode 0: return' in deploy.output, digest(deploy.output)
    with h5py.File(deployed, 'r') as f:
        ends = f['terminals'][:] | f['timeouts'][:]
        acted = ~f['infos/errors'][:]
        observations, actions = f['observations'][:], f['actions'][:]
    assert ends.sum() == 1 and ends[-1] and acted.sum() >= len(acted) - 1
    from plas_ros.policy import load_policy
    policy = load_policy(checkpoint)
    np.testing.assert_allclose(actions[acted], np.clip(policy.act(observations[acted]), policy.action_low,
                                                       policy.action_high), rtol=1e-5, atol=1e-6)
    assert drivers.running(), digest(drivers.output)  # the robot PC's side stayed up throughout
