"""The task over remote drivers (the ROS driver nodes), without ROS: fresh sensor readings, the action that
answers a step, and the gripper's retry policy. The env node supplies the transport (subscribers that call
`FreshSensors.store`, a service caller, the action subscriber that calls `ActionInbox.put`); everything that
decides lives here and is tested without a master.

Sensor data must be fresh: a reading older than `max_age` (or a topic that never published) ends the
episode with an error, never with a made-up value. Every wait is bounded.
"""
import threading
import time

from plas_ros.env.task import Robot, RobotError, SensorError

# The driver services the task calls, by their names in the graph.
MOVE_TIP, MOVE_TO_START, GRIPPER_MOVE, GRIPPER_ACK = '/arm/move_tip', '/arm/move_to_start', '/wsg/move', '/wsg/ack'
DRIVER_SERVICES = (MOVE_TIP, MOVE_TO_START, GRIPPER_MOVE, GRIPPER_ACK)


class FreshSensors:
    """The latest message of every sensor with the (monotonic) time it arrived.

    `topics` maps a sensor name to the label used in messages (its topic name).
    """

    def __init__(self, topics, max_age, clock=time.monotonic, stopped=lambda: False):
        self.topics = dict(topics)
        self.max_age = float(max_age)
        self.clock = clock
        self.stopped = stopped
        self._latest = {}
        self._cond = threading.Condition()

    def store(self, name, msg):
        with self._cond:
            self._latest[name] = (msg, self.clock())
            self._cond.notify_all()

    def _problems(self, since):
        now = self.clock()
        problems = []
        for name, topic in self.topics.items():
            if name not in self._latest:
                problems.append('%s: no message yet' % topic)
            elif self._latest[name][1] <= since:
                problems.append('%s: last message %.2f s old' % (topic, now - self._latest[name][1]))
        return problems

    def never_heard(self):
        """The sensor topics that have not published yet (a driver still starting)."""
        with self._cond:
            return [topic for name, topic in self.topics.items() if name not in self._latest]

    def check_alive(self):
        """SensorError unless every topic published within max_age."""
        with self._cond:
            problems = self._problems(self.clock() - self.max_age)
        if problems:
            raise SensorError('stale sensor data (max age %.2f s): %s' % (self.max_age, '; '.join(problems)))

    def wait_newer_than(self, since):
        """The latest messages, once every topic has published after `since` (monotonic); SensorError after
        max_age seconds without that."""
        deadline = self.clock() + self.max_age
        with self._cond:
            while self._problems(since):
                remaining = deadline - self.clock()
                if remaining <= 0 or self.stopped():
                    raise SensorError('stale sensor data (nothing new within %.2f s): %s'
                                      % (self.max_age, '; '.join(self._problems(since))))
                self._cond.wait(min(remaining, 0.1))
            return {name: msg for name, (msg, _) in self._latest.items()}


class ActionInbox:
    """The latest action message; `wait_for(episode, step, timeout)` returns the one answering that step."""

    def __init__(self, clock=time.monotonic, stopped=lambda: False):
        self.clock = clock
        self.stopped = stopped
        self._cond = threading.Condition()
        self._latest = None

    def put(self, msg):
        with self._cond:
            self._latest = msg
            self._cond.notify_all()

    def wait_for(self, episode, step, timeout):
        deadline = self.clock() + timeout
        with self._cond:
            while True:
                msg = self._latest
                if msg is not None and msg.episode == episode and msg.step == step:
                    self._latest = None
                    return msg
                remaining = deadline - self.clock()
                if remaining <= 0 or self.stopped():
                    return None
                self._cond.wait(min(remaining, 0.1))


class DriverRobot(Robot):
    """The task's Robot over the driver services and fresh sensor topics.

    `call(service, *args)` calls a driver service and returns its response (RobotError when it is not
    available or fails); `to_reading(messages)` makes a SensorReading of the latest sensor messages.
    A failed gripper move is acknowledged and retried up to `wsg_retries` times (the authors' recovery).
    """

    def __init__(self, call, sensors: FreshSensors, to_reading, width_speed, wsg_retries, log=None,
                 clock=time.monotonic):
        self.call = call
        self.sensors = sensors
        self.to_reading = to_reading
        self.width_speed = float(width_speed)
        self.wsg_retries = int(wsg_retries)
        self.log = log or (lambda level, text: None)
        self.clock = clock
        self.last_motion = clock()

    def _moved(self):
        self.last_motion = self.clock()

    def move_tip(self, dy, dz):
        result = self.call(MOVE_TIP, float(dy), float(dz), 0.0)
        self._moved()
        if not result.success:
            raise RobotError('%s(dy=%.4f, dz=%.4f) failed: %s' % (MOVE_TIP, dy, dz, result.message))

    def set_width(self, width_mm):
        message = ''
        for attempt in range(self.wsg_retries + 1):
            if attempt:
                self.log(30, '%s to %.2f mm failed (%s); acknowledging the fault, retry %d/%d'
                         % (GRIPPER_MOVE, width_mm, message, attempt, self.wsg_retries))
                self.call(GRIPPER_ACK)
            result = self.call(GRIPPER_MOVE, float(width_mm), self.width_speed)
            self._moved()
            if result.success:
                return
            message = 'status %d: %s' % (result.status, result.message)
        raise RobotError('%s to %.2f mm failed after %d retries: %s'
                         % (GRIPPER_MOVE, width_mm, self.wsg_retries, message))

    def read(self):
        return self.to_reading(self.sensors.wait_newer_than(self.last_motion))

    def move_to_start(self):
        result = self.call(MOVE_TO_START)
        self._moved()
        if not result.success:
            raise RobotError('%s failed: %s' % (MOVE_TO_START, result.message))
