"""drivers.launch with sim:=true: the three driver nodes against the simulated world, through ROS only.

Drive the gripper via /wsg/move, watch the cloth appear in /dsa/frame, read /arm/tip_pose and /arm/wrench,
move the tip with /arm/move_tip and go back with /arm/move_to_start.
"""
import threading

import pytest

from tests.helpers.common import free_port, wait_for
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


def test_drivers_launch_in_simulation(drivers):
    from geometry_msgs.msg import PoseStamped, WrenchStamped
    from std_srvs.srv import Trigger

    from plas_ros.hardware.arm import quaternion_to_pitch
    from plas_ros.msg import GripperState, TactileFrame
    from plas_ros.srv import GripperCommand, TipMove
    rospy, proc = drivers
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
        for topic in (state, frames, pose, wrench):
            topic.sub.unregister()


def test_arm_node_against_the_simulated_arm_server(rospy_node, processes):
    """arm_driver alone over the arm RPC (served here, real TCP): median-filtered wrench, moves, bad moves."""
    from geometry_msgs.msg import PoseStamped, WrenchStamped

    from plas_ros.sim.arm import ClothArm, SimArmServer
    from plas_ros.sim.cloth import ClothSim
    from plas_ros.srv import TipMove
    rospy = rospy_node
    cloth = ClothSim(seed=9)
    server = SimArmServer(ClothArm(cloth, threading.Lock()))
    port = server.start()
    pose = TopicLog(rospy, '/solo/tip_pose', PoseStamped)
    wrench = TopicLog(rospy, '/solo/wrench', WrenchStamped)
    proc = processes(['rosrun', 'plas_ros', 'arm_node', '__ns:=/solo', '__name:=arm_driver', '_sim:=true',
                      '_sim_port:=%d' % port, '_rate:=50'], name='arm_solo')
    try:
        first = wait_for(lambda: wrench.msg, 30, what='/solo/wrench')
        assert abs(first.wrench.force.z - cloth.config.bias_n[2]) < 3.0  # a median, close to the bias: fingers open
        move_tip = _service(rospy, '/solo/move_tip', TipMove, proc)
        bad = move_tip(dy=float('nan'), dz=0.0, dpitch=0.0)
        assert not bad.success and 'dy' in bad.message
        ok = move_tip(dy=0.02, dz=0.0, dpitch=5.0)
        assert ok.success and abs(ok.tip_pose[3] - 5.0) < 1e-9
        wait_for(lambda: abs(pose.msg.pose.position.y - ok.tip_pose[1]) < 1e-6, 10, what='pose after the move')
        server.stop()  # the arm vanishes: no more readings, no made-up ones
        count = pose.count
        rospy.sleep(1.0)
        settled = pose.count
        rospy.sleep(1.0)
        assert pose.count == settled and settled - count < 50
        assert proc.running()
    finally:
        server.stop()
        pose.sub.unregister()
        wrench.sub.unregister()
