"""The gripper-width controller rule by rule, and the grasp calibration against a scripted finger."""
import numpy as np
import pytest

from plas_ros.env.config import load_env_config
from plas_ros.env.gripper_controller import (
    NARROWED,
    UNCHANGED,
    WIDENED,
    GraspCalibrationError,
    GripperWidthController,
    calibrate_grasp,
    calibration_widths,
    decide_width,
    grasp_is_good,
    in_contact,
)

CONFIG = load_env_config()
G = CONFIG.gripper
C = CONFIG.calibration
NO_FORCE = [0.0, 0.0, 0.0]


def tactile(covered, value, rest=0):
    """84 cells: `covered` of them at `value`, the rest at `rest`."""
    cells = np.full(84, rest, dtype=np.uint16)
    cells[:covered] = value
    return cells.reshape(14, 6)


# Contact: fewer than 90% of the taxels below 40, i.e. at least 9 of 84 at 40 or more.
def test_contact_needs_ten_percent_of_taxels_at_or_above_40():
    assert not in_contact(tactile(8, 500), G)    # 76/84 = 90.5% idle
    assert in_contact(tactile(9, 500), G)        # 75/84 = 89.3% idle
    assert in_contact(tactile(9, 40), G)         # exactly 40 is not "below 40"
    assert not in_contact(tactile(9, 39), G)


@pytest.mark.parametrize('axis', [0, 1, 2])
def test_in_contact_with_force_above_fmax_on_any_axis_widens(axis):
    force = [0.0, 0.0, 0.0]
    force[axis] = -(G.force_max_n[axis] + 0.1)  # the sign does not matter: |force| is compared
    decision = decide_width(2.0, tactile(40, 2000), force, G)
    assert decision == (pytest.approx(2.0 + G.width_step_mm), WIDENED, False)


def test_force_exactly_at_fmax_does_not_widen():
    decision = decide_width(2.0, tactile(40, 2000), list(G.force_max_n), G)
    assert decision.adjustment == UNCHANGED


def test_widening_stops_at_the_maximum():
    assert decide_width(3.3, tactile(40, 2000), [7.0, 0, 0], G) == (G.width_max_mm, WIDENED, False)
    assert decide_width(G.width_max_mm, tactile(40, 2000), [7.0, 0, 0], G) == (G.width_max_mm, UNCHANGED, False)


def test_low_coverage_and_low_mean_narrows():
    decision = decide_width(2.0, tactile(20, 1000), NO_FORCE, G)  # 23.8% coverage, mean 1000
    assert decision == (pytest.approx(2.0 - G.width_step_mm), NARROWED, False)


def test_low_coverage_but_high_mean_holds():
    assert decide_width(2.0, tactile(20, 1300), NO_FORCE, G).adjustment == UNCHANGED


def test_high_coverage_and_low_mean_holds():
    assert decide_width(2.0, tactile(30, 1000), NO_FORCE, G).adjustment == UNCHANGED  # 35.7% coverage


def test_coverage_counts_taxels_strictly_above_40():
    # 9 taxels at exactly 40: in contact, coverage 0 (mean 0) -> narrow
    assert decide_width(2.0, tactile(9, 40), NO_FORCE, G).adjustment == NARROWED


def test_narrowing_stops_at_the_minimum():
    assert decide_width(0.7, tactile(20, 1000), NO_FORCE, G) == (G.width_min_mm, NARROWED, False)
    assert decide_width(G.width_min_mm, tactile(20, 1000), NO_FORCE, G) == (G.width_min_mm, UNCHANGED, False)


def test_force_rule_takes_precedence_over_coverage_rule():
    assert decide_width(2.0, tactile(20, 1000), [0, 11.0, 0], G).adjustment == WIDENED


def test_no_contact_and_no_force_narrows():
    assert decide_width(2.0, tactile(0, 0), NO_FORCE, G) == (pytest.approx(2.0 - G.width_step_mm), NARROWED, False)


def test_no_contact_and_no_force_at_minimum_loses_the_edge():
    assert decide_width(G.width_min_mm, tactile(0, 0), NO_FORCE, G) == (G.width_min_mm, UNCHANGED, True)
    # a float32 round trip of 0.5 is still "at the minimum"
    assert decide_width(float(np.float32(0.5)), tactile(0, 0), NO_FORCE, G).edge_lost


def test_no_contact_but_some_force_holds():
    for axis in range(3):
        force = [0.0, 0.0, 0.0]
        force[axis] = G.force_min_n[axis]  # not below f_min on this axis
        assert decide_width(G.width_min_mm, tactile(0, 0), force, G) == (G.width_min_mm, UNCHANGED, False)


def test_no_contact_with_large_force_does_not_widen():
    assert decide_width(2.0, tactile(0, 0), [20.0, 20.0, 20.0], G).adjustment == UNCHANGED


def test_bad_reading_sizes_are_errors():
    with pytest.raises(ValueError, match='83 cells'):
        decide_width(2.0, np.zeros(83), NO_FORCE, G)
    with pytest.raises(ValueError, match='2 components'):
        decide_width(2.0, np.zeros(84), [0.0, 0.0], G)


def test_controller_remembers_its_width():
    controller = GripperWidthController(G, 2.0)
    controller.update(tactile(0, 0), NO_FORCE)
    controller.update(tactile(0, 0), NO_FORCE)
    assert controller.width_mm == pytest.approx(2.0 - 2 * G.width_step_mm)


# ------------------------------------------------------------------------------------------- calibration

def test_calibration_widths_close_in_tenths_from_4mm_to_the_minimum():
    widths = calibration_widths(C)
    assert widths[0] == 4.0 and widths[1] == 3.9 and widths[-1] == C.min_width_mm
    assert np.allclose(np.diff(widths), -C.step_mm)


def test_grasp_criteria():
    assert grasp_is_good(tactile(30, 2000), C)          # 35.7% coverage, mean 2000
    assert not grasp_is_good(tactile(25, 2000), C)      # 29.8% coverage
    assert not grasp_is_good(tactile(30, 1250), C)      # mean not above 1250
    assert not grasp_is_good(tactile(30, 3000), C)      # mean not below 3000
    hard = tactile(30, 1300)
    hard.reshape(-1)[:12] = 3500                        # 12/30 = 40% hard taxels: too many
    assert not grasp_is_good(hard, C)
    hard.reshape(-1)[11] = 1300                         # 11/30 < 40%
    assert grasp_is_good(hard, C)


class ScriptedFinger:
    """A cloth edge that gives a good reading below `good_below_mm`, only at the heights in `good_heights`."""

    def __init__(self, good_below_mm, good_heights=(0.0,)):
        self.good_below_mm = good_below_mm
        self.good_heights = good_heights
        self.width = None
        self.height = 0.0
        self.widths = []

    def set_width(self, width_mm):
        self.width = width_mm
        self.widths.append(width_mm)

    def move_tip(self, dz_m):
        assert self.width == C.start_width_mm, 'moved with closed fingers'
        self.height += dz_m

    def tactile_raw(self):
        good = self.width < self.good_below_mm and any(abs(self.height - h) < 1e-9 for h in self.good_heights)
        return tactile(40, 2000) if good else tactile(5, 300)


def test_calibration_stops_at_the_first_good_width():
    finger = ScriptedFinger(good_below_mm=2.05)
    result = calibrate_grasp(finger, C)
    assert result.width_mm == pytest.approx(2.0)
    assert result.height_offset_m == 0.0
    assert finger.widths[0] == C.start_width_mm and result.widths_tried == 21


def test_calibration_regrasps_higher_then_lower():
    finger = ScriptedFinger(good_below_mm=1.0, good_heights=(-0.01,))
    result = calibrate_grasp(finger, C)
    assert result.height_offset_m == pytest.approx(-0.01)
    assert finger.height == pytest.approx(-0.01)
    assert result.width_mm == pytest.approx(0.9)


def test_calibration_gives_up_with_a_clear_error():
    finger = ScriptedFinger(good_below_mm=0.0)
    with pytest.raises(GraspCalibrationError, match='reset the cloth'):
        calibrate_grasp(finger, C)
    assert finger.width == C.start_width_mm  # left open for the operator
    assert len(finger.widths) == 3 * len(calibration_widths(C)) + 3


def test_narrowing_above_the_maximum_keeps_going_down_in_steps():
    # calibration may end at 4.0 mm, above the controller's 3.5 mm maximum
    assert decide_width(4.0, tactile(0, 0), NO_FORCE, G) == (pytest.approx(3.65), NARROWED, False)
    assert decide_width(4.0, tactile(40, 2000), [7.0, 0, 0], G) == (4.0, UNCHANGED, False)
