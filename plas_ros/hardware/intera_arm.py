"""The real Sawyer behind the Arm interface, over Rethink's intera SDK.

`intera_interface` is not packaged for Debian or PyPI, so it is imported only when an InteraArm is
built (on the robot's workstation). The calls made, and nothing else:

- `intera_interface.RobotEnable().enable()` once at start-up;
- `intera_interface.Limb(limb)`, then `Limb.set_joint_position_speed(joint_speed)`;
- `Limb.endpoint_pose()` (dict with 'position' (x, y, z) and 'orientation' (x, y, z, w)) for the tip pose;
- `Limb.endpoint_effort()` (dict with 'force' and 'torque', each (x, y, z)) for the wrench;
- `Limb.ik_request(geometry_msgs.msg.Pose, end_point=end_point)` -> joint dict, or False when there is
  no solution; then `Limb.move_to_joint_positions(joints, timeout=move_timeout)` (blocks).

Pitch is the tip's rotation about the x axis relative to `reference_orientation` (the orientation the
gripper has at pitch 0, e.g. pointing down): orientation = R_x(pitch) * reference.
"""
import importlib

import numpy as np

from plas_ros.hardware.arm import ROBOT, Arm, ArmError, MoveResult, pitch_to_quaternion, quaternion_to_pitch

POINTING_DOWN = (0.0, 1.0, 0.0, 0.0)  # x, y, z, w: the flange's z axis pointing at the floor


def _quat_multiply(a, b):
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array([aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw,
                     aw * bw - ax * bx - ay * by - az * bz])


def _quat_conjugate(q):
    x, y, z, w = q
    return np.array([-x, -y, -z, w])


class InteraArm(Arm):
    """Sawyer adapter: reads the tip pose and wrench, moves the tip by IK + a joint move, clipped to the box."""

    def __init__(self, safety_box, tip_x, limb=ROBOT['limb'], joint_speed=ROBOT['joint_speed'],
                 end_point=ROBOT['end_point'], reference_orientation=POINTING_DOWN, move_timeout=ROBOT['move_timeout'],
                 start_waypoints=()):
        try:
            intera_interface = importlib.import_module('intera_interface')
            self._pose_type = importlib.import_module('geometry_msgs.msg').Pose
        except ImportError as exc:
            raise ArmError('the real Sawyer needs the intera SDK (intera_interface) and geometry_msgs on the '
                           'Python path; use sim:=true without the robot (%s)' % exc) from exc
        self.safety_box = safety_box
        self.tip_x = float(tip_x)
        self.end_point = end_point
        self.move_timeout = float(move_timeout)
        self._reference = np.asarray(reference_orientation, dtype=np.float64)
        self._waypoints = [self._waypoint(w) for w in start_waypoints]
        intera_interface.RobotEnable().enable()
        self._limb = intera_interface.Limb(limb)
        self._limb.set_joint_position_speed(float(joint_speed))

    @staticmethod
    def _waypoint(waypoint):
        values = [float(v) for v in waypoint]
        if len(values) != 3:
            raise ValueError('a start waypoint is [y, z, pitch_deg], got %r' % (waypoint,))
        return values

    def tip_pose(self):
        pose = self._limb.endpoint_pose()
        try:
            position, orientation = pose['position'], pose['orientation']
            quaternion = np.array([orientation.x, orientation.y, orientation.z, orientation.w])
            relative = _quat_multiply(quaternion, _quat_conjugate(self._reference))
            return np.array([position.x, position.y, position.z, quaternion_to_pitch(relative)])
        except (KeyError, TypeError, AttributeError) as exc:
            raise ArmError('Limb.endpoint_pose() returned no usable pose (%r): is the robot connected?'
                           % (pose,)) from exc

    def wrench(self):
        effort = self._limb.endpoint_effort()
        try:
            force, torque = effort['force'], effort['torque']
            return np.array([force.x, force.y, force.z, torque.x, torque.y, torque.z], dtype=np.float64)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ArmError('Limb.endpoint_effort() returned no usable wrench (%r)' % (effort,)) from exc

    def move_tip(self, dy, dz, dpitch=0.0):
        current = self.tip_pose()
        target = np.array([self.tip_x, current[1] + float(dy), current[2] + float(dz)])
        return self._move_to(target, current[3] + float(dpitch))

    def move_to_start(self):
        if not self._waypoints:
            raise ArmError('no start waypoints configured (arm node parameter ~start_waypoints: [[y, z, pitch], ...])')
        for y, z, pitch in self._waypoints:
            self._move_to(np.array([self.tip_x, y, z]), pitch)
        return self.tip_pose()

    def _move_to(self, position, pitch_deg):
        """Clip to the box (x held at tip_x), solve IK, execute the joint move -> MoveResult."""
        position[0] = self.tip_x
        clipped_position, clipped = self.safety_box.clip(position)
        pose = self._pose_type()
        pose.position.x, pose.position.y, pose.position.z = (float(v) for v in clipped_position)
        orientation = _quat_multiply(pitch_to_quaternion(pitch_deg), self._reference)
        pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w = (
            float(v) for v in orientation)
        joints = self._limb.ik_request(pose, end_point=self.end_point)
        if not joints:
            raise ArmError('IK found no joint solution for the tip target x=%.3f y=%.3f z=%.3f m, pitch %.1f deg '
                           '(end point %r%s); the arm did not move'
                           % (tuple(clipped_position) + (pitch_deg, self.end_point,
                                                         ', clipped to the safety box' if clipped else '')))
        self._limb.move_to_joint_positions(joints, timeout=self.move_timeout)
        return MoveResult(self.tip_pose(), clipped)
