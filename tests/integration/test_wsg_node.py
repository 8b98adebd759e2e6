"""wsg_driver (scripts/wsg_node) against the simulated WSG 32 over real TCP, through ROS only: homing at start-up,
the services, the limits read with 0x53, fast stop and acknowledge, /wsgtest/state across a dropped connection,
the fast stop a lost link latched (cleared after the reconnection) versus a requested one (kept), 29 as the end
of a stop-on-block move, and the tactile fingers on finger<N>/frame."""
import math
import threading
import time

import pytest

from tests.helpers.common import wait_for
from tests.helpers.driver_topics import DiagnosticsLog, check_images, lookup, tf_buffer, values
from tests.helpers.ros import TopicLog, digest
from tests.helpers.tree import script

WSG_NODE = script('wsg_node')
NS = '/wsgtest'


def start_gripper(rospy_node, processes, config=None, part_width=12.0, initial_width=30.0, frame_source=None,
                  params=()):
    """The simulated gripper (config: default config/wsg_twin.yaml, unreferenced at power-up) and the node
    on it, once /wsgtest/state says connected; (sim, node, state)."""
    from plas_ros.msg import GripperState
    from plas_ros.sim.wsg import StaticPart, WsgSimulator
    sim = WsgSimulator(fingers=StaticPart(part_width=part_width), initial_width=initial_width, config=config,
                       frame_source=frame_source)
    port = sim.start()
    node = processes([WSG_NODE, '__ns:=' + NS, '__name:=wsg_driver', '_host:=127.0.0.1', '_port:=%d' % port,
                      '_state_rate:=20', '_timeout:=1.0'] + list(params), name='wsg_driver')
    state = TopicLog(rospy_node, NS + '/state', GripperState)
    try:
        wait_for(lambda: state.msg is not None and state.msg.connected, 30,
                 what='%s/state connected:\n%s' % (NS, digest(node.output)))
    except Exception:
        state.sub.unregister()
        sim.stop()
        raise
    return sim, node, state


@pytest.fixture
def gripper(rospy_node, processes):
    sim, node, state = start_gripper(rospy_node, processes)
    try:
        yield rospy_node, sim, node, state
        assert node.running(), digest(node.output)
    finally:
        state.sub.unregister()
        sim.stop()


def _proxy(rospy, name, cls):
    rospy.wait_for_service(NS + '/' + name, timeout=30)
    return rospy.ServiceProxy(NS + '/' + name, cls)


def test_services_drive_the_gripper_within_its_limits(gripper):
    from std_srvs.srv import Trigger

    from plas_ros.hardware.wsg import GraspingState, Status, SystemFlag
    from plas_ros.srv import GripperCommand
    rospy, sim, node, state = gripper
    move, grasp, release = (_proxy(rospy, n, GripperCommand) for n in ('move', 'grasp', 'release'))
    home, stop, fast_stop, ack = (_proxy(rospy, n, Trigger) for n in ('home', 'stop', 'fast_stop', 'ack'))

    # the twin starts unreferenced: the node homed it on connecting (the fingers open fully)
    wait_for(lambda: state.msg.system_flags & SystemFlag.REFERENCED, 10, what='referenced in the state')
    assert 'not referenced (system state bit 0 clear): homing' in node.output
    reply = move(width=20.0, speed=0.0)  # speed 0: ~default_speed
    assert reply.success and reply.status == 0 and abs(reply.width - 20.0) < 1e-3, reply
    assert sim.width == 20.0
    wait_for(lambda: abs(state.msg.width - 20.0) < 1e-3 and state.msg.connected, 10, what='state at 20 mm')

    for width, speed, words in ((100.0, 50.0, 'stroke 0..68.00 mm'), (10.0, 1000.0, 'speed 1000.000 mm/s'),
                                (float('nan'), 50.0, 'width nan'), (10.0, -5.0, 'speed -5.000'),
                                (0.0, 0.1, 'more than max_motion_time')):
        refused = move(width=width, speed=speed)
        assert not refused.success and refused.status == Status.RANGE_ERROR and words in refused.message, refused
    assert sim.width == 20.0  # nothing reached the gripper

    assert fast_stop().success
    denied = move(width=15.0, speed=50.0)
    assert not denied.success and denied.status == Status.ACCESS_DENIED and 'call ack' in denied.message
    wait_for(lambda: state.msg.system_flags & SystemFlag.FAST_STOP, 10, what='fast stop in the state')
    assert ack().success
    assert move(width=15.0, speed=200.0).success  # the caller acknowledged and retried

    held = grasp(width=0.0, speed=100.0)
    assert held.success and abs(held.width - 12.0) < 1e-3, held
    wait_for(lambda: state.msg.grasping_state == GraspingState.HOLDING and state.msg.force > 0, 10,
             what='holding with force')
    assert release(width=25.0, speed=200.0).success
    sim.fingers.part_width = None
    missed = grasp(width=20.0, speed=200.0)
    assert not missed.success and missed.status == Status.COMMAND_FAILED and 'no part' in missed.message

    assert home().success
    assert sim.width == 68.0

    slow = {}

    def slow_move():
        try:
            slow['reply'] = move(width=0.0, speed=2.0)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            slow['reply'] = exc

    mover = threading.Thread(target=slow_move)
    mover.start()
    wait_for(lambda: state.msg.system_flags & SystemFlag.MOVING and state.msg.speed == 2.0, 10,
             what='the slow move in the state')
    assert stop().success
    mover.join(10)
    assert not isinstance(slow['reply'], Exception), slow['reply']
    assert slow['reply'].status == Status.COMMAND_ABORTED and not slow['reply'].success
    assert 0.0 < sim.width < 68.0


def test_state_shows_the_link_going_down_and_coming_back(gripper):
    from plas_ros.hardware.wsg import Status
    from plas_ros.srv import GripperCommand
    rospy, sim, node, state = gripper
    move = _proxy(rospy, 'move', GripperCommand)
    assert move(width=22.0, speed=300.0).success
    wait_for(lambda: abs(state.msg.width - 22.0) < 1e-3, 10, what='state at 22 mm')
    mark = state.count
    sim.drop_connections(hold_off=3.0)
    down = wait_for(lambda: [m for m in state.since(mark) if not m.connected], 10, what='connected=false')[0]
    assert down.width == pytest.approx(22.0)  # the last measured value, flagged as not current
    failed = move(width=10.0, speed=300.0)
    assert not failed.success and failed.status in (Status.NOT_OPEN, Status.TIMEOUT) and failed.message
    assert math.isnan(failed.width)  # no current reading: no made-up width
    assert sim.width == 22.0
    mark = state.count
    wait_for(lambda: [m for m in state.since(mark) if m.connected], 20, what='connected=true again')
    # the lost link latched a fast stop on the gripper; the node cleared it after reconnecting, and said so
    assert move(width=10.0, speed=300.0).success
    assert sim.width == 10.0
    assert 'link to 127.0.0.1' in node.output and 'down' in node.output
    assert 'cleared (0x24 ack) the FAST STOP that the lost link latched' in node.output
    assert sim.counters()['link_loss_fast_stops'] == 1


def test_a_requested_fast_stop_survives_a_link_loss(gripper):
    from std_srvs.srv import Trigger

    from plas_ros.hardware.wsg import Status, SystemFlag
    from plas_ros.srv import GripperCommand
    rospy, sim, node, state = gripper
    move = _proxy(rospy, 'move', GripperCommand)
    fast_stop, ack = (_proxy(rospy, n, Trigger) for n in ('fast_stop', 'ack'))
    wait_for(lambda: state.msg.system_flags & SystemFlag.REFERENCED, 10, what='homed')  # a fast stop would abort it
    assert fast_stop().success
    mark = state.count
    sim.drop_connections(hold_off=0.5)
    wait_for(lambda: [m for m in state.since(mark) if not m.connected], 10, what='connected=false')
    mark = state.count
    wait_for(lambda: [m for m in state.since(mark) if m.connected], 20, what='connected=true again')
    wait_for(lambda: 'requested through fast_stop is still active' in node.output, 10, what='the warning')
    time.sleep(0.5)
    assert state.msg.system_flags & SystemFlag.FAST_STOP  # not cleared by the node
    denied = move(width=15.0, speed=100.0)
    assert not denied.success and denied.status == Status.ACCESS_DENIED
    assert 'cleared (0x24 ack)' not in node.output
    assert ack().success and move(width=15.0, speed=200.0).success


def test_diagnostics_joint_states_and_finger_frames(gripper):
    """/diagnostics says OK, then ERROR for a fast stop (OK again after ack) and for a lost link; joint_states
    and the finger frames on tf follow the measured width (each finger width / 2 from the tip)."""
    from sensor_msgs.msg import JointState
    from std_srvs.srv import Trigger

    from plas_ros.srv import GripperCommand
    rospy, sim, node, state = gripper
    diagnostics = DiagnosticsLog(rospy)
    joints = TopicLog(rospy, NS + '/joint_states', JointState)
    buffer, listener = tf_buffer()
    name = NS[1:] + '/wsg_driver: gripper'
    try:
        ok = diagnostics.wait_level(name, 0, 30, digest(node.output))
        assert values(ok)['fast stop'] == 'off' and values(ok)['referenced'] == 'true', values(ok)
        assert 'expected 20.0 Hz' in values(ok)['state rate'] and ok.hardware_id.startswith('WSG 32 at 127.0.0.1')
        assert _proxy(rospy, 'move', GripperCommand)(width=20.0, speed=300.0).success
        wait_for(lambda: abs(state.msg.width - 20.0) < 1e-3, 10, what='state at 20 mm')
        mark = joints.count
        joint = wait_for(lambda: joints.after(mark), 10, what=NS + '/joint_states')
        same = wait_for(lambda: [m for m in state.snapshot() if m.header.stamp == joint.header.stamp], 5,
                        what='the state published with the joint state')[0]
        assert list(joint.name) == ['wsg_finger1_joint', 'wsg_finger2_joint'] and joint.header.frame_id == 'gripper_tip'
        assert list(joint.position) == pytest.approx([-same.width / 2000.0, same.width / 2000.0], abs=1e-12)
        assert list(joint.effort) == pytest.approx([same.force, same.force])
        for finger, sign in ((1, -1.0), (2, 1.0)):
            t = lookup(rospy, buffer, 'gripper_tip', 'wsg_finger%d' % finger).transform.translation
            assert (t.x, t.y, t.z) == pytest.approx((0.0, sign * 0.010, 0.0), abs=1e-6)  # config finger_axis: y

        fast_stop, ack = (_proxy(rospy, n, Trigger) for n in ('fast_stop', 'ack'))
        assert fast_stop().success
        stopped = diagnostics.wait_level(name, 2, 10, digest(node.output))
        assert 'FAST STOP active' in stopped.message
        assert values(stopped)['fast stop'] == 'on (requested through fast_stop)'
        assert ack().success
        diagnostics.wait_level(name, 0, 10, digest(node.output))
        sim.drop_connections(hold_off=3.0)
        down = diagnostics.wait_level(name, 2, 10, digest(node.output))
        assert down.message.startswith('no link: 127.0.0.1:') and '127.0.0.1' in values(down)['last error']
    finally:
        diagnostics.close()
        joints.sub.unregister()
        listener.unregister()


def test_a_stop_on_block_move_ending_with_29_succeeds(rospy_node, processes):
    from plas_ros.hardware.wsg import Status
    from plas_ros.sim.wsg import TWIN
    from plas_ros.srv import GripperCommand
    sim, node, state = start_gripper(rospy_node, processes, part_width=3.0, params=['_stop_on_block:=true'])
    try:
        move = _proxy(rospy_node, 'move', GripperCommand)
        assert move(width=4.0, speed=70.0).status == Status.SUCCESS
        blocked = move(width=0.5, speed=70.0)
        expected = 3.0 - TWIN.behaviour.block_squeeze
        assert blocked.success and blocked.status == Status.AXIS_BLOCKED, blocked
        assert abs(blocked.width - expected) < 1e-3 and 'axis blocked' in blocked.message
        assert abs(sim.width - expected) < 1e-6
    finally:
        state.sub.unregister()
        sim.stop()


class Frames:
    def __init__(self):
        self.count = 0

    def __call__(self):
        self.count += 1
        return [[(self.count + r) % 4000 for _ in range(6)] for r in range(14)]


def test_tactile_fingers_are_published_at_the_tactile_rate(rospy_node, processes):
    from sensor_msgs.msg import Image

    from plas_ros.msg import TactileFrame
    from plas_ros.sim.wsg import TWIN
    config = TWIN.with_finger(2, data='error')  # finger 2 is not tactile on this rig
    sim, node, state = start_gripper(rospy_node, processes, config=config, frame_source=Frames(),
                                     params=['_tactile_fingers:=[1, 2]', '_tactile_rate:=10'])
    one = TopicLog(rospy_node, NS + '/finger1/frame', TactileFrame)
    two = TopicLog(rospy_node, NS + '/finger2/frame', TactileFrame)
    raw = TopicLog(rospy_node, NS + '/finger1/image_raw', Image)
    colour = TopicLog(rospy_node, NS + '/finger1/image_color', Image)
    diagnostics = DiagnosticsLog(rospy_node)
    try:
        first = wait_for(lambda: one.msg, 20, what='%s/finger1/frame' % NS)
        mark, started = one.count, time.monotonic()
        time.sleep(3.0)
        rate = (one.count - mark) / (time.monotonic() - started)
        assert 7.0 <= rate <= 13.0, rate
        assert (first.rows, first.cols, len(first.data)) == (14, 6, 84)
        assert first.header.frame_id == 'wsg_finger1' and first.header.stamp.to_sec() > 0
        frames = one.snapshot()
        assert len({tuple(m.data) for m in frames}) == len(frames)  # each a fresh reading
        assert two.count == 0  # the finger answering with an error: nothing published for it
        assert 'finger 2 gives no tactile frame' in node.output and '2 NO_SENSOR' in node.output
        assert 'finger 1 info 01 00' in node.output  # the info codes, logged at start-up
        check_images(frames, raw, colour)
        failing = diagnostics.wait_level(NS[1:] + '/wsg_driver: tactile finger 2', 2, 20, digest(node.output))
        assert 'bad frames in the last' in failing.message and values(failing)['frames'] == '0'
        assert values(diagnostics.latest(NS[1:] + '/wsg_driver: tactile finger 1'))['finger_errors'].startswith('0 ')
    finally:
        for topic in (one, two, state, raw, colour):
            topic.sub.unregister()
        diagnostics.close()
        sim.stop()

