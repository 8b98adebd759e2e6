"""The env node through ROS with the simulated drivers: the observation/action/transition loop, holding still
without an action, rejecting an invalid action, and a sensor that stops publishing ending the episode as an error."""
import subprocess
import threading
import time

import numpy as np
import pytest

from plas_ros.env import layout
from tests.helpers.common import free_port, wait_for
from tests.helpers.tree import script

ENV_NODE = script('env_node')
pytestmark = pytest.mark.needs('launch/drivers.launch', ENV_NODE,
                               *(script(s) for s in ('sim_world', 'wsg_node', 'dsa_node', 'arm_node')))


class Loop:
    """The test's side of the env node's topics: observations and transitions in, actions out."""

    def __init__(self, rospy):
        from plas_ros.msg import Action, Observation, Transition
        self.rospy = rospy
        self.Action = Action
        self.lock = threading.Lock()
        self.observations = []
        self.transitions = []
        self.pub = rospy.Publisher('/cloth/action', Action, queue_size=10)
        self.subs = [rospy.Subscriber('/cloth/observation', Observation, self._add, callback_args=self.observations),
                     rospy.Subscriber('/cloth/transition', Transition, self._add, callback_args=self.transitions)]

    def _add(self, msg, into):
        with self.lock:
            into.append(msg)

    def observation(self, episode, step, after=0, timeout=20.0):
        def find():
            with self.lock:
                return next((m for m in self.observations[after:] if (m.episode, m.step) == (episode, step)), None)
        return wait_for(find, timeout, what='observation of episode %d step %d' % (episode, step))

    def transition(self, episode, step, timeout=10.0):
        def find():
            with self.lock:
                return next((m for m in self.transitions if (m.episode, m.step) == (episode, step)), None)
        return wait_for(find, timeout, what='transition of episode %d step %d' % (episode, step))

    def act(self, episode, step, data):
        self.pub.publish(self.Action(episode=episode, step=step, data=list(data)))

    def close(self):
        for sub in self.subs:
            sub.unregister()
        self.pub.unregister()


def start_drivers(roslaunch, tmp_path):
    return roslaunch('drivers.launch', name='drivers', sim='true', sim_seed=1, sim_wsg_port=free_port(),
                     sim_arm_port=free_port(), sim_dsa_link=str(tmp_path / 'dsa'))


def start_env(processes, *params):
    return processes([ENV_NODE, '_episodes:=0', '_action_timeout:=0.5', '_sensor_max_age:=0.5',
                      '_wait_for_recorder:=1'] + list(params), name='env_node')


@pytest.fixture
def env_loop(rospy_node, roslaunch, processes, tmp_path):
    drivers = start_drivers(roslaunch, tmp_path)
    loop = Loop(rospy_node)
    env = start_env(processes)
    yield loop, env, drivers
    loop.close()


def test_loop_holds_still_rejects_bad_actions_and_steps(env_loop):
    loop, env, _ = env_loop
    first = loop.observation(0, 0, timeout=30.0)
    assert len(first.data) == layout.OBS_DIM

    # No answer: the node holds still, says so and asks again with the same episode/step.
    wait_for(lambda: 'no action for episode 0 step 0' in env.output, 5.0, what='the hold-still warning')
    again = loop.observation(0, 0, after=loop.observations.index(first) + 1, timeout=5.0)
    assert np.allclose(again.data, first.data)  # nothing moved, nothing re-read into the record

    # Invalid answers are rejected: no transition, the robot stays put.
    # One at a time: the node answers the latest action, so a burst could be read as one.
    for count, bad in enumerate(([float('nan'), 0.0], [0.0, 0.0, 0.0], [3.0, 0.0]), start=1):
        loop.act(0, 0, bad)
        wait_for(lambda n=count: env.output.count('rejected action for episode 0 step 0') >= n, 5.0,
                 what='rejection %d (%s)' % (count, bad))
    assert not loop.transitions

    # An action for another step is not this step's answer.
    loop.act(0, 7, [0.0, 0.0])
    loop.act(0, 0, [0.0, 0.2])
    t0 = loop.transition(0, 0)
    assert not t0.error and not t0.terminal and not t0.timeout
    assert t0.reward == pytest.approx(0.05)
    assert list(t0.observation) == pytest.approx(list(first.data))
    assert len(t0.next_observation) == layout.OBS_DIM and len(t0.tactile_raw) == layout.TACTILE_CELLS
    assert len(t0.force_raw) == 3 and len(t0.tip_pose) == 4
    assert t0.tip_pose[2] == pytest.approx(t0.next_observation[layout.TIP_Z], abs=1e-6)
    assert t0.tactile_raw[5] / layout.TACTILE_FULL_SCALE == pytest.approx(t0.next_observation[3 + 5], rel=1e-5)
    assert first.data[layout.TIP_Z] + 0.02 == pytest.approx(t0.tip_pose[2], abs=1e-3)

    # The next observation is the transition's next_observation.
    obs1 = loop.observation(0, 1)
    assert list(obs1.data) == pytest.approx(list(t0.next_observation))
    loop.act(0, 1, [1.0, 0.0])
    t1 = loop.transition(0, 1)
    assert t1.reward == pytest.approx(0.1) or t1.terminal


def test_sensor_that_stops_publishing_ends_the_episode_as_an_error(env_loop, rospy_node):
    loop, env, _ = env_loop
    loop.observation(0, 0, timeout=30.0)
    loop.act(0, 0, [0.0, 0.0])
    loop.transition(0, 0)
    loop.observation(0, 1)
    subprocess.run(['rosnode', 'kill', '/dsa/dsa_driver'], check=True, capture_output=True, timeout=20)
    loop.act(0, 1, [0.0, 0.0])
    error = loop.transition(0, 1)
    assert error.error and '/dsa/frame' in error.error_message
    assert not error.terminal and not error.timeout
    assert len(error.next_observation) == 0  # nothing made up
    assert len(error.observation) == layout.OBS_DIM


def test_drivers_slower_than_the_service_timeout_are_waited_for(rospy_node, roslaunch, processes, tmp_path):
    """A driver still starting is not a failed calibration: the first episode waits for it (before, the reset
    failed after ~service_timeout and the node sat waiting for /cloth/reset)."""
    loop = Loop(rospy_node)
    try:
        env = start_env(processes, '_service_timeout:=1.0')
        rospy_node.wait_for_service('/cloth/reset', timeout=20)  # the node is up
        time.sleep(2.0)  # longer than its service timeout
        start_drivers(roslaunch, tmp_path)
        first = loop.observation(0, 0, timeout=30.0)
        assert len(first.data) == layout.OBS_DIM
        assert 'waiting for the drivers: /arm/move_tip' in env.output and '/dsa/frame' in env.output
        assert 'failed' not in env.output, env.output
    finally:
        loop.close()


ENV_STATUS = 'cloth_env: task'


def test_diagnostics_ok_while_collecting_then_warn_and_error_when_the_tactile_stream_stops(env_loop, rospy_node):
    """/diagnostics: OK while the episode runs with every stream at its driver's rate; the DSA driver killed, the
    status names /dsa/frame (WARN: too old; ERROR: its rate, then the reset that fails on it), counts the faults
    and keeps the ERROR until an operator reset succeeds."""
    from tests.helpers.driver_topics import DiagnosticsLog, values
    loop, env, _ = env_loop
    diagnostics = DiagnosticsLog(rospy_node)
    try:
        loop.observation(0, 0, timeout=30.0)
        loop.act(0, 0, [0.0, 0.0])
        loop.transition(0, 0)
        ok = values(diagnostics.wait_status(ENV_STATUS, lambda s: s.level == 0 and 'measuring' not in s.message
                                            and 'measuring' not in values(s)['tactile rate'], 30,
                                            'OK with the rates judged', env.output))
        assert ok['episode state'] == 'running' and ok['link'] == 'up: all 4 sensor streams heard', ok
        assert ok['tactile rate'].endswith('(expected 100.0 Hz)'), ok  # drivers.launch: config/sim_rates.yaml
        assert ok['pose rate'].endswith('(expected 200.0 Hz)') and ok['gripper rate'].endswith('(expected 100.0 Hz)')
        assert ok['tactile age'].endswith('(/dsa/frame)') and ok['last error'] == 'none', ok

        loop.observation(0, 1)
        subprocess.run(['rosnode', 'kill', '/dsa/dsa_driver'], check=True, capture_output=True, timeout=20)
        stale = diagnostics.wait_status(ENV_STATUS, lambda s: s.level >= 1 and '/dsa/frame' in s.message, 20,
                                        'naming /dsa/frame', env.output)
        failed = diagnostics.wait_status(ENV_STATUS, lambda s: 'reset failed' in s.message, 30,
                                         'with the failed reset', env.output)
        shown = values(failed)
        assert failed.level == 2 and shown['episode state'] == 'reset failed', (failed.message, shown)
        assert shown['episodes ended on an error'] == '1' and int(shown['failed resets']) >= 1, shown
        assert '/dsa/frame' in shown['last error'] and stale.level in (1, 2)

        # drivers.launch respawns the DSA driver: once its frames flow again, the operator's reset clears the ERROR.
        diagnostics.wait_status(ENV_STATUS, lambda s: values(s)['tactile age'][0].isdigit()
                                and float(values(s)['tactile age'].split()[0]) < 0.5, 60, 'with /dsa/frame back')
        from std_srvs.srv import Trigger
        reply = rospy_node.ServiceProxy('/cloth/reset', Trigger)()
        assert reply.success, reply.message
        back = values(diagnostics.wait_level(ENV_STATUS, 0, 30, env.output))
        assert back['episode state'] == 'running' and back['episode'] == '1', back
    finally:
        diagnostics.close()
