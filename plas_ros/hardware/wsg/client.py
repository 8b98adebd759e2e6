"""WsgClient: the thread-safe WSG 32 client over TCP, with automatic reconnection (doc/wsg.md, client).

The codec is plas_ros.hardware.wsg.protocol; what the driver node does with the client (homing at start-up,
clearing a fast stop the link loss caused, the limits, tactile polling) is plas_ros.hardware.wsg.driver.
"""
import collections
import logging
import math
import queue
import socket
import threading
import time

from plas_ros.config import section
from plas_ros.hardware.wsg.protocol import (
    _STATE_DECODERS,
    ACK_KEY,
    AUTO_UPDATE_ON_CHANGE,
    MOTION_COMMANDS,
    MOVE_SUCCESSES,
    STATE_COMMANDS,
    Command,
    CorruptFrame,
    FrameError,
    FrameParser,
    GraspingState,
    Status,
    WsgError,
    WsgLinkError,
    _as_command,
    _finite,
    command_name,
    decode_state_value,
    encode_frame,
    finger_command,
    pack_auto_update,
    pack_float,
    pack_homing,
    pack_move,
    pack_width_speed,
    unpack_finger_data,
    unpack_float,
    unpack_info,
    unpack_limits,
    unpack_status,
)

ROBOT = section('robot.yaml', 'wsg')  # the driver's settings: their defaults here too
DEFAULT_PORT = ROBOT['port']
ANNOUNCE_LINGER = 1.0   # s at most to wait, after the disconnect announcement, for the gripper to close
REJECT_LOG_EVERY = 5.0  # s between two log lines on rejected values
WAITER_SLOTS = 4        # replies kept for one outstanding request (a motion gets two: 26, then its final status)

_LOG = logging.getLogger('plas_ros.wsg')


WsgState = collections.namedtuple('WsgState', 'width speed force grasping_state system_flags')


class WsgCounters:
    """What went wrong on the link so far (read by the node for its logs)."""

    FIELDS = ('connects', 'connect_failures', 'disconnects', 'announced_disconnects', 'timeouts', 'checksum_errors',
              'garbage_bytes', 'truncated_frames', 'unexpected_frames', 'malformed_replies', 'status_errors',
              'stale_drops', 'rejected_values', 'width_updates')

    def __init__(self):
        for name in self.FIELDS:
            setattr(self, name, 0)

    def as_dict(self):
        return {name: getattr(self, name) for name in self.FIELDS}


class _Waiter:
    """The replies to one outstanding request (a motion command gets two): at most WAITER_SLOTS are kept, so a
    gripper repeating a reply cannot fill memory while the request waits."""

    def __init__(self):
        self.replies = queue.Queue(maxsize=WAITER_SLOTS)

    def offer(self, reply):
        """Keep a reply for the request; False when its slots are full (the reply is dropped)."""
        try:
            self.replies.put_nowait(reply)
        except queue.Full:
            return False
        return True


_LINK_DOWN = object()
_PARSER_COUNTERS = ('checksum_errors', 'garbage_bytes', 'truncated_frames')


def _positive(value, what):
    value = _finite(value, what)
    if value <= 0:
        raise ValueError('%s must be positive, got %r' % (what, value))
    return value


def check_state_value(command, value):
    """None if an auto-updated value can be a reading at all (finite floats, a known grasping state), else why
    not. The driver adds the checks against the gripper's limits (`WsgClient.validator`)."""
    if isinstance(value, float) and not math.isfinite(value):
        return '%s %r is not a finite number' % (command_name(command), value)
    if command == Command.GRASPING_STATE and value not in GraspingState.__members__.values():
        return 'grasping state %r is not one of 0..7' % (value,)
    return None


class WsgClient:
    """Thread-safe WSG client over TCP with automatic reconnection.

    `start()` runs a connection thread: it connects (retrying with exponential backoff), re-sends the
    auto-update subscriptions, reads and dispatches replies by command id, and reconnects when the link
    drops, when a request times out (a late reply could otherwise be taken for the next one), or when
    subscribed values stop arriving for `stale_after` seconds. Requests never wait for a connection: while
    the link is down they raise WsgLinkError at once. Every wait is bounded: a reply by `timeout`, a
    motion's final reply by its own timeout (`motion_timeout` unless given).

    Whenever the client closes a link on purpose (close(), a timeout, silence, drop_link()) it first announces
    the disconnect (0x07), so that a gripper with "error state on TCP disconnect" does not enter FAST STOP.

    `validator(command, value)` (optional, settable) returns why an auto-updated value is not a possible
    reading (None: it is); such values, and values that are not finite, are never taken: counted in
    `rejected_values` and logged (at most every 5 s).
    """

    def __init__(self, host, port=DEFAULT_PORT, timeout=ROBOT['timeout'], motion_timeout=30.0, backoff=(0.1, 2.0),
                 stale_after=None, log=None, validator=None):
        self.host = host
        self.port = int(port)
        self.timeout = _positive(timeout, 'timeout (s)')
        self.motion_timeout = _positive(motion_timeout, 'motion timeout (s)')
        self.backoff_initial, self.backoff_max = (_positive(v, 'backoff (s)') for v in backoff)
        self.stale_after = (_positive(stale_after, 'stale_after (s)') if stale_after is not None
                            else max(2.0 * self.timeout, 1.0))
        self.validator = validator
        self.counters = WsgCounters()
        self._log = log or (lambda level, text: _LOG.log(level, text))
        self._lock = threading.RLock()
        self._send_lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._command_locks = collections.defaultdict(threading.Lock)
        self._waiters = {}
        self._subscriptions = {}     # command -> request payload
        self._values = {}            # command -> (value, monotonic time received)
        self._sock = None
        self._announced = None       # the socket a disconnect was announced on (the reader closes it)
        self._parser = None
        self._drop_reason = None
        self._connected_at = None
        self._last_reject_log = None
        self._closing = threading.Event()
        self._thread = None

    # ------------------------------------------------------------------ lifecycle

    def start(self):
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name='wsg-client', daemon=True)
            self._thread.start()
        return self

    def close(self, announce=True):
        """Stop reconnecting and close the link (announcing the disconnect to the gripper first)."""
        self._closing.set()
        self._drop('client closed', announce=announce)
        if self._thread is not None:
            self._thread.join(ANNOUNCE_LINGER + 5.0)
            self._thread = None

    @property
    def connected(self):
        return self._sock is not None

    @property
    def connection(self):
        """(number, monotonic time) of the current connection (numbered from 1), or None while down."""
        with self._lock:
            if self._sock is None:
                return None
            return self.counters.connects, self._connected_at

    def wait_connected(self, timeout):
        with self._changed:
            return self._changed.wait_for(lambda: self._sock is not None, timeout)

    def wait_disconnected(self, timeout):
        with self._changed:
            return self._changed.wait_for(lambda: self._sock is None, timeout)

    def drop_link(self, reason):
        """Close the current connection (announced); the connection thread reconnects."""
        self._drop(reason, announce=True)

    def _run(self):
        delay = self.backoff_initial
        while not self._closing.is_set():
            try:
                sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            except OSError as exc:
                self.counters.connect_failures += 1
                if self.counters.connect_failures == 1 or delay >= self.backoff_max:
                    self._log(logging.WARNING, 'WSG %s:%d unreachable (%s); retrying every <= %.1f s'
                              % (self.host, self.port, exc, self.backoff_max))
                self._closing.wait(delay)
                delay = min(delay * 2.0, self.backoff_max)
                continue
            if self._closing.is_set():
                sock.close()  # closed while connecting: this link never carried a request
                return
            delay = self.backoff_initial
            self._serve(sock)

    def _serve(self, sock):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(min(0.1, self.timeout))
        parser = FrameParser()
        with self._changed:
            self._parser = parser
            self._sock = sock
            self._drop_reason = None
            self._connected_at = time.monotonic()
            self.counters.connects += 1
            self._changed.notify_all()
        self._log(logging.INFO, 'WSG connected to %s:%d' % (self.host, self.port))
        try:
            for command, payload in list(self._subscriptions.items()):
                self._send(command, payload)
            self._read_loop(sock, parser)
        except WsgLinkError as exc:
            self._drop(str(exc))
        finally:
            self._account(parser)
            self._drop(self._drop_reason or 'connection closed')
            if self._announced is sock:
                self._linger(sock)
            sock.close()

    def _read_loop(self, sock, parser):
        last_rx = time.monotonic()
        while self._sock is sock:  # close() ends it by dropping the link (announced), never by leaving it open
            try:
                data = sock.recv(4096)
            except socket.timeout:
                idle = time.monotonic() - last_rx
                if parser.pending_bytes and idle > self.timeout:
                    parser.discard_partial()
                if idle > self.stale_after and self._expects_periodic_data():
                    self.counters.stale_drops += 1
                    self._drop('no data from the gripper for %.1f s' % idle, announce=True)
                continue
            except OSError as exc:
                self._drop('receive failed: %s' % exc)
                return
            if not data:
                self._drop('the gripper closed the connection')
                return
            last_rx = time.monotonic()
            for item in parser.feed(data):
                self._dispatch(item, last_rx)

    @staticmethod
    def _linger(sock):
        """After the announcement: read (and drop) what still comes until the gripper closes, at most
        ANNOUNCE_LINGER s, so that closing with unread bytes cannot reset the link before it read 0x07."""
        deadline = time.monotonic() + ANNOUNCE_LINGER
        while time.monotonic() < deadline:
            try:
                if not sock.recv(4096):
                    return
            except socket.timeout:
                continue
            except OSError:
                return

    def _expects_periodic_data(self):
        """True if some subscription sends at a fixed period (on-change ones may rightly fall silent)."""
        return any(not payload[0] & AUTO_UPDATE_ON_CHANGE for payload in list(self._subscriptions.values()))

    def _account(self, parser):
        with self._lock:
            self._parser = None
            for name in _PARSER_COUNTERS:
                setattr(self.counters, name, getattr(self.counters, name) + getattr(parser, name))

    def stats(self):
        """All counters so far, including those of the current connection's parser."""
        with self._lock:
            stats = self.counters.as_dict()
            if self._parser is not None:
                for name in _PARSER_COUNTERS:
                    stats[name] += getattr(self._parser, name)
        return stats

    def _drop(self, reason, announce=False):
        """End the current connection. With `announce` the gripper is told first (0x07) and the connection
        thread closes the socket once the gripper has closed its side (bounded); else it is shut at once."""
        with self._changed:
            sock, self._sock = self._sock, None
            if sock is None:
                return
            if announce:
                self._announced = sock  # before the connection thread can see the drop: it lingers, then closes
            self._drop_reason = reason
            self.counters.disconnects += 1
            for waiter in self._waiters.values():
                waiter.offer(_LINK_DOWN)  # full: it has replies to read first, then its timeout ends the wait
            self._changed.notify_all()
        if announce and self._announce(sock):
            self.counters.announced_disconnects += 1
        else:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # the connection thread wakes up and closes it
            except OSError:
                pass
        if not self._closing.is_set():
            self._log(logging.WARNING, 'WSG link to %s:%d down: %s' % (self.host, self.port, reason))

    def _announce(self, sock):
        """Send 0x07 and half-close; True if it went out."""
        try:
            with self._send_lock:
                sock.sendall(encode_frame(Command.DISCONNECT, b''))
        except OSError as exc:
            self._log(logging.WARNING, 'WSG %s:%d: announcing the disconnect failed: %s' % (self.host, self.port, exc))
            return False
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the gripper answered and closed first, and the connection thread closed the socket
        return True

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, item, received):
        if isinstance(item, CorruptFrame):
            self._log(logging.WARNING, 'WSG: checksum error in a %s frame, dropped' % command_name(item.command))
            return
        try:
            status, body = unpack_status(item.payload)
        except FrameError as exc:
            self.counters.malformed_replies += 1
            self._log(logging.WARNING, 'WSG: %s in a %s frame' % (exc, command_name(item.command)))
            return
        with self._changed:
            handled = self._update_value(item.command, status, body, received)
            waiter = self._waiters.get(item.command)
            if waiter is not None and waiter.offer((status, body)):
                return
            if not handled:
                self.counters.unexpected_frames += 1

    def _update_value(self, command, status, body, received):
        if command not in self._subscriptions:
            return False
        if status != Status.SUCCESS:
            self.counters.status_errors += 1
            return True
        try:
            value = decode_state_value(command, body)
        except FrameError as exc:
            self.counters.malformed_replies += 1
            self._log(logging.WARNING, 'WSG: %s' % exc)
            return True
        problem = check_state_value(command, value)
        if problem is None and self.validator is not None:
            problem = self.validator(command, value)
        if problem is not None:
            self._reject(problem)
            return True
        self._values[command] = (value, received, self.counters.connects)
        if command == Command.OPENING_WIDTH:
            self.counters.width_updates += 1  # the rate of the state, for diagnostics
        self._changed.notify_all()
        return True

    def _reject(self, problem):
        self.counters.rejected_values += 1
        now = time.monotonic()
        if self._last_reject_log is None or now - self._last_reject_log >= REJECT_LOG_EVERY:
            self._last_reject_log = now
            self._log(logging.WARNING, 'WSG %s:%d: rejected a state value (%d so far): %s; it is not taken as a '
                      'reading' % (self.host, self.port, self.counters.rejected_values, problem))

    # ------------------------------------------------------------------ requests

    def _send(self, command, payload):
        frame = encode_frame(command, payload)
        sock = self._sock
        if sock is None:
            raise WsgLinkError(Status.NOT_OPEN, command, 'not connected to %s:%d' % (self.host, self.port))
        try:
            with self._send_lock:
                sock.sendall(frame)
        except OSError as exc:
            self._drop('send failed: %s' % exc)
            raise WsgLinkError(Status.NOT_OPEN, command, 'send failed: %s' % exc) from None

    def _await(self, waiter, command, timeout):
        try:
            reply = waiter.replies.get(timeout=timeout)
        except queue.Empty:
            self.counters.timeouts += 1
            self._drop('no reply to %s within %.1f s' % (command_name(command), timeout), announce=True)
            raise WsgLinkError(Status.TIMEOUT, command, 'no reply within %.1f s' % timeout) from None
        if reply is _LINK_DOWN:
            raise WsgLinkError(Status.NOT_OPEN, command, 'link dropped: %s' % self._drop_reason)
        return reply

    def _exchange(self, command, payload, final_timeout=None):
        """Send one request and return (status, body) of its final reply (after 26 for motion commands)."""
        command = _as_command(command)
        final_timeout = self.motion_timeout if final_timeout is None else _positive(final_timeout, 'timeout (s)')
        with self._command_locks[command]:
            waiter = _Waiter()
            with self._lock:
                self._waiters[command] = waiter
            try:
                self._send(command, payload)
                status, body = self._await(waiter, command, self.timeout)
                if status == Status.PENDING and command in MOTION_COMMANDS:
                    status, body = self._await(waiter, command, final_timeout)
            finally:
                with self._lock:
                    self._waiters.pop(command, None)
        return status, body

    def request(self, command, payload=b'', final_timeout=None, ok=(Status.SUCCESS,)):
        """The reply body of a request whose final status is in `ok`; WsgError(status, command) otherwise."""
        status, body = self._exchange(command, payload, final_timeout)
        if status not in ok:
            raise WsgError(status, command)
        return body

    # ------------------------------------------------------------------ commands

    def loop(self, data=b''):
        return self.request(Command.LOOP, data)

    def homing(self, direction=0, timeout=None):
        self.request(Command.HOMING, pack_homing(direction), timeout)

    def move(self, width, speed, relative=False, stop_on_block=False, timeout=None):
        """Move to `width`; returns the final status: 0, or 29 (axis blocked) where a stop-on-block move met the
        part, the ordinary end of such a move (the nalt driver's reading). Any other status raises WsgError."""
        payload = pack_move(width, speed, relative, stop_on_block)
        status, _ = self._exchange(Command.MOVE, payload, timeout)
        if status not in MOVE_SUCCESSES:
            raise WsgError(status, Command.MOVE)
        return Status(status)

    def grasp(self, width, speed, timeout=None):
        self.request(Command.GRASP, pack_width_speed(width, speed), timeout)

    def release(self, width, speed, timeout=None):
        self.request(Command.RELEASE, pack_width_speed(width, speed), timeout)

    def stop(self):
        self.request(Command.STOP)

    def fast_stop(self):
        self.request(Command.FAST_STOP)

    def ack_fault(self):
        self.request(Command.ACK_FAULT, ACK_KEY)

    def set_acceleration(self, mm_s2):
        self.request(Command.SET_ACCELERATION, pack_float(_finite(mm_s2, 'acceleration (mm/s^2)')))

    def get_acceleration(self):
        return unpack_float(self.request(Command.GET_ACCELERATION), 'acceleration')

    def set_force_limit(self, newton):
        self.request(Command.SET_FORCE_LIMIT, pack_float(_finite(newton, 'force limit (N)')))

    def get_force_limit(self):
        return unpack_float(self.request(Command.GET_FORCE_LIMIT), 'force limit')

    def tare_force(self):
        self.request(Command.TARE_FORCE)

    def system_info(self):
        return unpack_info(self.request(Command.SYSTEM_INFO))

    def system_limits(self):
        return unpack_limits(self.request(Command.SYSTEM_LIMITS))

    def query(self, command):
        """One-shot read of a state value (0x40-0x45). On the gripper this also ends its auto-update."""
        if command in self._subscriptions:
            raise ValueError('%s is auto-updated; read it with value() (a one-shot read would cancel it)'
                             % command_name(command))
        return decode_state_value(command, self.request(command, pack_auto_update()))

    def system_state(self):
        return self.query(Command.SYSTEM_STATE)

    def grasping_state(self):
        return GraspingState(self.query(Command.GRASPING_STATE))

    def width(self):
        return self.query(Command.OPENING_WIDTH)

    def speed(self):
        return self.query(Command.SPEED)

    def force(self):
        return self.query(Command.FORCE)

    # ------------------------------------------------------------------ fingers (0x60-0x63, 0x70-0x73)

    def finger_info(self, finger):
        """The raw body of finger 1's or 2's info reply (its type codes are not public: not interpreted)."""
        return self.request(finger_command(finger, 'info'))

    def finger_flags(self, finger):
        """The raw body of the finger's flags reply (its bits are not public: not interpreted)."""
        return self.request(finger_command(finger, 'flags'))

    def finger_power(self, finger, on):
        self.request(finger_command(finger, 'power'), bytes([1 if on else 0]))

    def finger_data(self, finger):
        """The finger's 84 raw cells, row-major. WsgError for an error status; FrameError (naming the finger)
        for a reply of another size (a finger that is not a 14 x 6 tactile finger)."""
        return unpack_finger_data(self.request(finger_command(finger, 'data')), finger)

    # ------------------------------------------------------------------ auto-update

    def subscribe(self, command, period_ms, on_change=False):
        """Ask the gripper to send `command`'s value every `period_ms` (kept across reconnections)."""
        if command not in _STATE_DECODERS:
            raise ValueError('%s has no auto-update' % command_name(command))
        payload = pack_auto_update(True, period_ms, on_change)
        with self._lock:
            self._subscriptions[command] = payload
        if self.connected:
            self.request(command, payload)

    def subscribe_state(self, period_ms):
        for command in STATE_COMMANDS:
            self.subscribe(command, period_ms)

    def unsubscribe(self, command):
        with self._lock:
            self._subscriptions.pop(command, None)
            self._values.pop(command, None)
        if self.connected:
            self.request(command, pack_auto_update())

    def value(self, command, max_age=None):
        """Latest auto-updated value of `command`, or None if there is none (younger than max_age s)."""
        with self._lock:
            entry = self._values.get(command)
        if entry is None or (max_age is not None and time.monotonic() - entry[1] > max_age):
            return None
        return entry[0]

    def value_entry(self, command):
        """(latest auto-updated value, monotonic time received, number of the connection it came on), or None."""
        with self._lock:
            return self._values.get(command)

    def wait_value(self, command, newer_than, timeout):
        """The first auto-updated value of `command` received after monotonic time `newer_than`, or None."""
        def fresh():
            entry = self._values.get(command)
            return entry is not None and entry[1] > newer_than
        with self._changed:
            if not self._changed.wait_for(fresh, timeout):
                return None
            return self._values[command][0]

    def state(self, max_age):
        """All five auto-updated state values, each younger than max_age s, while connected; else None."""
        values = [self.value(command, max_age) for command in STATE_COMMANDS]
        if not self.connected or any(v is None for v in values):
            return None
        width, speed, force, grasping, flags = values
        return WsgState(width, speed, force, grasping, flags)
