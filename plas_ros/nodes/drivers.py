"""What the driver nodes (and cloth_env, for its /diagnostics) share for /diagnostics, tactile images and
frames: wiring only (the statuses are plas_ros.hardware.diagnostics', the images
plas_ros.hardware.tactile_image's).

diagnostic_updater is a ROS package of its own (Debian: python3-diagnostic-updater; Noetic:
ros-noetic-diagnostic-updater); `require_diagnostic_updater()` stops a node that lacks it with one line naming
the package, before the node registers with the master.
"""
import rospy
from sensor_msgs.msg import Image

from plas_ros.config import ConfigError
from plas_ros.hardware.diagnostics import load_diagnostics_config, missing_module_message
from plas_ros.hardware.tactile_image import TactileColouriser, mono16_bytes

try:
    import diagnostic_updater
except ImportError:  # reported by require_diagnostic_updater(), in one line
    diagnostic_updater = None


def require_diagnostic_updater(node_name):
    if diagnostic_updater is None:
        raise SystemExit('%s: %s' % (node_name, missing_module_message('diagnostic_updater')))


def diagnostics_params(params):
    """The thresholds from a node's parameters (its `diagnostics` entry, config/robot.yaml diagnostics)."""
    try:
        return load_diagnostics_config(params['diagnostics'])
    except (ConfigError, ValueError) as exc:
        raise SystemExit('%s: parameter %s' % (rospy.get_name(), exc)) from None


class Diagnostics:
    """/diagnostics through diagnostic_updater: one status per (name, report function) of `tasks`, every
    `config.period` s from a timer (so a driver thread blocked in a boot wait does not stop them)."""

    def __init__(self, hardware_id, config, tasks):
        require_diagnostic_updater(rospy.get_name())
        self.updater = diagnostic_updater.Updater()
        self.updater.setHardwareID(hardware_id)
        for name, report in tasks:
            self.updater.add(name, self._task(report))
        self._timer = rospy.Timer(rospy.Duration(config.period), lambda _event: self.updater.force_update())

    @staticmethod
    def _task(report):
        def run(stat):
            result = report()
            stat.summary(result.level, result.message)
            for key, value in result.values:
                stat.add(key, value)
            return stat
        return run

    def close(self):
        self._timer.shutdown()


class TactileImages:
    """`<prefix>image_raw` (mono16, the cells as they are) and `<prefix>image_color` (rgb8, colour-mapped and
    upscaled, config/robot.yaml tactile_image) for each published tactile frame; the colour image is made only
    while someone subscribes."""

    def __init__(self, prefix=''):
        self.colouriser = TactileColouriser()
        self.raw_pub = rospy.Publisher(prefix + 'image_raw', Image, queue_size=10)
        self.colour_pub = rospy.Publisher(prefix + 'image_color', Image, queue_size=10)

    def publish(self, cells, header):
        """`cells` a (rows, cols) array, `header` the tactile frame's (same stamp and frame)."""
        rows, cols = cells.shape
        self.raw_pub.publish(Image(header=header, height=rows, width=cols, encoding='mono16', is_bigendian=0,
                                   step=2 * cols, data=mono16_bytes(cells)))
        if self.colour_pub.get_num_connections():
            rgb = self.colouriser.image(cells)
            self.colour_pub.publish(Image(header=header, height=rgb.shape[0], width=rgb.shape[1], encoding='rgb8',
                                          is_bigendian=0, step=3 * rgb.shape[1], data=rgb.tobytes()))

    def close(self):
        self.raw_pub.unregister()
        self.colour_pub.unregister()
