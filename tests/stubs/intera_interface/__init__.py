"""A stand-in for Rethink's `intera_interface` (not installable here), following its documented API
(doc/arm_and_sim.md, intera calls): `Limb(limb='right')` with `endpoint_pose()`, `endpoint_effort()`,
`ik_request(pose, end_point='right_hand', joint_seed=None, ...)`, `move_to_joint_positions(positions,
timeout=15.0, ...)`, `set_joint_positions(positions)`, `set_joint_position_speed(speed=0.3)`, and
`RobotEnable()` with `enable()` / `disable()`.

Its "kinematics": joint angles encode the endpoint pose directly (7 joints: x, y, z and the quaternion),
IK succeeds inside a sphere of REACH_M around the base. Tests read `STATE` to see what was called.
"""
import collections
import math

REACH_M = 1.0
JOINTS = ['right_j%d' % i for i in range(7)]


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

    def endpoint_pose(self):
        j = [STATE.joints[n] for n in JOINTS]
        return {'position': Limb.Point(*j[:3]), 'orientation': Limb.Quaternion(*j[3:])}

    def endpoint_effort(self):
        return {'force': Limb.Point(*STATE.force), 'torque': Limb.Point(*STATE.torque)}

    def set_joint_position_speed(self, speed=0.3):
        STATE.calls.append(('set_joint_position_speed', speed))
        STATE.speed = speed

    def ik_request(self, pose, end_point='right_hand', joint_seed=None, nullspace_goal=None,
                   nullspace_gain=0.4, allow_collision=False):
        STATE.calls.append(('ik_request', pose, end_point))
        p, q = pose.position, pose.orientation
        if math.sqrt(p.x ** 2 + p.y ** 2 + p.z ** 2) > REACH_M:
            return False
        return dict(zip(JOINTS, [p.x, p.y, p.z, q.x, q.y, q.z, q.w]))

    def move_to_joint_positions(self, positions, timeout=15.0, threshold=0.008726646, test=None):
        STATE.calls.append(('move_to_joint_positions', dict(positions), timeout))
        if not STATE.enabled:
            raise OSError('robot is disabled: joint move timed out')
        STATE.joints.update(positions)

    def set_joint_positions(self, positions, raw=False):
        STATE.calls.append(('set_joint_positions', dict(positions)))
        if STATE.enabled:
            STATE.joints.update(positions)
