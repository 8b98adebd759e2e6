"""cloth_env: the cloth-sliding environment as a ROS node over the driver nodes.

Runs plas_ros.env.task.ClothSlideTask (the same step/reset as the in-process gym env) with a Robot made of
the driver nodes' topics and services. Per step: publish /cloth/observation, wait for the /cloth/action with
the same episode/step, execute it, publish /cloth/transition. Sensor data must be fresh: a reading older
than ~sensor_max_age (or a topic that never published) ends the episode with an error transition, never a
made-up value. See doc/env.md.
"""
import queue
import threading
import time

import numpy as np
import rosgraph
import rospy
from geometry_msgs.msg import PoseStamped, WrenchStamped
from std_srvs.srv import Trigger, TriggerResponse

from plas_ros.env.config import load_env_config
from plas_ros.env.gripper_controller import GraspCalibrationError
from plas_ros.env.task import ClothSlideTask, InvalidActionError, Robot, SensorError, SensorReading, validate_action
from plas_ros.hardware.arm import quaternion_to_pitch
from plas_ros.msg import Action, GripperState, Observation, TactileFrame, Transition
from plas_ros.srv import GripperCommand, TipMove

SENSOR_TOPICS = {'tactile': ('/dsa/frame', TactileFrame), 'wrench': ('/arm/wrench', WrenchStamped),
                 'pose': ('/arm/tip_pose', PoseStamped), 'gripper': ('/wsg/state', GripperState)}

DRIVER_SERVICES = ('/arm/move_tip', '/arm/move_to_start', '/wsg/move', '/wsg/ack')


class RobotError(RuntimeError):
    """A driver service failed or is unreachable."""


class FreshSensors:
    """The latest message of every sensor topic with the (monotonic) time it arrived."""

    def __init__(self, max_age):
        self.max_age = float(max_age)
        self._latest = {}
        self._cond = threading.Condition()
        self._subs = [rospy.Subscriber(topic, cls, self._store, callback_args=name, queue_size=1)
                      for name, (topic, cls) in SENSOR_TOPICS.items()]

    def _store(self, msg, name):
        if name == 'gripper' and not msg.connected:
            return  # a driver without a link publishes stale values: not a reading
        with self._cond:
            self._latest[name] = (msg, time.monotonic())
            self._cond.notify_all()

    def _problems(self, since):
        now = time.monotonic()
        problems = []
        for name, (topic, _) in SENSOR_TOPICS.items():
            if name not in self._latest:
                problems.append('%s: no message yet' % topic)
            elif self._latest[name][1] <= since:
                problems.append('%s: last message %.2f s old' % (topic, now - self._latest[name][1]))
        return problems

    def never_heard(self):
        """The sensor topics that have not published yet (a driver still starting)."""
        with self._cond:
            return [topic for name, (topic, _) in SENSOR_TOPICS.items() if name not in self._latest]

    def check_alive(self):
        """SensorError unless every topic published within max_age."""
        with self._cond:
            problems = self._problems(time.monotonic() - self.max_age)
        if problems:
            raise SensorError('stale sensor data (max age %.2f s): %s' % (self.max_age, '; '.join(problems)))

    def wait_newer_than(self, since):
        """The latest messages, once every topic has published after `since` (monotonic); SensorError after
        max_age seconds without that."""
        deadline = time.monotonic() + self.max_age
        with self._cond:
            while self._problems(since):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or rospy.is_shutdown():
                    raise SensorError('stale sensor data (nothing new within %.2f s): %s'
                                      % (self.max_age, '; '.join(self._problems(since))))
                self._cond.wait(remaining)
            return {name: msg for name, (msg, _) in self._latest.items()}


def reading_from_messages(msgs):
    """SensorReading from the four sensor messages (SensorError on malformed data)."""
    frame = msgs['tactile']
    if frame.rows * frame.cols != len(frame.data):
        raise SensorError('/dsa/frame: %d x %d frame with %d values' % (frame.rows, frame.cols, len(frame.data)))
    force = msgs['wrench'].wrench.force
    pose = msgs['pose'].pose
    q = pose.orientation
    try:
        pitch = quaternion_to_pitch([q.x, q.y, q.z, q.w])
    except ValueError as e:
        raise SensorError('/arm/tip_pose: %s' % e) from None
    return SensorReading([force.x, force.y, force.z], np.asarray(frame.data, dtype=np.uint16),
                         [pose.position.x, pose.position.y, pose.position.z, pitch])


class DriverRobot(Robot):
    """The task's Robot over the driver nodes: arm and gripper services, fresh sensor topics."""

    def __init__(self, sensors, width_speed, wsg_retries, service_timeout):
        self.sensors = sensors
        self.width_speed = float(width_speed)
        self.wsg_retries = int(wsg_retries)
        self.service_timeout = float(service_timeout)
        self.last_motion = time.monotonic()
        self._services = {}

    def _service(self, name, cls):
        if name not in self._services:
            try:
                rospy.wait_for_service(name, timeout=self.service_timeout)
            except rospy.ROSException:
                raise RobotError('service %s not available within %.1f s' % (name, self.service_timeout)) from None
            self._services[name] = rospy.ServiceProxy(name, cls)
        return self._services[name]

    def _call(self, name, cls, *args):
        try:
            return self._service(name, cls)(*args)
        except rospy.ServiceException as e:
            self._services.pop(name, None)
            raise RobotError('%s failed: %s' % (name, e)) from None

    def move_tip(self, dy, dz):
        result = self._call('/arm/move_tip', TipMove, float(dy), float(dz), 0.0)
        self.last_motion = time.monotonic()
        if not result.success:
            raise RobotError('/arm/move_tip(dy=%.4f, dz=%.4f) failed: %s' % (dy, dz, result.message))

    def set_width(self, width_mm):
        message = ''
        for attempt in range(self.wsg_retries + 1):
            if attempt:
                rospy.logwarn('cloth_env: /wsg/move to %.2f mm failed (%s); acknowledging the fault, retry %d/%d',
                              width_mm, message, attempt, self.wsg_retries)
                self._call('/wsg/ack', Trigger)
            result = self._call('/wsg/move', GripperCommand, float(width_mm), self.width_speed)
            self.last_motion = time.monotonic()
            if result.success:
                return
            message = 'status %d: %s' % (result.status, result.message)
        raise RobotError('/wsg/move to %.2f mm failed after %d retries: %s' % (width_mm, self.wsg_retries, message))

    def read(self):
        return reading_from_messages(self.sensors.wait_newer_than(self.last_motion))

    def move_to_start(self):
        result = self._call('/arm/move_to_start', Trigger)
        self.last_motion = time.monotonic()
        if not result.success:
            raise RobotError('/arm/move_to_start failed: %s' % result.message)


class ActionInbox:
    """The latest /cloth/action; `wait_for(episode, step, timeout)` returns the one answering that step."""

    def __init__(self):
        self._cond = threading.Condition()
        self._latest = None

    def put(self, msg):
        with self._cond:
            self._latest = msg
            self._cond.notify_all()

    def wait_for(self, episode, step, timeout):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                msg = self._latest
                if msg is not None and msg.episode == episode and msg.step == step:
                    self._latest = None
                    return msg
                remaining = deadline - time.monotonic()
                if remaining <= 0 or rospy.is_shutdown():
                    return None
                self._cond.wait(remaining)


def _advertised(service):
    try:
        rosgraph.Master(rospy.get_name()).lookupService(service)
        return True
    except rosgraph.MasterException:  # not registered (or the master could not say)
        return False


def _stamped(msg):
    msg.header.stamp = rospy.Time.now()
    return msg


class EnvNode:
    def __init__(self):
        self.config = load_env_config(rospy.get_param('~config', None))
        self.episodes = int(rospy.get_param('~episodes', 0))
        self.autostart = bool(rospy.get_param('~autostart', True))
        self.action_timeout = float(rospy.get_param('~action_timeout', 1.0))
        self.min_subscribers = int(rospy.get_param('~wait_for_recorder', 0))
        self.episode = int(rospy.get_param('~first_episode', 0))
        self.sensors = FreshSensors(rospy.get_param('~sensor_max_age', 0.5))
        self.robot = DriverRobot(self.sensors, self.config.gripper.speed_mm_s, rospy.get_param('~wsg_retries', 3),
                                 rospy.get_param('~service_timeout', 10.0))
        self.task = ClothSlideTask(self.config, self.robot, log=rospy.loginfo)
        self.inbox = ActionInbox()
        self.obs_pub = rospy.Publisher('/cloth/observation', Observation, queue_size=1)
        self.transition_pub = rospy.Publisher('/cloth/transition', Transition, queue_size=100)
        self.action_sub = rospy.Subscriber('/cloth/action', Action, self.inbox.put, queue_size=10)
        self.finished = 0
        self.accepting_resets = False
        self.reset_requests = queue.Queue()
        self.reset_srv = rospy.Service('/cloth/reset', Trigger, self._on_reset)

    # ------------------------------------------------------------------------------------------ reset

    def _on_reset(self, _request):
        """Queue a reset for the main loop (which owns the robot) and wait for its answer."""
        if not self.accepting_resets:
            state = 'all %d episode(s) are done' % self.finished if not self._episodes_left() else (
                'episode %d is in progress or starting by itself (~autostart)' % self.episode)
            return TriggerResponse(False, state)
        reply = queue.Queue()
        self.reset_requests.put(reply)
        success, message = reply.get()
        return TriggerResponse(success, message)

    def _reset(self):
        """(success, message); calibrates the grasp for a new episode."""
        try:
            self.task.reset()
        except (GraspCalibrationError, SensorError, RobotError) as e:
            rospy.logerr('cloth_env: reset for episode %d failed: %s', self.episode, e)
            return False, str(e)
        message = 'episode %d ready: grasp at %.1f mm (height %+.3f m)' % (
            self.episode, self.task.calibration.width_mm, self.task.calibration.height_offset_m)
        rospy.loginfo('cloth_env: %s', message)
        return True, message

    # ------------------------------------------------------------------------------------------ episode

    def _publish_observation(self, step):
        self.obs_pub.publish(_stamped(Observation(episode=self.episode, step=step,
                                                  data=self.task.observation.tolist())))

    def _await_action(self, step):
        """The valid action for `step`; holds still (and says so) while none comes. SensorError if the sensors
        go stale meanwhile."""
        self._publish_observation(step)
        while not rospy.is_shutdown():
            msg = self.inbox.wait_for(self.episode, step, self.action_timeout)
            if msg is None:
                rospy.logwarn('cloth_env: no action for episode %d step %d within %.1f s (%d /cloth/action publisher(s)'
                              ' connected, %d /cloth/observation subscriber(s)); holding still', self.episode, step,
                              self.action_timeout, self.action_sub.get_num_connections(),
                              self.obs_pub.get_num_connections())
                self.sensors.check_alive()
                self._publish_observation(step)  # ask again (a late policy may have missed it)
                continue
            try:
                return validate_action(list(msg.data))
            except InvalidActionError as e:
                rospy.logerr('cloth_env: rejected action for episode %d step %d: %s; holding still',
                             self.episode, step, e)
        return None

    def _transition(self, step, observation, action):
        return Transition(episode=self.episode, step=step, observation=observation.tolist(),
                          action=[] if action is None else np.asarray(action).tolist())

    def _publish_result(self, step, observation, result):
        msg = self._transition(step, observation, result.action)
        reading = result.reading
        msg.reward = result.reward
        msg.next_observation = result.observation.tolist()
        msg.terminal, msg.timeout = result.terminal, result.timeout
        msg.gripper_width, msg.gripper_adjustment = result.gripper.width_mm, result.gripper.adjustment
        msg.tactile_raw = reading.tactile_raw.reshape(-1).tolist()
        msg.force_raw = reading.force_n.tolist()
        msg.tip_pose = reading.tip_pose.tolist()
        self.transition_pub.publish(_stamped(msg))

    def _publish_error(self, step, observation, action, error):
        """The episode ends on a fault: an error transition without a next observation (nothing made up)."""
        self.task.abort()
        rospy.logerr('cloth_env: episode %d ends with an error at step %d: %s', self.episode, step, error)
        msg = self._transition(step, observation, action)
        msg.error, msg.error_message = True, str(error)
        if self.task.controller is not None:
            msg.gripper_width = self.task.controller.width_mm
        self.transition_pub.publish(_stamped(msg))

    def run_episode(self):
        step = 0
        while not self.task.done and not rospy.is_shutdown():
            observation = self.task.observation
            action = None
            try:
                action = self._await_action(step)
                if action is None:
                    return
                self.sensors.check_alive()
                result = self.task.step(action)
            except (SensorError, RobotError) as e:
                if rospy.is_shutdown():
                    return  # shutting down: the silence is ours, not a sensor fault
                self._publish_error(step, observation, action, e)
                break
            self._publish_result(step, observation, result)
            step += 1
        self.finished += 1
        self.episode += 1

    # ------------------------------------------------------------------------------------------ main loop

    def _episodes_left(self):
        return self.episodes <= 0 or self.finished < self.episodes

    def _wait_for_recorder(self):
        while self.transition_pub.get_num_connections() < self.min_subscribers and not rospy.is_shutdown():
            rospy.loginfo_throttle(5.0, 'cloth_env: waiting for %d /cloth/transition subscriber(s)'
                                   % self.min_subscribers)
            rospy.sleep(0.1)

    def _wait_for_drivers(self):
        """Before the first reset: every driver service advertised and every sensor topic heard once, so a
        driver still starting is not taken for a failed calibration (which would stop autostart)."""
        while not rospy.is_shutdown():
            missing = [name for name in DRIVER_SERVICES if not _advertised(name)] + self.sensors.never_heard()
            if not missing:
                return
            rospy.loginfo_throttle(5.0, 'cloth_env: waiting for the drivers: %s' % ', '.join(missing))
            rospy.sleep(0.1)

    def spin(self):
        self._wait_for_recorder()
        self._wait_for_drivers()
        autostart = self.autostart
        while not rospy.is_shutdown() and self._episodes_left():
            reply = None
            if not autostart:
                self.accepting_resets = True
                try:
                    reply = self.reset_requests.get(timeout=0.2)
                except queue.Empty:
                    continue
                finally:
                    self.accepting_resets = False
            success, message = self._reset()
            if reply is not None:
                reply.put((success, message))
            if not success:
                autostart = False  # the operator must look: wait for /cloth/reset
                rospy.logerr('cloth_env: waiting for /cloth/reset')
                continue
            if reply is not None and self.autostart and not autostart:
                rospy.loginfo('cloth_env: the operator reset worked; running episodes back to back again')
                autostart = True
            self.run_episode()
        rospy.loginfo('cloth_env: %d episode(s) done; idle', self.finished)
        rospy.spin()


def main():
    rospy.init_node('cloth_env')
    EnvNode().spin()
