"""Weiss WSG 32 binary command set over TCP (doc/wsg.md, command set): codec and client.

Frame: `AA AA AA | id u8 | payload length u16 LE | payload | CRC u16 LE` (CRC of plas_ros.hardware.crc over
everything before it). A reply carries the request's id and begins with a u16 status. Motion commands
(homing, move, grasp, release) answer twice: 26 (pending), then the final status.

The codec is shared by the driver (`WsgClient`) and the simulated gripper (`plas_ros.sim.wsg`); the tests pin
it to the vendor's sample frames so a symmetric bug cannot hide.
"""
import collections
import enum
import logging
import math
import queue
import socket
import struct
import threading
import time

from plas_ros.config import section
from plas_ros.hardware import framing
from plas_ros.hardware.crc import crc16
from plas_ros.hardware.framing import AGAIN, CRC_SIZE, HEADER_SIZE, PREAMBLE, Frame, PreambleScanner

MAX_PAYLOAD = 1024       # no WSG message comes close; a longer length field means we locked onto garbage
ROBOT = section('robot.yaml', 'wsg')  # the driver's settings: their defaults here too
DEFAULT_PORT = ROBOT['port']
MIN_PERIOD_MS = 10       # shortest auto-update period the simulated gripper accepts

_LOG = logging.getLogger('plas_ros.wsg')


class Status(enum.IntEnum):
    SUCCESS = 0
    NOT_AVAILABLE = 1
    NO_SENSOR = 2
    NOT_INITIALIZED = 3
    ALREADY_RUNNING = 4
    FEATURE_NOT_SUPPORTED = 5
    INCONSISTENT_DATA = 6
    TIMEOUT = 7
    READ_ERROR = 8
    WRITE_ERROR = 9
    INSUFFICIENT_RESOURCES = 10
    CHECKSUM_ERROR = 11
    NO_PARAM_EXPECTED = 12
    NOT_ENOUGH_PARAMS = 13
    UNKNOWN_COMMAND = 14
    FORMAT_ERROR = 15
    ACCESS_DENIED = 16
    ALREADY_OPEN = 17
    COMMAND_FAILED = 18
    COMMAND_ABORTED = 19
    INVALID_HANDLE = 20
    NOT_FOUND = 21
    NOT_OPEN = 22
    IO_ERROR = 23
    INVALID_PARAMETER = 24
    INDEX_OUT_OF_BOUNDS = 25
    PENDING = 26
    OVERRUN = 27
    RANGE_ERROR = 28
    AXIS_BLOCKED = 29
    FILE_EXISTS = 30


class Command(enum.IntEnum):
    LOOP = 0x06
    DISCONNECT = 0x07
    HOMING = 0x20
    MOVE = 0x21
    STOP = 0x22
    FAST_STOP = 0x23
    ACK_FAULT = 0x24
    GRASP = 0x25
    RELEASE = 0x26
    SET_ACCELERATION = 0x30
    GET_ACCELERATION = 0x31
    SET_FORCE_LIMIT = 0x32
    GET_FORCE_LIMIT = 0x33
    TARE_FORCE = 0x38
    SYSTEM_STATE = 0x40
    GRASPING_STATE = 0x41
    OPENING_WIDTH = 0x43
    SPEED = 0x44
    FORCE = 0x45
    SYSTEM_INFO = 0x50
    SYSTEM_LIMITS = 0x53
    FINGER_INFO = 0x60
    FINGER_FLAGS = 0x61
    FINGER_POWER = 0x62
    FINGER_DATA = 0x63


MOTION_COMMANDS = frozenset((Command.HOMING, Command.MOVE, Command.GRASP, Command.RELEASE))


class GraspingState(enum.IntEnum):
    IDLE = 0
    GRASPING = 1
    NO_PART = 2
    PART_LOST = 3
    HOLDING = 4
    RELEASING = 5
    POSITIONING = 6
    ERROR = 7


class SystemFlag(enum.IntFlag):
    REFERENCED = 1 << 0
    MOVING = 1 << 1
    BLOCKED_MINUS = 1 << 2
    BLOCKED_PLUS = 1 << 3
    SOFT_LIMIT_MINUS = 1 << 4
    SOFT_LIMIT_PLUS = 1 << 5
    AXIS_STOPPED = 1 << 6
    TARGET_POS_REACHED = 1 << 7
    FAST_STOP = 1 << 12
    TEMPERATURE_WARNING = 1 << 13
    TEMPERATURE_ERROR = 1 << 14
    POWER_ERROR = 1 << 15
    FINGER_FAULT = 1 << 17
    COMMAND_ERROR = 1 << 18


MOVE_RELATIVE = 0x01
MOVE_STOP_ON_BLOCK = 0x02
AUTO_UPDATE_PERIODIC = 0x01
AUTO_UPDATE_ON_CHANGE = 0x02
ACK_KEY = b'ack'

# The state values the driver keeps subscribed, and how their reply bodies decode.
STATE_COMMANDS = (Command.OPENING_WIDTH, Command.SPEED, Command.FORCE, Command.GRASPING_STATE, Command.SYSTEM_STATE)


def status_name(status):
    """'16 ACCESS_DENIED' for a known code, the number for an unknown one."""
    try:
        return '%d %s' % (status, Status(status).name)
    except ValueError:
        return '%d (unknown status)' % status


def _as_command(command):
    try:
        return Command(command)
    except ValueError:
        return int(command)


def command_name(command):
    return framing.command_name(Command, command)


class WsgError(Exception):
    """The gripper answered `command` with an error `status` (or, for WsgLinkError, the link failed)."""

    def __init__(self, status, command, detail=''):
        self.status = status
        self.command = command
        self.detail = detail
        text = 'WSG %s failed: status %s' % (command_name(command), status_name(status))
        super().__init__(text + (': ' + detail if detail else ''))


class WsgLinkError(WsgError):
    """No answer: the link is down (status NOT_OPEN) or the gripper did not reply in time (TIMEOUT).

    These statuses are set by the client, not sent by the gripper.
    """


class FrameError(ValueError):
    """A byte string that is not exactly one valid frame."""


CorruptFrame = collections.namedtuple('CorruptFrame', 'command length')  # a complete frame whose CRC failed

SystemLimits = collections.namedtuple(
    'SystemLimits', 'stroke min_speed max_speed min_acceleration max_acceleration min_force max_force '
                    'overdrive_force')
SystemInfo = collections.namedtuple('SystemInfo', 'device_type hardware_revision firmware_version serial_number')
_LIMITS = struct.Struct('<8f')
_INFO = struct.Struct('<BBHI')


# --------------------------------------------------------------------------------------------- frames

def encode_frame(command, payload=b''):
    payload = bytes(payload)
    if not 0 <= int(command) <= 0xFF:
        raise FrameError('command id %r does not fit in a byte' % (command,))
    if len(payload) > 0xFFFF:
        raise FrameError('payload of %d bytes does not fit the u16 length field' % len(payload))
    body = PREAMBLE + struct.pack('<BH', int(command), len(payload)) + payload
    return body + struct.pack('<H', crc16(body))


def decode_frame(data):
    """Exactly one frame -> Frame; FrameError saying what is wrong otherwise."""
    data = bytes(data)
    if len(data) < HEADER_SIZE + CRC_SIZE:
        raise FrameError('frame of %d bytes is shorter than the minimum %d' % (len(data), HEADER_SIZE + CRC_SIZE))
    if data[:3] != PREAMBLE:
        raise FrameError('frame starts with %s, not the preamble aa aa aa' % data[:3].hex())
    length = struct.unpack_from('<H', data, 4)[0]
    if len(data) != HEADER_SIZE + length + CRC_SIZE:
        raise FrameError('length field says %d payload bytes but the frame has %d'
                         % (length, len(data) - HEADER_SIZE - CRC_SIZE))
    if crc16(data) != 0:
        raise FrameError('checksum error in %s frame (trailer %s)' % (command_name(data[3]), data[-2:].hex()))
    return Frame(data[3], data[HEADER_SIZE:-CRC_SIZE])


class FrameParser(PreambleScanner):
    """Stream of bytes -> Frame / CorruptFrame items; skips garbage by resynchronising on the preamble.

    After a checksum error only the first preamble byte is dropped and the search restarts: the 'preamble'
    may itself have been garbage, and a real frame can start inside what it seemed to cover.
    """

    def __init__(self, max_payload=MAX_PAYLOAD):
        super().__init__(max_payload, lambda length: HEADER_SIZE + length + CRC_SIZE)
        self.checksum_errors = 0
        self.truncated_frames = 0

    def discard_partial(self):
        """Drop a frame that started but never completed (the sender died or cut it); returns bytes dropped."""
        dropped = len(self._buf)
        if dropped:
            self.truncated_frames += 1
            del self._buf[:]
        return dropped

    def _next_item(self):
        candidate = self._candidate()
        if candidate is None or candidate is AGAIN:
            return candidate
        raw, length = candidate
        if crc16(raw) != 0:  # the WSG CRC covers the whole frame, preamble included
            self.checksum_errors += 1
            self._skip(1)
            return CorruptFrame(raw[3], length)
        return self._accept(raw, length)




# --------------------------------------------------------------------------------------------- payloads

def _finite(value, what):
    value = float(value)
    if not math.isfinite(value):
        raise ValueError('%s must be a finite number, got %r' % (what, value))
    return value


def pack_float(value):
    return struct.pack('<f', value)


def pack_homing(direction=0):
    """direction: 0 = the gripper's configured default, 1 = positive (opening), 2 = negative."""
    if direction not in (0, 1, 2):
        raise ValueError('homing direction must be 0, 1 or 2, got %r' % (direction,))
    return struct.pack('<B', direction)


def pack_move(width, speed, relative=False, stop_on_block=False):
    flags = (MOVE_RELATIVE if relative else 0) | (MOVE_STOP_ON_BLOCK if stop_on_block else 0)
    return struct.pack('<Bff', flags, _finite(width, 'width (mm)'), _finite(speed, 'speed (mm/s)'))


def pack_width_speed(width, speed):
    """Payload of grasp and release."""
    return struct.pack('<ff', _finite(width, 'width (mm)'), _finite(speed, 'speed (mm/s)'))


def pack_auto_update(periodic=False, period_ms=0, on_change=False):
    """Request of the state queries 0x40-0x45: one-shot (periodic=False also cancels an auto-update)."""
    flags = (AUTO_UPDATE_PERIODIC if periodic else 0) | (AUTO_UPDATE_ON_CHANGE if on_change else 0)
    if not 0 <= int(period_ms) <= 0xFFFF:
        raise ValueError('auto-update period must be 0..65535 ms, got %r' % (period_ms,))
    return struct.pack('<BH', flags, int(period_ms))


def pack_status(status, body=b''):
    return struct.pack('<H', int(status)) + bytes(body)


def unpack_status(payload):
    """Reply payload -> (status as int, rest)."""
    if len(payload) < 2:
        raise FrameError('reply payload of %d bytes has no u16 status' % len(payload))
    return struct.unpack_from('<H', payload)[0], bytes(payload[2:])


def _exact(body, size, what):
    if len(body) != size:
        raise FrameError('%s reply carries %d bytes, expected %d' % (what, len(body), size))
    return body


def unpack_float(body, what='value'):
    return struct.unpack('<f', _exact(body, 4, what))[0]


def unpack_u32(body, what='value'):
    return struct.unpack('<I', _exact(body, 4, what))[0]


def unpack_u8(body, what='value'):
    return _exact(body, 1, what)[0]


def pack_limits(limits):
    return _LIMITS.pack(*limits)


def unpack_limits(body):
    return SystemLimits(*_LIMITS.unpack(_exact(body, _LIMITS.size, 'system limits')))


def pack_info(info):
    return _INFO.pack(*info)


def unpack_info(body):
    if len(body) < _INFO.size:
        raise FrameError('system info reply carries %d bytes, expected at least %d' % (len(body), _INFO.size))
    return SystemInfo(*_INFO.unpack_from(body))


_STATE_DECODERS = {
    Command.OPENING_WIDTH: unpack_float, Command.SPEED: unpack_float, Command.FORCE: unpack_float,
    Command.GRASPING_STATE: unpack_u8, Command.SYSTEM_STATE: unpack_u32,
}


def decode_state_value(command, body):
    """Body of a 0x40/0x41/0x43-0x45 reply -> its value (u32 flags, u8 state or f32)."""
    return _STATE_DECODERS[command](body, command_name(command))


# --------------------------------------------------------------------------------------------- client

WsgState = collections.namedtuple('WsgState', 'width speed force grasping_state system_flags')


class WsgCounters:
    """What went wrong on the link so far (read by the node for its logs)."""

    FIELDS = ('connects', 'connect_failures', 'disconnects', 'timeouts', 'checksum_errors', 'garbage_bytes',
              'truncated_frames', 'unexpected_frames', 'malformed_replies', 'status_errors', 'stale_drops')

    def __init__(self):
        for name in self.FIELDS:
            setattr(self, name, 0)

    def as_dict(self):
        return {name: getattr(self, name) for name in self.FIELDS}


class _Waiter:
    """The replies to one outstanding request (a motion command gets two)."""

    def __init__(self):
        self.replies = queue.Queue()


_LINK_DOWN = object()
_PARSER_COUNTERS = ('checksum_errors', 'garbage_bytes', 'truncated_frames')


class WsgClient:
    """Thread-safe WSG client over TCP with automatic reconnection.

    `start()` runs a connection thread: it connects (retrying with exponential backoff), re-sends the
    auto-update subscriptions, reads and dispatches replies by command id, and reconnects when the link
    drops, when a request times out (a late reply could otherwise be taken for the next one), or when
    subscribed values stop arriving for `stale_after` seconds. Requests never wait for a connection: while
    the link is down they raise WsgLinkError at once.
    """

    def __init__(self, host, port=DEFAULT_PORT, timeout=ROBOT['timeout'], motion_timeout=30.0, backoff=(0.1, 2.0),
                 stale_after=None, log=None):
        self.host = host
        self.port = int(port)
        self.timeout = float(timeout)
        self.motion_timeout = float(motion_timeout)
        self.backoff_initial, self.backoff_max = (float(v) for v in backoff)
        self.stale_after = float(stale_after) if stale_after is not None else max(2.0 * self.timeout, 1.0)
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
        self._parser = None
        self._drop_reason = None
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
        if announce and self.connected:
            try:
                self._send(Command.DISCONNECT, b'')
            except WsgError:
                pass
        self._closing.set()
        self._drop('client closed')
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    @property
    def connected(self):
        return self._sock is not None

    def wait_connected(self, timeout):
        with self._changed:
            return self._changed.wait_for(lambda: self._sock is not None, timeout)

    def drop_link(self, reason):
        """Close the current connection; the connection thread reconnects."""
        self._drop(reason)

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

    def _read_loop(self, sock, parser):
        last_rx = time.monotonic()
        while self._sock is sock and not self._closing.is_set():
            try:
                data = sock.recv(4096)
            except socket.timeout:
                idle = time.monotonic() - last_rx
                if parser.pending_bytes and idle > self.timeout:
                    parser.discard_partial()
                if idle > self.stale_after and self._expects_periodic_data():
                    self.counters.stale_drops += 1
                    self._drop('no data from the gripper for %.1f s' % idle)
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

    def _drop(self, reason):
        with self._changed:
            sock, self._sock = self._sock, None
            if sock is None:
                return
            self._drop_reason = reason
            self.counters.disconnects += 1
            for waiter in self._waiters.values():
                waiter.replies.put(_LINK_DOWN)
            self._changed.notify_all()
        try:
            sock.close()
        except OSError:
            pass
        if not self._closing.is_set():
            self._log(logging.WARNING, 'WSG link to %s:%d down: %s' % (self.host, self.port, reason))

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
            if waiter is not None:
                waiter.replies.put((status, body))
            elif not handled:
                self.counters.unexpected_frames += 1

    def _update_value(self, command, status, body, received):
        if command not in self._subscriptions:
            return False
        if status != Status.SUCCESS:
            self.counters.status_errors += 1
            return True
        try:
            self._values[command] = (decode_state_value(command, body), received)
        except FrameError as exc:
            self.counters.malformed_replies += 1
            self._log(logging.WARNING, 'WSG: %s' % exc)
            return True
        self._changed.notify_all()
        return True

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
            self._drop('no reply to %s within %.1f s' % (command_name(command), timeout))
            raise WsgLinkError(Status.TIMEOUT, command, 'no reply within %.1f s' % timeout) from None
        if reply is _LINK_DOWN:
            raise WsgLinkError(Status.NOT_OPEN, command, 'link dropped: %s' % self._drop_reason)
        return reply

    def _exchange(self, command, payload, final_timeout=None):
        """Send one request and return (status, body) of its final reply (after 26 for motion commands)."""
        command = _as_command(command)
        with self._command_locks[command]:
            waiter = _Waiter()
            with self._lock:
                self._waiters[command] = waiter
            try:
                self._send(command, payload)
                status, body = self._await(waiter, command, self.timeout)
                if status == Status.PENDING and command in MOTION_COMMANDS:
                    status, body = self._await(waiter, command, final_timeout or self.motion_timeout)
            finally:
                with self._lock:
                    self._waiters.pop(command, None)
        return status, body

    def request(self, command, payload=b'', final_timeout=None):
        """The reply body of a successful request; WsgError(status, command) for any other status."""
        status, body = self._exchange(command, payload, final_timeout)
        if status != Status.SUCCESS:
            raise WsgError(status, command)
        return body

    # ------------------------------------------------------------------ commands

    def loop(self, data=b''):
        return self.request(Command.LOOP, data)

    def homing(self, direction=0, timeout=None):
        self.request(Command.HOMING, pack_homing(direction), timeout)

    def move(self, width, speed, relative=False, stop_on_block=False, timeout=None):
        self.request(Command.MOVE, pack_move(width, speed, relative, stop_on_block), timeout)

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
