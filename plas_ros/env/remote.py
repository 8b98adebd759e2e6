"""The task over remote drivers (the ROS driver nodes), without ROS: fresh sensor readings, the action that
answers a step, and the gripper's retry policy. The env node supplies the transport (subscribers that call
`FreshSensors.store`, a service caller, the action subscriber that calls `ActionInbox.put`); everything that
decides lives here and is tested without a master.

Sensor data must be fresh: a step uses only readings taken after its last motion ended (by their stamps), and
a topic silent for `max_age` (or one that never published) ends the episode with an error, never with a made-up
value. Every wait is bounded.
"""
import threading
import time

from plas_ros.env.task import Robot, RobotError, SensorError

# The driver services the task calls, by their names in the graph.
MOVE_TIP, MOVE_TO_START, GRIPPER_MOVE, GRIPPER_ACK = '/arm/move_tip', '/arm/move_to_start', '/wsg/move', '/wsg/ack'
DRIVER_SERVICES = (MOVE_TIP, MOVE_TO_START, GRIPPER_MOVE, GRIPPER_ACK)


class FreshSensors:
    """The latest message of every sensor, with when its reading was taken and when it arrived.

    `topics` maps a sensor name to the label used in messages (its topic name). Freshness is judged by the
    time a reading was *taken* (`store(..., taken=)`: the message's header stamp, on `stamp_clock`; by
    default its arrival), so that a reading taken before a motion ended is never used after it, however late
    it arrives. Staleness (`max_age`, every bounded wait) is judged on `clock`, by arrival. `on_store(name)`
    hears every message stored (the task's Monitor measures the streams' rates: plas_ros.env.health).
    """

    def __init__(self, topics, max_age, clock=time.monotonic, stopped=lambda: False, stamp_clock=time.time,
                 on_store=None):
        self.topics = dict(topics)
        self.max_age = float(max_age)
        self.clock = clock
        self.stamp_clock = stamp_clock
        self.stopped = stopped
        self.on_store = on_store or (lambda name: None)
        self._latest = {}
        self._cond = threading.Condition()

    def store(self, name, msg, taken=None):
        with self._cond:
            self._latest[name] = (msg, self.clock(), self.stamp_clock() if taken is None else float(taken))
            self._cond.notify_all()
        self.on_store(name)

    def ages(self):
        """{name: seconds (clock) since its latest message arrived, None before the first}."""
        with self._cond:
            now = self.clock()
            return {name: now - self._latest[name][1] if name in self._latest else None for name in self.topics}

    def _silent(self, name, topic, since):
        """Why `name` has no message that arrived after `since` (clock), or None."""
        if name not in self._latest:
            return '%s: no message yet' % topic
        arrived = self._latest[name][1]
        if arrived <= since:
            return '%s: last message %.2f s old' % (topic, self.clock() - arrived)
        return None

    def _problems(self, since):
        problems = (self._silent(name, topic, since) for name, topic in self.topics.items())
        return [p for p in problems if p]

    def _not_taken_after(self, motion_end):
        """What keeps the readings from being all taken after `motion_end` (stamp_clock)."""
        problems = []
        for name, topic in self.topics.items():
            if name not in self._latest:
                problems.append('%s: no message yet' % topic)
                continue
            before = motion_end - self._latest[name][2]
            if before >= 0:
                problems.append('%s: newest reading taken %.3f s before the last motion ended' % (topic, before))
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

    def wait_taken_after(self, motion_end):
        """The latest messages, once every reading was taken after `motion_end` (stamp_clock); SensorError
        after max_age seconds without that."""
        deadline = self.clock() + self.max_age
        with self._cond:
            while self._not_taken_after(motion_end):
                remaining = deadline - self.clock()
                if remaining <= 0 or self.stopped():
                    raise SensorError('stale sensor data (nothing new within %.2f s): %s'
                                      % (self.max_age, '; '.join(self._not_taken_after(motion_end))))
                self._cond.wait(min(remaining, 0.1))
            return {name: msg for name, (msg, _, _) in self._latest.items()}


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

    def __init__(self, call, sensors: FreshSensors, to_reading, width_speed, wsg_retries, log=None):
        self.call = call
        self.sensors = sensors
        self.to_reading = to_reading
        self.width_speed = float(width_speed)
        self.wsg_retries = int(wsg_retries)
        self.log = log or (lambda level, text: None)
        # the clock readings are stamped with (a robot that only moves, as a replay drives it, has no sensors)
        self.stamp_clock = time.time if sensors is None else sensors.stamp_clock
        self.last_motion = self.stamp_clock()

    def _moved(self):
        # The motion's reply is here, so the motion ended before now.
        self.last_motion = self.stamp_clock()

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
        return self.to_reading(self.sensors.wait_taken_after(self.last_motion))

    def move_to_start(self):
        result = self.call(MOVE_TO_START)
        self._moved()
        if not result.success:
            raise RobotError('%s failed: %s' % (MOVE_TO_START, result.message))
