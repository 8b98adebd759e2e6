"""The gripper's fingers as frames and joints, without ROS (doc/frames.md).

The fingers sit symmetrically about the gripper tip: finger N at `FINGER_SIGN[N] * width / 2` along the finger
axis (a unit vector in the tip frame, config/robot.yaml wsg.finger_axis). As joints they follow the convention
of the WSG 50 ROS driver (wsg50-ros-pkg, `wsg_50_driver`): positions `-width / 2` and `+width / 2` in metres,
the two joints' velocities the width's rate halved the same way, the effort of each the gripping force.
"""
import math

import numpy as np

FINGER_SIGN = {1: -1.0, 2: 1.0}


def finger_frame(frame_id, finger):
    """'wsg_finger1': the frame of finger `finger` of the gripper whose frame is `frame_id`."""
    return '%s_finger%d' % (frame_id, finger)


def unit_axis(axis):
    """`axis` (3 numbers) scaled to length 1; ValueError unless it is a finite, non-zero 3-vector."""
    vector = np.asarray(axis, dtype=np.float64)
    norm = float(np.linalg.norm(vector)) if vector.shape == (3,) else 0.0
    if not math.isfinite(norm) or norm == 0.0:
        raise ValueError('finger_axis must be a non-zero 3-vector, got %r' % (list(axis),))
    return vector / norm


def finger_position(width_mm, finger):
    """Finger `finger`'s joint position (m): its signed distance from the tip along the finger axis."""
    return FINGER_SIGN[finger] * width_mm / 2000.0


def finger_offset(width_mm, finger, axis):
    """The translation (m, 3,) of finger `finger`'s frame in the tip frame at opening `width_mm`."""
    return finger_position(width_mm, finger) * unit_axis(axis)


def joint_state(width_mm, speed_mm_s, force_n, fingers=(1, 2)):
    """(positions m, velocities m/s, efforts N) of the finger joints `fingers`, in that order."""
    positions = [finger_position(width_mm, finger) for finger in fingers]
    velocities = [finger_position(speed_mm_s, finger) for finger in fingers]
    return positions, velocities, [float(force_n)] * len(fingers)
