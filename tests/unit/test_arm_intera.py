"""InteraArm's logic against the stand-in intera_interface (tests/stubs), whose signatures are checked
against the documented intera API first (doc/arm_and_sim.md, intera calls)."""
import inspect
import sys

import numpy as np
import pytest

from tests.helpers.tree import STUBS


@pytest.fixture
def intera(monkeypatch):
    monkeypatch.syspath_prepend(STUBS)
    sys.modules.pop('intera_interface', None)
    import intera_interface
    intera_interface.STATE.reset()
    yield intera_interface
    sys.modules.pop('intera_interface', None)


@pytest.fixture
def arm(intera):
    from plas_ros.hardware.arm import SafetyBox
    from plas_ros.hardware.intera_arm import InteraArm
    box = SafetyBox([0.16, -0.41, 0.05], [0.84, 0.56, 0.52])
    return InteraArm(box, tip_x=0.5, joint_speed=0.25, start_waypoints=[[0.0, 0.3, 0.0], [-0.3, 0.35, 0.0]])


def _params(func):
    return [(p.name, p.default) for p in inspect.signature(func).parameters.values() if p.name != 'self']


def test_stand_in_follows_the_documented_signatures(intera):
    limb = intera.Limb
    assert _params(limb.__init__)[0] == ('limb', 'right')
    assert _params(limb.endpoint_pose) == [] and _params(limb.endpoint_effort) == []
    assert _params(limb.ik_request)[:3] == [('pose', inspect.Parameter.empty), ('end_point', 'right_hand'),
                                            ('joint_seed', None)]
    assert _params(limb.move_to_joint_positions)[:2] == [('positions', inspect.Parameter.empty),
                                                         ('timeout', 15.0)]
    assert _params(limb.set_joint_positions)[0][0] == 'positions'
    assert _params(limb.set_joint_position_speed) == [('speed', 0.3)]
    assert callable(intera.RobotEnable().enable) and callable(intera.RobotEnable().disable)
    pose = limb().endpoint_pose()
    assert set(pose) == {'position', 'orientation'} and pose['orientation']._fields == ('x', 'y', 'z', 'w')
    assert set(limb().endpoint_effort()) == {'force', 'torque'}


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


def test_tip_pose_and_wrench_read_from_the_limb(arm, intera):
    intera.STATE.force, intera.STATE.torque = (1.0, -2.0, 3.5), (0.1, 0.2, -0.3)
    np.testing.assert_allclose(arm.tip_pose(), [0.5, 0.0, 0.3, 0.0], atol=1e-9)
    np.testing.assert_allclose(arm.wrench(), [1.0, -2.0, 3.5, 0.1, 0.2, -0.3])


def test_move_tip_solves_ik_holds_x_and_moves_joints(arm, intera):
    intera.STATE.joints['right_j0'] = 0.55  # x drifted: the move brings it back to tip_x
    result = arm.move_tip(0.05, -0.02, dpitch=10.0)
    assert not result.clipped
    np.testing.assert_allclose(result.pose, [0.5, 0.05, 0.28, 10.0], atol=1e-9)
    ik = [c for c in intera.STATE.calls if c[0] == 'ik_request'][-1]
    assert ik[2] == 'right_hand' and abs(ik[1].position.x - 0.5) < 1e-12
    move = [c for c in intera.STATE.calls if c[0] == 'move_to_joint_positions'][-1]
    assert move[2] == 15.0


def test_move_tip_clips_to_the_safety_box(arm, intera):
    result = arm.move_tip(0.0, 0.5)
    assert result.clipped
    assert abs(result.pose[2] - 0.52) < 1e-9


def test_ik_failure_raises_and_leaves_the_arm_where_it_was(arm, intera, monkeypatch):
    from plas_ros.hardware.arm import ArmError
    monkeypatch.setattr(intera, 'REACH_M', 0.6)
    before = arm.tip_pose()
    with pytest.raises(ArmError, match='IK found no joint solution'):
        arm.move_tip(0.3, 0.1)
    np.testing.assert_allclose(arm.tip_pose(), before)
    assert not [c for c in intera.STATE.calls if c[0] == 'move_to_joint_positions']


def test_move_to_start_visits_every_waypoint(arm, intera):
    pose = arm.move_to_start()
    moves = [c[1] for c in intera.STATE.calls if c[0] == 'move_to_joint_positions']
    assert [round(m['right_j1'], 6) for m in moves] == [0.0, -0.3]
    np.testing.assert_allclose(pose[:3], [0.5, -0.3, 0.35], atol=1e-9)


def test_move_to_start_without_waypoints_is_refused(intera):
    from plas_ros.hardware.arm import ArmError, SafetyBox
    from plas_ros.hardware.intera_arm import InteraArm
    bare = InteraArm(SafetyBox([0, -1, 0], [1, 1, 1]), tip_x=0.5)
    with pytest.raises(ArmError, match='start_waypoints'):
        bare.move_to_start()
