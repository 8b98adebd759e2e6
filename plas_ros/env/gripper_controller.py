"""The gripper-width controller of the cloth-sliding task and the grasp calibration at reset.

Both follow the authors' hard-coded procedure (paper appendix F; sources: doc/env.md); every threshold
comes from `config/env.yaml` (see plas_ros.env.config). Pure functions of the readings: no ROS, no device.

Controller, run after every step (widths in mm, tactile in raw DSA units, forces in N):
- in contact: fewer than `contact_idle_fraction` of the taxels read below `contact_taxel_threshold`;
- in contact and any |force| above `force_max_n`: widen by one step (at most `width_max_mm`);
- in contact, coverage (taxels above `coverage_taxel_threshold`) below `coverage_min_fraction` and the mean of
  the covered taxels below `coverage_mean_max`: narrow by one step (at least `width_min_mm`);
- not in contact and every |force| below `force_min_n`: the edge is lost if the width is already at its
  minimum, else narrow.
"""
from dataclasses import dataclass
from typing import NamedTuple, Tuple

import numpy as np

from plas_ros.env import layout

WIDENED = 1
UNCHANGED = 0
NARROWED = -1
_WIDTH_TOLERANCE_MM = 1e-6  # widths come back from a float32 message: "at the minimum" must tolerate that


@dataclass(frozen=True)
class GripperConfig:
    contact_taxel_threshold: float
    contact_idle_fraction: float
    force_max_n: Tuple[float, float, float]
    force_min_n: Tuple[float, float, float]
    coverage_taxel_threshold: float
    coverage_min_fraction: float
    coverage_mean_max: float
    width_step_mm: float
    width_min_mm: float
    width_max_mm: float
    speed_mm_s: float


@dataclass(frozen=True)
class CalibrationConfig:
    start_width_mm: float
    step_mm: float
    min_width_mm: float
    coverage_taxel_threshold: float
    coverage_min_fraction: float
    high_taxel_threshold: float
    high_max_fraction: float
    mean_low: float
    mean_high: float
    regrasp_heights_m: Tuple[float, ...]


class GripperDecision(NamedTuple):
    width_mm: float     # the width to command next
    adjustment: int     # -1 narrowed, 0 unchanged, +1 widened
    edge_lost: bool     # the episode fails: no contact, no force, fingers already at their minimum


def _taxels(tactile_raw):
    cells = np.asarray(tactile_raw, dtype=np.float64).reshape(-1)
    if cells.size != layout.TACTILE_CELLS:
        raise ValueError('tactile reading has %d cells, expected %d' % (cells.size, layout.TACTILE_CELLS))
    return cells


def _forces(force_n):
    force = np.abs(np.asarray(force_n, dtype=np.float64).reshape(-1))
    if force.size != 3:
        raise ValueError('force reading has %d components, expected 3' % force.size)
    return force


def covered_stats(tactile_raw, threshold):
    """(fraction of taxels above `threshold`, mean of those taxels (0 when none))."""
    cells = _taxels(tactile_raw)
    covered = cells[cells > threshold]
    mean = float(covered.mean()) if covered.size else 0.0
    return covered.size / float(cells.size), mean


def in_contact(tactile_raw, config):
    cells = _taxels(tactile_raw)
    idle_fraction = np.count_nonzero(cells < config.contact_taxel_threshold) / float(cells.size)
    return idle_fraction < config.contact_idle_fraction


def decide_width(width_mm, tactile_raw, force_n, config):
    """One controller decision from the readings after a step -> GripperDecision."""
    force = _forces(force_n)
    contact = in_contact(tactile_raw, config)
    if contact and np.any(force > np.asarray(config.force_max_n)):
        return _change(width_mm, +config.width_step_mm, config)
    if contact:
        coverage, mean = covered_stats(tactile_raw, config.coverage_taxel_threshold)
        if coverage < config.coverage_min_fraction and mean < config.coverage_mean_max:
            return _change(width_mm, -config.width_step_mm, config)
        return GripperDecision(float(width_mm), UNCHANGED, False)
    if np.all(force < np.asarray(config.force_min_n)):
        if width_mm <= config.width_min_mm + _WIDTH_TOLERANCE_MM:
            return GripperDecision(float(width_mm), UNCHANGED, True)
        return _change(width_mm, -config.width_step_mm, config)
    return GripperDecision(float(width_mm), UNCHANGED, False)


def _change(width_mm, delta_mm, config):
    """Widen up to the maximum or narrow down to the minimum; the adjustment reports what actually changed.

    Only the bound in the direction of motion applies: after a calibration at 4.0 mm (above the 3.5 mm
    maximum) narrowing gives 3.65 mm, not a jump to the maximum.
    """
    if delta_mm > 0:
        new_width = max(float(width_mm), min(width_mm + delta_mm, config.width_max_mm))
    else:
        new_width = min(float(width_mm), max(width_mm + delta_mm, config.width_min_mm))
    if abs(new_width - width_mm) <= _WIDTH_TOLERANCE_MM:
        return GripperDecision(float(width_mm), UNCHANGED, False)
    return GripperDecision(new_width, WIDENED if new_width > width_mm else NARROWED, False)


class GripperWidthController:
    """Holds the current width between steps; `update` returns the GripperDecision and remembers its width."""

    def __init__(self, config, width_mm):
        self.config = config
        self.width_mm = float(width_mm)

    def update(self, tactile_raw, force_n):
        decision = decide_width(self.width_mm, tactile_raw, force_n, self.config)
        self.width_mm = decision.width_mm
        return decision


# ---------------------------------------------------------------------------------------------- calibration

class GraspCalibrationError(RuntimeError):
    """No width at any of the tried heights gave a clear tactile reading: the operator must reset the cloth."""


class CalibrationResult(NamedTuple):
    width_mm: float
    height_offset_m: float   # where the grasp succeeded, relative to the height calibration started at
    widths_tried: int


def grasp_is_good(tactile_raw, config):
    """The calibration criteria: enough coverage, not too many hard taxels, mean of covered taxels in range."""
    cells = _taxels(tactile_raw)
    covered = cells[cells > config.coverage_taxel_threshold]
    if covered.size <= config.coverage_min_fraction * cells.size:
        return False
    high_fraction = np.count_nonzero(covered > config.high_taxel_threshold) / float(covered.size)
    mean = float(covered.mean())
    return high_fraction < config.high_max_fraction and config.mean_low < mean < config.mean_high


def calibration_widths(config):
    """start, start - step, ... down to the minimum width (inclusive), computed without drift."""
    count = int(np.floor((config.start_width_mm - config.min_width_mm) / config.step_mm + 1e-9)) + 1
    return [round(config.start_width_mm - i * config.step_mm, 6) for i in range(count)]


def calibrate_grasp(rig, config, log=None):
    """Close the fingers step by step until `grasp_is_good`; re-grasp at the configured heights; else raise.

    `rig` talks to the devices: `set_width(width_mm)` (blocks until the fingers are there),
    `tactile_raw()` (a fresh (14, 6) reading taken after the last width change) and `move_tip(dz_m)` (a
    relative vertical move). Returns CalibrationResult; raises GraspCalibrationError naming every height tried.
    """
    log = log or (lambda message: None)
    heights = [0.0] + [float(h) for h in config.regrasp_heights_m]
    current_height = 0.0
    tried = 0
    for height in heights:
        if height != current_height:
            rig.set_width(config.start_width_mm)  # open before moving so the fingers do not drag the cloth
            rig.move_tip(height - current_height)
            current_height = height
            log('grasp calibration: re-grasping at %+.3f m' % height)
        for width in calibration_widths(config):
            rig.set_width(width)
            tried += 1
            if grasp_is_good(rig.tactile_raw(), config):
                return CalibrationResult(width, height, tried)
    rig.set_width(config.start_width_mm)
    raise GraspCalibrationError(
        'grasp calibration failed: no width from %.1f to %.1f mm gave a clear tactile reading at heights %s m '
        '(relative to the start); reset the cloth on the fixture by hand and call /cloth/reset again'
        % (config.start_width_mm, config.min_width_mm, ', '.join('%+.3f' % h for h in heights)))
