"""drivers.launch with sim:=true: the three driver nodes against the simulated world, through ROS only.

Drive the gripper via /wsg/move, watch the cloth appear in /dsa/frame, read /arm/tip_pose, /arm/wrench and the
tip frame on tf (a tf2 listener), move the tip with /arm/move_tip and go back with /arm/move_to_start.
"""
import threading

import numpy as np
import pytest

from tests.helpers.common import free_port, wait_for
from tests.helpers.driver_topics import DiagnosticsLog, lookup, values
from tests.helpers.ros import TopicLog, digest


@pytest.fixture
def drivers(rospy_node, roslaunch, tmp_path):
    link = str(tmp_path / 'dsa')
    proc = roslaunch('drivers.launch', sim='true', sim_seed=3, sim_wsg_port=free_port(), sim_arm_port=free_port(),
                     sim_dsa_link=link)
    yield rospy_node, proc


def _service(rospy, name, cls, proc):
    try:
        rospy.wait_for_service(name, timeout=30)
    except rospy.ROSException:
        raise AssertionError('%s never came up:\n%s' % (name, digest(proc.output))) from None
    return rospy.ServiceProxy(name, cls)


def _fresh(topic, timeout, what):
    start = topic.count
    return wait_for(lambda: topic.after(start), timeout, what=what)


def _tf_listener(rospy):
    import tf2_ros
    buffer = tf2_ros.Buffer()
    return buffer, tf2_ros.TransformListener(buffer)


def _tip_frame(rospy, tf, proc, after=None, timeout=20.0, publish=None):
    """The latest base -> gripper_tip transform from tf2 (stamped after `after`, a rospy.Time); `publish()` is
    called while waiting (a node hosted here)."""
    import tf2_ros
    buffer, _ = tf

    def latest():
        if publish is not None:
            publish()
        try:
            found = buffer.lookup_transform('base', 'gripper_tip', rospy.Time(0))
        except (tf2_ros.LookupException, tf2_ros.ConnectivityException, tf2_ros.ExtrapolationException):
            return None
        return found if after is None or found.header.stamp > after else None
    try:
        return wait_for(latest, timeout, what='tf base -> gripper_tip')
    except AssertionError:
        raise AssertionError('no tip frame on tf:\n%s' % (digest(proc.output) if proc else '')) from None


def test_drivers_launch_in_simulation(drivers):
    from geometry_msgs.msg import PoseStamped, WrenchStamped
    from std_srvs.srv import Trigger

    from plas_ros.hardware.arm import quaternion_to_pitch
    from plas_ros.msg import GripperState, TactileFrame
    from plas_ros.srv import GripperCommand, TipMove
    rospy, proc = drivers
    tf = _tf_listener(rospy)
    state = TopicLog(rospy, '/wsg/state', GripperState)
    frames = TopicLog(rospy, '/dsa/frame', TactileFrame)
    pose = TopicLog(rospy, '/arm/tip_pose', PoseStamped)
    wrench = TopicLog(rospy, '/arm/wrench', WrenchStamped)
    try:
        wait_for(lambda: state.msg is not None and state.msg.connected, 40, what='/wsg/state connected')
        move = _service(rospy, '/wsg/move', GripperCommand, proc)
        assert move(width=4.0, speed=0.0).success
        open_frame = _fresh(frames, 20, '/dsa/frame')
        assert (open_frame.rows, open_frame.cols, len(open_frame.data)) == (14, 6, 84)
        assert max(open_frame.data) < 40, 'open fingers must not touch the cloth'

        reply = move(width=1.8, speed=70.0)
        assert reply.success, reply.message
        assert abs(reply.width - 1.8) < 0.05
        wait_for(lambda: abs(state.msg.width - 1.8) < 0.05, 10, what='/wsg/state at 1.8 mm')
        _fresh(frames, 10, 'frame after closing')
        squeezed = _fresh(frames, 10, 'frame after closing')
        assert sum(v > 100 for v in squeezed.data) >= 12, 'closed fingers must feel the cloth: %s' % (
            list(squeezed.data),)

        at_start = _fresh(pose, 20, '/arm/tip_pose').pose
        assert abs(at_start.position.x - 0.50) < 1e-6 and abs(at_start.position.z - 0.30) < 1e-6
        assert abs(quaternion_to_pitch([at_start.orientation.x, at_start.orientation.y, at_start.orientation.z,
                                        at_start.orientation.w])) < 1e-6
        tip = _tip_frame(rospy, tf, proc)
        assert abs(tip.transform.translation.z - 0.30) < 1e-6  # the tip, not the hand (0.13 m higher)
        # one tree: base -> gripper_tip (arm_driver) -> the fingers (wsg_driver), apart by the width (1.8 mm)
        fingers = [lookup(rospy, tf[0], 'base', 'wsg_finger%d' % n).transform.translation for n in (1, 2)]
        gap = np.linalg.norm([fingers[0].x - fingers[1].x, fingers[0].y - fingers[1].y, fingers[0].z - fingers[1].z])
        assert abs(gap - 0.0018) < 5e-5, gap
        assert squeezed.header.frame_id == 'wsg_finger1'  # the DSA finger's frame, on that tree
        force = _fresh(wrench, 20, '/arm/wrench').wrench.force
        assert all(abs(v) < 50 for v in (force.x, force.y, force.z))

        move_tip = _service(rospy, '/arm/move_tip', TipMove, proc)
        result = move_tip(dy=0.05, dz=-0.002, dpitch=0.0)
        assert result.success and not result.clipped, result.message
        assert abs(result.tip_pose[1] - (at_start.position.y + 0.05)) < 1e-6
        wait_for(lambda: abs(pose.msg.pose.position.y - result.tip_pose[1]) < 1e-6, 10, what='pose after the move')
        clipped = move_tip(dy=0.0, dz=1.0, dpitch=0.0)
        assert clipped.success and clipped.clipped and abs(clipped.tip_pose[2] - 0.52) < 1e-6

        back = _service(rospy, '/arm/move_to_start', Trigger, proc)()
        assert back.success, back.message
        wait_for(lambda: abs(pose.msg.pose.position.y - at_start.position.y) < 1e-6, 10, what='pose at start')
        assert proc.running(), digest(proc.output)
    finally:
        tf[1].unregister()
        for topic in (state, frames, pose, wrench):
            topic.sub.unregister()


def test_arm_node_against_the_simulated_arm_server(rospy_node, processes):
    """arm_driver alone over the arm RPC (served here, real TCP): median-filtered wrench, moves, bad moves."""
    from geometry_msgs.msg import PoseStamped, WrenchStamped

    from plas_ros.hardware.arm import PitchReference, TipFrame, rotation_angle_deg
    from plas_ros.sim.arm import ClothArm, SimArmServer
    from plas_ros.sim.cloth import ClothSim
    from plas_ros.srv import TipMove
    rospy = rospy_node
    tf = _tf_listener(rospy)
    cloth = ClothSim(seed=9)
    server = SimArmServer(ClothArm(cloth, threading.Lock()))
    port = server.start()
    pose = TopicLog(rospy, '/solo/tip_pose', PoseStamped)
    wrench = TopicLog(rospy, '/solo/wrench', WrenchStamped)
    diagnostics = DiagnosticsLog(rospy)
    proc = processes(['rosrun', 'plas_ros', 'arm_node', '__ns:=/solo', '__name:=arm_driver', '_sim:=true',
                      '_sim_port:=%d' % port, '_rate:=50'], name='arm_solo')
    try:
        first = wait_for(lambda: wrench.msg, 30, what='/solo/wrench')
        flowing = wait_for(lambda: diagnostics.latest('solo/arm_driver: arm'), 20, what='the arm status')
        assert 'readings flowing' in values(flowing)['link'] and 'expected 50.0 Hz' in values(flowing)['readings rate']
        assert flowing.level in (0, 1), flowing  # OK, or WARN if this loaded machine cannot keep 50 Hz
        # the tip frame on tf is the tip pose: looked up at a pose's stamp, it holds that pose's position
        at = pose.msg
        same = lookup(rospy, tf[0], 'base', 'gripper_tip', stamp=at.header.stamp).transform.translation
        assert (same.x, same.y, same.z) == (at.pose.position.x, at.pose.position.y, at.pose.position.z)
        assert first.header.frame_id == 'base' and at.header.frame_id == 'base'
        assert abs(first.wrench.force.z - cloth.config.bias_n[2]) < 3.0  # a median, close to the bias: fingers open
        start = _tip_frame(rospy, tf, proc)
        t, r = start.transform.translation, start.transform.rotation
        np.testing.assert_allclose([t.x, t.y, t.z], cloth.tip_pose()[:3], atol=1e-9)  # the tip, in the base frame
        reference = PitchReference()
        assert rotation_angle_deg([r.x, r.y, r.z, r.w], reference.orientation) < 1e-6  # the hand's orientation
        move_tip = _service(rospy, '/solo/move_tip', TipMove, proc)
        bad = move_tip(dy=float('nan'), dz=0.0, dpitch=0.0)
        assert not bad.success and 'dy must be a finite number, got nan' in bad.message, bad.message
        steep = move_tip(dy=0.0, dz=0.0, dpitch=7.0)
        assert not steep.success and 'dpitch 7.0 deg is beyond the pitch step bound' in steep.message, steep.message
        wait_for(lambda: '(2 failed moves so far)' in proc.output, 10, what='the failed moves counted')
        ok = move_tip(dy=0.02, dz=0.0, dpitch=5.0)
        assert ok.success and abs(ok.tip_pose[3] - 5.0) < 1e-6 and abs(cloth.tip_pose()[3] - 5.0) < 1e-6
        wait_for(lambda: abs(pose.msg.pose.position.y - ok.tip_pose[1]) < 1e-6, 10, what='pose after the move')
        moved = _tip_frame(rospy, tf, proc, after=pose.msg.header.stamp)
        t, r = moved.transform.translation, moved.transform.rotation
        np.testing.assert_allclose([t.x, t.y, t.z], cloth.tip_pose()[:3], atol=1e-6)
        assert abs(reference.pitch([r.x, r.y, r.z, r.w]) - 5.0) < 1e-4  # the tip frame pitched by the move
        hand = TipFrame().hand_from_tip([t.x, t.y, t.z], [r.x, r.y, r.z, r.w])
        assert hand[2] - t.z > 0.12  # the hand carries the tip 0.13 m below it
        server.stop()  # the arm vanishes: no more readings, no made-up ones
        count = pose.count
        rospy.sleep(1.0)
        settled = pose.count
        rospy.sleep(1.0)
        assert pose.count == settled and settled - count < 50
        lost = diagnostics.wait_level('solo/arm_driver: arm', 2, 10, digest(proc.output))
        assert 'the last reading failed' in lost.message and 'reading the arm failed' in values(lost)['last error']
        assert values(lost)['failed_moves'] == '2'
        assert proc.running()
    finally:
        server.stop()
        tf[1].unregister()
        pose.sub.unregister()
        wrench.sub.unregister()
        diagnostics.close()


def test_arm_node_reports_a_short_move_of_the_sawyer_as_a_failure(rospy_node, monkeypatch):
    """ArmNode over the real adapter (InteraArm) on the intera stand-in (tests/stubs), in this process: a joint
    move that stops short quietly, as move_to_joint_positions does, is a failed /move_tip, counted; the tip
    frame read afterwards is where the arm really is."""
    import sys

    from plas_ros.hardware.arm import SafetyBox, TipFrame
    from plas_ros.hardware.intera_arm import InteraArm
    from plas_ros.nodes.arm_node import ArmNode
    from plas_ros.srv import TipMove
    from tests.helpers.tree import STUBS
    rospy = rospy_node
    monkeypatch.syspath_prepend(STUBS)
    sys.modules.pop('intera_interface', None)
    import intera_interface
    intera_interface.STATE.reset()
    arm = InteraArm(SafetyBox([0.16, -0.41, 0.05], [0.84, 0.56, 0.52]), tip_x=0.5)
    reference = arm.reference.orientation
    hand = TipFrame().hand_from_tip([0.5, -0.32, 0.15], reference)
    intera_interface.STATE.joints.update(zip(intera_interface.JOINTS, list(hand) + list(reference)))
    tf = _tf_listener(rospy)
    node = ArmNode(arm, 'base', 'gripper_tip', 10)
    try:
        move_tip = rospy.ServiceProxy(rospy.resolve_name('move_tip'), TipMove)
        rospy.wait_for_service(move_tip.resolved_name, timeout=10)
        intera_interface.STATE.move_fraction = 0.5
        short = move_tip(dy=0.0, dz=0.06, dpitch=0.0)
        assert not short.success and list(short.tip_pose) == []
        assert 'the move fell short: joint right_j2 stopped 0.0300 rad from its target' in short.message, short.message
        assert node.move_errors == 1
        tip = _tip_frame(rospy, tf, None, timeout=10.0, publish=node.publish_once).transform.translation
        assert abs(tip.z - 0.18) < 1e-6  # half way up, as the arm stopped: nothing made up
        intera_interface.STATE.move_fraction = 1.0
        done = move_tip(dy=0.0, dz=0.03, dpitch=0.0)
        assert done.success and abs(done.tip_pose[2] - 0.21) < 1e-6 and node.move_errors == 1
    finally:
        node.close()
        tf[1].unregister()
        sys.modules.pop('intera_interface', None)
