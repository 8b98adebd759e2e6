"""What the wsg_driver node does, without ROS (doc/wsg.md, "Driver"; README.md, wsg_driver).

`WsgDriver` runs over a `WsgClient`:

* on every connection it reads the gripper's limits (0x53, once) and, when tactile fingers are configured, their
  info (0x60 / 0x70, once, logged as raw codes); it waits for the first system state, clears (0x24 "ack") a FAST
  STOP that a lost link latched, never one that was requested through `fast_stop`, and homes (0x20) when the
  gripper reports itself not referenced and `home_on_start` is set; motion commands wait (bounded) for this;
* it checks commands against the limits before sending them, bounds every motion's wait (a motion that could
  take longer than `max_motion_time` is refused up front) and takes 29 (axis blocked) as the ordinary end of a
  move;
* it rejects state values that are not finite or lie outside the limits: never a reading, counted, logged;
* `TactilePoller` reads the selected fingers' data (0x63 / 0x73) at a fixed rate and hands each valid frame on;
  a finger that answers with an error status or a reply of the wrong size is named, counted and skipped.

The node (plas_ros/nodes/wsg_node.py) only wires these to topics, services and parameters.
"""
import collections
import logging
import math
import threading
import time

from plas_ros.hardware.wsg.client import WsgClient
from plas_ros.hardware.wsg.protocol import (
    FINGERS,
    Command,
    FrameError,
    Status,
    SystemFlag,
    WsgError,
    WsgLinkError,
    check_limits,
    command_name,
    finger_command,
)

LIMIT_SLACK = 1e-4        # the limits travel as f32: 0.1 mm/s arrives as 0.10000000149
STATE_TOLERANCE = 0.01    # a measured value may exceed its limit by 1 % (plus LIMIT_SLACK) before it is rejected
SUPERVISOR_PERIOD = 0.05  # s between two looks at the link
LOG_EVERY = 5.0           # s between two log lines on the same recurring problem

_LOG = logging.getLogger('plas_ros.wsg')
CommandResult = collections.namedtuple('CommandResult', 'success status message width')

HINTS = {
    Status.ACCESS_DENIED: 'fast stop active: call ack, then retry',
    Status.COMMAND_FAILED: 'the grasp found no part between the fingers',
    Status.COMMAND_ABORTED: 'aborted by stop, fast stop or a newer motion',
    Status.RANGE_ERROR: 'outside the gripper limits',
    Status.NOT_INITIALIZED: 'the gripper is not referenced: call home',
}


def explain(what, error):
    """'move to 3.00 mm at 70.0 mm/s failed: WSG MOVE (0x21) failed: status 16 ACCESS_DENIED (fast stop ...)'."""
    if isinstance(error, WsgLinkError):
        hint = 'the driver keeps reconnecting'
    else:
        hint = HINTS.get(error.status, '')
    return '%s failed: %s%s' % (what, error, ' (%s)' % hint if hint else '')


class Throttle:
    """True at most once every `every` s per key: for log lines on problems that recur at a rate."""

    def __init__(self, every=LOG_EVERY, clock=time.monotonic):
        self.every = every
        self._clock = clock
        self._last = {}

    def __call__(self, key):
        now = self._clock()
        last = self._last.get(key)
        if last is not None and now - last < self.every:
            return False
        self._last[key] = now
        return True


class DriverCounters:
    """What the driver did and refused so far (the node logs them)."""

    FIELDS = ('homings', 'fast_stops_cleared', 'bad_limits', 'refused_commands', 'finger_frames', 'finger_errors')

    def __init__(self):
        self.homings = self.fast_stops_cleared = self.bad_limits = self.refused_commands = 0
        self.finger_frames = {finger: 0 for finger in FINGERS}
        self.finger_errors = {finger: 0 for finger in FINGERS}

    def as_dict(self):
        return {name: (dict(getattr(self, name)) if isinstance(getattr(self, name), dict) else getattr(self, name))
                for name in self.FIELDS}


class WsgDriver:
    """The driver's logic over `client` (a WsgClient, not started: start() does it).

    `log(level, text)` receives its log lines. Thread-safe: services may call `command` and `trigger` from
    any thread while `start()`'s supervisor thread watches the link.
    """

    def __init__(self, client: WsgClient, default_speed, timeout, homing_timeout, max_motion_time, home_on_start=True,
                 stop_on_block=False, stale_after=None, tactile_fingers=(), log=None):
        self.client = client
        self.default_speed = _positive(default_speed, 'default_speed (mm/s)')
        self.timeout = _positive(timeout, 'timeout (s)')
        self.homing_timeout = _positive(homing_timeout, 'homing_timeout (s)')
        self.max_motion_time = _positive(max_motion_time, 'max_motion_time (s)')
        self.home_on_start = bool(home_on_start)
        self.stop_on_block = bool(stop_on_block)
        self.stale_after = _positive(stale_after if stale_after is not None else client.stale_after, 'stale_after (s)')
        self.tactile_fingers = check_fingers(tactile_fingers)
        self.limits = None
        self.finger_info = {}          # finger -> raw info bytes, read once
        self.counters = DriverCounters()
        self._log = log or (lambda level, text: _LOG.log(level, text))
        self._throttle = Throttle()
        self._lock = threading.Lock()
        self._ready = threading.Condition(threading.Lock())
        self._handled = None           # number of the connection whose start-up is done
        self._flags_seen = None        # (flags, connection number): the last system state seen
        self._fast_stop_requested = False
        self._closing = threading.Event()
        self._thread = None
        client.validator = self.check_value

    # ------------------------------------------------------------------ lifecycle

    def start(self):
        self.client.start()
        if self._thread is None:
            self._thread = threading.Thread(target=self._supervise, name='wsg-driver', daemon=True)
            self._thread.start()
        return self

    def close(self):
        """Stop supervising and close the link (announced: 0x07)."""
        self._closing.set()
        self.client.close()  # first: a homing in progress ends at once (link down) rather than holding the thread
        if self._thread is not None:
            self._thread.join(2.0 * self.timeout + 1.0)
            self._thread = None

    def stats(self):
        return dict(self.client.stats(), **self.counters.as_dict())

    @property
    def fast_stop_requested(self):
        """A fast stop was asked for through `trigger('fast_stop')` and not acknowledged since."""
        return self._fast_stop_requested

    def stats_text(self):
        """The counters that are not zero, e.g. 'connects 2, disconnects 1, finger_frames 1: 40'."""
        parts = []
        for name, value in self.stats().items():
            if isinstance(value, dict):
                value = ', '.join('%s: %d' % kv for kv in value.items() if kv[1])
            if value:
                parts.append('%s %s' % (name, value))
        return ', '.join(parts) or 'no counts yet'

    # ------------------------------------------------------------------ limits and values

    def read_limits(self):
        """The gripper's limits (0x53), read once and checked; None while they could not be read."""
        with self._lock:
            if self.limits is not None or not self.client.connected:
                return self.limits
            try:
                limits = self.client.system_limits()
                info = self.client.system_info()
            except (WsgError, FrameError) as exc:
                if self._throttle('limits'):
                    self._log(logging.WARNING, 'wsg_driver: reading the gripper limits failed: %s' % exc)
                return None
            problem = check_limits(limits)
            if problem is not None:
                self.counters.bad_limits += 1
                if self._throttle('limits'):
                    self._log(logging.ERROR, 'wsg_driver: the gripper at %s:%d reports unusable limits (%d so far): %s'
                              % (self.client.host, self.client.port, self.counters.bad_limits, problem))
                return None
            self.limits = limits
            self._log(logging.INFO, 'wsg_driver: gripper type %d hw %d fw 0x%04X serial %d; limits %s' % (
                info.device_type, info.hardware_revision, info.firmware_version, info.serial_number,
                ', '.join('%s %.1f' % kv for kv in limits._asdict().items())))
            return limits

    def check_value(self, command, value):
        """The client's validator: why an auto-updated value cannot be a reading of this gripper, or None."""
        limits = self.limits
        if limits is None:
            return None  # nothing to check against yet (the client still rejects non-finite values)
        if command == Command.OPENING_WIDTH:
            bound = limits.stroke
        elif command == Command.SPEED:
            bound = limits.max_speed
        elif command == Command.FORCE:
            bound = max(limits.max_force, limits.overdrive_force)
        else:
            return None
        high = bound * (1.0 + STATE_TOLERANCE) + LIMIT_SLACK
        low = -high if command != Command.OPENING_WIDTH else -(bound * STATE_TOLERANCE + LIMIT_SLACK)
        if not low <= value <= high:
            return '%s %.4g is outside the gripper limits (%.4g..%.4g)' % (command_name(command), value, low, high)
        return None

    def state(self):
        """The five state values as one reading (each younger than stale_after, limits known), else None."""
        if self.limits is None:
            return None
        return self.client.state(self.stale_after)

    def width_now(self):
        """The current width, NaN when there is no current reading."""
        width = self.client.value(Command.OPENING_WIDTH, self.stale_after) if self.client.connected else None
        return math.nan if width is None else width

    def _width_after_motion(self):
        """The first width reported after the motion's final reply (NaN if none comes: never a guess)."""
        width = self.client.wait_value(Command.OPENING_WIDTH, time.monotonic(), self.timeout)
        return math.nan if width is None else width

    # ------------------------------------------------------------------ motion commands

    def check_command(self, width, speed):
        """None if the gripper accepts width (mm) and speed (mm/s), else why not."""
        limits = self.read_limits()
        if limits is None:
            return 'the gripper is not connected (its limits are not known yet)'
        if not math.isfinite(width) or not -LIMIT_SLACK <= width <= limits.stroke + LIMIT_SLACK:
            return 'width %.3f mm is outside the gripper stroke 0..%.2f mm' % (width, limits.stroke)
        if not math.isfinite(speed) or not (limits.min_speed - LIMIT_SLACK <= speed
                                            <= limits.max_speed + LIMIT_SLACK):
            return 'speed %.3f mm/s is outside the gripper range %.2f..%.2f mm/s' % (
                speed, limits.min_speed, limits.max_speed)
        return None

    def motion_timeout(self, name, width, speed):
        """(timeout for the final reply, None) or (None, why the motion is refused): a motion that could take
        longer than max_motion_time is refused before it starts (no wait is unbounded)."""
        current = self.client.value(Command.OPENING_WIDTH)
        if current is None:
            current = self.limits.stroke
        travel = current if name == 'grasp' else abs(width - current)  # a grasp may close to 0
        timeout = self.timeout + 1.5 * travel / speed
        if not timeout <= self.max_motion_time:
            return None, '%s over %.2f mm at %.3f mm/s could take %.0f s, more than max_motion_time %.0f s' % (
                name, travel, speed, timeout, self.max_motion_time)
        return timeout, None

    def command(self, name, width, speed=0.0):
        """move, grasp or release to `width` (mm) at `speed` (mm/s; 0: default_speed) -> CommandResult."""
        if name not in ('move', 'grasp', 'release'):
            raise ValueError('unknown motion command %r' % (name,))
        speed = self.default_speed if speed == 0.0 else speed
        what = '%s to %.2f mm at %.1f mm/s' % (name, width, speed)
        refusal = self.check_command(width, speed)
        if refusal is not None:
            return self._refused(what, refusal, Status.NOT_OPEN if self.limits is None else Status.RANGE_ERROR)
        timeout, refusal = self.motion_timeout(name, width, speed)
        if refusal is not None:
            return self._refused(what, refusal, Status.RANGE_ERROR)
        refusal = self._wait_ready()
        if refusal is not None:
            return self._refused(what, refusal, Status.NOT_INITIALIZED)
        try:
            if name == 'move':
                status = self.client.move(width, speed, stop_on_block=self.stop_on_block, timeout=timeout)
            else:
                getattr(self.client, name)(width, speed, timeout=timeout)
                status = Status.SUCCESS
        except (WsgError, ValueError) as exc:
            if not isinstance(exc, WsgError):  # the codec refused a value the checks let through
                return self._refused(what, str(exc), Status.INVALID_PARAMETER)
            message = explain(what, exc)
            self._log(logging.WARNING, 'wsg_driver: %s' % message)
            return CommandResult(False, int(exc.status), message, self.width_now())
        width_after = self._width_after_motion()
        message = ''
        if status == Status.AXIS_BLOCKED:
            message = 'axis blocked at %.2f mm: the fingers met the part (status 29, the ordinary end of a ' \
                      'stop-on-block move)' % width_after
            self._log(logging.INFO, 'wsg_driver: %s: %s' % (what, message))
        return CommandResult(True, int(status), message, width_after)

    def _refused(self, what, refusal, status):
        self.counters.refused_commands += 1
        self._log(logging.WARNING, 'wsg_driver: %s refused: %s' % (what, refusal))
        return CommandResult(False, int(status), 'refused: ' + refusal, self.width_now())

    def trigger(self, name):
        """home, stop, fast_stop or ack -> (success, message)."""
        calls = {'home': lambda: self.client.homing(timeout=self.homing_timeout), 'stop': self.client.stop,
                 'fast_stop': self.client.fast_stop, 'ack': self.client.ack_fault}
        if name not in calls:
            raise ValueError('unknown trigger %r' % (name,))
        if name == 'fast_stop':
            self._fast_stop_requested = True  # before it is sent: whatever becomes of the reply, it was asked for
        try:
            calls[name]()
        except WsgError as exc:
            message = explain(name, exc)
            self._log(logging.WARNING, 'wsg_driver: %s' % message)
            return False, message
        if name == 'ack':
            self._fast_stop_requested = False
        return True, '%s done' % name

    # ------------------------------------------------------------------ start-up of each connection

    def _wait_ready(self):
        """None once the current connection's start-up (fast stop check, homing) is done or the link is down;
        else, after homing_timeout, why not."""
        deadline = time.monotonic() + self.homing_timeout + 2.0 * self.timeout
        with self._ready:
            while True:
                connection = self.client.connection
                if connection is None or connection[0] == self._handled:
                    return None
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return 'the gripper is still being prepared after (re)connecting (homing); retry'
                self._ready.wait(min(remaining, SUPERVISOR_PERIOD))

    def _supervise(self):
        while not self._closing.is_set():
            connection = self.client.connection
            if connection is None:
                self.client.wait_connected(SUPERVISOR_PERIOD)
                continue
            number, since = connection
            if number != self._handled:
                try:
                    self.prepare(number, since)
                except WsgError as exc:  # the link dropped while preparing: the next connection does it again
                    self._log(logging.WARNING, 'wsg_driver: preparing the gripper failed: %s' % exc)
                    if not isinstance(exc, WsgLinkError):
                        self._done(number)
                else:
                    self._done(number)
                continue
            self._remember_flags()
            if self.limits is None:
                self.read_limits()  # they could not be read on connecting: keep trying (logged, throttled)
            self._closing.wait(SUPERVISOR_PERIOD)

    def _done(self, number):
        with self._ready:
            self._handled = number
            self._ready.notify_all()

    def _remember_flags(self):
        entry = self.client.value_entry(Command.SYSTEM_STATE)
        if entry is not None and entry[2] == self._handled:
            self._flags_seen = (entry[0], entry[2])

    def prepare(self, number, since):
        """Connection `number` (up since monotonic `since`) came up: limits, finger info, fast stop, homing."""
        previous = self._flags_seen
        self.read_limits()
        self._read_finger_info()
        flags = self.client.wait_value(Command.SYSTEM_STATE, since, self.timeout)
        if flags is None:
            self._log(logging.WARNING, 'wsg_driver: no system state within %.1f s of connecting; not checking '
                      'the fast stop and the reference' % self.timeout)
            return
        self._flags_seen = (flags, number)
        flags = SystemFlag(flags)
        if SystemFlag.FAST_STOP in flags and not self._clear_link_fast_stop(number, previous):
            if not flags & SystemFlag.REFERENCED:
                self._log(logging.WARNING, 'wsg_driver: the gripper is not referenced, and cannot home during the '
                          'fast stop: call ack, then home')
            return
        if SystemFlag.REFERENCED in flags:
            return
        if not self.home_on_start:
            self._log(logging.WARNING, 'wsg_driver: the gripper is not referenced (system state bit 0 clear) and '
                      'home_on_start is false: call home before moving')
            return
        self._log(logging.INFO, 'wsg_driver: the gripper is not referenced (system state bit 0 clear): homing')
        self.counters.homings += 1
        self.client.homing(timeout=self.homing_timeout)
        self._log(logging.INFO, 'wsg_driver: homing done')

    def _clear_link_fast_stop(self, number, previous):
        """Acknowledge the FAST STOP the lost link latched; True if it did. Never one that was requested
        (fast_stop), was already on before the link was lost, or was found on the first connection."""
        if self._fast_stop_requested:
            self._log(logging.WARNING, 'wsg_driver: the FAST STOP requested through fast_stop is still active: '
                      'call ack to clear it')
            return False
        if number <= 1 or previous is None or SystemFlag.FAST_STOP in SystemFlag(previous[0]):
            why = ('at start-up' if number <= 1 else 'already before the link was lost' if previous is not None
                   else 'with no state seen before the link was lost')
            self._log(logging.WARNING, 'wsg_driver: the gripper is in FAST STOP %s, not caused by this driver: '
                      'call ack to clear it' % why)
            return False
        self.client.ack_fault()
        self.counters.fast_stops_cleared += 1
        self._log(logging.WARNING, 'wsg_driver: cleared (0x24 ack) the FAST STOP that the lost link latched '
                  '(reconnection %d; %d cleared so far)' % (number - 1, self.counters.fast_stops_cleared))
        return True

    def _read_finger_info(self):
        for finger in self.tactile_fingers:
            if finger in self.finger_info:
                continue
            try:
                info = self.client.finger_info(finger)
                flags = self.client.finger_flags(finger)
            except WsgLinkError:
                raise
            except WsgError as exc:
                self.counters.finger_errors[finger] += 1
                self._log(logging.ERROR, 'wsg_driver: finger %d info (%s) failed: %s' % (
                    finger, command_name(finger_command(finger, 'info')), exc))
                self.finger_info[finger] = None
                continue
            self.finger_info[finger] = info
            self._log(logging.INFO, 'wsg_driver: finger %d info %s, flags %s (raw codes, not interpreted)' % (
                finger, info.hex(' ') or '(empty)', flags.hex(' ') or '(empty)'))


def _positive(value, what):
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError('%s must be a positive number, got %r' % (what, value))
    return value


def check_fingers(fingers):
    """The tactile_fingers parameter: a list of distinct 1 and/or 2."""
    fingers = list(fingers)
    if any(isinstance(f, bool) or f not in FINGERS for f in fingers) or len(set(fingers)) != len(fingers):
        raise ValueError('tactile_fingers must list 1 and/or 2, each once, got %r' % (fingers,))
    return tuple(fingers)


class TactilePoller:
    """Reads each of `fingers` (0x63 / 0x73) every 1/`rate` s and calls `on_frame(finger, cells)` with each
    valid frame (84 raw cells, row-major). While the link is down it waits. A finger that answers with an
    error status, or with a reply of the wrong size, is logged naming it (throttled), counted in
    `driver.counters.finger_errors[finger]`, and nothing is handed on for it. During `on_frame`,
    `requested_at` is when (time.time()) that frame was asked for: the gripper read it no earlier."""

    def __init__(self, driver: WsgDriver, rate, on_frame, fingers=None):
        self.driver = driver
        self.client = driver.client
        self.rate = _positive(rate, 'tactile_rate (Hz)')
        self.fingers = check_fingers(driver.tactile_fingers if fingers is None else fingers)
        self.on_frame = on_frame
        self.requested_at = None
        self._closing = threading.Event()
        self._thread = None

    def start(self):
        if self.fingers and self._thread is None:
            self._thread = threading.Thread(target=self._run, name='wsg-tactile', daemon=True)
            self._thread.start()
        return self

    def close(self):
        self._closing.set()
        if self._thread is not None:
            self._thread.join(2.0 * self.client.timeout + 1.0)
            self._thread = None

    def _run(self):
        period = 1.0 / self.rate
        due = time.monotonic()
        while not self._closing.is_set():
            if self.client.connected:
                for finger in self.fingers:
                    self.poll(finger)
            due += period
            now = time.monotonic()
            if due < now:
                due = now  # a slow round does not cause a burst to catch up
            self._closing.wait(due - now)

    def poll(self, finger):
        """One read of `finger`; True if a frame was handed on."""
        counters = self.driver.counters
        requested_at = time.time()
        try:
            cells = self.client.finger_data(finger)
        except WsgLinkError:
            return False  # the link is down or timed out: the client counts and reconnects
        except (WsgError, FrameError) as exc:
            counters.finger_errors[finger] += 1
            if self.driver._throttle('finger%d' % finger):
                self.driver._log(logging.ERROR, 'wsg_driver: finger %d gives no tactile frame (%d so far): %s; '
                                 'nothing published for it (is finger %d a tactile finger? see tactile_fingers)'
                                 % (finger, counters.finger_errors[finger], exc, finger))
            return False
        counters.finger_frames[finger] += 1
        self.requested_at = requested_at
        self.on_frame(finger, cells)
        return True
