"""arm_driver: the Sawyer (or the simulated arm) as a ROS node: tip pose, tip frame on tf, wrench and tip moves.

Topics, services, tf frames and parameters: README.md, section arm_driver. The intera calls: doc/arm_and_sim.md.
"""
import threading

import rospy
import tf2_ros
from geometry_msgs.msg import PoseStamped, TransformStamped, WrenchStamped
from std_srvs.srv import Trigger, TriggerResponse

from plas_ros.config import section
from plas_ros.hardware.arm import ArmError, SafetyBox, WrenchMedianFilter, pitch_to_quaternion
from plas_ros.hardware.device_health import arm_report
from plas_ros.hardware.diagnostics import Monitor
from plas_ros.nodes.drivers import Diagnostics, diagnostics_params, require_diagnostic_updater
from plas_ros.nodes.lifecycle import init_node
from plas_ros.nodes.params import node_params, run_at
from plas_ros.srv import TipMove, TipMoveResponse

TIP = ('tip_offset', 'reference_orientation', 'pitch_range_deg', 'pitch_step_max_deg')


def make_arm(p):
    """The Arm the parameters (config/robot.yaml arm) ask for: the simulated arm over TCP, or the real Sawyer
    over intera."""
    tip = {name: p[name] for name in TIP}
    if p['sim']:
        if not p['sim_port']:
            raise SystemExit('%s: parameter ~sim_port is required with ~sim' % rospy.get_name())
        from plas_ros.sim.arm import SimArmClient
        return SimArmClient(p['sim_host'], p['sim_port'], timeout=p['sim_timeout'], tip_x=p['tip_x'], **tip)
    from plas_ros.hardware.intera_arm import InteraArm
    box = SafetyBox(p['safety_box_low'], p['safety_box_high'])
    return InteraArm(box, tip_x=p['tip_x'], limb=p['limb'], joint_speed=p['joint_speed'],
                     move_timeout=p['move_timeout'], joint_tolerance=p['joint_tolerance'], ik_timeout=p['ik_timeout'],
                     start_waypoints=p['start_waypoints'], **tip)


class ArmNode:
    def __init__(self, arm, frame_id, tip_frame_id, window, monitor=None, what='arm'):
        self.arm = arm
        self.frame_id = frame_id
        self.tip_frame_id = tip_frame_id
        self.filter = WrenchMedianFilter(window)
        self._moved_at = rospy.Time(0)  # when the last move ended: readings taken before it are not filtered
        self.read_errors = 0
        self.move_errors = 0
        self.reading_ok = False
        self.monitor = monitor
        self.diagnostics = None
        if monitor is not None:
            self.diagnostics = Diagnostics(what, monitor.config, [('arm', lambda: arm_report(
                monitor, self.reading_ok, self.read_errors, self.move_errors, what))])
        self._filter_lock = threading.Lock()
        self.pose_pub = rospy.Publisher('tip_pose', PoseStamped, queue_size=10)
        self.wrench_pub = rospy.Publisher('wrench', WrenchStamped, queue_size=10)
        self.tf = tf2_ros.TransformBroadcaster()
        self._services = [rospy.Service('move_tip', TipMove, self.on_move_tip),
                          rospy.Service('move_to_start', Trigger, self.on_move_to_start)]

    def close(self):
        """Withdraw the services and topics (the node's process ends anyway; for a node hosted in a test)."""
        if self.diagnostics is not None:
            self.diagnostics.close()
        for service in self._services:
            service.shutdown()
        self.pose_pub.unregister()
        self.wrench_pub.unregister()

    def _restart_filter(self):
        # Readings from before a move describe another contact: the next median uses only new ones (also a
        # reading the loop took while the move ran and adds after this).
        with self._filter_lock:
            self.filter.clear()
            self._moved_at = rospy.Time.now()

    def _failed(self, what, exc):
        self.move_errors += 1
        self._note_error('%s failed: %s' % (what, exc))
        rospy.logerr('arm_driver: %s failed (%d failed moves so far): %s', what, self.move_errors, exc)
        return str(exc)

    def on_move_tip(self, req):
        try:
            result = self.arm.move_tip(req.dy, req.dz, req.dpitch)
        except (ArmError, ValueError) as exc:
            message = self._failed('move_tip(dy=%g, dz=%g, dpitch=%g)' % (req.dy, req.dz, req.dpitch), exc)
            return TipMoveResponse(success=False, message=message, clipped=False, tip_pose=[])
        finally:
            self._restart_filter()
        message = 'target clipped to the safety box or the pitch range' if result.clipped else ''
        return TipMoveResponse(success=True, message=message, clipped=result.clipped,
                               tip_pose=[float(v) for v in result.pose])

    def on_move_to_start(self, req):
        try:
            pose = self.arm.move_to_start()
        except (ArmError, ValueError) as exc:
            return TriggerResponse(success=False, message=self._failed('move_to_start', exc))
        finally:
            self._restart_filter()
        return TriggerResponse(success=True, message='at start: y=%.3f z=%.3f m, pitch %.1f deg'
                               % (pose[1], pose[2], pose[3]))

    def publish_once(self):
        stamp = rospy.Time.now()  # taken before the readings: no reading stamped after a move predates it
        try:
            tip = self.arm.tip_reading()
            wrenches = self.arm.wrench_readings()
        except (ArmError, ValueError) as exc:
            self.read_errors += 1
            self.reading_ok = False
            self._note_error('reading the arm failed: %s' % exc)
            rospy.logwarn_throttle(5.0, 'arm_driver: reading the arm failed (%d so far): %s' % (self.read_errors, exc))
            return
        self.reading_ok = True
        if self.monitor is not None:
            self.monitor.tick('readings')
        self._publish_pose(tip, stamp)
        self._publish_tip_frame(tip, stamp)
        with self._filter_lock:
            if stamp < self._moved_at:
                return  # read while a move ran
            for wrench in wrenches:
                self.filter.add(wrench, stamp)
            full, oldest = self.filter.full, self.filter.oldest
            median = self.filter.value()
        if full and wrenches:
            self._publish_wrench(median, oldest)

    def _note_error(self, text):
        if self.monitor is not None:
            self.monitor.error(text)

    def _publish_pose(self, tip, stamp):
        msg = PoseStamped()
        msg.header.stamp = stamp
        msg.header.frame_id = self.frame_id
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in tip.position)
        q = pitch_to_quaternion(tip.pitch)  # the pitch, encoded as a rotation about x (the env decodes it)
        msg.pose.orientation.x, msg.pose.orientation.y, msg.pose.orientation.z, msg.pose.orientation.w = (
            float(v) for v in q)
        self.pose_pub.publish(msg)

    def _publish_tip_frame(self, tip, stamp):
        msg = TransformStamped()
        msg.header.stamp = stamp
        msg.header.frame_id = self.frame_id
        msg.child_frame_id = self.tip_frame_id
        t, r = msg.transform.translation, msg.transform.rotation
        t.x, t.y, t.z = (float(v) for v in tip.position)
        r.x, r.y, r.z, r.w = (float(v) for v in tip.orientation)
        self.tf.sendTransform(msg)

    def _publish_wrench(self, wrench, stamp):
        msg = WrenchStamped()
        msg.header.stamp = stamp
        msg.header.frame_id = self.frame_id
        msg.wrench.force.x, msg.wrench.force.y, msg.wrench.force.z = (float(v) for v in wrench[:3])
        msg.wrench.torque.x, msg.wrench.torque.y, msg.wrench.torque.z = (float(v) for v in wrench[3:])
        self.wrench_pub.publish(msg)


def main():
    require_diagnostic_updater('arm_driver')
    init_node('arm_driver')
    p = node_params('robot.yaml', 'arm', namespace=True, extra={'diagnostics': section('robot.yaml', 'diagnostics')})
    monitor = Monitor(diagnostics_params(p))
    monitor.expect('readings', p['rate'])
    try:
        arm = make_arm(p)  # the simulated arm connects lazily: the world may still be starting
    except (ArmError, ValueError) as exc:
        rospy.logfatal('arm_driver: %s', exc)
        raise SystemExit(1) from exc
    what = ('simulated arm at %s:%d' % (p['sim_host'], p['sim_port']) if p['sim']
            else 'Sawyer limb %s' % p['limb'])
    node = ArmNode(arm, p['frame_id'], p['tip_frame_id'], p['wrench_median_window'], monitor=monitor, what=what)
    hz = p['rate']
    rospy.loginfo('arm_driver: up (%s arm), publishing at %.0f Hz, tip frame %s -> %s', 'simulated' if p['sim']
                  else 'Sawyer', hz, p['frame_id'], p['tip_frame_id'])
    run_at(hz, node.publish_once)
    arm.close()
