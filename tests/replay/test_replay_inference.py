"""Replay 3: the bag's /cloth/observation through real `rosbag play` into the inference node with a fixed
checkpoint; every observation is answered, and every published action equals `load_policy(...).act` on the same
observation (clipped to the policy's bounds, as the node does), with episode, step and stamp echoed.

The observations keep the stamps of the recording, so the node runs with `~max_obs_age` wide enough for a bag's
age (doc/replay.md); everything else is the node as deploy.launch starts it in simulation.
"""
import sys
import threading

import numpy as np
import pytest

from tests.helpers.common import wait_for
from tests.helpers.replay import BAG, bag_messages, play, wait_subscribed
from tests.helpers.ros import digest
from tests.helpers.tree import script

NODE = script('inference_node')
REPLAY_MAX_OBS_AGE = 1e12  # s: a bag's stamps are as old as the recording
pytestmark = pytest.mark.needs(BAG, NODE)  # the bag: tools/record_fixture_bags.py


def test_every_replayed_observation_gets_the_checkpoint_action(rospy_node, processes, checkpoint):
    from plas_ros.msg import Action, Observation
    from plas_ros.policy import load_policy
    observations = {(m.episode, m.step): m for _, m in bag_messages('/cloth/observation', Observation)}
    policy = load_policy(checkpoint)
    actions, lock = {}, threading.Lock()

    def on_action(msg):
        with lock:
            actions.setdefault((msg.episode, msg.step), []).append(msg)
    sub = rospy_node.Subscriber('/cloth/action', Action, on_action, queue_size=1000)
    node = processes([sys.executable, NODE, '__name:=inference_replay', '_checkpoint:=%s' % checkpoint, '_sim:=true',
                      '_max_obs_age:=%g' % REPLAY_MAX_OBS_AGE], name='inference_replay')
    try:
        wait_subscribed('/cloth/observation', '/inference_replay', node, timeout=60)
        wait_for(lambda: sub.get_num_connections() > 0, 20, what='the /cloth/action connection')
        play(processes, ['/cloth/observation'], rate=1.0)
        wait_for(lambda: len(actions) >= len(observations) or not node.running(), 10,
                 what='actions for all %d replayed observations' % len(observations))
    finally:
        sub.unregister()
    assert node.running(), digest(node.output)
    missing = sorted(set(observations) - set(actions))
    assert not missing, 'no action for (episode, step) %s:\n%s' % (missing[:10], digest(node.output))
    assert set(actions) == set(observations), 'actions for observations that were never replayed'
    for key, obs in observations.items():
        expected = policy.act(np.asarray(obs.data, np.float32))
        for action in actions[key]:
            np.testing.assert_allclose(action.data, expected, rtol=1e-5, atol=1e-6,
                                       err_msg='action for episode %d step %d' % key)
            assert action.header.stamp == obs.header.stamp
