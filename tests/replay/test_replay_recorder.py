"""Replay 2: the bag's /cloth/transition through real `rosbag play` into the recorder node; the HDF5 file holds
exactly the bag's transitions (every ended episode, in order, with the raw extras), and nothing else.

The expected rows are built here from the bag messages by the documented file format (doc/data.md), not by the
writer's own code, so a writer that drops, reorders or alters a transition fails this test.
"""
import sys

import numpy as np
import pytest

from plas_ros.data.loader import read_file
from tests.helpers.common import wait_for
from tests.helpers.replay import BAG, bag_messages, play, wait_subscribed
from tests.helpers.ros import digest
from tests.helpers.tree import script

RECORDER = script('recorder_node')
pytestmark = pytest.mark.needs(BAG, RECORDER)  # the bag: tools/record_fixture_bags.py


def ended_episodes(transitions):
    """{episode: [transitions sorted by step]} of the episodes whose end (terminal/timeout/error) is in the bag."""
    episodes, ended = {}, []
    for msg in transitions:
        episodes.setdefault(msg.episode, {})[msg.step] = msg
        if msg.terminal or msg.timeout or msg.error:
            ended.append(msg.episode)
    return [(e, [episodes[e][s] for s in sorted(episodes[e])]) for e in ended]


def expected_rows(transitions):
    """Columns the file must hold: an error transition (no next observation) is not a row, and the row before
    it ends its episode as a truncation (timeout) flagged in infos/errors."""
    rows = {key: [] for key in ('observations', 'actions', 'rewards', 'next_observations', 'terminals', 'timeouts',
                                'infos/episode_ids', 'infos/steps', 'infos/errors', 'infos/gripper_width',
                                'infos/gripper_adjustment', 'infos/tactile_raw', 'infos/force_raw',
                                'infos/tip_pose', 'infos/timestamps')}
    for index, (_, steps) in enumerate(ended_episodes(transitions)):
        error = steps[-1].error
        kept = [m for m in steps if not m.error]
        for i, m in enumerate(kept):
            last = i == len(kept) - 1
            values = (m.observation, m.action, m.reward, m.next_observation, m.terminal,
                      m.timeout or (error and last and not m.terminal), index, m.step, error, m.gripper_width,
                      m.gripper_adjustment, m.tactile_raw, m.force_raw, m.tip_pose, m.header.stamp.to_sec())
            for key, value in zip(rows, values):
                rows[key].append(value)
    return rows


def test_replayed_transitions_are_exactly_the_recorded_file(rospy_node, processes, tmp_path):
    from std_msgs.msg import UInt32

    from plas_ros.msg import Transition
    transitions = [msg for _, msg in bag_messages('/cloth/transition', Transition)]
    episodes = len(ended_episodes(transitions))
    assert episodes >= 2, 'the fixture bag should hold at least two ended episodes'
    output = str(tmp_path / 'replayed.h5')
    recorder = processes([sys.executable, RECORDER, '__name:=recorder_replay', '_output:=%s' % output,
                          '_episodes:=0', '_source:=sim', '_policy:=replay'], name='recorder_replay')
    committed = []
    sub = rospy_node.Subscriber('/recorder_replay/committed', UInt32, lambda m: committed.append(m.data))
    try:
        wait_subscribed('/cloth/transition', '/recorder_replay', recorder)
        play(processes, ['/cloth/transition'], rate=4.0)
        wait_for(lambda: committed and committed[-1] >= episodes or not recorder.running(), 30,
                 what='%d committed episodes' % episodes)
    finally:
        sub.unregister()
    assert recorder.running(), digest(recorder.output)
    recorder.stop()
    arrays, attrs = read_file(output)
    expected = expected_rows(transitions)
    assert len(arrays['observations']) == len(expected['observations']), digest(recorder.output)
    for key, values in expected.items():
        column = np.asarray(arrays[key])
        want = np.asarray(values, dtype=column.dtype).reshape(column.shape)
        np.testing.assert_array_equal(column, want, err_msg='column %s differs from the bag' % key)
    assert attrs['source'] == 'sim' and attrs['policy'] == 'replay'
