"""The arm interface shared by the real Sawyer adapter and the simulated arm, plus the small pieces
both need: the safety box, the wrench median filter and the pitch <-> quaternion convention.

A tip pose is np.array([x, y, z, pitch_deg]) in metres and degrees. The tip moves in the vertical
y-z plane at a fixed x; pitch is a rotation about the x axis.
"""
import collections
import math
from dataclasses import dataclass

import numpy as np

from plas_ros.config import section

ROBOT = section('robot.yaml', 'arm')  # the driver's settings: their defaults here too


class ArmError(RuntimeError):
    """The arm could not do what was asked (no IK solution, robot not enabled, link down...)."""


@dataclass
class MoveResult:
    pose: np.ndarray  # [x, y, z, pitch_deg] after the move
    clipped: bool     # the target was clipped to the safety box


class Arm:
    """What the arm node and the environment need from an arm, real or simulated."""

    def tip_pose(self):
        """np.array([x, y, z, pitch_deg]) of the gripper tip."""
        raise NotImplementedError

    def wrench(self):
        """One end-effector wrench reading: np.array([fx, fy, fz, tx, ty, tz]) in N and Nm."""
        raise NotImplementedError

    def move_tip(self, dy, dz, dpitch=0.0):
        """Move the tip by a relative step in the sliding plane; returns MoveResult."""
        raise NotImplementedError

    def move_to_start(self):
        """Go through the scripted waypoints to the fixture; returns the tip pose."""
        raise NotImplementedError

    def close(self):
        """Release whatever the arm holds (sockets...)."""


def _finite_vector(value, size, what):
    vec = np.asarray(value, dtype=np.float64).reshape(-1)
    if vec.size != size or not np.all(np.isfinite(vec)):
        raise ValueError('%s must be %d finite numbers, got %r' % (what, size, value))
    return vec


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
    """Per-component median of the last `window` wrench readings (the authors used 10)."""

    def __init__(self, window=ROBOT['wrench_median_window']):
        if int(window) < 1:
            raise ValueError('median window must be at least 1, got %r' % (window,))
        self._readings = collections.deque(maxlen=int(window))

    def add(self, wrench):
        """Add one reading (6 finite numbers); returns the current median."""
        self._readings.append(_finite_vector(wrench, 6, 'wrench reading'))
        return self.value()

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
