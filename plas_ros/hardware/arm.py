"""The arm interface shared by the real Sawyer adapter and the simulated arm, plus the small pieces
both need: the safety box, the wrench median filter, the gripper tip as a frame on the hand, the pitch
and the tip arm that both drivers are.

A tip pose is np.array([x, y, z, pitch_deg]) in metres and degrees. The tip moves in the vertical
y-z plane at a fixed x; the pitch is the authors' (see PitchReference), zero at the reference orientation.
Quaternions are (x, y, z, w), as geometry_msgs and the intera SDK order them.
"""
import collections
import math
import threading
from dataclasses import dataclass

import numpy as np

from plas_ros.config import section

ROBOT = section('robot.yaml', 'arm')  # the driver's settings: their defaults here too
HAND_FRAME = 'right_hand'  # the frame Limb.endpoint_pose() reports and the IK end point


class ArmError(RuntimeError):
    """The arm could not do what was asked (no IK solution, robot not enabled, link down...)."""


@dataclass
class MoveResult:
    pose: np.ndarray  # [x, y, z, pitch_deg] after the move
    clipped: bool     # the target was clipped to the safety box or the pitch range


@dataclass
class TipReading:
    """One reading of the tip: the frame (position, orientation in the base frame) and its pitch."""
    position: np.ndarray     # (3,) m
    orientation: np.ndarray  # (4,) quaternion x, y, z, w of the tip frame
    pitch: float             # deg, relative to the reference orientation

    @property
    def pose(self):
        """np.array([x, y, z, pitch_deg])."""
        return np.append(self.position, self.pitch)


class Arm:
    """What the arm node and the environment need from an arm, real or simulated."""

    def tip_pose(self):
        """np.array([x, y, z, pitch_deg]) of the gripper tip."""
        raise NotImplementedError

    def wrench(self):
        """One end-effector wrench reading: np.array([fx, fy, fz, tx, ty, tz]) in N and Nm."""
        raise NotImplementedError

    def wrench_readings(self):
        """The wrench readings taken since the previous call, oldest first (a sensor sampled faster than the
        driver polls gives several; the Sawyer's endpoint state gives its latest one)."""
        return [self.wrench()]

    def move_tip(self, dy, dz, dpitch=0.0):
        """Move the tip by a relative step in the sliding plane; returns MoveResult."""
        raise NotImplementedError

    def move_to_start(self):
        """Go through the scripted waypoints to the fixture; returns the tip pose."""
        raise NotImplementedError

    def close(self):
        """Release whatever the arm holds (sockets...)."""


def _finite_vector(value, size, what):
    try:
        vec = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ValueError('%s must be %d finite numbers, got %r' % (what, size, value)) from None
    if vec.size != size or not np.all(np.isfinite(vec)):
        raise ValueError('%s must be %d finite numbers, got %r' % (what, size, value))
    return vec


def finite(value, what):
    """float(value), or ValueError naming `what` and the value when it is not a finite number."""
    if isinstance(value, bool):
        raise ValueError('%s must be a finite number, got %r' % (what, value))
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError('%s must be a finite number, got %r' % (what, value)) from None
    if not math.isfinite(number):
        raise ValueError('%s must be a finite number, got %r' % (what, value))
    return number


class SafetyBox:
    """An axis-aligned box (metres) that every tip target is clipped to."""

    def __init__(self, low, high):
        self.low = _finite_vector(low, 3, 'safety box low')
        self.high = _finite_vector(high, 3, 'safety box high')
        if np.any(self.low >= self.high):
            raise ValueError('safety box low %s must be below high %s on every axis'
                             % (self.low.tolist(), self.high.tolist()))

    def clip(self, position):
        """(clipped position, True if any coordinate had to be changed)."""
        position = _finite_vector(position, 3, 'tip target')
        clipped = np.clip(position, self.low, self.high)
        return clipped, bool(np.any(clipped != position))

    def contains(self, position):
        position = _finite_vector(position, 3, 'position')
        return bool(np.all(position >= self.low) and np.all(position <= self.high))


class WrenchMedianFilter:
    """Per-component median of the last `window` wrench readings (the authors used 10), with the time each
    reading was taken: `oldest` is when the oldest reading in the median was taken (what a median may be
    stamped with, so that a stamp after a move means every reading in it came after the move)."""

    def __init__(self, window=ROBOT['wrench_median_window']):
        if int(window) < 1:
            raise ValueError('median window must be at least 1, got %r' % (window,))
        self._readings = collections.deque(maxlen=int(window))
        self._taken = collections.deque(maxlen=int(window))

    def add(self, wrench, taken=None):
        """Add one reading (6 finite numbers) taken at `taken` (any time value); returns the current median."""
        self._readings.append(_finite_vector(wrench, 6, 'wrench reading'))
        self._taken.append(taken)
        return self.value()

    @property
    def oldest(self):
        """When the oldest reading in the window was taken (None before the first)."""
        return self._taken[0] if self._taken else None

    def value(self):
        """The median of the readings so far, or None before the first one."""
        if not self._readings:
            return None
        return np.median(np.stack(self._readings), axis=0)

    def __len__(self):
        return len(self._readings)

    @property
    def full(self):
        """True once the window holds `window` readings."""
        return len(self._readings) == self._readings.maxlen

    def clear(self):
        self._readings.clear()
        self._taken.clear()


# ------------------------------------------------------------------------------------------ rotations

def unit_quaternion(quaternion, what='quaternion'):
    """The quaternion (x, y, z, w) normalised; ValueError naming `what` when it is not finite or zero."""
    q = _finite_vector(quaternion, 4, what)
    norm = float(np.linalg.norm(q))
    if norm < 1e-9:
        raise ValueError('%s %r has zero length' % (what, tuple(q.tolist())))
    return q / norm


def quaternion_multiply(a, b):
    """The Hamilton product a * b of quaternions (x, y, z, w): rotate by b, then by a."""
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array([aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw,
                     aw * bw - ax * bx - ay * by - az * bz])


def rotation_matrix(quaternion):
    """The 3 x 3 rotation matrix of a quaternion (x, y, z, w)."""
    x, y, z, w = unit_quaternion(quaternion)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def euler_xyz(quaternion):
    """(roll, pitch, yaw) in degrees: the angles of scipy's `Rotation.from_quat(q).as_euler('xyz')` (and of
    tf's `euler_from_quaternion`, axes 'sxyz'): extrinsic rotations about the base x, then y, then z axes,
    R = Rz(yaw) Ry(pitch) Rx(roll), pitch in [-90, 90]."""
    m = rotation_matrix(quaternion)
    sin_pitch = min(max(-m[2, 0], -1.0), 1.0)
    pitch = math.asin(sin_pitch)
    if abs(sin_pitch) < 1.0 - 1e-12:
        roll = math.atan2(m[2, 1], m[2, 2])
        yaw = math.atan2(m[1, 0], m[0, 0])
    else:  # gimbal lock: only roll - yaw (or roll + yaw) is defined; put it all in the roll
        roll = math.atan2(-m[1, 2], m[1, 1])
        yaw = 0.0
    return math.degrees(roll), math.degrees(pitch), math.degrees(yaw)


def quaternion_from_euler_xyz(roll, pitch, yaw):
    """The quaternion (x, y, z, w) of R = Rz(yaw) Ry(pitch) Rx(roll), angles in degrees (euler_xyz's inverse)."""
    def about(axis, angle):
        half = math.radians(angle) / 2.0
        q = [0.0, 0.0, 0.0, math.cos(half)]
        q[axis] = math.sin(half)
        return np.array(q)
    return quaternion_multiply(about(2, yaw), quaternion_multiply(about(1, pitch), about(0, roll)))


def _same_sign(q, like):
    return -q if float(np.dot(q, like)) < 0.0 else q


def rotation_angle_deg(a, b):
    """The angle (deg) of the rotation that takes orientation a to orientation b."""
    dot = abs(float(np.dot(unit_quaternion(a), unit_quaternion(b))))
    return math.degrees(2.0 * math.acos(min(dot, 1.0)))


# The encoding of the pitch in /arm/tip_pose's orientation (a rotation about x), read by the env node.

def pitch_to_quaternion(pitch_deg):
    """Quaternion (x, y, z, w) of a rotation by `pitch_deg` about the x axis."""
    half = math.radians(float(pitch_deg)) / 2.0
    return np.array([math.sin(half), 0.0, 0.0, math.cos(half)])


def quaternion_to_pitch(quaternion):
    """Rotation about the x axis, in degrees, of a quaternion (x, y, z, w).

    Only the x-axis component of the rotation is kept (the tip never yaws or rolls in this task):
    the angle of the rotated y axis in the y-z plane.
    """
    x, y, z, w = _finite_vector(quaternion, 4, 'quaternion')
    norm = math.sqrt(x * x + y * y + z * z + w * w)
    if norm < 1e-9:
        raise ValueError('quaternion %r has zero length' % ((x, y, z, w),))
    x, y, z, w = x / norm, y / norm, z / norm, w / norm
    # Rotated y axis = R @ [0, 1, 0]; its y and z components.
    ry = 1.0 - 2.0 * (x * x + z * z)
    rz = 2.0 * (y * z + w * x)
    return math.degrees(math.atan2(rz, ry))


# ------------------------------------------------------------------------------------------ the tip

class TipFrame:
    """The gripper tip: the hand frame (`right_hand`) moved by `offset`, expressed in the hand frame, with the
    hand's orientation (the authors: 0.13 m along the hand's z axis)."""

    def __init__(self, offset=ROBOT['tip_offset']):
        self.offset = _finite_vector(offset, 3, 'tip offset')

    def tip_from_hand(self, hand_position, orientation):
        """The tip's position (base frame) of a hand at `hand_position` with `orientation`."""
        return _finite_vector(hand_position, 3, 'hand position') + rotation_matrix(orientation) @ self.offset

    def hand_from_tip(self, tip_position, orientation):
        """The hand position (base frame) that puts the tip at `tip_position` with `orientation`."""
        return _finite_vector(tip_position, 3, 'tip position') - rotation_matrix(orientation) @ self.offset


class PitchReference:
    """The pitch, as the authors measure it, zero at a reference orientation.

    The authors' pitch is the second angle of `Rotation.from_quat(q).as_euler('xyz', degrees=True)` (their
    observation) and a pitch action adds to that angle, keeping the other two (their `angle_conv` service).
    Here: pitch(q) = that angle of q minus that angle of the reference, so the reference reads 0 and a move
    by dpitch changes the pitch by exactly dpitch. (The second angle of q * reference^-1 would not do: the
    authors' pitch turns the hand about the base x axis, which that relative rotation reads as roll.)
    """

    def __init__(self, orientation=ROBOT['reference_orientation']):
        self.orientation = unit_quaternion(orientation, 'reference orientation')
        self.roll, self.pitch0, self.yaw = euler_xyz(self.orientation)

    def pitch(self, orientation):
        """The pitch (deg) of an orientation."""
        return euler_xyz(orientation)[1] - self.pitch0

    def pitched(self, orientation, dpitch):
        """`orientation` with its pitch changed by `dpitch` degrees, its roll and yaw kept (the quaternion of
        the same sign as `orientation`'s: q and -q are one orientation, and commands stay continuous)."""
        roll, pitch, yaw = euler_xyz(orientation)
        return _same_sign(quaternion_from_euler_xyz(roll, pitch + float(dpitch), yaw), orientation)

    def at(self, pitch):
        """The reference orientation pitched to `pitch` degrees."""
        return _same_sign(quaternion_from_euler_xyz(self.roll, self.pitch0 + float(pitch), self.yaw),
                          self.orientation)

    def check_range(self, low, high):
        """ValueError unless pitches in [low, high] stay clear of the Euler angles' singularity (+-90 deg)."""
        if not low < high:
            raise ValueError('pitch range [%r, %r] deg: low must be below high' % (low, high))
        if self.pitch0 + low <= -89.0 or self.pitch0 + high >= 89.0:
            raise ValueError('pitch range [%r, %r] deg around a reference pitched %.1f deg reaches the '
                             'singularity of the Euler angles at +-90 deg' % (low, high, self.pitch0))


def bounded_call(function, timeout, what):
    """function() run in a worker thread; ArmError naming `what` when it has not returned within `timeout` s
    (the thread is abandoned: a late answer is discarded)."""
    outcome = {}

    def run():
        try:
            outcome['value'] = function()
        except BaseException as exc:  # handed to the caller
            outcome['error'] = exc
    worker = threading.Thread(target=run, name=what, daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise ArmError('%s gave no answer within %.1f s' % (what, timeout))
    if 'error' in outcome:
        raise outcome['error']
    return outcome['value']


class TipArm(Arm):
    """An arm driven at its gripper tip over a hand (`right_hand`) that reads and moves.

    Subclasses give `_hand_pose()` -> (position (3,), quaternion (4,)) of the hand, `_move_hand(position,
    quaternion)` -> True when the arm itself clipped the target (ArmError when it did not get there), and
    `wrench()`. Here: the tip pose is read at the tip; a move keeps x at `tip_x` and the current orientation
    except for the commanded pitch change; the tip target is clipped to the safety box and the pitch to
    `pitch_range_deg`; a non-finite step, or a pitch step above `pitch_step_max_deg`, is refused before
    anything moves; the tip target is converted to the hand target the arm solves for.
    """

    def __init__(self, safety_box, tip_x, tip_offset=ROBOT['tip_offset'],
                 reference_orientation=ROBOT['reference_orientation'], pitch_range_deg=ROBOT['pitch_range_deg'],
                 pitch_step_max_deg=ROBOT['pitch_step_max_deg']):
        self.safety_box = safety_box
        self.tip_x = finite(tip_x, 'tip_x')
        self.tip_frame = TipFrame(tip_offset)
        self.reference = PitchReference(reference_orientation)
        low, high = (finite(v, 'pitch_range_deg') for v in _finite_vector(pitch_range_deg, 2, 'pitch_range_deg'))
        self.reference.check_range(low, high)
        self.pitch_range = (low, high)
        self.pitch_step_max = finite(pitch_step_max_deg, 'pitch_step_max_deg')
        if self.pitch_step_max <= 0.0:
            raise ValueError('pitch_step_max_deg must be positive, got %r' % (pitch_step_max_deg,))

    # -- what a subclass gives
    def _hand_pose(self):
        raise NotImplementedError

    def _move_hand(self, position, orientation):
        raise NotImplementedError

    def _box(self):
        return self.safety_box

    # -- the tip
    def tip_reading(self):
        """The tip frame and its pitch, from one reading of the hand."""
        position, orientation = self._hand_pose()
        try:
            orientation = unit_quaternion(orientation, 'hand orientation')
            tip = self.tip_frame.tip_from_hand(position, orientation)
        except ValueError as exc:
            raise ArmError('the arm reported no usable hand pose: %s' % exc) from None
        return TipReading(tip, orientation, self.reference.pitch(orientation))

    def tip_pose(self):
        return self.tip_reading().pose

    def move_tip(self, dy, dz, dpitch=0.0):
        dy, dz, dpitch = finite(dy, 'dy'), finite(dz, 'dz'), finite(dpitch, 'dpitch')
        if abs(dpitch) > self.pitch_step_max:
            raise ValueError('dpitch %r deg is beyond the pitch step bound of %g deg' % (dpitch, self.pitch_step_max))
        current = self.tip_reading()
        target = current.position + np.array([0.0, dy, dz])
        pitch = current.pitch + dpitch
        bounded = min(max(pitch, self.pitch_range[0]), self.pitch_range[1])
        orientation = self.reference.pitched(current.orientation, bounded - current.pitch)
        return self._move_tip_to(target, orientation, bounded, clipped=bounded != pitch)

    def _move_tip_to(self, position, orientation, pitch, clipped=False):
        """Move the tip to `position` (x replaced by tip_x, clipped to the box) with `orientation`."""
        position = np.array(position, dtype=np.float64)
        position[0] = self.tip_x
        position, box_clipped = self._box().clip(position)
        hand = self.tip_frame.hand_from_tip(position, orientation)
        try:
            arm_clipped = self._move_hand(hand, orientation)
        except ArmError as exc:
            raise ArmError('tip target x=%.3f y=%.3f z=%.3f m, pitch %.2f deg%s (hand x=%.3f y=%.3f z=%.3f m): %s'
                           % (tuple(position) + (pitch, ', clipped' if clipped or box_clipped else '')
                              + tuple(hand) + (exc,))) from exc
        return MoveResult(self.tip_pose(), bool(clipped or box_clipped or arm_clipped))
