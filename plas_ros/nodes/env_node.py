"""cloth_env: the cloth-sliding environment as a ROS node: a transport for the core's episode runner.

The task, the episode loop, sensor freshness, the gripper retry policy and the reset / autostart state
machine are the core's (`plas_ros.env.task`, `.runner`, `.remote`); this node only wires them to the driver
nodes' topics and services, to /cloth/observation, /cloth/action and /cloth/transition, to the
/cloth/reset service, and its health (`plas_ros.env.health`) to /diagnostics. Topics, services and parameters:
README.md, section cloth_env.
"""
import functools
import queue
import time

import numpy as np
import rospy
from geometry_msgs.msg import PoseStamped, WrenchStamped
from std_srvs.srv import Trigger, TriggerResponse

from plas_ros.config import lookup, section
from plas_ros.env.config import load_env_config
from plas_ros.env.gripper_controller import GraspCalibrationError
from plas_ros.env.health import expect_rates, task_monitor, task_report
from plas_ros.env.remote import (
    DRIVER_SERVICES,
    GRIPPER_ACK,
    GRIPPER_MOVE,
    MOVE_TIP,
    MOVE_TO_START,
    ActionInbox,
    DriverRobot,
    FreshSensors,
)
from plas_ros.env.runner import EpisodeRunner, Session, Transport
from plas_ros.env.task import (
    ClothSlideTask,
    InvalidActionError,
    RobotError,
    TaskEnv,
    validate_action,
)
from plas_ros.msg import Action, GripperState, Observation, TactileFrame, Transition
from plas_ros.nodes.drivers import Diagnostics, diagnostics_params, require_diagnostic_updater
from plas_ros.nodes.lifecycle import init_node
from plas_ros.nodes.messages import reading_from_messages, transition_msg
from plas_ros.nodes.params import ServiceCaller, node_params, ros_log, unadvertised
from plas_ros.srv import GripperCommand, TipMove

# The tactile frames come from the DSACON32 serial driver or from a finger of the WSG driver (the authors' rig).
TACTILE_SOURCES = {'dsa': '/dsa/frame', 'finger1': '/wsg/finger1/frame', 'finger2': '/wsg/finger2/frame'}


def sensor_topics(tactile_source):
    """name -> (topic, message class) of the four sensors, with the tactile frames from `tactile_source`."""
    if tactile_source not in TACTILE_SOURCES:
        raise SystemExit('cloth_env: ~tactile_source %r is none of %s' % (tactile_source, ', '.join(TACTILE_SOURCES)))
    return {'tactile': (TACTILE_SOURCES[tactile_source], TactileFrame), 'wrench': ('/arm/wrench', WrenchStamped),
            'pose': ('/arm/tip_pose', PoseStamped), 'gripper': ('/wsg/state', GripperState)}


# The parameter (namespace/name) of the rate each stream's driver publishes at, the one the driver reads (else
# config/robot.yaml's). The wrench's is not judged: the arm driver restarts its median after every move, so while
# the task steps the wrench comes slower than the arm's rate by design (its age is judged).
TACTILE_RATES = {'dsa': 'dsa/frame_rate', 'finger1': 'wsg/tactile_rate', 'finger2': 'wsg/tactile_rate'}
SENSOR_RATES = {'wrench': None, 'pose': 'arm/rate', 'gripper': 'wsg/state_rate'}


def driver_rates(tactile_source):
    """name -> the Hz each sensor stream is expected at (None: not judged)."""
    keys = dict({'tactile': TACTILE_RATES[tactile_source]}, **SENSOR_RATES)
    return {name: None if key is None else _driver_rate(key) for name, key in keys.items()}


def _driver_rate(key):
    """The rate parameter `key` ('dsa/frame_rate') in its driver's namespace, else config/robot.yaml's."""
    return float(rospy.get_param('/' + key, lookup('robot.yaml', key.replace('/', '.'))))


SERVICE_TYPES = {MOVE_TIP: TipMove, MOVE_TO_START: Trigger, GRIPPER_MOVE: GripperCommand, GRIPPER_ACK: Trigger}


class OperatorRequest:
    """A /cloth/reset call waiting for the session's answer."""

    def __init__(self):
        self._reply = queue.Queue()

    def answer(self, success, message):
        self._reply.put((success, message))

    def wait(self):
        return self._reply.get()


class RosTransport(Transport):
    """Observations out on /cloth/observation, the answering /cloth/action in, transitions out."""

    def __init__(self, sensors, action_timeout):
        self.sensors = sensors
        self.action_timeout = float(action_timeout)
        self.inbox = ActionInbox(stopped=rospy.is_shutdown)
        self.obs_pub = rospy.Publisher('/cloth/observation', Observation, queue_size=1)
        self.transition_pub = rospy.Publisher('/cloth/transition', Transition, queue_size=100)
        self.action_sub = rospy.Subscriber('/cloth/action', Action, self.inbox.put, queue_size=10, tcp_nodelay=True)

    def _publish_observation(self, episode, step, observation):
        msg = Observation(episode=episode, step=step, data=np.asarray(observation).tolist())
        msg.header.stamp = rospy.Time.now()
        self.obs_pub.publish(msg)

    def act(self, episode, step, observation):
        """The valid action for `step`; holds still (and says so) while none comes. SensorError if the
        sensors go stale meanwhile; None at shutdown."""
        self._publish_observation(episode, step, observation)
        while not rospy.is_shutdown():
            msg = self.inbox.wait_for(episode, step, self.action_timeout)
            if msg is None:
                rospy.logwarn('cloth_env: no action for episode %d step %d within %.1f s (%d /cloth/action publisher(s)'
                              ' connected, %d /cloth/observation subscriber(s)); holding still', episode, step,
                              self.action_timeout, self.action_sub.get_num_connections(),
                              self.obs_pub.get_num_connections())
                self.sensors.check_alive()
                self._publish_observation(episode, step, observation)  # ask again (a late policy may have missed it)
                continue
            try:
                return validate_action(list(msg.data))
            except InvalidActionError as e:
                rospy.logerr('cloth_env: rejected action for episode %d step %d: %s; holding still', episode, step, e)
        return None

    def check_alive(self):
        self.sensors.check_alive()

    def stopped(self):
        return rospy.is_shutdown()

    def timestamp(self, step):
        return rospy.Time.now().to_sec()

    def record(self, step):
        if step.error:
            rospy.logerr('cloth_env: episode %d ends with an error at step %d: %s', step.episode, step.step,
                         step.error_message)
        self.transition_pub.publish(transition_msg(step))


class EnvNode:
    def __init__(self):
        # config/env.yaml node; the /diagnostics thresholds are the drivers' (robot.yaml diagnostics)
        p = node_params('env.yaml', 'node', extra={'diagnostics': section('robot.yaml', 'diagnostics')})
        config = load_env_config(p['config'] or None)
        self.min_subscribers = p['wait_for_recorder']
        topics = sensor_topics(p['tactile_source'])
        self.tactile_source = p['tactile_source']
        self.monitor = monitor = task_monitor(diagnostics_params(p), topics)
        self.sensors = FreshSensors({name: topic for name, (topic, _) in topics.items()},
                                    p['sensor_max_age'], stopped=rospy.is_shutdown,
                                    stamp_clock=lambda: rospy.Time.now().to_sec(), on_store=monitor.tick)
        # tcp_nodelay: a reading is awaited after every move, so Nagle's algorithm must not hold it back
        self._subs = [rospy.Subscriber(topic, cls, self._store, callback_args=name, queue_size=1, tcp_nodelay=True)
                      for name, (topic, cls) in topics.items()]
        to_reading = functools.partial(reading_from_messages, tactile_topic=topics['tactile'][0])
        robot = DriverRobot(ServiceCaller(SERVICE_TYPES, p['service_timeout'], RobotError), self.sensors, to_reading,
                            config.gripper.speed_mm_s, p['wsg_retries'], log=monitor.logger(self._log))
        self.transport = RosTransport(self.sensors, p['action_timeout'])
        world = TaskEnv(ClothSlideTask(config, robot, log=rospy.loginfo))
        self.requests = queue.Queue()
        self.session = Session(EpisodeRunner(world, self.transport), episodes=p['episodes'],
                               autostart=p['autostart'], first_episode=p['first_episode'],
                               wait_for_request=self._next_request, stopped=rospy.is_shutdown, log=self._log,
                               reset_faults=(GraspCalibrationError,), operator='/cloth/reset',
                               on_fault=monitor.error)
        self.diagnostics = Diagnostics('cloth task', monitor.config,
                                       [('task', lambda: task_report(monitor, self.sensors, self.session))])
        self.reset_srv = rospy.Service('/cloth/reset', Trigger, self._on_reset)

    def _store(self, msg, name):
        if name == 'gripper' and not msg.connected:
            return  # a driver without a link publishes stale values: not a reading
        self.sensors.store(name, msg, taken=msg.header.stamp.to_sec())

    @staticmethod
    def _log(level, text):
        ros_log(level, 'cloth_env: ' + text)

    def _next_request(self, timeout):
        try:
            return self.requests.get(timeout=timeout)
        except queue.Empty:
            return None

    def _on_reset(self, _request):
        """Hand a reset to the session (which owns the robot) and wait for its answer."""
        if not self.session.accepting_requests:
            return TriggerResponse(False, self.session.state())
        request = OperatorRequest()
        self.requests.put(request)
        return TriggerResponse(*request.wait())

    @staticmethod
    def _wait_for(what, missing, log_period=5.0):
        next_log = 0.0
        while not rospy.is_shutdown():
            still = missing()
            if not still:
                return
            if time.monotonic() >= next_log:  # (rospy's throttle is per call site: both waits share this one)
                rospy.loginfo('cloth_env: waiting for %s: %s', what, ', '.join(still))
                next_log = time.monotonic() + log_period
            rospy.sleep(0.1)

    def spin(self):
        # Before the first reset: the recorder listening (nothing is lost), every driver service advertised and
        # every sensor heard once (a driver still starting is not a failed calibration, which stops autostart).
        pub = self.transport.transition_pub
        self._wait_for('the recorder', lambda: ['%d /cloth/transition subscriber(s)' % self.min_subscribers]
                       if pub.get_num_connections() < self.min_subscribers else [])
        self._wait_for('the drivers', lambda: unadvertised(DRIVER_SERVICES) + self.sensors.never_heard())
        if rospy.is_shutdown():  # stopped while waiting: the drivers' parameters may be out of reach
            return
        expect_rates(self.monitor, driver_rates(self.tactile_source))  # the drivers' rate parameters are set now
        self.session.run()
        rospy.loginfo('cloth_env: %d episode(s) done; idle', self.session.finished)
        rospy.spin()


def main():
    require_diagnostic_updater('cloth_env')
    init_node('cloth_env')
    EnvNode().spin()


