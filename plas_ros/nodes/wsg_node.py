"""wsg_driver: the Weiss WSG 32 gripper (or its simulated twin) as a ROS node.

Topics, services and parameters: README.md, section wsg_driver. The command set: doc/wsg.md.
"""
import math
import threading
import time

import rospy
from std_srvs.srv import Trigger, TriggerResponse

from plas_ros.config import lookup
from plas_ros.hardware.wsg import Command, Status, WsgClient, WsgError, WsgLinkError
from plas_ros.msg import GripperState
from plas_ros.nodes.params import node_params, ros_log, run_at
from plas_ros.srv import GripperCommand, GripperCommandResponse

_LIMIT_SLACK = 1e-4  # the limits travel as f32: 0.1 mm/s arrives as 0.10000000149
_HINTS = {
    Status.ACCESS_DENIED: 'fast stop active: call ack, then retry',
    Status.COMMAND_FAILED: 'the grasp found no part between the fingers',
    Status.COMMAND_ABORTED: 'aborted by stop, fast stop or a newer motion',
    Status.RANGE_ERROR: 'outside the gripper limits',
    Status.NOT_INITIALIZED: 'the gripper is not referenced: call home',
}




def explain(what, error):
    """'move to 3.00 mm at 70.0 mm/s failed: WSG MOVE (0x21) failed: status 16 ACCESS_DENIED (fast stop ...)'."""
    if isinstance(error, WsgLinkError):
        hint = 'the driver keeps reconnecting'
    else:
        hint = _HINTS.get(error.status, '')
    return '%s failed: %s%s' % (what, error, ' (%s)' % hint if hint else '')


class WsgNode:
    def __init__(self, client, default_speed, timeout, homing_timeout, stale_after, frame_id):
        self.client = client
        self.default_speed = float(default_speed)
        self.timeout = float(timeout)
        self.homing_timeout = float(homing_timeout)
        self.stale_after = float(stale_after)
        self.frame_id = frame_id
        self.limits = None
        self.last = GripperState()  # the last measured values, repeated with connected=false while down
        self._was_connected = None
        self._limits_lock = threading.Lock()
        self.pub = rospy.Publisher('state', GripperState, queue_size=10)
        for name, call in (('move', client.move), ('grasp', client.grasp), ('release', client.release)):
            rospy.Service(name, GripperCommand, self._motion_service(name, call))
        rospy.Service('home', Trigger, self._trigger('home', lambda: client.homing(timeout=self.homing_timeout)))
        rospy.Service('stop', Trigger, self._trigger('stop', client.stop))
        rospy.Service('fast_stop', Trigger, self._trigger('fast_stop', client.fast_stop))
        rospy.Service('ack', Trigger, self._trigger('ack', client.ack_fault))

    # ------------------------------------------------------------------ limits

    def read_limits(self):
        """The gripper's limits (0x53), read once; None while they could not be read."""
        with self._limits_lock:
            if self.limits is None and self.client.connected:
                try:
                    self.limits = self.client.system_limits()
                    info = self.client.system_info()
                except WsgError as exc:
                    rospy.logwarn_throttle(5.0, 'wsg_driver: reading the gripper limits failed: %s' % exc)
                    return None
                rospy.loginfo('wsg_driver: gripper type %d hw %d fw 0x%04X serial %d; limits %s', info.device_type,
                              info.hardware_revision, info.firmware_version, info.serial_number,
                              ', '.join('%s %.1f' % kv for kv in self.limits._asdict().items()))
            return self.limits

    def check_command(self, width, speed):
        """None if the gripper accepts width (mm) and speed (mm/s), else why not."""
        limits = self.read_limits()
        if limits is None:
            return 'the gripper is not connected (its limits are not known yet)'
        if not math.isfinite(width) or not -_LIMIT_SLACK <= width <= limits.stroke + _LIMIT_SLACK:
            return 'width %.3f mm is outside the gripper stroke 0..%.2f mm' % (width, limits.stroke)
        if not math.isfinite(speed) or not (limits.min_speed - _LIMIT_SLACK <= speed
                                            <= limits.max_speed + _LIMIT_SLACK):
            return 'speed %.3f mm/s is outside the gripper range %.2f..%.2f mm/s' % (
                speed, limits.min_speed, limits.max_speed)
        return None

    # ------------------------------------------------------------------ services

    def _motion_timeout(self, name, width, speed):
        current = self.client.value(Command.OPENING_WIDTH)
        if current is None:
            current = self.limits.stroke
        travel = current if name == 'grasp' else abs(width - current)  # a grasp may close to 0
        return self.timeout + 1.5 * travel / speed

    def _motion_service(self, name, call):
        def handle(req):
            speed = self.default_speed if req.speed == 0.0 else req.speed
            what = '%s to %.2f mm at %.1f mm/s' % (name, req.width, speed)
            refusal = self.check_command(req.width, speed)
            if refusal is not None:
                rospy.logwarn('wsg_driver: %s refused: %s', what, refusal)
                status = Status.NOT_OPEN if self.limits is None else Status.RANGE_ERROR
                return GripperCommandResponse(success=False, message='refused: ' + refusal, status=int(status),
                                              width=self._width_now())
            try:
                call(req.width, speed, timeout=self._motion_timeout(name, req.width, speed))
            except WsgError as exc:
                message = explain(what, exc)
                rospy.logwarn('wsg_driver: %s', message)
                return GripperCommandResponse(success=False, message=message, status=int(exc.status),
                                              width=self._width_now())
            return GripperCommandResponse(success=True, message='', status=int(Status.SUCCESS),
                                          width=self._width_after_motion())
        return handle

    def _width_now(self):
        """The current width, NaN when there is no current reading."""
        width = self.client.value(Command.OPENING_WIDTH, self.stale_after) if self.client.connected else None
        return float('nan') if width is None else width

    def _width_after_motion(self):
        """The first width reported after the motion's final reply (NaN if none comes: never a guess)."""
        width = self.client.wait_value(Command.OPENING_WIDTH, time.monotonic(), self.timeout)
        return float('nan') if width is None else width

    def _trigger(self, name, call):
        def handle(_req):
            try:
                call()
            except WsgError as exc:
                message = explain(name, exc)
                rospy.logwarn('wsg_driver: %s', message)
                return TriggerResponse(success=False, message=message)
            return TriggerResponse(success=True, message='%s done' % name)
        return handle

    # ------------------------------------------------------------------ state

    def publish_once(self):
        state = self.client.state(self.stale_after)
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
        stats = ', '.join('%s %d' % kv for kv in self.client.stats().items() if kv[1])
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
    if rate_hz <= 0 or timeout <= 0:
        raise SystemExit('wsg_driver: ~state_rate and ~timeout must be positive, got %r and %r' % (rate_hz, timeout))
    period_ms = max(10, int(round(1000.0 / rate_hz)))
    client = WsgClient(host, port, timeout=timeout, log=ros_log)
    client.subscribe_state(period_ms)
    client.start()
    node = WsgNode(client, p['default_speed'], timeout, p['homing_timeout'],
                   stale_after=max(5.0 * period_ms / 1000.0, 0.5), frame_id=p['frame_id'])
    rospy.loginfo('wsg_driver: gripper at %s:%d, state at %.0f Hz', host, port, rate_hz)

    def step():
        node.read_limits()
        node.publish_once()

    try:
        run_at(rate_hz, step)
    finally:
        client.close()
