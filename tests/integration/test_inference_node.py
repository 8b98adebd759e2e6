"""The inference node through ROS (real master, real node process, a checkpoint from the real trainer).

"No action" is shown positively: after a rejected observation the node answers a following valid one
(so the rejected one was processed, not lost in a queue), and its log names the reason.
"""
import sys
import threading
import time

import numpy as np
import pytest

from plas_ros.env import layout
from tests.helpers.common import wait_for
from tests.helpers.deploy import plausible_observations
from tests.helpers.ros import ManagedProcess, digest
from tests.helpers.tree import script

NODE = script('inference_node')
QUIET = 0.4  # s to wait for an action that must not come (the node answers in about a millisecond)


@pytest.fixture(scope='session')
def policy(checkpoint):
    from plas_ros.policy import load_policy
    return load_policy(checkpoint)


class Link:
    """Publishes observations and collects the actions that answer them, keyed by (episode, step)."""

    def __init__(self, rospy):
        from std_msgs.msg import Empty

        from plas_ros.msg import Action, Observation
        self.rospy, self.Observation = rospy, Observation
        self.actions = {}
        self.arrived = threading.Condition()
        self.sub = rospy.Subscriber('/cloth/action', Action, self._on_action, tcp_nodelay=True)
        self.pub = rospy.Publisher('/cloth/observation', Observation, queue_size=10, tcp_nodelay=True)
        self.estop_pub = rospy.Publisher('/cloth/estop', Empty, queue_size=1)

    def _on_action(self, msg):
        with self.arrived:
            self.actions[(msg.episode, msg.step)] = msg
            self.arrived.notify_all()

    def connect(self, node_name, proc):
        wait_for(lambda: self.pub.get_num_connections() > 0 and self.sub.get_num_connections() > 0
                 and self.estop_pub.get_num_connections() > 0 or not proc.running(), 30,
                 what='connections to %s' % node_name)
        assert proc.running(), digest(proc.output)

    def send(self, data, episode=0, step=0, age=0.0, stamp=None):
        msg = self.Observation(episode=episode, step=step, data=list(data))
        msg.header.stamp = self.rospy.Time.now() - self.rospy.Duration.from_sec(age) if stamp is None else stamp
        self.pub.publish(msg)
        return msg

    def answer(self, episode, step, timeout=5.0):
        """The action answering (episode, step), or None if none came within `timeout`."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while (episode, step) not in self.actions and time.monotonic() < deadline:
                self.arrived.wait(deadline - time.monotonic())
            return self.actions.get((episode, step))

    def close(self):
        self.sub.unregister()
        self.pub.unregister()
        self.estop_pub.unregister()


def start_node(ros_home, name, checkpoint, **params):
    args = [sys.executable, NODE, '__name:=%s' % name, '_checkpoint:=%s' % checkpoint]
    args += ['_%s:=%s' % (k, v) for k, v in params.items()]
    return ManagedProcess(args, ros_home, name)


@pytest.fixture
def sim_node(rospy_node, ros_home, checkpoint):
    """A node as deploy.launch starts it in simulation: enabled, the policy's own bounds."""
    proc = start_node(ros_home, 'inference_sim', checkpoint, sim='true')
    link = Link(rospy_node)
    link.connect('inference_sim', proc)
    yield link, proc
    link.close()
    proc.stop()


@pytest.fixture
def hardware_node(rospy_node, ros_home, checkpoint):
    """As on the robot (not sim, so disabled until enabled) with bounds tighter than the policy's."""
    # action_low arrives as text, as roslaunch's <param value="[a, b]"> delivers it; action_high as a number.
    proc = start_node(ros_home, 'inference_hw', checkpoint, sim='false', action_low="'[-0.05, -0.02]'",
                      action_high='0.03')
    link = Link(rospy_node)
    link.connect('inference_hw', proc)
    yield link, proc
    link.close()
    proc.stop()


def observation(seed):
    return plausible_observations(np.random.default_rng(seed), 1)[0]


def expect_rejected(link, proc, data, reason, step, **send):
    link.send(data, step=step, **send)
    time.sleep(QUIET)
    sentinel = step + 1
    link.send(observation(sentinel), step=sentinel)
    assert link.answer(0, sentinel) is not None, 'node stopped answering:\n' + digest(proc.output)
    assert link.answer(0, step, timeout=0) is None, 'an action was published for: %s' % reason
    assert reason in proc.output


def test_valid_observation_gets_the_policy_action_with_echoed_ids(sim_node, policy):
    link, proc = sim_node
    for step in range(5):
        obs = observation(step)
        sent = link.send(obs, episode=7, step=step)
        action = link.answer(7, step)
        assert action is not None, digest(proc.output)
        expected = np.clip(policy.act(obs), policy.action_low, policy.action_high)
        np.testing.assert_allclose(action.data, expected, rtol=1e-5, atol=1e-6)
        assert action.header.stamp == sent.header.stamp


def test_invalid_and_stale_observations_get_no_action(sim_node):
    link, proc = sim_node
    nan = observation(1)
    nan[10] = np.nan
    expect_rejected(link, proc, nan, 'not finite', step=10)
    expect_rejected(link, proc, observation(2)[:-1], 'wrong observation size', step=20)
    expect_rejected(link, proc, observation(3), 'too old', step=30, age=5.0)
    expect_rejected(link, proc, observation(4), 'no header stamp', step=40, stamp=link.rospy.Time(0))


def test_estop_topic_stops_the_very_next_observation_until_reset(sim_node, rospy_node):
    from std_msgs.msg import String
    from std_srvs.srv import Trigger
    link, proc = sim_node
    states = []
    state_sub = rospy_node.Subscriber('/inference_sim/state', String, lambda m: states.append(m.data))
    link.send(observation(0), step=0)
    assert link.answer(0, 0) is not None
    wait_for(lambda: states and states[-1] == 'active', 10, what='state active')
    link.estop_pub.publish()
    wait_for(lambda: states[-1] == 'emergency stop latched', 10, what='state estopped')
    link.send(observation(1), step=1)
    assert link.answer(0, 1, timeout=QUIET) is None
    rospy_node.wait_for_service('/inference_sim/enable', 10)
    from std_srvs.srv import SetBool
    assert rospy_node.ServiceProxy('/inference_sim/enable', SetBool)(True).success  # does not release the stop
    link.send(observation(2), step=2)
    assert link.answer(0, 2, timeout=QUIET) is None
    assert rospy_node.ServiceProxy('/inference_sim/reset_estop', Trigger)().success
    link.send(observation(3), step=3)
    assert link.answer(0, 3) is not None
    # The stop service latches synchronously: the observation right after the call gets nothing.
    assert rospy_node.ServiceProxy('/inference_sim/estop', Trigger)().success
    link.send(observation(4), step=4)
    assert link.answer(0, 4, timeout=QUIET) is None
    assert 'EMERGENCY STOP from /cloth/estop' in proc.output
    state_sub.unregister()


def test_episode_returns_are_logged_and_the_node_exits_after_its_episodes(rospy_node, ros_home, checkpoint):
    from plas_ros.msg import Transition
    proc = start_node(ros_home, 'inference_episodes', checkpoint, sim='true', episodes=2)
    try:
        pub = rospy_node.Publisher('/cloth/transition', Transition, queue_size=10)
        wait_for(lambda: pub.get_num_connections() > 0 or not proc.running(), 30, what='transition subscriber')
        for step, reward in enumerate([0.05, 0.1, 0.125]):
            pub.publish(Transition(episode=3, step=step, reward=reward, terminal=step == 2))
        wait_for(lambda: 'episode 3: return 0.2750 over 3 steps (terminal)' in proc.output, 10,
                 what='the episode return in the log')
        assert proc.running(), 'exited after one of two episodes'
        pub.publish(Transition(episode=4, step=0, reward=0.5, timeout=True))
        assert proc.wait(15) == 0
        assert 'episode 4: return 0.5000 over 1 steps (timeout)' in proc.output
        assert '2 episode(s) done, mean return 0.3875' in proc.output
        pub.unregister()
    finally:
        proc.stop()


def test_disabled_off_sim_until_enabled_and_actions_stay_in_tighter_bounds(hardware_node, policy, rospy_node):
    from std_srvs.srv import SetBool
    link, proc = hardware_node
    link.send(observation(0), step=0)
    assert link.answer(0, 0, timeout=QUIET) is None
    assert 'not enabled' in wait_for(lambda: 'not enabled' in proc.output and proc.output, 5, what='log line')
    rospy_node.wait_for_service('/inference_hw/enable', 10)
    assert rospy_node.ServiceProxy('/inference_hw/enable', SetBool)(True).success
    low, high = np.array([-0.05, -0.02], np.float32), np.array([0.03, 0.03], np.float32)
    clipped = 0
    rng = np.random.default_rng(5)
    for step in range(1, 41):
        obs = plausible_observations(rng, 1)[0]
        obs[rng.random(layout.OBS_DIM) < 0.5] = 0.0  # corners of the plausible ranges: push the policy
        obs[layout.TIP_Z] = 0.3
        link.send(obs, step=step)
        action = link.answer(0, step)
        assert action is not None, digest(proc.output)
        data = np.array(action.data, np.float32)
        assert np.all(data >= low) and np.all(data <= high), data
        raw = policy.act(obs)
        np.testing.assert_allclose(data, np.clip(raw, low, high), rtol=1e-5, atol=1e-6)
        clipped += bool(np.any((raw < low) | (raw > high)))
    assert clipped > 0, 'no action needed clipping: the bounds were never exercised'


def test_bounds_wider_than_the_policy_are_refused_at_start(rospy_node, ros_home, checkpoint):
    proc = start_node(ros_home, 'inference_wide', checkpoint, sim='true', action_low='-3.0')
    try:
        assert proc.wait(60) != 0
        assert 'action_low' in proc.output and 'wider than the policy bound' in proc.output
    finally:
        proc.stop()


def test_checkpoint_with_bounds_wider_than_the_task_is_refused_at_start(rospy_node, ros_home, tmp_path):
    """The envelope belongs to the robot: a checkpoint trained within [-20, 20] does not widen it."""
    from plas_ros.algos.checkpoint import save_checkpoint
    from plas_ros.algos.config import load_config
    from plas_ros.algos.registry import build_algorithm
    cfg = load_config(None, algo='plas', actor_hidden=[8, 8], critic_hidden=[8, 8], vae_hidden=[8, 8])
    wide = save_checkpoint(str(tmp_path / 'wide'), build_algorithm(cfg, layout.OBS_DIM, layout.ACT_DIM, [-20.0] * 2,
                                                                   [20.0] * 2))
    proc = start_node(ros_home, 'inference_wide_checkpoint', wide, sim='true')
    try:
        assert proc.wait(60) != 0
        assert "wider than the task's action space" in proc.output and '20.0' in proc.output, digest(proc.output)
    finally:
        proc.stop()


def test_absurd_observation_gets_no_action_and_is_named_once_per_episode(sim_node):
    link, proc = sim_node
    absurd = observation(5)
    absurd[layout.TACTILE.start + 7] = 16.0  # a cell at 16x full scale: finite, but no sensor reads that
    expect_rejected(link, proc, absurd, '%s[7] (observation index 10) = 16' % layout.OBS_LAYOUT[1][0], step=50)
    expect_rejected(link, proc, absurd, 'observation outside its plausible range', step=60)
    assert proc.output.count('observation outside its plausible range') == 1, digest(proc.output)
    link.send(absurd, episode=1, step=0)
    wait_for(lambda: proc.output.count('observation outside its plausible range') == 2, 10,
             what='the report of the next episode')
    assert 'episode 1 step 0: publishing no action' in proc.output
    assert link.answer(1, 0, timeout=QUIET) is None


def test_exported_torchscript_policy_acts_behind_the_same_gate(rospy_node, ros_home, checkpoint, policy, tmp_path):
    from plas_ros.policy import export_torchscript
    exported = export_torchscript(checkpoint, str(tmp_path / 'policy.pt'))
    proc = start_node(ros_home, 'inference_script', exported, sim='true')
    link = Link(rospy_node)
    try:
        link.connect('inference_script', proc)
        for step in range(3):
            obs = observation(step)
            link.send(obs, step=step)
            action = link.answer(0, step)
            assert action is not None, digest(proc.output)
            np.testing.assert_allclose(action.data, policy.act(obs), rtol=1e-5, atol=1e-6)
        absurd = observation(9)
        absurd[layout.PITCH] = 40.0  # 1200 degrees
        expect_rejected(link, proc, absurd, 'pitch_deg_over_30[0] (observation index 88) = 40', step=10)
    finally:
        link.close()
        proc.stop()
