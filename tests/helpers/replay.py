"""Shared by the replay tests: the fixture bag, reading it through the rosbag API, and `rosbag play`.

The bag is recorded from the simulated stack by tools/record_fixture_bags.py (see doc/replay.md). Messages
read back through the rosbag API are classes rosbag generates from the bag's own definitions, so their kind is
checked by `_type`/`_md5sum`, never with isinstance.
"""
import os

from tests.helpers.common import wait_for
from tests.helpers.ros import digest
from tests.helpers.tree import REPO_ROOT

BAG_DIR = os.path.join(REPO_ROOT, 'tests', 'fixtures', 'bags')
BAG = os.environ.get('PLAS_ROS_REPLAY_BAG', os.path.join(BAG_DIR, 'sim_collect.bag'))

RAW_TOPICS = ('/dsa/frame', '/arm/wrench', '/arm/tip_pose', '/wsg/state')
CLOTH_TOPICS = ('/cloth/observation', '/cloth/action', '/cloth/transition')


def bag_messages(topic, expected_type, path=BAG):
    """[(bag time (s), message)] of one topic, in bag order; fails if the topic holds another type."""
    import rosbag
    out = []
    with rosbag.Bag(path) as bag:
        for _, msg, t in bag.read_messages(topics=[topic]):
            assert msg._type == expected_type._type and msg._md5sum == expected_type._md5sum, (
                '%s in %s holds %s (md5 %s), expected %s (md5 %s): re-record the bag (doc/replay.md)'
                % (topic, path, msg._type, msg._md5sum, expected_type._type, expected_type._md5sum))
            out.append((t.to_sec(), msg))
    assert out, '%s holds no %s messages' % (path, topic)
    return out


def subscribed(topic, node):
    """True once `node` (a resolved node name) is subscribed to `topic` according to the master."""
    import rosgraph
    _, subscribers, _ = rosgraph.Master('/replay_test').getSystemState()
    return any(name == topic and node in nodes for name, nodes in subscribers)


def wait_subscribed(topic, node, proc, timeout=30.0):
    wait_for(lambda: subscribed(topic, node) or not proc.running(), timeout, what='%s to subscribe %s' % (node, topic))
    assert proc.running(), '%s exited:\n%s' % (node, digest(proc.output))


def play(processes, topics, rate=1.0, remap=(), path=BAG, timeout=120.0):
    """`rosbag play` of `topics` from the bag, without dropping messages (so never --immediate);
    returns once playback has finished."""
    args = ['rosbag', 'play', path, '--wait-for-subscribers', '--queue=1000', '-r', str(rate), '-q']
    args += ['%s:=%s' % pair for pair in remap]
    args += ['--topics'] + list(topics)
    player = processes(args, name='rosbag_play')
    code = player.wait(timeout)
    assert code == 0, 'rosbag play failed (%s):\n%s' % (code, digest(player.output))
    return player
