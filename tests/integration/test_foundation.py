"""The foundation works: generated messages, a real master, real roslaunch, Debian's CLI tools."""
import os
import subprocess
import threading

from tests.helpers.common import wait_for
from tests.helpers.ros import digest
from tests.helpers.tree import REPO_ROOT


def test_transition_round_trip_through_master(rospy_node):
    from plas_ros.msg import Transition
    rospy = rospy_node
    received = []
    got_one = threading.Event()

    def on_message(msg):
        received.append(msg)
        got_one.set()

    sub = rospy.Subscriber('/foundation/transition', Transition, on_message)
    pub = rospy.Publisher('/foundation/transition', Transition, queue_size=10)
    wait_for(lambda: pub.get_num_connections() > 0, 10, what='subscriber connection')
    sent = Transition(episode=3, step=7, observation=[0.5] * 89, action=[-1.0, 1.0], reward=0.25,
                      next_observation=[0.25] * 89, terminal=True, timeout=False, gripper_width=2.5,
                      gripper_adjustment=-1, tactile_raw=list(range(84)), force_raw=[1.0, 2.0, 3.0])
    sent.header.stamp = rospy.Time.now()
    pub.publish(sent)
    assert got_one.wait(10), 'no Transition came back through the master'
    msg = received[0]
    assert (msg.episode, msg.step, msg.reward, msg.terminal, msg.timeout) == (3, 7, 0.25, True, False)
    assert list(msg.observation) == [0.5] * 89 and list(msg.action) == [-1.0, 1.0]
    assert msg.gripper_adjustment == -1 and abs(msg.gripper_width - 2.5) < 1e-6
    assert list(msg.tactile_raw) == list(range(84))
    sub.unregister()
    pub.unregister()


def test_rosmsg_show_prints_the_transition_contract(ros_master):
    out = subprocess.run(['rosmsg', 'show', 'plas_ros/Transition'], capture_output=True, text=True,
                         check=True).stdout
    for field in ['uint32 episode', 'uint32 step', 'float32[] observation', 'float32[] action',
                  'float32 reward', 'float32[] next_observation', 'bool terminal', 'bool timeout',
                  'float32 gripper_width', 'int8 gripper_adjustment']:
        assert field in out, field


def test_launch_file_up_and_down_with_debian_cli_tools(rospy_node, roslaunch):
    """A launch file starts `rostopic pub` (Debian's CLI, system python) with our message type;
    we receive it in this process, then the launch is torn down cleanly."""
    from plas_ros.msg import Action
    rospy = rospy_node
    got = threading.Event()
    sub = rospy.Subscriber('/foundation/action', Action, lambda m: got.set() if m.step == 42 else None)
    launch_file = os.path.join(REPO_ROOT, 'tests', 'fixtures', 'foundation_talker.launch')
    proc = roslaunch(launch_file, name='talker')
    assert got.wait(30), 'no Action from the launched node:\n' + digest(proc.output)
    assert proc.running()
    assert proc.stop() is not None
    assert not proc.running()
    sub.unregister()
