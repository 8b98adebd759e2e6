"""Replay 1: the raw driver topics of the bag (/dsa/frame, /arm/wrench, /arm/tip_pose, /wsg/state) through real
`rosbag play` into the environment's observation assembly and gripper-width controller, with a simulated WSG
gripper (its own simulator and the real wsg driver node) receiving the width commands.

The env node itself needs the arm's services to step, so the harness plays the bag and calls the SAME functions
the node calls: `reading_from_messages` (env_node) -> `SensorReading.observation()` and the controller's
`decide_width`, and commands widths through the node's `DriverRobot.set_width` (/wsg/move, /wsg/ack). The bag's
/wsg/state is replayed under /bag/wsg/state so it does not mix with the live simulated gripper's.

Checked against the bag's /cloth/transition (read through the rosbag API):
- every transition's raw data arrived on the replayed topics, and the observation assembled from those replayed
  messages is, bit for bit, the transition's next_observation (and the next /cloth/observation);
- every controller decision: for a step without a width change the replayed reading behind the transition gives
  the same decision (unchanged, or edge lost exactly on the terminal step); for a width change a replayed
  reading of that step (between its observation and its transition) gives the same new width and direction;
- every width change, commanded to the simulated WSG, is reached by it, as the bag's gripper reached it.
"""
import sys
import threading

import numpy as np
import pytest

from tests.helpers.common import free_port, wait_for
from tests.helpers.replay import BAG, RAW_TOPICS, bag_messages, play
from tests.helpers.tree import ROBOT_YAML, script

WSG_NODE = script('wsg_node')
BAG_WSG_STATE = '/bag/wsg/state'
WIDTH_TOLERANCE_MM = 0.05  # the gripper reports its measured position (float32 message, finger resolution)
pytestmark = pytest.mark.needs(BAG, 'plas_ros/sim/wsg/__main__.py', WSG_NODE)  # the bag: tools/record_fixture_bags.py


class RawStream:
    """Every replayed raw message, per topic, in arrival order (the env node keeps only the latest; the
    harness keeps all so it can find the ones behind each recorded step)."""

    def __init__(self, rospy):
        from geometry_msgs.msg import PoseStamped, WrenchStamped

        from plas_ros.msg import GripperState, TactileFrame
        self.lock = threading.Lock()
        self.messages = {'tactile': [], 'wrench': [], 'pose': [], 'gripper': []}
        self.subs = [rospy.Subscriber(topic, cls, self._add, callback_args=name, queue_size=10000)
                     for name, topic, cls in (('tactile', '/dsa/frame', TactileFrame),
                                              ('wrench', '/arm/wrench', WrenchStamped),
                                              ('pose', '/arm/tip_pose', PoseStamped),
                                              ('gripper', BAG_WSG_STATE, GripperState))]

    def _add(self, msg, name):
        with self.lock:
            self.messages[name].append(msg)

    def count(self):
        with self.lock:
            return sum(len(v) for v in self.messages.values())

    def close(self):
        for sub in self.subs:
            sub.unregister()


def key_tactile(msg):
    return tuple(int(v) for v in msg.data)


def key_force(msg):
    f = msg.wrench.force
    return tuple(np.float32([f.x, f.y, f.z]).tolist())


def key_pose(msg):
    from plas_ros.hardware.arm import quaternion_to_pitch  # the env node's own conversion
    p, q = msg.pose.position, msg.pose.orientation
    return tuple(np.float32([p.x, p.y, p.z, quaternion_to_pitch([q.x, q.y, q.z, q.w])]).tolist())


def find_behind(stream, transition):
    """The replayed messages whose values are the transition's raw data (tactile, force, tip pose)."""
    wanted = {'tactile': tuple(int(v) for v in transition.tactile_raw),
              'wrench': tuple(np.float32(transition.force_raw).tolist()),
              'pose': tuple(np.float32(transition.tip_pose).tolist())}
    keys = {'tactile': key_tactile, 'wrench': key_force, 'pose': key_pose}
    found = {}
    for name, value in wanted.items():
        found[name] = next((m for m in reversed(stream.messages[name]) if keys[name](m) == value), None)
        assert found[name] is not None, ('episode %d step %d: the %s behind the recorded transition never arrived '
                                         'on the replayed topic' % (transition.episode, transition.step, name))
    return found


def readings_between(stream, start, end):
    """Every combination the env could have read in (start, end] (header stamps): the latest message of each
    topic at the arrival of each message in the window."""
    events = sorted((m.header.stamp.to_sec(), name, m) for name in ('tactile', 'wrench', 'pose')
                    for m in stream.messages[name] if m.header.stamp.to_sec() <= end)
    latest, out = {}, []
    for stamp, name, msg in events:
        latest[name] = msg
        if stamp > start and len(latest) == 3:
            out.append(dict(latest))
    return out


@pytest.fixture
def simulated_wsg(rospy_node, processes):
    """The simulated WSG 32 and the real wsg driver node (/wsg/*), as drivers.launch starts them in sim."""
    import rosparam
    for params, namespace in rosparam.load_file(ROBOT_YAML):
        rosparam.upload_params(namespace, params)
    port = free_port()
    sim = processes([sys.executable, '-m', 'plas_ros.sim.wsg', '--port', str(port)], name='sim_wsg')
    driver = processes([WSG_NODE, '__ns:=/wsg', '__name:=wsg_driver', '_host:=127.0.0.1', '_port:=%d' % port],
                       name='wsg_driver')
    rospy_node.wait_for_service('/wsg/move', 30)
    yield sim, driver


def test_replayed_sensors_give_the_recorded_observations_and_gripper_decisions(rospy_node, processes, simulated_wsg):
    from plas_ros.env.config import load_env_config
    from plas_ros.env.gripper_controller import NARROWED, UNCHANGED, decide_width
    from plas_ros.env.remote import DriverRobot
    from plas_ros.env.task import RobotError
    from plas_ros.msg import GripperState, Observation, TactileFrame, Transition
    from plas_ros.nodes.env_node import SERVICE_TYPES
    from plas_ros.nodes.messages import reading_from_messages
    from plas_ros.nodes.params import ServiceCaller
    config = load_env_config()
    transitions = [m for _, m in bag_messages('/cloth/transition', Transition) if not m.error]
    observations = {}
    for _, m in bag_messages('/cloth/observation', Observation):
        observations[(m.episode, m.step)] = m  # the last one asked (the env re-asks the same observation)
    bag_widths = [m.width for _, m in bag_messages('/wsg/state', GripperState) if m.connected]

    stream = RawStream(rospy_node)
    try:
        play(processes, RAW_TOPICS, rate=2.0, remap=[('/wsg/state', BAG_WSG_STATE)])
        sent = len(bag_messages('/dsa/frame', TactileFrame))
        wait_for(lambda: len(stream.messages['tactile']) >= sent, 10, what='all %d replayed tactile frames' % sent)
    finally:
        stream.close()

    robot = DriverRobot(ServiceCaller(SERVICE_TYPES, 10.0, RobotError), None, reading_from_messages,
                        config.gripper.speed_mm_s, wsg_retries=3)
    live = LiveGripper(rospy_node)
    decisions = {UNCHANGED: 0, NARROWED: 0, 1: 0, 'lost': 0}
    previous = None
    for t in transitions:
        behind = find_behind(stream, t)
        obs = reading_from_messages(behind).observation()
        np.testing.assert_array_equal(obs, np.float32(t.next_observation),
                                      err_msg='episode %d step %d: observation' % (t.episode, t.step))
        following = observations.get((t.episode, t.step + 1))
        if following is not None:
            np.testing.assert_array_equal(obs, np.float32(following.data))
        width_before = previous.gripper_width if previous is not None and previous.episode == t.episode else None
        if t.gripper_adjustment == UNCHANGED:
            decision = decide_width(t.gripper_width, behind['tactile'].data, _force(behind), config.gripper)
            assert (decision.adjustment, decision.edge_lost) == (UNCHANGED, bool(t.terminal)), (
                'episode %d step %d: the replayed reading gives %s; the bag: %.2f mm, unchanged, edge lost %s'
                % (t.episode, t.step, decision, t.gripper_width, bool(t.terminal)))
            decisions['lost' if t.terminal else UNCHANGED] += 1
        else:
            assert_adjustment_reproduced(stream, t, observations, width_before, config)
            decisions[t.gripper_adjustment] += 1
            robot.set_width(t.gripper_width)  # what the env node does with the decision
            live.assert_reaches(t.gripper_width)
            assert any(abs(w - t.gripper_width) <= WIDTH_TOLERANCE_MM for w in bag_widths), (
                'the recorded gripper never reported %.2f mm' % t.gripper_width)
        previous = t
    live.close()
    print('replayed %d transitions: decisions %s' % (len(transitions), decisions))
    assert decisions[UNCHANGED] and (decisions[NARROWED] or decisions[1]), (
        'the fixture bag should hold steps with and without a width change: %s' % decisions)


def _force(behind):
    f = behind['wrench'].wrench.force
    return np.array([f.x, f.y, f.z])


def assert_adjustment_reproduced(stream, t, observations, width_before, config):
    """A width change: some reading the env could have taken during this step gives the same new width."""
    from plas_ros.env.gripper_controller import calibration_widths, decide_width
    asked = observations[(t.episode, t.step)].header.stamp.to_sec()
    candidates = readings_between(stream, asked, t.header.stamp.to_sec())
    assert candidates, 'episode %d step %d: no replayed reading during the step' % (t.episode, t.step)
    # The first step starts from the calibrated width: one of the calibration's widths.
    widths = [width_before] if width_before is not None else calibration_widths(config.calibration)
    for reading in candidates:
        for width in widths:
            decision = decide_width(width, reading['tactile'].data, _force(reading), config.gripper)
            if decision.adjustment == t.gripper_adjustment and abs(decision.width_mm - t.gripper_width) < 1e-4:
                return
    raise AssertionError('episode %d step %d: none of %d replayed readings gives the recorded change to %.2f mm (%+d)'
                         % (t.episode, t.step, len(candidates), t.gripper_width, t.gripper_adjustment))


class LiveGripper:
    """The simulated gripper's /wsg/state, as the live driver publishes it."""

    def __init__(self, rospy):
        from plas_ros.msg import GripperState
        self.latest = None
        self.sub = rospy.Subscriber('/wsg/state', GripperState, self._on_state, queue_size=1)

    def _on_state(self, msg):
        self.latest = msg

    def assert_reaches(self, width_mm):
        wait_for(lambda: self.latest is not None and self.latest.connected
                 and abs(self.latest.width - width_mm) <= WIDTH_TOLERANCE_MM, 5,
                 what='the simulated WSG to report %.2f mm' % width_mm)

    def close(self):
        self.sub.unregister()
