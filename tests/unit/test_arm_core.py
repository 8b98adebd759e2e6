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


# ------------------------------------------------------------------------------------------ rotations, tip, pitch

AUTHORS_START = (0.70925844, -0.7024014, 0.05931745, -0.00813613)  # config/robot.yaml arm.reference_orientation


def _about(axis, deg):
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return {'x': np.array([[1, 0, 0], [0, c, -s], [0, s, c]]), 'y': np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            'z': np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


@pytest.mark.parametrize('angles', [(10.0, 20.0, 30.0), (-174.5, -4.2, -89.6), (179.0, 45.0, -120.0)])
def test_euler_angles_are_extrinsic_xyz(angles):
    from plas_ros.hardware.arm import euler_xyz, quaternion_from_euler_xyz, rotation_matrix
    roll, pitch, yaw = angles
    q = quaternion_from_euler_xyz(roll, pitch, yaw)
    np.testing.assert_allclose(rotation_matrix(q), _about('z', yaw) @ _about('y', pitch) @ _about('x', roll),
                               atol=1e-12)
    np.testing.assert_allclose(euler_xyz(q), angles, atol=1e-9)


def test_euler_angles_of_the_authors_start_orientation_are_scipys():
    """scipy 1.x: Rotation.from_quat(AUTHORS_START).as_euler('xyz', degrees=True) (doc/arm_and_sim.md)."""
    from plas_ros.hardware.arm import euler_xyz
    np.testing.assert_allclose(euler_xyz(AUTHORS_START), [-174.54163789, -4.16983628, -89.64224437], atol=1e-6)


def test_euler_angles_match_scipy():
    from scipy.spatial.transform import Rotation as rotation  # the authors' pitch (a test requirement)

    from plas_ros.hardware.arm import euler_xyz
    rng = np.random.default_rng(3)
    for q in rng.normal(size=(50, 4)):
        np.testing.assert_allclose(euler_xyz(q), rotation.from_quat(q).as_euler('xyz', degrees=True), atol=1e-7)


def test_tip_frame_converts_both_ways():
    from plas_ros.hardware.arm import TipFrame, rotation_matrix
    frame = TipFrame([0.0, 0.0, 0.13])
    down = (0.0, 1.0, 0.0, 0.0)  # hand z axis pointing at the floor: the tip is 0.13 m below the hand
    np.testing.assert_allclose(frame.tip_from_hand([0.5, 0.1, 0.4], down), [0.5, 0.1, 0.27], atol=1e-12)
    np.testing.assert_allclose(frame.hand_from_tip([0.5, 0.1, 0.27], down), [0.5, 0.1, 0.4], atol=1e-12)
    hand = np.array([0.48, -0.3, 0.28])
    tip = frame.tip_from_hand(hand, AUTHORS_START)
    np.testing.assert_allclose(tip - hand, 0.13 * rotation_matrix(AUTHORS_START)[:, 2], atol=1e-12)  # along hand z
    assert tip[2] < hand[2] - 0.12  # the authors' hand points down too
    np.testing.assert_allclose(frame.hand_from_tip(tip, AUTHORS_START), hand, atol=1e-12)
    with pytest.raises(ValueError, match='tip offset'):
        TipFrame([0.0, float('nan'), 0.13])


def test_pitch_is_zero_at_the_reference_and_moves_by_the_step():
    from plas_ros.hardware.arm import PitchReference, euler_xyz, quaternion_multiply, rotation_angle_deg
    ref = PitchReference(AUTHORS_START)
    assert abs(ref.pitch(AUTHORS_START)) < 1e-9 and abs(ref.pitch(-np.array(AUTHORS_START))) < 1e-9
    pitched = ref.pitched(AUTHORS_START, 5.0)
    assert abs(ref.pitch(pitched) - 5.0) < 1e-9
    assert abs(rotation_angle_deg(AUTHORS_START, pitched) - 5.0) < 1e-9  # turned by 5 deg and nothing else
    np.testing.assert_allclose(np.array(euler_xyz(pitched))[[0, 2]], np.array(euler_xyz(AUTHORS_START))[[0, 2]],
                               atol=1e-9)  # roll and yaw kept
    # The authors' pitch turns the hand about (nearly) the base x axis: the sliding plane's normal.
    x, y, z, w = quaternion_multiply(pitched, np.array(AUTHORS_START) * [-1, -1, -1, 1])
    axis = np.array([x, y, z]) / np.linalg.norm([x, y, z]) * np.sign(w)
    assert axis[0] > 0.999
    assert abs(ref.pitch(ref.at(-12.5)) + 12.5) < 1e-9
    # The raw Euler angle of the start orientation is not 0 (-4.17 deg): the reference is what makes it 0.
    assert abs(euler_xyz(AUTHORS_START)[1] + 4.17) < 0.01


def test_pitch_range_must_stay_clear_of_the_euler_singularity():
    from plas_ros.hardware.arm import PitchReference
    ref = PitchReference(AUTHORS_START)
    ref.check_range(-30.0, 30.0)
    with pytest.raises(ValueError, match='singularity'):
        ref.check_range(-30.0, 95.0)
    with pytest.raises(ValueError, match='below high'):
        ref.check_range(5.0, -5.0)
    with pytest.raises(ValueError, match='reference orientation'):
        PitchReference([0.0, 0.0, 0.0, 0.0])


def test_bounded_call_gives_up_on_a_late_answer():
    import time

    from plas_ros.hardware.arm import ArmError, bounded_call
    assert bounded_call(lambda: 42, 1.0, 'quick') == 42
    start = time.monotonic()
    with pytest.raises(ArmError, match='the slow service gave no answer within 0.1 s'):
        bounded_call(lambda: time.sleep(2.0), 0.1, 'the slow service')
    assert time.monotonic() - start < 1.0
    with pytest.raises(KeyError):
        bounded_call(lambda: {}['missing'], 1.0, 'failing')


def test_the_median_filter_knows_when_its_oldest_reading_was_taken():
    filt = WrenchMedianFilter(3)
    assert filt.oldest is None
    for taken in (1.0, 2.0, 3.0, 4.0):
        filt.add([0.0] * 6, taken)
    assert filt.full and filt.oldest == 2.0             # the window holds the readings of 2, 3 and 4
    filt.clear()
    assert filt.oldest is None and len(filt) == 0
