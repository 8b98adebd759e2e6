"""What the driver tests read besides the data topics: /diagnostics statuses by name, Image messages decoded
back to arrays, and tf lookups. rospy comes from the test (the rospy_node fixture)."""
import numpy as np

from tests.helpers.common import wait_for
from tests.helpers.ros import TopicLog


class DiagnosticsLog:
    """/diagnostics as this process receives it: the latest status of each name ('wsgtest/wsg_driver: gripper')."""

    def __init__(self, rospy):
        from diagnostic_msgs.msg import DiagnosticArray
        self.log = TopicLog(rospy, '/diagnostics', DiagnosticArray)

    def latest(self, name):
        for array in reversed(self.log.snapshot()):
            for status in array.status:
                if status.name == name:
                    return status
        return None

    def wait_level(self, name, level, timeout, output=''):
        """The first status of `name` at `level` (0 OK, 1 WARN, 2 ERROR) published from now on."""
        return self.wait_status(name, lambda status: status.level == level, timeout, 'at level %d' % level, output)

    def wait_status(self, name, accept, timeout, what, output=''):
        """The first status of `name` that `accept(status)` takes, published from now on."""
        mark = self.log.count

        def found():
            for array in self.log.since(mark):
                for status in array.status:
                    if status.name == name and accept(status):
                        return status
            return None
        last = self.latest(name)
        return wait_for(found, timeout, what='%s %s (last: %s)\n%s' % (
            name, what, last and (last.level, last.message), output))

    def close(self):
        self.log.sub.unregister()


def values(status):
    return {kv.key: kv.value for kv in status.values}


def image_array(msg):
    """A sensor_msgs/Image (mono16 little-endian or rgb8) as a numpy array (rows, cols[, 3])."""
    if msg.encoding == 'mono16':
        assert msg.is_bigendian == 0 and msg.step == 2 * msg.width
        return np.frombuffer(bytes(msg.data), '<u2').reshape(msg.height, msg.width)
    assert msg.encoding == 'rgb8' and msg.step == 3 * msg.width
    return np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3)


def check_images(frames, raw, colour):
    """Each tactile frame also came as image_raw (mono16: its cells, same stamp and frame) and image_color (rgb8,
    upscaled by config/robot.yaml tactile_image.scale)."""
    from plas_ros.hardware.tactile_image import TactileColouriser, load_tactile_image_config
    scale = load_tactile_image_config().scale
    wait_for(lambda: raw.count >= 3 and colour.count >= 3, 10, what='tactile images')
    by_stamp = {m.header.stamp: m for m in frames}
    checked = 0
    for image in raw.snapshot():
        frame = by_stamp.get(image.header.stamp)
        if frame is None:
            continue
        assert image.header.frame_id == frame.header.frame_id
        np.testing.assert_array_equal(image_array(image), np.asarray(frame.data).reshape(frame.rows, frame.cols))
        checked += 1
    assert checked >= 2, 'no image_raw with the stamp of a frame'
    view = colour.msg
    assert image_array(view).shape == (14 * scale, 6 * scale, 3) and view.header.frame_id == frames[0].header.frame_id
    shown = [(m, by_stamp[m.header.stamp]) for m in colour.snapshot() if m.header.stamp in by_stamp]
    assert shown, 'no image_color with the stamp of a frame'
    for image, frame in shown[-3:]:
        cells = np.asarray(frame.data).reshape(frame.rows, frame.cols)
        np.testing.assert_array_equal(image_array(image), TactileColouriser().image(cells))


def tf_buffer():
    """(buffer, listener) of tf2; unregister the listener at the end."""
    import tf2_ros
    buffer = tf2_ros.Buffer()
    return buffer, tf2_ros.TransformListener(buffer)


def lookup(rospy, buffer, parent, child, timeout=20.0, stamp=None):
    """The transform parent -> child (at `stamp`, a rospy.Time, else the latest) once tf2 has it."""
    import tf2_ros

    def found():
        try:
            return buffer.lookup_transform(parent, child, stamp or rospy.Time(0))
        except (tf2_ros.LookupException, tf2_ros.ConnectivityException, tf2_ros.ExtrapolationException):
            return None
    return wait_for(found, timeout, what='tf %s -> %s' % (parent, child))
