"""Weiss WSG 32 binary command set over TCP (doc/wsg.md, command set): the codec.

Frame: `AA AA AA | id u8 | payload length u16 LE | payload | CRC u16 LE` (CRC of plas_ros.hardware.crc over
everything before it). A reply carries the request's id and begins with a u16 status. Motion commands
(homing, move, grasp, release) answer twice: 26 (pending), then the final status.

The codec is shared by the driver (`plas_ros.hardware.wsg.client`) and the simulated gripper
(`plas_ros.sim.wsg`); the tests pin it to the vendor's sample frames so a symmetric bug cannot hide.
"""
import collections
import enum
import math
import struct

from plas_ros.hardware import framing
from plas_ros.hardware.crc import crc16
from plas_ros.hardware.finger import FINGER
from plas_ros.hardware.framing import AGAIN, CRC_SIZE, HEADER_SIZE, PREAMBLE, Frame, PreambleScanner, unsealed_frame

MAX_PAYLOAD = 1024       # no WSG message comes close; a longer length field means we locked onto garbage


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
    FINGER1_INFO = 0x60
    FINGER1_FLAGS = 0x61
    FINGER1_POWER = 0x62
    FINGER1_DATA = 0x63
    FINGER2_INFO = 0x70
    FINGER2_FLAGS = 0x71
    FINGER2_POWER = 0x72
    FINGER2_DATA = 0x73


MOTION_COMMANDS = frozenset((Command.HOMING, Command.MOVE, Command.GRASP, Command.RELEASE))
# A move's final reply that ends it normally: 29 (axis blocked) is where a move with stop-on-block meets the
# part (doc/wsg.md, behaviours); the nalt driver ends the move on it too.
MOVE_SUCCESSES = frozenset((Status.SUCCESS, Status.AXIS_BLOCKED))

# The finger commands: finger 1 at 0x60-0x63, finger 2 at 0x70-0x73 (info, flags, power, data).
FINGERS = (1, 2)
FINGER_COMMANDS = {
    1: {'info': Command.FINGER1_INFO, 'flags': Command.FINGER1_FLAGS, 'power': Command.FINGER1_POWER,
        'data': Command.FINGER1_DATA},
    2: {'info': Command.FINGER2_INFO, 'flags': Command.FINGER2_FLAGS, 'power': Command.FINGER2_POWER,
        'data': Command.FINGER2_DATA},
}
# The data reply of a tactile finger: u16 status, then rows x cols u16 LE cells, row-major (14 x 6 = 84 on the
# WSG-DSA finger: config/robot.yaml finger).
TACTILE_ROWS, TACTILE_COLS = FINGER.rows, FINGER.cols
TACTILE_CELLS = TACTILE_ROWS * TACTILE_COLS


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
    """A frame; its CRC covers everything before it, the preamble included."""
    body = unsealed_frame(command, payload, FrameError)
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
        self.partial_since = None
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


def check_limits(limits):
    """None if the 0x53 system limits are usable (finite, positive, each minimum <= its maximum), else why not."""
    if not all(math.isfinite(v) for v in limits):
        return 'system limits are not all finite: %s' % (tuple(limits),)
    if limits.stroke <= 0 or limits.min_speed <= 0 or limits.max_speed < limits.min_speed:
        return 'system limits make no sense: stroke %r mm, speed %r..%r mm/s' % (
            limits.stroke, limits.min_speed, limits.max_speed)
    if limits.min_force < 0 or limits.max_force < limits.min_force or limits.overdrive_force < 0:
        return 'system limits make no sense: force %r..%r N, overdrive %r N' % (
            limits.min_force, limits.max_force, limits.overdrive_force)
    return None


# --------------------------------------------------------------------------------------------- fingers

def finger_command(finger, what):
    """The command id of `what` ('info', 'flags', 'power', 'data') for finger 1 or 2."""
    try:
        return FINGER_COMMANDS[finger][what]
    except KeyError:
        raise ValueError('no finger command %r for finger %r (fingers: 1, 2)' % (what, finger)) from None


def pack_finger_data(cells):
    """84 raw cells (row-major) -> the body of a finger data reply (after the status)."""
    cells = [int(v) for v in cells]
    if len(cells) != TACTILE_CELLS:
        raise ValueError('a finger frame has %d cells, got %d' % (TACTILE_CELLS, len(cells)))
    if any(not 0 <= v <= 0xFFFF for v in cells):
        raise ValueError('finger cells must be u16 values, got %r..%r' % (min(cells), max(cells)))
    return struct.pack('<%dH' % TACTILE_CELLS, *cells)


def unpack_finger_data(body, finger):
    """Body of a 0x63 / 0x73 reply (after the status) -> the 84 cells, row-major; FrameError naming the finger."""
    if len(body) != 2 * TACTILE_CELLS:
        raise FrameError('finger %d data reply carries %d bytes, expected %d (%d u16 cells): not a %d x %d '
                         'tactile finger?' % (finger, len(body), 2 * TACTILE_CELLS, TACTILE_CELLS, TACTILE_ROWS,
                                              TACTILE_COLS))
    return struct.unpack('<%dH' % TACTILE_CELLS, body)
