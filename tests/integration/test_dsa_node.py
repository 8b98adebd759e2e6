"""dsa_driver against the simulated controller (a separate process on a real pty), read through rospy.

The node starts before the simulator (the port is absent at first), publishes frames equal to the simulator's
deterministic pattern, and reports a closed-and-reopened pty as connected false, then true.
"""
import signal
import sys

from tests.helpers.common import wait_for
from tests.helpers.ros import TopicLog, digest
from tests.helpers.tree import script


def check_pattern(msg):
    """The frame number n the message claims (cell 0), after checking every cell against pattern_frame(n)."""
    from plas_ros.sim.dsa.device import pattern_frame
    assert (msg.rows, msg.cols, len(msg.data)) == (14, 6, 84)
    n = msg.data[0]
    assert list(msg.data) == pattern_frame(n).reshape(-1).tolist(), 'frame %d differs from the pattern' % n
    return n


def test_dsa_node_against_the_simulator(rospy_node, processes, tmp_path):
    from std_msgs.msg import Bool

    from plas_ros.msg import TactileFrame
    rospy = rospy_node
    link = str(tmp_path / 'dsa')
    frames = TopicLog(rospy, '/dsa/frame', TactileFrame)
    connected = TopicLog(rospy, '/dsa/connected', Bool)
    node = processes([script('dsa_node'), '__ns:=/dsa', '__name:=dsa_driver',
                      '_port:=%s' % link, '_frame_rate:=50', '_rle:=true'], name='dsa_node')
    try:
        wait_for(lambda: [m.data for m in connected.snapshot()] == [False], 20, what='/dsa/connected false')
        assert not frames.snapshot() and node.running(), digest(node.output)

        sim = processes([sys.executable, '-m', 'plas_ros.sim.dsa', '--link', link, '--boot-garbage',
                         '--boot-seconds', '0.5', '--reopen-delay', '1.5'], name='dsa_sim')
        wait_for(lambda: len(frames.snapshot()) >= 30, 30, what='30 frames on /dsa/frame\n' + digest(node.output))
        assert connected.snapshot()[-1].data is True
        received = frames.snapshot()
        numbers = [check_pattern(m) for m in received]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), 'frames lost: %s' % numbers
        stamps = [m.header.stamp.to_sec() for m in received]
        assert stamps == sorted(stamps) and stamps[-1] - stamps[0] > 0.2
        rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
        assert 25 < rate < 75, 'published at %.1f frames/s, the device sends 50' % rate

        sim.signal(signal.SIGUSR1)          # the simulator closes its pty and opens a new one 1.5 s later
        wait_for(lambda: [m.data for m in connected.snapshot()][-2:] == [False, True], 20,
                 what='connected false then true\n' + digest(node.output))
        count = len(frames.snapshot())
        wait_for(lambda: len(frames.snapshot()) >= count + 10, 10, what='frames after the reopen')
        for msg in frames.snapshot():
            check_pattern(msg)
        assert [m.data for m in connected.snapshot()] == [False, True, False, True]
        assert node.running() and sim.running(), digest(node.output)
    finally:
        frames.sub.unregister()
        connected.sub.unregister()
