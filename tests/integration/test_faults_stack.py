"""Fault injection across the collection stack: a device link lost and restored during a real collection.

The stack is collect.launch's, node for node (wsg/dsa/arm drivers, cloth_env, behaviour_policy, recorder), but
the simulated world runs inside this test process, so its own fault hooks are at hand:
`WsgSimulator.drop_connections(hold_off)` (the gripper's TCP connection closed, connections refused for a
while) and `DsaSimulator.reopen_pty(down_time)` (the controller's pseudo-terminal closed, a new one at the same
link later). What the user must see: the driver reports the outage and the recovery; the episode in progress
ends as an error transition naming the silent device (never a success made of stale data); the recorder's
file still validates and holds, unchanged, every episode committed before the fault; collection reaches the
requested number of complete episodes once the link is back (calling /cloth/reset as the operator would if
the env node asks for it: a reset that fails during the outage stops autostart, as documented).

Observations that stop arriving (the env node's action timeout) are covered by test_env_node.py (holding still,
asking again) and test_inference_node.py (stale observations get no action).
"""
import os
import subprocess
import sys
import threading
import time

import h5py
import numpy as np
import pytest
import yaml

from plas_ros.env import layout
from tests.helpers.common import wait_for
from tests.helpers.ros import digest
from tests.helpers.tree import REPO_ROOT, script

EPISODES = 3          # complete episodes the recorder waits for
SENSOR_MAX_AGE = 0.5  # s, cloth_env's ~sensor_max_age (collect.launch's default)
STALE_GRACE = 0.25    # s after the outage shows: a step may still finish on data read just before it
pytestmark = pytest.mark.needs(*(script(s) for s in ('wsg_node', 'dsa_node', 'arm_node', 'env_node',
                                                     'behaviour_node', 'recorder_node')))


class Watch:
    """What the user sees on the topics: link states with their arrival times, transitions, commits."""

    def __init__(self, rospy):
        from std_msgs.msg import Bool, UInt32

        from plas_ros.msg import GripperState, Transition
        self.rospy = rospy
        self.lock = threading.Lock()
        self.wsg_links = []   # (time, connected) on every change of /wsg/state's `connected`
        self.dsa_links = []   # (time, data) of every /dsa/connected
        self.transitions = []
        self.committed = 0
        self.subs = [rospy.Subscriber('/wsg/state', GripperState, self._on_wsg_state),
                     rospy.Subscriber('/dsa/connected', Bool, self._on_dsa_connected),
                     rospy.Subscriber('/cloth/transition', Transition, self._on_transition, queue_size=1000),
                     rospy.Subscriber('/recorder/committed', UInt32, self._on_committed)]

    def _now(self):
        return self.rospy.get_rostime().to_sec()

    def _on_wsg_state(self, msg):
        with self.lock:
            if not self.wsg_links or self.wsg_links[-1][1] != msg.connected:
                self.wsg_links.append((self._now(), msg.connected))

    def _on_dsa_connected(self, msg):
        with self.lock:
            self.dsa_links.append((self._now(), msg.data))

    def _on_transition(self, msg):
        with self.lock:
            self.transitions.append(msg)

    def _on_committed(self, msg):
        self.committed = msg.data

    def link_change(self, links, connected, after, timeout, what):
        """Time of the first report of `connected` after `after` (s, ROS time)."""
        def find():
            with self.lock:
                return next((t for t, c in links if c == connected and t >= after), None)
        return wait_for(find, timeout, what=what)

    def error_transition(self, after, timeout):
        def find():
            with self.lock:
                return next((m for m in self.transitions if m.error and m.header.stamp.to_sec() >= after), None)
        return wait_for(find, timeout, what='an error transition after the fault')

    def successes_between(self, start, end):
        with self.lock:
            return [m for m in self.transitions if not m.error and start < m.header.stamp.to_sec() < end]

    def close(self):
        for sub in self.subs:
            sub.unregister()


class ArmMoves:
    """Taps the simulated arm's move_hand (the call the arm driver makes for every step): when, and how far the
    tip was sent."""

    def __init__(self, arm):
        self.lock = threading.Lock()
        self.moves = []  # (wall time, dy, dz) of the tip
        move_hand = arm.move_hand

        def tapped(position, orientation):
            tip, now = arm.tip_frame.tip_from_hand(position, orientation), arm.tip_pose()
            with self.lock:
                self.moves.append((time.time(), tip[1] - now[1], tip[2] - now[2]))
            return move_hand(position, orientation)
        arm.move_hand = tapped

    def slides_between(self, start, end):
        """Horizontal moves (policy steps; the grasp calibration moves only vertically) in (start, end)."""
        with self.lock:
            return [m for m in self.moves if start < m[0] < end and abs(m[1]) > 1e-9]


class Stack:
    """collect.launch's nodes over a SimWorld hosted here (seeded), recording `EPISODES` expert episodes."""

    def __init__(self, rospy, processes, tmp_path, seed):
        from plas_ros.sim.world import SimWorld
        self.output = str(tmp_path / 'collected.h5')
        self.world = SimWorld(seed=seed)
        self.arm_moves = ArmMoves(self.world.arm)
        wsg_port, arm_port, _ = self.world.start(dsa_link=str(tmp_path / 'dsa'))
        with open(os.path.join(REPO_ROOT, 'config', 'robot.yaml')) as f:
            for section, values in yaml.safe_load(f).items():  # what drivers.launch loads at the root
                rospy.set_param('/' + section, values)
        with open(os.path.join(REPO_ROOT, 'config', 'env.yaml')) as f:
            rospy.set_param('/recorder/config_text', f.read())
        self.watch = Watch(rospy)
        node = self._node_starter(processes)
        node('wsg_node', 'wsg_driver', ns='wsg', host='127.0.0.1', port=wsg_port)
        node('dsa_node', 'dsa_driver', ns='dsa', port=str(tmp_path / 'dsa'))
        node('arm_node', 'arm_driver', ns='arm', sim='true', sim_host='127.0.0.1', sim_port=arm_port)
        self.env = node('env_node', 'cloth_env', episodes=0, autostart='true', wait_for_recorder=1,
                        action_timeout=1.0, sensor_max_age=SENSOR_MAX_AGE)
        node('behaviour_node', 'behaviour_policy', policy='expert', noise=0.0, seed=seed)
        self.recorder = node('recorder_node', 'recorder', output=self.output, episodes=EPISODES, source='sim',
                             policy='expert')

    @staticmethod
    def _node_starter(processes):
        def start(executable, name, ns='/', **params):
            args = [script(executable), '__name:=' + name, '__ns:=' + ns]
            args += ['_%s:=%s' % kv for kv in sorted(params.items())]
            return processes(args, name=name)
        return start

    def finish(self, rospy, timeout):
        """Wait for the recorder to end by itself (its episode count reached), calling /cloth/reset as the
        operator would whenever the env node asks for it; the file must validate."""
        from std_srvs.srv import Trigger
        reset = rospy.ServiceProxy('/cloth/reset', Trigger)
        answered = 0
        deadline = time.monotonic() + timeout
        while self.recorder.running() and time.monotonic() < deadline:
            if self.env.output.count('waiting for /cloth/reset') > answered:
                wait_for(lambda: reset().success, 20, interval=0.5, what='/cloth/reset accepted')
                answered += 1
            time.sleep(0.2)
        assert not self.recorder.running(), 'the recorder did not reach %d complete episodes; cloth_env said:\n%s' % (
            EPISODES, digest(self.env.output))
        assert self.recorder.wait(1) == 0, digest(self.recorder.output)
        validate = subprocess.run([sys.executable, '-m', 'plas_ros.data', 'validate', self.output],
                                  capture_output=True, text=True, timeout=60)
        assert validate.returncode == 0, validate.stdout + validate.stderr
        return read_file(self.output)

    def stop(self):
        self.watch.close()
        self.world.stop()


def read_file(path):
    with h5py.File(path, 'r') as f:
        arrays = {}
        f.visititems(lambda key, item: arrays.__setitem__(key, item[()]) if isinstance(item, h5py.Dataset) else None)
    return arrays


def episodes_of(arrays):
    """[(rows, error)] per episode block of a recorded file."""
    ids = arrays['infos/episode_ids']
    return [(int(np.sum(ids == i)), bool(arrays['infos/errors'][ids == i].all())) for i in np.unique(ids)]


@pytest.fixture
def stack(rospy_node, processes, tmp_path):
    built = Stack(rospy_node, processes, tmp_path, seed=5)
    yield built
    built.stop()


def snapshot_after_first_commit(stack):
    wait_for(lambda: stack.watch.committed >= 1, 60, what='the first committed episode\n' + digest(stack.env.output))
    return read_file(stack.output)


def wait_mid_episode(stack, rospy):
    """Returns once the episode in progress has published a transition (so the fault hits mid-episode)."""
    start = rospy.get_rostime().to_sec()

    def in_progress():
        with stack.watch.lock:
            last = stack.watch.transitions[-1] if stack.watch.transitions else None
        return last is not None and last.header.stamp.to_sec() > start and not (
            last.terminal or last.timeout or last.error)
    wait_for(in_progress, 30, interval=0.01, what='an episode in progress')


def assert_outcome(stack, before, after, errors, outage):
    """Earlier episodes intact, the error episode flagged, EPISODES complete ones, nothing made up, the arm still
    from the error until the link is back."""
    for key, values in before.items():
        assert np.array_equal(after[key][:len(values)], values, equal_nan=values.dtype.kind == 'f'), key
    episodes = episodes_of(after)
    assert sum(not error for _, error in episodes) == EPISODES, '%s\nrecorder said:\n%s' % (
        episodes, digest(stack.recorder.output))
    assert [rows for rows, error in episodes if error] == [t.step for t in errors if t.step > 0], episodes
    assert not (after['infos/tactile_raw'] == 0).all(axis=1).any(), 'an all-zero tactile frame was recorded'
    assert after['observations'].shape[1] == layout.OBS_DIM
    start, end = outage
    stale = stack.watch.successes_between(start + STALE_GRACE, end)
    assert not stale, 'steps completed while the device was down: %s' % [(t.episode, t.step) for t in stale]
    stopped = errors[0].header.stamp.to_sec()
    slides = stack.arm_moves.slides_between(stopped, end)
    assert not slides, 'the arm slid after the episode ended on the fault, before the link was back: %s' % slides


def lose_and_restore_a_link(stack, rospy, inject, links, link_topic, named, up_within):
    """Inject the fault mid-episode and check what the user sees, through the end of the collection."""
    before = snapshot_after_first_commit(stack)
    wait_mid_episode(stack, rospy)
    fault = rospy.get_rostime().to_sec()
    inject()

    down = stack.watch.link_change(links, False, fault, 5, '%s false' % link_topic)
    error = stack.watch.error_transition(fault, 10)
    assert named in error.error_message, error.error_message  # names the silent device: an error, never zeros
    assert not error.terminal and not error.timeout and len(error.next_observation) == 0
    assert 'episode %d ends with an error' % error.episode in stack.env.output
    up = stack.watch.link_change(links, True, down, up_within, '%s true again' % link_topic)

    after = stack.finish(rospy, 90)
    assert_outcome(stack, before, after, [t for t in stack.watch.transitions if t.error], (down, up))


def test_gripper_link_dropped_mid_episode_and_restored(stack, rospy_node):
    # The error names /wsg/state (stale) or /wsg/move (failed), whichever the step hits first.
    lose_and_restore_a_link(stack, rospy_node, lambda: stack.world.wsg.drop_connections(hold_off=1.5),
                            stack.watch.wsg_links, '/wsg/state connected', '/wsg/', up_within=15)


def test_dsa_pty_closed_and_reopened_mid_collection(stack, rospy_node):
    lose_and_restore_a_link(stack, rospy_node, lambda: stack.world.dsa.reopen_pty(down_time=1.0),
                            stack.watch.dsa_links, '/dsa/connected', '/dsa/frame', up_within=20)
