"""dsa_driver: the Weiss DSA tactile controller (or its simulated twin) on a serial port as a ROS node.

Publishes every valid data frame, never a made-up one. Topics and parameters: README.md, section dsa_driver.
The protocol: doc/dsa.md.
"""

import rospy
from std_msgs.msg import Bool

from plas_ros.config import section
from plas_ros.hardware.device_health import dsa_report
from plas_ros.hardware.diagnostics import Monitor
from plas_ros.hardware.dsa.client import DsaClient
from plas_ros.hardware.dsa.protocol import COLS, ROWS
from plas_ros.msg import TactileFrame
from plas_ros.nodes.drivers import Diagnostics, TactileImages, diagnostics_params, require_diagnostic_updater
from plas_ros.nodes.lifecycle import init_node
from plas_ros.nodes.params import node_params, ros_log

_ERROR_COUNTERS = ('crc_errors', 'truncated', 'bad_frames', 'link_losses')


class DsaNode:
    def __init__(self, client, frame_id, monitor=None):
        self.client = client
        self.frame_id = frame_id
        self.monitor = monitor
        self.frame_pub = rospy.Publisher('frame', TactileFrame, queue_size=10)
        self.images = TactileImages()
        self.connected_pub = rospy.Publisher('connected', Bool, queue_size=1, latch=True)
        self._connected = None
        self._errors = {}
        self.diagnostics = None
        if monitor is not None:
            self.diagnostics = Diagnostics('DSA on %s' % client.port, monitor.config,
                                           [('tactile sensor', lambda: dsa_report(client, monitor))])

    def spin_once(self, timeout=0.2):
        """Read one frame (or time out), publish it, then publish `connected` if it changed."""
        frame = self.client.read_frame(timeout)
        if frame is not None:
            self.publish_frame(frame, rospy.Time.now())
        self.update_connected()
        self.report_errors()

    def publish_frame(self, frame, stamp):
        msg = TactileFrame()
        msg.header.stamp = stamp
        msg.header.frame_id = self.frame_id
        msg.rows, msg.cols = frame.cells.shape
        msg.data = frame.cells.reshape(-1).tolist()
        self.frame_pub.publish(msg)
        self.images.publish(frame.cells, msg.header)
        if self.monitor is not None:
            self.monitor.tick('frames')

    def update_connected(self):
        connected = self.client.connected
        if connected != self._connected:
            self._connected = connected
            self.connected_pub.publish(Bool(data=connected))
            stats = ', '.join('%s %d' % kv for kv in sorted(self.client.stats().items()) if kv[1])
            if connected:
                rospy.loginfo('dsa_driver: frames flowing from %s (%s)', self.client.port, stats)
            else:
                rospy.logwarn('dsa_driver: no frames from %s; connected=false (%s)', self.client.port, stats)

    def report_errors(self):
        """Log each new batch of dropped frames with the running totals."""
        stats = self.client.stats()
        errors = {name: stats.get(name, 0) for name in _ERROR_COUNTERS}
        if errors != self._errors and any(errors.values()):
            rospy.logwarn_throttle(2.0, 'dsa_driver: dropped frames so far: %s' % ', '.join(
                '%s %d' % kv for kv in errors.items()))
        self._errors = errors


def main():
    require_diagnostic_updater('dsa_driver')
    init_node('dsa_driver')
    # config/robot.yaml dsa; the matrix the controller must report is the finger's (robot.yaml finger), the
    # diagnostics thresholds robot.yaml's diagnostics.
    p = node_params('robot.yaml', 'dsa', namespace=True, extra={'rows': ROWS, 'cols': COLS,
                                                                'diagnostics': section('robot.yaml', 'diagnostics')})
    port, frame_rate = p['port'], p['frame_rate']
    if frame_rate <= 0:
        raise SystemExit('dsa_driver: ~frame_rate must be positive, got %r' % frame_rate)
    monitor = Monitor(diagnostics_params(p))
    monitor.expect('frames', frame_rate)
    try:
        client = DsaClient(port, baudrate=p['baudrate'], timeout=p['timeout'], frame_rate=frame_rate, rle=p['rle'],
                           shape=(p['rows'], p['cols']), matrix=p['matrix'], boot_timeout=p['boot_timeout'],
                           log=monitor.logger(ros_log), abort=rospy.is_shutdown)
    except ValueError as exc:
        raise SystemExit('dsa_driver: %s' % exc) from None
    node = DsaNode(client, frame_id=p['frame_id'], monitor=monitor)
    rospy.loginfo('dsa_driver: DSA on %s, matrix %d (%d x %d expected), %d frames/s%s', port, client.matrix,
                  p['rows'], p['cols'], frame_rate, ' with RLE' if client.rle else '')
    try:
        while not rospy.is_shutdown():
            node.spin_once()
    finally:
        client.close()
