"""The recorder node under a real master: transitions published over ROS end up in a valid HDF5 file,
the node exits by itself after ~episodes, and a SIGKILL mid-collection loses no committed episode."""
import os
import signal
import socket
import sys
import threading
import time

import numpy as np
import pytest

from plas_ros.data import cli
from plas_ros.data.loader import read_file
from tests.helpers.common import wait_for
from tests.helpers.disk import Filler, small_filesystem
from tests.helpers.tree import script

RECORDER = script('recorder_node')


def transition(episode, step, length, end='timeout'):
    import rospy

    from plas_ros.msg import Transition
    rng = np.random.default_rng(episode * 1000 + step)
    last = step == length - 1
    msg = Transition(episode=episode, step=step, observation=rng.random(89).tolist(),
                     action=rng.uniform(-1, 1, 2).tolist(), reward=0.01 * step,
                     next_observation=rng.random(89).tolist(), gripper_width=2.0,
                     tactile_raw=rng.integers(0, 3895, 84).tolist(), force_raw=[1.0, 2.0, 3.0],
                     tip_pose=[0.5, 0.1, 0.2, 10.0])
    msg.terminal, msg.timeout = last and end == 'terminal', last and end == 'timeout'
    if last and end == 'error':
        msg.error, msg.next_observation, msg.error_message = True, [], 'sensor /dsa/frame stale'
    msg.header.stamp = rospy.Time.now()
    return msg


class Recorder:
    """The node as a subprocess plus the test's publisher and a subscriber to its ~committed count."""

    def __init__(self, rospy, processes, output, name, **params):
        from std_msgs.msg import UInt32

        from plas_ros.msg import Transition
        args = [sys.executable, RECORDER, '__name:=%s' % name, '_output:=%s' % output]
        args += ['_%s:=%s' % (k, v) for k, v in params.items()]
        self.proc = processes(args, name=name)
        self.committed = 0
        self.pub = rospy.Publisher('/cloth/transition', Transition, queue_size=10000)
        self.sub = rospy.Subscriber('/%s/committed' % name, UInt32, self._on_committed)

    def _on_committed(self, msg):
        self.committed = max(self.committed, msg.data)

    def wait_connected(self):
        wait_for(lambda: self.pub.get_num_connections() > 0 or not self.proc.running(), 20,
                 what='the recorder to subscribe')
        assert self.proc.running(), self.proc.output

    def close(self):
        self.sub.unregister()
        self.pub.unregister()


def publish_episode(pub, episode, length, end='timeout', rate=500.0):
    for step in range(length):
        pub.publish(transition(episode, step, length, end))
        time.sleep(1.0 / rate)


def test_records_episodes_and_exits_by_itself(rospy_node, processes, tmp_path):
    output = tmp_path / 'rec.h5'
    rec = Recorder(rospy_node, processes, output, 'recorder_a', episodes=3, source='sim', policy='test')
    try:
        rec.wait_connected()
        publish_episode(rec.pub, 0, 5, 'timeout')
        publish_episode(rec.pub, 1, 4, 'error')
        publish_episode(rec.pub, 2, 6, 'terminal')
        publish_episode(rec.pub, 3, 2, 'timeout')  # the third complete episode (a fault does not count)
        publish_episode(rec.pub, 4, 3, 'timeout')  # beyond ~episodes: not recorded
        assert rec.proc.wait(20) == 0, rec.proc.output
    finally:
        rec.close()
    arrays, attrs = cli.validate(output)
    np.testing.assert_array_equal(np.bincount(arrays['infos/episode_ids']), [5, 3, 6, 2])
    np.testing.assert_array_equal(arrays['infos/errors'], [0] * 5 + [1] * 3 + [0] * 8)
    expected = transition(2, 3, 6)
    np.testing.assert_allclose(arrays['observations'][8 + 3], expected.observation, rtol=1e-6)
    assert attrs['policy'] == 'test'
    assert 'committed episode 3 (publisher episode 3): 2 steps' in rec.proc.output
    assert 'publisher episode 4' not in rec.proc.output
    assert 'committed episode 1 (publisher episode 1): 3 steps' in rec.proc.output
    assert 'sensor /dsa/frame stale' in rec.proc.output


def test_sigkill_mid_collection_keeps_every_committed_episode(rospy_node, processes, tmp_path):
    output = tmp_path / 'kill.h5'
    rec = Recorder(rospy_node, processes, output, 'recorder_b', episodes=0)
    stop = threading.Event()

    def collect():
        episode = 0
        while not stop.is_set():
            publish_episode(rec.pub, episode, 10, ('timeout', 'terminal')[episode % 2], rate=300.0)
            episode += 1
    publisher = threading.Thread(target=collect, daemon=True)
    try:
        rec.wait_connected()
        publisher.start()
        wait_for(lambda: rec.committed >= 4, 30, what='4 committed episodes')
        time.sleep(0.137)  # somewhere inside the next episode or commit
        reported = rec.committed
        rec.proc.signal(signal.SIGKILL)
        rec.proc.wait(10)
    finally:
        stop.set()
        publisher.join(10)
        rec.close()
    assert rec.proc.proc.returncode == -signal.SIGKILL
    arrays, _ = cli.validate(output)
    ids = arrays['infos/episode_ids']
    episodes = int(ids.max()) + 1
    assert episodes >= reported, 'file holds %d episodes, %d were reported committed' % (episodes, reported)
    for index in range(episodes):
        rows = np.flatnonzero(ids == index)
        assert len(rows) == 10
        np.testing.assert_allclose(arrays['observations'][rows[-1]], transition(index, 9, 10).observation, rtol=1e-6)
    leftovers = [n for n in os.listdir(tmp_path) if n != 'kill.h5']
    # what a SIGKILL can leave: a commit's temporary (the next writer removes it) and the lock file, which
    # names the dead node and blocks nobody (the lock itself died with the process)
    assert all(n.startswith('.kill.h5.tmp-') or n == '.kill.h5.lock' for n in leftovers), leftovers


@pytest.mark.parametrize('output, message', [('/proc/plas_ros_cannot_write/x.h5', 'cannot record'),
                                             ('DIR', 'is a directory')])
def test_unwritable_output_fails_before_collection(rospy_node, processes, tmp_path, output, message):
    output = str(tmp_path) if output == 'DIR' else output
    proc = processes([sys.executable, RECORDER, '__name:=recorder_c', '_output:=%s' % output], name='recorder_c')
    assert proc.wait(20) == 1
    assert message in proc.output


def test_appends_to_the_file_of_an_earlier_session(rospy_node, processes, tmp_path):
    output = tmp_path / 'twice.h5'
    for session in range(2):
        rec = Recorder(rospy_node, processes, output, 'recorder_d%d' % session, episodes=1, policy='p%d' % session)
        try:
            rec.wait_connected()
            publish_episode(rec.pub, 0, 4)
            assert rec.proc.wait(20) == 0, rec.proc.output
        finally:
            rec.close()
    arrays, attrs = read_file(output)
    np.testing.assert_array_equal(arrays['infos/episode_ids'], [0] * 4 + [1] * 4)
    assert attrs['policy'] == 'p0 + p1'


def test_a_second_recorder_on_the_same_file_exits_naming_the_first(rospy_node, processes, tmp_path):
    output = tmp_path / 'shared.h5'
    first = Recorder(rospy_node, processes, output, 'recorder_first', episodes=1)
    try:
        first.wait_connected()
        second = processes([sys.executable, RECORDER, '__name:=recorder_second', '_output:=%s' % output],
                           name='recorder_second')
        assert second.wait(30) == 1, second.output
        assert 'already being written by pid %d on host %s (recorder node /recorder_first' % (
            first.proc.proc.pid, socket.gethostname()) in second.output, second.output
        publish_episode(first.pub, 0, 4)  # the first records on, undisturbed
        assert first.proc.wait(20) == 0, first.proc.output
    finally:
        first.close()
    np.testing.assert_array_equal(read_file(output)[0]['infos/episode_ids'], [0] * 4)
    assert os.listdir(tmp_path) == ['shared.h5']


@pytest.fixture
def small_disk(tmp_path):
    with small_filesystem(tmp_path / 'disk') as folder:
        yield folder


def wait_logged(proc, text, timeout=20):
    wait_for(lambda: text in proc.output or not proc.running(), timeout, what='%r in the node output' % text)
    assert text in proc.output, proc.output


def test_a_full_disk_is_reported_once_and_the_episodes_commit_when_space_returns(rospy_node, processes, small_disk):
    output = os.path.join(small_disk, 'full.h5')
    filler = Filler(small_disk)
    rec = Recorder(rospy_node, processes, output, 'recorder_full', episodes=3, min_free_mb=0, commit_retry_s=0.1)
    try:
        rec.wait_connected()
        publish_episode(rec.pub, 0, 5)
        wait_for(lambda: rec.committed >= 1, 20, what='the first commit')
        before = read_file(output)[0]
        filler.fill()
        publish_episode(rec.pub, 1, 5)
        wait_logged(rec.proc, 'disk full (ENOSPC)')
        time.sleep(1.0)  # some ten retries at commit_retry_s 0.1, all failing on the full disk
        assert rec.proc.running() and rec.committed == 1
        assert rec.proc.output.count('disk full') == 1, 'one report per failure streak:\n' + rec.proc.output
        np.testing.assert_array_equal(read_file(output)[0]['observations'], before['observations'])
        filler.free()
        wait_for(lambda: rec.committed >= 2, 20, what='the retried commit once space returned')
        publish_episode(rec.pub, 2, 5)
        assert rec.proc.wait(20) == 0, rec.proc.output
    finally:
        rec.close()
    assert 'commit succeeded after' in rec.proc.output
    arrays, _ = cli.validate(output)
    np.testing.assert_array_equal(np.bincount(arrays['infos/episode_ids']), [5, 5, 5])
    np.testing.assert_allclose(arrays['observations'][5], transition(1, 0, 5).observation, rtol=1e-6)


@pytest.mark.parametrize('fallback', [False, True])
def test_shutdown_on_a_full_disk_keeps_or_counts_the_pending_episodes(rospy_node, processes, small_disk, tmp_path,
                                                                       fallback):
    output = os.path.join(small_disk, 'stop.h5')
    fallback_dir = str(tmp_path / 'fallback') if fallback else ''
    filler = Filler(small_disk)
    name = 'recorder_stop%d' % fallback
    rec = Recorder(rospy_node, processes, output, name, min_free_mb=0, commit_retry_s=0.2,
                   **({'fallback_dir': fallback_dir} if fallback else {}))
    try:
        rec.wait_connected()
        publish_episode(rec.pub, 0, 3)
        wait_for(lambda: rec.committed >= 1, 20, what='the first commit')
        filler.fill()
        publish_episode(rec.pub, 1, 3)
        publish_episode(rec.pub, 2, 4)
        wait_logged(rec.proc, 'disk full (ENOSPC)')
        wait_for(lambda: rec.proc.output.count('kept in memory') == 1, 10, what='the report')
        rec.proc.signal(signal.SIGTERM)
        status = rec.proc.wait(30)
    finally:
        rec.close()
    assert status == (0 if fallback else 1), rec.proc.output  # never a crash (a negative status: a signal)
    np.testing.assert_array_equal(read_file(output)[0]['infos/episode_ids'], [0] * 3)
    if fallback:
        saved = [os.path.join(fallback_dir, n) for n in os.listdir(fallback_dir)]
        assert len(saved) == 1 and 'are in %s' % saved[0] in rec.proc.output
        np.testing.assert_array_equal(read_file(saved[0])[0]['infos/episode_ids'], [0] * 3 + [1] * 4)
    else:
        assert '2 episode(s) (7 transitions) lost' in rec.proc.output, rec.proc.output
