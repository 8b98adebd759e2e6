"""wsg_driver: the Weiss WSG 32 gripper (or its simulated twin) as a ROS node.

Wiring only: the logic is plas_ros.hardware.wsg.driver (WsgDriver, TactilePoller). Topics, services and
parameters: README.md, section wsg_driver. The command set: doc/wsg.md.
"""
import rospy
import tf2_ros
from geometry_msgs.msg import TransformStamped
from sensor_msgs.msg import JointState
from std_srvs.srv import Trigger, TriggerResponse

from plas_ros.config import lookup, section
from plas_ros.hardware.device_health import finger_report, gripper_report
from plas_ros.hardware.diagnostics import Monitor
from plas_ros.hardware.tactile_image import cells_array
from plas_ros.hardware.wsg.client import WsgClient
from plas_ros.hardware.wsg.driver import TactilePoller, WsgDriver, check_fingers
from plas_ros.hardware.wsg.frames import finger_frame, finger_offset, joint_state, unit_axis
from plas_ros.hardware.wsg.protocol import TACTILE_COLS, TACTILE_ROWS
from plas_ros.msg import GripperState, TactileFrame
from plas_ros.nodes.drivers import Diagnostics, TactileImages, diagnostics_params, require_diagnostic_updater
from plas_ros.nodes.lifecycle import init_node
from plas_ros.nodes.params import node_params, ros_log, run_at
from plas_ros.srv import GripperCommand, GripperCommandResponse


class FingerFrames:
    """The fingers on tf (tip frame -> `<frame_id>_finger<N>`, apart by the measured width) and their joints on
    `joint_states` (plas_ros.hardware.wsg.frames)."""

    def __init__(self, frame_id, tip_frame_id, axis, joint_names):
        self.frame_id = frame_id
        self.tip_frame_id = tip_frame_id
        self.axis = unit_axis(axis)
        if len(joint_names) != 2:
            raise ValueError('joint_names must name the two finger joints, got %r' % (joint_names,))
        self.joint_names = list(joint_names)
        self.tf = tf2_ros.TransformBroadcaster()
        self.joint_pub = rospy.Publisher('joint_states', JointState, queue_size=10)

    def publish(self, state, stamp):
        transforms = []
        for finger in (1, 2):
            msg = TransformStamped()
            msg.header.stamp = stamp
            msg.header.frame_id = self.tip_frame_id
            msg.child_frame_id = finger_frame(self.frame_id, finger)
            t = msg.transform.translation
            t.x, t.y, t.z = (float(v) for v in finger_offset(state.width, finger, self.axis))
            msg.transform.rotation.w = 1.0
            transforms.append(msg)
        self.tf.sendTransform(transforms)
        joints = JointState(name=self.joint_names)
        joints.header.stamp = stamp
        joints.header.frame_id = self.tip_frame_id
        joints.position, joints.velocity, joints.effort = joint_state(state.width, state.speed, state.force)
        self.joint_pub.publish(joints)


class WsgNode:
    def __init__(self, driver, frame_id, tactile_rate, frames=None, monitors=None):
        self.driver = driver
        self.frame_id = frame_id
        self.frames = frames
        self.last = GripperState()  # the last measured values, repeated with connected=false while down
        self._was_connected = None
        self.pub = rospy.Publisher('state', GripperState, queue_size=10)
        self.finger_pubs = {finger: rospy.Publisher('finger%d/frame' % finger, TactileFrame, queue_size=10)
                            for finger in driver.tactile_fingers}
        self.finger_images = {finger: TactileImages('finger%d/' % finger) for finger in driver.tactile_fingers}
        self.poller = TactilePoller(driver, tactile_rate, self.publish_frame)
        self.diagnostics = None
        if monitors is not None:
            self.diagnostics = Diagnostics('WSG 32 at %s:%d' % (driver.client.host, driver.client.port),
                                           monitors['gripper'].config, self._diagnostic_tasks(monitors))
        for name in ('move', 'grasp', 'release'):
            rospy.Service(name, GripperCommand, self._motion_service(name))
        for name in ('home', 'stop', 'fast_stop', 'ack'):
            rospy.Service(name, Trigger, self._trigger(name))

    def _diagnostic_tasks(self, monitors):
        tasks = [('gripper', lambda: gripper_report(self.driver, monitors['gripper']))]
        for finger in self.driver.tactile_fingers:
            tasks.append(('tactile finger %d' % finger,
                          lambda finger=finger: finger_report(self.driver, finger, monitors[finger])))
        return tasks

    def _motion_service(self, name):
        def handle(req):
            result = self.driver.command(name, req.width, req.speed)
            return GripperCommandResponse(success=result.success, message=result.message, status=result.status,
                                          width=result.width)
        return handle

    def _trigger(self, name):
        def handle(_req):
            success, message = self.driver.trigger(name)
            return TriggerResponse(success=success, message=message)
        return handle

    def publish_frame(self, finger, cells):
        msg = TactileFrame(rows=TACTILE_ROWS, cols=TACTILE_COLS, data=list(cells))
        msg.header.stamp = rospy.Time.from_sec(self.poller.requested_at)  # the reading is no older than this
        msg.header.frame_id = finger_frame(self.frame_id, finger)
        self.finger_pubs[finger].publish(msg)
        self.finger_images[finger].publish(cells_array(msg.data, TACTILE_ROWS, TACTILE_COLS), msg.header)

    def publish_once(self):
        state = self.driver.state()
        connected = state is not None
        if connected:
            self.last = GripperState(width=state.width, speed=state.speed, force=state.force,
                                     grasping_state=state.grasping_state, system_flags=state.system_flags)
        if connected != self._was_connected:
            self._log_link(connected)
        msg = GripperState(width=self.last.width, speed=self.last.speed, force=self.last.force,
                           grasping_state=self.last.grasping_state, system_flags=self.last.system_flags,
                           connected=connected)
        msg.header.stamp = rospy.Time.now()
        msg.header.frame_id = self.frame_id
        self.pub.publish(msg)
        if connected and self.frames is not None:
            self.frames.publish(state, msg.header.stamp)  # measured widths only: no frame from stale values

    def _log_link(self, connected):
        self._was_connected = connected
        stats = self.driver.stats_text()
        if connected:
            rospy.loginfo('wsg_driver: gripper state flowing (%s)', stats)
        else:
            rospy.logwarn('wsg_driver: no current gripper state; publishing connected=false (%s)', stats)


def monitors_for(p, fingers):
    """The gripper's Monitor (state against state_rate) and one per tactile finger (against tactile_rate)."""
    config = diagnostics_params(p)
    monitors = {'gripper': Monitor(config)}
    monitors['gripper'].expect('state', p['state_rate'])
    for finger in fingers:
        monitors[finger] = Monitor(config)
        monitors[finger].expect('frames', p['tactile_rate'])
    return monitors


def main():
    require_diagnostic_updater('wsg_driver')
    init_node('wsg_driver')
    # config/robot.yaml wsg; a command's default speed is the env's width-command speed, the fingers' parent
    # frame the arm's tip frame, the diagnostics thresholds robot.yaml's diagnostics (one owner each).
    p = node_params('robot.yaml', 'wsg', namespace=True,
                    extra={'default_speed': lookup('env.yaml', 'gripper.speed_mm_s'),
                           'tip_frame_id': lookup('robot.yaml', 'arm.tip_frame_id'),
                           'diagnostics': section('robot.yaml', 'diagnostics')})
    host, port, rate_hz, timeout = p['host'], p['port'], p['state_rate'], p['timeout']
    try:
        fingers = check_fingers(p['tactile_fingers'])
        if rate_hz <= 0 or timeout <= 0 or p['tactile_rate'] <= 0:
            raise ValueError('~state_rate, ~timeout and ~tactile_rate must be positive, got %r, %r and %r'
                             % (rate_hz, timeout, p['tactile_rate']))
        period_ms = max(10, int(round(1000.0 / rate_hz)))
        monitors = monitors_for(p, fingers)
        log = monitors['gripper'].logger(ros_log)  # warnings and errors are also the status's last error
        client = WsgClient(host, port, timeout=timeout, log=log)
        driver = WsgDriver(client, p['default_speed'], timeout, p['homing_timeout'], p['max_motion_time'],
                           home_on_start=p['home_on_start'], stop_on_block=p['stop_on_block'],
                           stale_after=max(5.0 * period_ms / 1000.0, 0.5), tactile_fingers=fingers, log=log)
        frames = FingerFrames(p['frame_id'], p['tip_frame_id'], p['finger_axis'], p['joint_names'])
    except ValueError as exc:
        raise SystemExit('wsg_driver: %s' % exc) from None
    client.subscribe_state(period_ms)
    node = WsgNode(driver, p['frame_id'], p['tactile_rate'], frames=frames, monitors=monitors)
    driver.start()
    node.poller.start()
    rospy.loginfo('wsg_driver: gripper at %s:%d, state at %.0f Hz, tactile fingers %s at %.0f Hz, home_on_start %s',
                  host, port, rate_hz, list(fingers) or 'none', p['tactile_rate'], p['home_on_start'])

    try:
        run_at(rate_hz, node.publish_once)
    finally:
        node.poller.close()
        driver.close()
