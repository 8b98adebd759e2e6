"""The real Sawyer behind the Arm interface, over Rethink's intera SDK.

`intera_interface` is not packaged for Debian or PyPI, so it is imported only when an InteraArm is
built (on the robot's workstation). The calls made, and nothing else:

- `intera_interface.RobotEnable().enable()` once at start-up;
- `intera_interface.Limb(limb)`, then `Limb.set_joint_position_speed(joint_speed)`;
- `Limb.endpoint_pose()` (dict with 'position' (x, y, z) and 'orientation' (x, y, z, w)) of `right_hand`,
  from which the tip is computed (plas_ros.hardware.arm.TipArm);
- `Limb.endpoint_effort()` (dict with 'force' and 'torque', each (x, y, z)) for the wrench;
- `Limb.joint_angles()`, the seed of `Limb.ik_request(geometry_msgs.msg.Pose, end_point='right_hand',
  joint_seed=...)` -> joint dict, or False when there is no solution; then
  `Limb.move_to_joint_positions(joints, timeout=move_timeout)` (blocks, returns None, and stops silently on a
  timeout or a collision) and `Limb.joint_angles()` again: a joint farther than `joint_tolerance` from its
  target makes the move a failure.

The IK service call has no timeout in the SDK: it is bounded here by `ik_timeout`.
"""
import importlib

import numpy as np

from plas_ros.hardware.arm import HAND_FRAME, ROBOT, ArmError, TipArm, bounded_call, finite, unit_quaternion


class InteraArm(TipArm):
    """Sawyer adapter: reads the hand pose and wrench, moves the tip by IK + a joint move, checked."""

    def __init__(self, safety_box, tip_x, limb=ROBOT['limb'], joint_speed=ROBOT['joint_speed'],
                 tip_offset=ROBOT['tip_offset'], reference_orientation=ROBOT['reference_orientation'],
                 pitch_range_deg=ROBOT['pitch_range_deg'], pitch_step_max_deg=ROBOT['pitch_step_max_deg'],
                 move_timeout=ROBOT['move_timeout'], joint_tolerance=ROBOT['joint_tolerance'],
                 ik_timeout=ROBOT['ik_timeout'], start_waypoints=()):
        super().__init__(safety_box, tip_x, tip_offset=tip_offset, reference_orientation=reference_orientation,
                         pitch_range_deg=pitch_range_deg, pitch_step_max_deg=pitch_step_max_deg)
        try:
            intera_interface = importlib.import_module('intera_interface')
            self._pose_type = importlib.import_module('geometry_msgs.msg').Pose
        except ImportError as exc:
            raise ArmError('the real Sawyer needs the intera SDK (intera_interface) and geometry_msgs on the '
                           'Python path; use sim:=true without the robot (%s)' % exc) from exc
        self.move_timeout = finite(move_timeout, 'move_timeout')
        self.joint_tolerance = finite(joint_tolerance, 'joint_tolerance')
        self.ik_timeout = finite(ik_timeout, 'ik_timeout')
        if min(self.move_timeout, self.joint_tolerance, self.ik_timeout) <= 0.0:
            raise ValueError('move_timeout, joint_tolerance and ik_timeout must be positive, got %r, %r, %r'
                             % (move_timeout, joint_tolerance, ik_timeout))
        self._waypoints = [self._waypoint(w) for w in start_waypoints]
        intera_interface.RobotEnable().enable()
        self._limb = intera_interface.Limb(limb)
        self._limb.set_joint_position_speed(float(joint_speed))

    def _waypoint(self, waypoint):
        try:
            values = [finite(v, 'start waypoint value') for v in waypoint]
        except TypeError:
            values = []
        if len(values) != 3:
            raise ValueError('a start waypoint is [y, z, pitch_deg], got %r' % (waypoint,))
        low, high = self.pitch_range
        if not low <= values[2] <= high:
            raise ValueError('start waypoint %r: pitch %r deg is outside pitch_range_deg [%g, %g]'
                             % (waypoint, values[2], low, high))
        return values

    def _hand_pose(self):
        pose = self._limb.endpoint_pose()
        try:
            position, orientation = pose['position'], pose['orientation']
            return ([position.x, position.y, position.z],
                    [orientation.x, orientation.y, orientation.z, orientation.w])
        except (KeyError, TypeError, AttributeError) as exc:
            raise ArmError('Limb.endpoint_pose() returned no usable pose (%r): is the robot connected?'
                           % (pose,)) from exc

    def wrench(self):
        effort = self._limb.endpoint_effort()
        try:
            force, torque = effort['force'], effort['torque']
            values = [force.x, force.y, force.z, torque.x, torque.y, torque.z]
        except (KeyError, TypeError, AttributeError) as exc:
            raise ArmError('Limb.endpoint_effort() returned no usable wrench (%r)' % (effort,)) from exc
        return np.array(values, dtype=np.float64)

    def _joint_angles(self):
        angles = self._limb.joint_angles()
        if not angles:
            raise ArmError('Limb.joint_angles() is empty: no joint states from the robot')
        return dict(angles)

    def _move_hand(self, position, orientation):
        pose = self._pose_type()
        pose.position.x, pose.position.y, pose.position.z = (float(v) for v in position)
        pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = (
            float(v) for v in unit_quaternion(orientation))
        seed = self._joint_angles()
        joints = bounded_call(lambda: self._limb.ik_request(pose, end_point=HAND_FRAME, joint_seed=seed),
                              self.ik_timeout, 'the IK service')
        if not joints:
            raise ArmError('IK found no joint solution for the %s target; the arm did not move' % HAND_FRAME)
        self._limb.move_to_joint_positions(joints, timeout=self.move_timeout)
        self._check_reached(joints, self._joint_angles())
        return False

    def _check_reached(self, target, reached):
        """ArmError naming the joint that fell farthest short of its target, beyond joint_tolerance."""
        missing = sorted(set(target) - set(reached))
        if missing:
            raise ArmError('after the move the robot reported no angle for %s' % ', '.join(missing))
        short = {name: abs(float(reached[name]) - float(angle)) for name, angle in target.items()}
        worst = max(short, key=short.get)
        if short[worst] > self.joint_tolerance:
            others = sum(1 for v in short.values() if v > self.joint_tolerance) - 1
            raise ArmError('the move fell short: joint %s stopped %.4f rad from its target %.4f rad (tolerance '
                           '%.4f rad%s); move_to_joint_positions stops silently on a timeout (%.1f s) or a '
                           'collision' % (worst, short[worst], float(target[worst]), self.joint_tolerance,
                                          ', %d other joint(s) short too' % others if others else '',
                                          self.move_timeout))

    def move_to_start(self):
        if not self._waypoints:
            raise ArmError('no start waypoints configured (arm node parameter ~start_waypoints: [[y, z, pitch], ...])')
        for y, z, pitch in self._waypoints:
            self._move_tip_to([self.tip_x, y, z], self.reference.at(pitch), pitch)
        return self.tip_pose()
