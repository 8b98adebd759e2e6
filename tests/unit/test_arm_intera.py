"""InteraArm's logic against the stand-in intera_interface (tests/stubs), whose signatures and quiet failures
are checked against the documented intera API first (doc/arm_and_sim.md, intera calls)."""
import inspect
import sys

import numpy as np
import pytest

from tests.helpers.tree import STUBS

REFERENCE = (0.70925844, -0.7024014, 0.05931745, -0.00813613)  # robot.yaml arm.reference_orientation
START_TIP = (0.5, -0.32, 0.15)  # the authors' start tip position


@pytest.fixture
def intera(monkeypatch):
    monkeypatch.syspath_prepend(STUBS)
    sys.modules.pop('intera_interface', None)
    import intera_interface
    intera_interface.STATE.reset()
    yield intera_interface
    sys.modules.pop('intera_interface', None)


def _make(intera, **kwargs):
    from plas_ros.hardware.arm import SafetyBox
    from plas_ros.hardware.intera_arm import InteraArm
    box = SafetyBox([0.16, -0.41, 0.05], [0.84, 0.56, 0.52])
    kwargs.setdefault('start_waypoints', [[0.0, 0.3, 0.0], [-0.3, 0.35, 2.0]])
    return InteraArm(box, tip_x=0.5, joint_speed=0.25, **kwargs)


def place_tip(intera, tip, orientation=REFERENCE):
    """Put the stand-in's hand where it carries the tip (0.13 m along the hand's z) at `tip`."""
    from plas_ros.hardware.arm import TipFrame
    hand = TipFrame([0.0, 0.0, 0.13]).hand_from_tip(tip, orientation)
    intera.STATE.joints.update(zip(intera.JOINTS, list(hand) + list(orientation)))
    return hand


@pytest.fixture
def arm(intera):
    arm = _make(intera)
    place_tip(intera, START_TIP)
    return arm


def _calls(intera, name):
    return [c for c in intera.STATE.calls if c[0] == name]


def _hand(intera):
    pose = intera.Limb().endpoint_pose()
    return np.array(pose['position']), np.array(pose['orientation'])


def _params(func):
    return [(p.name, p.default) for p in inspect.signature(func).parameters.values() if p.name != 'self']


def test_stand_in_follows_the_documented_signatures(intera):
    limb = intera.Limb
    assert _params(limb.__init__)[0] == ('limb', 'right')
    assert _params(limb.endpoint_pose) == [] and _params(limb.endpoint_effort) == []
    assert _params(limb.joint_angles) == [] and _params(limb.has_collided) == []
    assert _params(limb.ik_request)[:3] == [('pose', inspect.Parameter.empty), ('end_point', 'right_hand'),
                                            ('joint_seed', None)]
    assert _params(limb.move_to_joint_positions) == [('positions', inspect.Parameter.empty), ('timeout', 15.0),
                                                     ('threshold', 0.008726646), ('test', None)]
    assert _params(limb.set_joint_positions) == [('positions', inspect.Parameter.empty)]
    assert _params(limb.set_joint_position_speed) == [('speed', 0.3)]
    assert callable(intera.RobotEnable().enable) and callable(intera.RobotEnable().disable)
    pose = limb().endpoint_pose()
    assert set(pose) == {'position', 'orientation'} and pose['orientation']._fields == ('x', 'y', 'z', 'w')
    assert set(limb().endpoint_effort()) == {'force', 'torque'}


def test_stand_in_fails_quietly_like_the_sdk(intera):
    """move_to_joint_positions returns None on a timeout (robot disabled) and ik_request False: no raising."""
    limb = intera.Limb()
    before = limb.joint_angles()
    target = dict(before, right_j1=0.2)
    assert limb.move_to_joint_positions(target) is None and limb.joint_angles() == before  # disabled: stays
    intera.RobotEnable().enable()
    intera.STATE.move_fraction = 0.5
    assert limb.move_to_joint_positions(target) is None
    assert abs(limb.joint_angles()['right_j1'] - 0.1) < 1e-12  # stopped half way, silently
    far = type('Pose', (), {})()
    far.position = type('P', (), {'x': 2.0, 'y': 0.0, 'z': 0.0})()
    far.orientation = type('Q', (), {'x': 0.0, 'y': 0.0, 'z': 0.0, 'w': 1.0})()
    assert limb.ik_request(far) is False


def test_missing_sdk_gives_a_clear_error():
    from plas_ros.hardware.arm import ArmError, SafetyBox
    from plas_ros.hardware.intera_arm import InteraArm
    sys.modules.pop('intera_interface', None)
    with pytest.raises(ArmError, match='intera_interface'):
        InteraArm(SafetyBox([0, 0, 0], [1, 1, 1]), tip_x=0.5)


def test_constructor_enables_robot_and_sets_joint_speed(arm, intera):
    names = [c[0] for c in intera.STATE.calls]
    assert names[:4] == ['RobotEnable', 'enable', 'Limb', 'set_joint_position_speed']
    assert intera.STATE.speed == 0.25 and intera.STATE.enabled


def test_tip_pose_is_read_at_the_tip_not_at_the_hand(arm, intera):
    from plas_ros.hardware.arm import rotation_matrix
    hand, _ = _hand(intera)
    np.testing.assert_allclose(arm.tip_pose(), list(START_TIP) + [0.0], atol=1e-9)  # pitch 0 at the reference
    np.testing.assert_allclose(np.array(START_TIP) - hand, 0.13 * rotation_matrix(REFERENCE)[:, 2], atol=1e-12)
    assert hand[2] - START_TIP[2] > 0.12  # endpoint_pose() is right_hand, 0.13 m above the tip here
    from plas_ros.hardware.arm import rotation_angle_deg
    assert rotation_angle_deg(arm.tip_reading().orientation, REFERENCE) < 1e-6  # the tip has the hand's orientation


def test_wrench_is_read_from_the_limb(arm, intera):
    intera.STATE.force, intera.STATE.torque = (1.0, -2.0, 3.5), (0.1, 0.2, -0.3)
    np.testing.assert_allclose(arm.wrench(), [1.0, -2.0, 3.5, 0.1, 0.2, -0.3])


def test_tip_target_is_converted_to_right_hand_before_ik(arm, intera):
    from plas_ros.hardware.arm import TipFrame
    intera.STATE.joints['right_j0'] += 0.01  # x drifted: the move brings the tip back to tip_x
    result = arm.move_tip(0.05, -0.02)
    target_tip = np.array([0.5, START_TIP[1] + 0.05, START_TIP[2] - 0.02])
    assert not result.clipped
    np.testing.assert_allclose(result.pose, list(target_tip) + [0.0], atol=1e-9)
    _, pose, end_point, _ = _calls(intera, 'ik_request')[-1]
    assert end_point == 'right_hand'
    q = [pose.orientation.x, pose.orientation.y, pose.orientation.z, pose.orientation.w]
    hand_target = [pose.position.x, pose.position.y, pose.position.z]
    np.testing.assert_allclose(hand_target, TipFrame([0, 0, 0.13]).hand_from_tip(target_tip, q), atol=1e-12)
    assert hand_target[2] - target_tip[2] > 0.12
    assert _calls(intera, 'move_to_joint_positions')[-1][2] == 15.0


def test_safety_box_applies_to_the_tip(arm, intera):
    result = arm.move_tip(0.0, 0.5)
    assert result.clipped and abs(result.pose[2] - 0.52) < 1e-9  # the tip at the box's top ...
    assert _hand(intera)[0][2] > 0.64  # ... the hand 0.13 m above it, outside the box: it is the tip's box
    inside = arm.move_tip(0.0, -0.1)  # a tip inside the box with the hand above the box: not clipped
    assert not inside.clipped and _hand(intera)[0][2] > 0.52
    low = arm.move_tip(-0.3, -1.0)
    assert low.clipped and abs(low.pose[1] + 0.41) < 1e-9 and abs(low.pose[2] - 0.05) < 1e-9


def test_a_move_keeps_the_orientation_except_the_commanded_pitch(arm, intera):
    from plas_ros.hardware.arm import euler_xyz, rotation_angle_deg
    _, before = _hand(intera)
    assert not arm.move_tip(0.01, 0.0).clipped
    assert rotation_angle_deg(before, _hand(intera)[1]) < 1e-9  # no pitch step: the same orientation
    result = arm.move_tip(0.0, 0.0, dpitch=4.0)
    _, after = _hand(intera)
    assert abs(result.pose[3] - 4.0) < 1e-9 and abs(rotation_angle_deg(before, after) - 4.0) < 1e-9
    np.testing.assert_allclose(np.array(euler_xyz(after))[[0, 2]], np.array(euler_xyz(before))[[0, 2]], atol=1e-9)
    np.testing.assert_allclose(result.pose[:3], [0.5, START_TIP[1] + 0.01, START_TIP[2]], atol=1e-9)  # tip stays


def test_pitch_step_and_pitch_are_bounded(arm, intera):
    with pytest.raises(ValueError, match=r'dpitch 6\.0 deg is beyond the pitch step bound of 5 deg'):
        arm.move_tip(0.0, 0.0, dpitch=6.0)
    assert not _calls(intera, 'ik_request')
    for _ in range(6):
        result = arm.move_tip(0.0, 0.0, dpitch=5.0)
    assert not result.clipped and abs(result.pose[3] - 30.0) < 1e-9
    result = arm.move_tip(0.0, 0.0, dpitch=5.0)
    assert result.clipped and abs(result.pose[3] - 30.0) < 1e-9  # held at the range's top


@pytest.mark.parametrize('step', [(float('nan'), 0.0, 0.0), (0.0, float('inf'), 0.0), (0.0, 0.0, float('nan')),
                                  ('far', 0.0, 0.0)])
def test_non_finite_steps_are_refused_before_ik(arm, intera, step):
    with pytest.raises(ValueError, match='must be a finite number, got'):
        arm.move_tip(*step)
    assert not _calls(intera, 'ik_request') and not _calls(intera, 'move_to_joint_positions')


def test_ik_is_seeded_with_the_current_joint_angles(arm, intera):
    before = dict(intera.STATE.joints)
    arm.move_tip(0.02, 0.01)
    seed = _calls(intera, 'ik_request')[-1][3]
    assert seed == before
    arm.move_tip(0.02, 0.0)
    assert _calls(intera, 'ik_request')[-1][3] != before  # the new current joints, not a stale copy


@pytest.mark.parametrize('misbehave', ['timeout', 'stuck', 'collision', 'disabled'])
def test_a_move_that_falls_short_is_a_failure(arm, intera, misbehave):
    from plas_ros.hardware.arm import ArmError
    if misbehave == 'timeout':
        intera.STATE.move_fraction = 0.5
    elif misbehave == 'stuck':
        intera.STATE.stuck_joints = {'right_j2'}
    elif misbehave == 'collision':
        intera.STATE.collided = True
    else:
        intera.RobotEnable().disable()
    with pytest.raises(ArmError, match=r'the move fell short: joint right_j2 stopped 0\.0\d+ rad from its target'):
        arm.move_tip(0.0, 0.06)  # the tip's z, so mainly the hand's z "joint" (right_j2)
    assert _calls(intera, 'move_to_joint_positions')  # it was commanded, and returned quietly


def test_a_move_within_the_joint_tolerance_succeeds(intera):
    arm = _make(intera, joint_tolerance=0.01)
    place_tip(intera, START_TIP)
    intera.STATE.move_fraction = 0.9
    result = arm.move_tip(0.0, 0.05)  # 5 mm short of 0.05: within 0.01
    assert abs(result.pose[2] - (START_TIP[2] + 0.045)) < 1e-3


def test_ik_failure_raises_and_leaves_the_arm_where_it_was(arm, intera, monkeypatch):
    from plas_ros.hardware.arm import ArmError
    monkeypatch.setattr(intera, 'REACH_M', 0.55)
    before = arm.tip_pose()
    with pytest.raises(ArmError, match='IK found no joint solution for the right_hand target; the arm did not move'):
        arm.move_tip(0.3, 0.1)
    np.testing.assert_allclose(arm.tip_pose(), before)
    assert not _calls(intera, 'move_to_joint_positions')


def test_a_hanging_ik_service_is_bounded(intera):
    from plas_ros.hardware.arm import ArmError
    arm = _make(intera, ik_timeout=0.1)
    place_tip(intera, START_TIP)
    intera.STATE.ik_delay = 1.0
    with pytest.raises(ArmError, match='the IK service gave no answer within 0.1 s'):
        arm.move_tip(0.01, 0.0)
    assert not _calls(intera, 'move_to_joint_positions')


def test_move_to_start_visits_every_waypoint_at_the_tip(arm, intera):
    pose = arm.move_to_start()
    moves = _calls(intera, 'move_to_joint_positions')
    assert len(moves) == 2
    np.testing.assert_allclose(pose, [0.5, -0.3, 0.35, 2.0], atol=1e-9)  # the tip, the waypoint's pitch


def test_move_to_start_without_waypoints_is_refused(intera):
    from plas_ros.hardware.arm import ArmError
    bare = _make(intera, start_waypoints=())
    with pytest.raises(ArmError, match='start_waypoints'):
        bare.move_to_start()


@pytest.mark.parametrize('waypoint,match', [([0.0, 0.3], r'\[y, z, pitch_deg\]'), ([0.0, 0.3, 45.0], 'pitch_range'),
                                            ([0.0, float('nan'), 0.0], 'finite')])
def test_bad_waypoints_are_refused_at_start_up(intera, waypoint, match):
    with pytest.raises(ValueError, match=match):
        _make(intera, start_waypoints=[waypoint])
