"""wsg_driver: the Weiss WSG 32 gripper (or its simulated twin) as a ROS node.

Wiring only: the logic is plas_ros.hardware.wsg.driver (WsgDriver, TactilePoller). Topics, services and
parameters: README.md, section wsg_driver. The command set: doc/wsg.md.
"""
import rospy
from std_srvs.srv import Trigger, TriggerResponse

from plas_ros.config import lookup
from plas_ros.hardware.wsg.client import WsgClient
from plas_ros.hardware.wsg.driver import TactilePoller, WsgDriver, check_fingers
from plas_ros.hardware.wsg.protocol import TACTILE_COLS, TACTILE_ROWS
from plas_ros.msg import GripperState, TactileFrame
from plas_ros.nodes.params import node_params, ros_log, run_at
from plas_ros.srv import GripperCommand, GripperCommandResponse


class WsgNode:
    def __init__(self, driver, frame_id, tactile_rate):
        self.driver = driver
        self.frame_id = frame_id
        self.last = GripperState()  # the last measured values, repeated with connected=false while down
        self._was_connected = None
        self.pub = rospy.Publisher('state', GripperState, queue_size=10)
        self.finger_pubs = {finger: rospy.Publisher('finger%d/frame' % finger, TactileFrame, queue_size=10)
                            for finger in driver.tactile_fingers}
        self.poller = TactilePoller(driver, tactile_rate, self.publish_frame)
        for name in ('move', 'grasp', 'release'):
            rospy.Service(name, GripperCommand, self._motion_service(name))
        for name in ('home', 'stop', 'fast_stop', 'ack'):
            rospy.Service(name, Trigger, self._trigger(name))

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
        msg.header.frame_id = '%s_finger%d' % (self.frame_id, finger)
        self.finger_pubs[finger].publish(msg)

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

    def _log_link(self, connected):
        self._was_connected = connected
        stats = self.driver.stats_text()
        if connected:
            rospy.loginfo('wsg_driver: gripper state flowing (%s)', stats)
        else:
            rospy.logwarn('wsg_driver: no current gripper state; publishing connected=false (%s)', stats)


def main():
    rospy.init_node('wsg_driver')
    # config/robot.yaml wsg; a command's default speed is the env's width-command speed (one owner).
    p = node_params('robot.yaml', 'wsg', namespace=True,
                    extra={'default_speed': lookup('env.yaml', 'gripper.speed_mm_s')})
    host, port, rate_hz, timeout = p['host'], p['port'], p['state_rate'], p['timeout']
    try:
        fingers = check_fingers(p['tactile_fingers'])
        if rate_hz <= 0 or timeout <= 0 or p['tactile_rate'] <= 0:
            raise ValueError('~state_rate, ~timeout and ~tactile_rate must be positive, got %r, %r and %r'
                             % (rate_hz, timeout, p['tactile_rate']))
        period_ms = max(10, int(round(1000.0 / rate_hz)))
        client = WsgClient(host, port, timeout=timeout, log=ros_log)
        driver = WsgDriver(client, p['default_speed'], timeout, p['homing_timeout'], p['max_motion_time'],
                           home_on_start=p['home_on_start'], stop_on_block=p['stop_on_block'],
                           stale_after=max(5.0 * period_ms / 1000.0, 0.5), tactile_fingers=fingers, log=ros_log)
    except ValueError as exc:
        raise SystemExit('wsg_driver: %s' % exc) from None
    client.subscribe_state(period_ms)
    node = WsgNode(driver, p['frame_id'], p['tactile_rate'])
    driver.start()
    node.poller.start()
    rospy.loginfo('wsg_driver: gripper at %s:%d, state at %.0f Hz, tactile fingers %s at %.0f Hz, home_on_start %s',
                  host, port, rate_hz, list(fingers) or 'none', p['tactile_rate'], p['home_on_start'])

    try:
        run_at(rate_hz, node.publish_once)
    finally:
        node.poller.close()
        driver.close()
