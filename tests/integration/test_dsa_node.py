"""dsa_driver against the simulated controller (a separate process on a real pty), read through rospy.

The node starts before the simulator (the port is absent at first), publishes frames equal to the simulator's
deterministic pattern, and reports a closed-and-reopened pty as connected false, then true. With several
matrices it publishes the one its `matrix` parameter names, and refuses one the controller does not have.
"""
import signal
import sys

from tests.helpers.common import wait_for
from tests.helpers.driver_topics import DiagnosticsLog, check_images, values
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
    from sensor_msgs.msg import Image
    from std_msgs.msg import Bool

    from plas_ros.msg import TactileFrame
    rospy = rospy_node
    link = str(tmp_path / 'dsa')
    frames = TopicLog(rospy, '/dsa/frame', TactileFrame)
    connected = TopicLog(rospy, '/dsa/connected', Bool)
    raw = TopicLog(rospy, '/dsa/image_raw', Image)
    colour = TopicLog(rospy, '/dsa/image_color', Image)
    diagnostics = DiagnosticsLog(rospy)
    name = 'dsa/dsa_driver: tactile sensor'
    node = processes([script('dsa_node'), '__ns:=/dsa', '__name:=dsa_driver',
                      '_port:=%s' % link, '_frame_rate:=50', '_rle:=true'], name='dsa_node')
    try:
        wait_for(lambda: [m.data for m in connected.snapshot()] == [False], 20, what='/dsa/connected false')
        assert not frames.snapshot() and node.running(), digest(node.output)
        absent = diagnostics.wait_level(name, 2, 20, digest(node.output))
        assert absent.message == 'no link: %s, not open' % link
        assert 'cannot open DSA port' in values(absent)['last error']

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
        check_images(frames.snapshot(), raw, colour)
        assert received[0].header.frame_id == 'wsg_finger1'  # the finger carrying the sensor (robot.yaml dsa)
        flowing = diagnostics.wait_level(name, 0, 20, digest(node.output))
        assert 'acquiring matrix 0 (14 x 6)' in values(flowing)['link'] and 'expected 50.0 Hz' in values(flowing)[
            'frames rate']

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
        for topic in (frames, connected, raw, colour):
            topic.sub.unregister()
        diagnostics.close()


def test_dsa_node_publishes_the_configured_matrix(rospy_node, processes, tmp_path):
    """A controller with three matrices (the cloth on matrix 1) that prefixes its loop reply with an error code:
    the node publishes matrix 1 (the `matrix` parameter), whose cells are the pattern."""
    from std_msgs.msg import Bool

    from plas_ros.msg import TactileFrame
    rospy = rospy_node
    link = str(tmp_path / 'dsa')
    frames = TopicLog(rospy, '/dsa3/frame', TactileFrame)
    connected = TopicLog(rospy, '/dsa3/connected', Bool)
    sim = processes([sys.executable, '-m', 'plas_ros.sim.dsa', '--link', link, '--matrices', '3',
                     '--contact-matrix', '1', '--loop-reply', 'error_code_prefixed', '--boot-garbage',
                     '--boot-seconds', '1.0'], name='dsa_sim')
    node = processes([script('dsa_node'), '__ns:=/dsa3', '__name:=dsa_driver', '_port:=%s' % link,
                      '_frame_rate:=50', '_matrix:=1'], name='dsa_node')
    try:
        wait_for(lambda: len(frames.snapshot()) >= 20, 30, what='20 frames on /dsa3/frame\n' + digest(node.output))
        numbers = [check_pattern(m) for m in frames.snapshot()]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), 'frames lost: %s' % numbers
        assert connected.snapshot()[-1].data is True
        assert 'loop reply: error_code_prefixed' in node.output and '3 matrices' in node.output, digest(node.output)
        assert node.running() and sim.running()
    finally:
        frames.sub.unregister()
        connected.sub.unregister()


def test_dsa_node_refuses_a_matrix_the_controller_does_not_have(rospy_node, processes, tmp_path):
    """`matrix` 2 on a controller with two matrices: a clear error naming both values, repeated while it runs;
    connected stays false and nothing is published."""
    from std_msgs.msg import Bool

    from plas_ros.msg import TactileFrame
    rospy = rospy_node
    link = str(tmp_path / 'dsa')
    frames = TopicLog(rospy, '/dsa2/frame', TactileFrame)
    connected = TopicLog(rospy, '/dsa2/connected', Bool)
    processes([sys.executable, '-m', 'plas_ros.sim.dsa', '--link', link, '--matrices', '2'], name='dsa_sim')
    node = processes([script('dsa_node'), '__ns:=/dsa2', '__name:=dsa_driver', '_port:=%s' % link,
                      '_matrix:=2'], name='dsa_node')
    try:
        message = 'reports 2 sensor matrices; matrix 2 is configured (0-based), so it needs at least 3'
        wait_for(lambda: node.output.count(message) >= 2, 30, what='the error, twice\n' + digest(node.output))
        wait_for(lambda: connected.snapshot(), 10, what='/dsa2/connected')
        assert [m.data for m in connected.snapshot()] == [False] and not frames.snapshot()
        assert node.running(), digest(node.output)
    finally:
        frames.sub.unregister()
        connected.sub.unregister()
