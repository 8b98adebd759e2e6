"""SafetyBox, WrenchMedianFilter and the pitch <-> quaternion convention."""
import numpy as np
import pytest

from plas_ros.hardware.arm import SafetyBox, WrenchMedianFilter, pitch_to_quaternion, quaternion_to_pitch


def test_safety_box_clips_each_axis_and_reports_it():
    box = SafetyBox([0.16, -0.41, 0.05], [0.84, 0.56, 0.52])
    inside, clipped = box.clip([0.5, 0.0, 0.3])
    assert not clipped and inside.tolist() == [0.5, 0.0, 0.3]
    outside, clipped = box.clip([0.9, -1.0, 0.3])
    assert clipped and outside.tolist() == [0.84, -0.41, 0.3]
    assert box.contains([0.5, 0.5, 0.5]) and not box.contains([0.5, 0.5, 0.6])


@pytest.mark.parametrize('low,high', [([0, 0, 0], [1, 0, 1]), ([0, 0], [1, 1]), ([0, 0, float('nan')], [1, 1, 1])])
def test_safety_box_rejects_bad_bounds(low, high):
    with pytest.raises(ValueError, match='safety box'):
        SafetyBox(low, high)


def test_safety_box_rejects_non_finite_targets():
    with pytest.raises(ValueError, match='tip target'):
        SafetyBox([0, 0, 0], [1, 1, 1]).clip([0.5, float('inf'), 0.5])


def test_median_filter_takes_the_median_of_the_last_ten():
    filt = WrenchMedianFilter(10)
    assert filt.value() is None
    for i in range(15):
        filt.add([i, -i, 100.0 if i == 14 else 1.0, 0, 0, 0])
    value = filt.value()
    assert len(filt) == 10
    assert value[0] == np.median(np.arange(5, 15)) and value[1] == -9.5
    assert value[2] == 1.0  # one spike does not move the median


def test_median_filter_rejects_bad_readings_and_keeps_the_good_ones():
    filt = WrenchMedianFilter(3)
    filt.add([1, 2, 3, 4, 5, 6])
    with pytest.raises(ValueError, match='wrench'):
        filt.add([1, 2, 3])
    with pytest.raises(ValueError, match='wrench'):
        filt.add([float('nan')] * 6)
    assert len(filt) == 1 and filt.value().tolist() == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize('pitch', [-170.0, -30.0, 0.0, 12.5, 90.0, 179.0])
def test_pitch_round_trips_through_a_rotation_about_x(pitch):
    q = pitch_to_quaternion(pitch)
    assert q[1] == 0.0 and q[2] == 0.0 and abs(np.linalg.norm(q) - 1.0) < 1e-12
    assert abs(quaternion_to_pitch(q) - pitch) < 1e-9
    assert abs(quaternion_to_pitch(2.0 * q) - pitch) < 1e-9  # not normalised: still fine


def test_zero_quaternion_is_an_error():
    with pytest.raises(ValueError, match='zero length'):
        quaternion_to_pitch([0, 0, 0, 0])
