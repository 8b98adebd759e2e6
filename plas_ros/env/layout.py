"""The one place that knows the layout and scaling of the cloth-sliding observation and action.

Observation (89 float32), as in the authors' real environment (doc/env.md, with sources):

    [0:3]   |end-effector force x, y, z| / 10 N   (median of the last 10 wrench readings)
    [3:87]  DSA tactile matrix 14 x 6, row-major, raw value / 3895 (the finger of config/robot.yaml)
    [87]    gripper-tip z position, metres (unscaled)
    [88]    gripper pitch, degrees / 30

Action (2 float32 in [-1, 1]): a0 -> horizontal step dy = (a0 + 1) / 2 * 0.1 m (never backwards),
a1 -> vertical step dz = a1 * 0.1 m.
"""
import numpy as np

from plas_ros.data.schema import DatasetFormat
from plas_ros.hardware.finger import FINGER

TACTILE_ROWS = FINGER.rows
TACTILE_COLS = FINGER.cols
TACTILE_CELLS = TACTILE_ROWS * TACTILE_COLS
TACTILE_FULL_SCALE = float(FINGER.full_scale)  # raw value of a saturated DSA cell
TAXEL_M = FINGER.taxel_mm / 1000.0             # cell pitch
FORCE_SCALE_N = 10.0
PITCH_SCALE_DEG = 30.0

FORCE = slice(0, 3)
TACTILE = slice(3, 3 + TACTILE_CELLS)
TIP_Z = 3 + TACTILE_CELLS
PITCH = TIP_Z + 1
OBS_DIM = PITCH + 1

ACT_DIM = 2
ACTION_LOW = -1.0
ACTION_HIGH = 1.0
MAX_STEP_M = 0.1

# Names written into HDF5 attributes so a file documents its own observation layout.
OBS_LAYOUT = (('force_abs_over_%gN' % FORCE_SCALE_N, FORCE.start, FORCE.stop),
              ('tactile_raw_over_%d' % FINGER.full_scale, TACTILE.start, TACTILE.stop), ('tip_z_m', TIP_Z, TIP_Z + 1),
              ('pitch_deg_over_%g' % PITCH_SCALE_DEG, PITCH, PITCH + 1))


def make_observation(force_n, tactile_raw, tip_z_m, pitch_deg):
    """Scale raw sensor readings into the 89-d observation (float32)."""
    force = np.asarray(force_n, dtype=np.float64).reshape(3)
    tactile = np.asarray(tactile_raw, dtype=np.float64).reshape(TACTILE_CELLS)
    obs = np.empty(OBS_DIM, dtype=np.float32)
    obs[FORCE] = np.abs(force) / FORCE_SCALE_N
    obs[TACTILE] = tactile / TACTILE_FULL_SCALE
    obs[TIP_Z] = tip_z_m
    obs[PITCH] = pitch_deg / PITCH_SCALE_DEG
    return obs


def split_observation(obs):
    """Inverse of make_observation for one observation: (|force| N, tactile raw (14, 6), z m, pitch deg)."""
    obs = np.asarray(obs, dtype=np.float64)
    return (obs[FORCE] * FORCE_SCALE_N,
            (obs[TACTILE] * TACTILE_FULL_SCALE).reshape(TACTILE_ROWS, TACTILE_COLS),
            float(obs[TIP_Z]), float(obs[PITCH] * PITCH_SCALE_DEG))


def action_to_step(action):
    """Map a 2-d action in [-1, 1] to the tip step (dy, dz) in metres; the action is clipped first."""
    a = np.clip(np.asarray(action, dtype=np.float64).reshape(ACT_DIM), ACTION_LOW, ACTION_HIGH)
    return (a[0] + 1.0) / 2.0 * MAX_STEP_M, a[1] * MAX_STEP_M


# What a replay writer must know of this task's data (the data layer does not import the task layer).
DATASET_FORMAT = DatasetFormat(OBS_DIM, ACT_DIM, ACTION_LOW, ACTION_HIGH, OBS_LAYOUT)
