"""A stand-in for Rethink's `intera_interface` (not installable here), following its documented API and its
behaviour (doc/arm_and_sim.md, intera calls; RethinkRobotics/intera_sdk `intera_interface/limb.py`):
`Limb(limb='right')` with `endpoint_pose()` (of `right_hand`), `endpoint_effort()`, `joint_angles()`,
`ik_request(pose, end_point='right_hand', joint_seed=None, ...)` (a joint dict, or False when there is no
solution: it never raises), `move_to_joint_positions(positions, timeout=15.0, threshold=..., test=None)`
(returns None; on a timeout or a collision it stops where the joints are, silently, as the SDK's
`wait_for(..., raise_on_error=False)` does), `set_joint_positions(positions)`, `set_joint_position_speed(speed=0.3)`,
`has_collided()`, and `RobotEnable()` with `enable()` / `disable()`.

Its "kinematics": joint angles encode the `right_hand` pose directly (7 joints: x, y, z and the quaternion),
IK succeeds inside a sphere of REACH_M around the base. Tests read `STATE` to see what was called and set
it to make the arm misbehave the quiet way the real one does:
- `STATE.move_fraction` < 1: every joint covers only that part of the way (a move that timed out);
- `STATE.stuck_joints`: joints that do not move at all (a collision, a joint at its limit);
- `STATE.collided`: has_collided() is True and no joint moves;
- `STATE.ik_delay`: seconds the IK service takes to answer;
- `STATE.enabled` False (after disable()): nothing moves, the move returns after its "timeout".
"""
import collections
import math
import time

REACH_M = 1.0
JOINTS = ['right_j%d' % i for i in range(7)]
JOINT_ANGLE_TOLERANCE = 0.008726646  # rad, the SDK's settings.JOINT_ANGLE_TOLERANCE


class _State:
    def __init__(self):
        self.reset()

    def reset(self):
        self.enabled = False
        self.calls = []
        self.joints = dict(zip(JOINTS, [0.5, 0.0, 0.3, 0.0, 1.0, 0.0, 0.0]))
        self.force = (0.0, 0.0, 0.0)
        self.torque = (0.0, 0.0, 0.0)
        self.speed = None
        self.move_fraction = 1.0
        self.stuck_joints = set()
        self.collided = False
        self.ik_delay = 0.0


STATE = _State()


class RobotEnable:
    def __init__(self, versioned=False):
        STATE.calls.append(('RobotEnable',))

    def enable(self):
        STATE.calls.append(('enable',))
        STATE.enabled = True

    def disable(self):
        STATE.calls.append(('disable',))
        STATE.enabled = False


class Limb:
    Point = collections.namedtuple('Point', ['x', 'y', 'z'])
    Quaternion = collections.namedtuple('Quaternion', ['x', 'y', 'z', 'w'])

    def __init__(self, limb='right', synchronous_pub=False):
        if limb != 'right':
            raise ValueError('Sawyer has only the right limb, got %r' % limb)
        self.name = limb
        STATE.calls.append(('Limb', limb))

    def joint_names(self):
        return list(JOINTS)

    def joint_angles(self):
        return dict(STATE.joints)

    def endpoint_pose(self):
        j = [STATE.joints[n] for n in JOINTS]
        return {'position': Limb.Point(*j[:3]), 'orientation': Limb.Quaternion(*j[3:])}

    def endpoint_effort(self):
        return {'force': Limb.Point(*STATE.force), 'torque': Limb.Point(*STATE.torque)}

    def set_joint_position_speed(self, speed=0.3):
        STATE.calls.append(('set_joint_position_speed', speed))
        STATE.speed = speed

    def has_collided(self):
        return STATE.collided

    def ik_request(self, pose, end_point='right_hand', joint_seed=None, nullspace_goal=None,
                   nullspace_gain=0.4, allow_collision=False):
        STATE.calls.append(('ik_request', pose, end_point, None if joint_seed is None else dict(joint_seed)))
        if STATE.ik_delay:
            time.sleep(STATE.ik_delay)
        p, q = pose.position, pose.orientation
        if math.sqrt(p.x ** 2 + p.y ** 2 + p.z ** 2) > REACH_M:
            return False  # the SDK logs "INVALID POSE - No Valid Joint Solution Found." and returns False
        return dict(zip(JOINTS, [p.x, p.y, p.z, q.x, q.y, q.z, q.w]))

    def move_to_joint_positions(self, positions, timeout=15.0, threshold=JOINT_ANGLE_TOLERANCE, test=None):
        STATE.calls.append(('move_to_joint_positions', dict(positions), timeout))
        if not STATE.enabled or STATE.collided:
            return None  # the SDK waits out its timeout (or sees the collision) and returns, raising nothing
        for name, target in positions.items():
            if name in STATE.joints and name not in STATE.stuck_joints:
                STATE.joints[name] += STATE.move_fraction * (target - STATE.joints[name])
        return None

    def set_joint_positions(self, positions):
        STATE.calls.append(('set_joint_positions', dict(positions)))
        if STATE.enabled:
            STATE.joints.update(positions)
