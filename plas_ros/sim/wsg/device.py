"""The simulated WSG 32 as a state machine (doc/wsg.md, "Simulated WSG 32"): bytes in, reply frames out.

Pure: no sockets, no threads, the clock injected. `WsgDevice.receive(data)` parses request bytes and returns the
encoded reply frames; `poll()` advances the fingers to the clock's time and returns what became due (the final
reply of a motion, auto-updates); `connect()` / `disconnect()` tell it a client came or went. One handler per
command (`_on_<command>`). The TCP transport is `plas_ros.sim.wsg.server`.

It models what the public sources say a real gripper does (doc/wsg.md, behaviours): it starts unreferenced
(motion answers 3 until homing succeeds), it latches a FAST STOP when the link drops without the 0x07
announcement, a move with stop-on-block that meets the part ends with 29 at the width where it stopped, and it
serves the finger commands 0x60-0x63 / 0x70-0x73 with the cloth's tactile reading on the cloth finger.
"""
import dataclasses
import functools
import logging
import math
import struct
import time
from dataclasses import dataclass
from typing import Optional

from plas_ros.config import load_section, user_path
from plas_ros.hardware.wsg.protocol import (
    ACK_KEY,
    AUTO_UPDATE_ON_CHANGE,
    AUTO_UPDATE_PERIODIC,
    FINGER_COMMANDS,
    MOVE_RELATIVE,
    MOVE_STOP_ON_BLOCK,
    TACTILE_CELLS,
    TACTILE_COLS,
    TACTILE_ROWS,
    Command,
    CorruptFrame,
    FrameParser,
    GraspingState,
    Status,
    SystemFlag,
    SystemInfo,
    SystemLimits,
    encode_frame,
    pack_finger_data,
    pack_float,
    pack_info,
    pack_limits,
    pack_status,
)

_LOG = logging.getLogger('plas_ros.sim.wsg')
FINGER_DATA_KINDS = ('tactile', 'error', 'wrong_size')


# ------------------------------------------------------------------------------------------------- config

@dataclass(frozen=True)
class DeviceValues:
    stroke: float
    min_speed: float
    max_speed: float
    min_acceleration: float
    max_acceleration: float
    min_force: float
    nominal_force: float
    overdrive_force: float
    device_type: int
    hardware_revision: int
    firmware_version: int
    serial_number: int
    homing_speed: float
    clamp_travel: float
    force_limit: float
    acceleration: float
    min_period_ms: int
    partial_frame_timeout: float


IDLE_POLICIES = ('yield', 'drop')


@dataclass(frozen=True)
class LinkOptions:
    """The TCP side: where the twin listens and how long a silent or a non-reading client may hold it."""
    bind_host: str
    idle_timeout: float
    idle_policy: str
    max_queued_bytes: int
    send_timeout: float

    def __post_init__(self):
        if self.idle_policy not in IDLE_POLICIES:
            raise ValueError('idle_policy must be one of %s, got %r' % (', '.join(IDLE_POLICIES), self.idle_policy))
        if not (self.idle_timeout >= 0 and self.max_queued_bytes > 0 and self.send_timeout > 0):
            raise ValueError('idle_timeout must be >= 0, max_queued_bytes and send_timeout > 0, got %r, %r, %r'
                             % (self.idle_timeout, self.max_queued_bytes, self.send_timeout))


@dataclass(frozen=True)
class BehaviourOptions:
    referenced_at_power_up: bool
    error_on_tcp_disconnect: bool
    block_squeeze: float


@dataclass(frozen=True)
class FingerOptions:
    info: str             # hex
    flags: int
    data: str             # one of FINGER_DATA_KINDS
    error_status: int

    def __post_init__(self):
        bytes.fromhex(self.info)  # ValueError for a bad hex string
        if self.data not in FINGER_DATA_KINDS:
            raise ValueError('finger data must be one of %s, got %r' % (', '.join(FINGER_DATA_KINDS), self.data))
        if not 0 <= self.flags <= 0xFFFF or not 0 < self.error_status <= 0xFFFF:
            raise ValueError('finger flags must be a u16 and error_status a non-zero u16, got %r and %r'
                             % (self.flags, self.error_status))


@dataclass(frozen=True)
class FingersOptions:
    cloth_finger: int
    finger1: FingerOptions
    finger2: FingerOptions

    def __post_init__(self):
        if self.cloth_finger not in FINGER_COMMANDS:
            raise ValueError('cloth_finger must be 1 or 2, got %r' % (self.cloth_finger,))

    def finger(self, number):
        return self.finger1 if number == 1 else self.finger2


@dataclass(frozen=True)
class TwinConfig:
    device: DeviceValues
    link: LinkOptions
    behaviour: BehaviourOptions
    fingers: FingersOptions

    @property
    def limits(self):
        d = self.device
        return SystemLimits(d.stroke, d.min_speed, d.max_speed, d.min_acceleration, d.max_acceleration, d.min_force,
                            d.nominal_force, d.overdrive_force)

    @property
    def info(self):
        d = self.device
        return SystemInfo(d.device_type, d.hardware_revision, d.firmware_version, d.serial_number)

    def with_options(self, **options):
        """A copy with behaviour options changed, e.g. with_options(referenced_at_power_up=True)."""
        return dataclasses.replace(self, behaviour=dataclasses.replace(self.behaviour, **options))

    def with_link(self, **options):
        """A copy with link options changed, e.g. with_link(idle_timeout=0.5, idle_policy='drop')."""
        return dataclasses.replace(self, link=dataclasses.replace(self.link, **options))

    def with_finger(self, number, **options):
        """A copy with finger `number`'s options changed, e.g. with_finger(2, data='error')."""
        name = 'finger%d' % number
        finger = dataclasses.replace(getattr(self.fingers, name), **options)
        return dataclasses.replace(self, fingers=dataclasses.replace(self.fingers, **{name: finger}))


def load_twin_config(path=None):
    """TwinConfig from config/wsg_twin.yaml (strictly: plas_ros.config)."""
    return load_section(TwinConfig, user_path(path, 'wsg_twin.yaml'))


TWIN = load_twin_config()
SIM_LIMITS = TWIN.limits
SIM_INFO = TWIN.info


# ------------------------------------------------------------------------------------------------- models

class StaticPart:
    """Fingers with a fixed part between them (or none): for the standalone simulator and tests."""

    def __init__(self, part_width=None):
        self.part_width = part_width
        self.width = None

    def set_width(self, width_mm):
        self.width = width_mm

    def part_width_mm(self):
        return self.part_width


class PatternFrames:
    """The frame source without a cloth: frame n of a fixed pattern, every cell below 30 (no contact)."""

    def __init__(self):
        self.count = 0

    def __call__(self):
        n, self.count = self.count, self.count + 1
        return [[(n + 7 * r + 3 * c) % 30 for c in range(TACTILE_COLS)] for r in range(TACTILE_ROWS)]


def mirrored(frame):
    """The other finger's view of the same contact: the cloth finger's frame with its columns reversed."""
    return [list(row)[::-1] for row in frame]


# ------------------------------------------------------------------------------------------------- device

class _Refused(Exception):
    def __init__(self, status):
        super().__init__(status)
        self.status = status


class _Motion:
    def __init__(self, session, command, target, speed, final_state, final_status, block_at=None):
        self.session = session
        self.command = command
        self.target = target
        self.speed = speed
        self.final_state = final_state
        self.final_status = final_status
        self.block_at = block_at       # a stop-on-block move closing onto the part stops here with 29


class _Subscription:
    def __init__(self, period, on_change, due):
        self.period = period
        self.on_change = on_change
        self.due = due
        self.last = None


class _Session:
    """One client connection as the device sees it: its parser and auto-updates."""

    def __init__(self, number, now):
        self.number = number
        self.parser = FrameParser()
        self.subscriptions = {}
        self.last_request = now         # a complete, intact request frame (or the connection) last came then
        self.announced = False          # the client sent 0x07: close after the reply, no fast stop


def _unpack(payload, fmt):
    """Fixed-size request parameters; 13 when too short, 15 when too long, 24 for a non-finite float."""
    size = struct.calcsize(fmt)
    if len(payload) < size:
        raise _Refused(Status.NOT_ENOUGH_PARAMS)
    if len(payload) > size:
        raise _Refused(Status.FORMAT_ERROR)
    values = struct.unpack(fmt, payload)
    if any(isinstance(v, float) and not math.isfinite(v) for v in values):
        raise _Refused(Status.INVALID_PARAMETER)
    return values


def _no_params(payload):
    if payload:
        raise _Refused(Status.NO_PARAM_EXPECTED)


def _in_range(value, low, high):
    if not low <= value <= high:
        raise _Refused(Status.RANGE_ERROR)
    return value


class WsgDevice:
    """The simulated gripper's state. Not thread-safe: its transport calls it from one thread (or under a lock).

    `fingers` (optional) gets `set_width(mm)` as the fingers move and answers `part_width_mm()` (None: no
    part) when a grasp or a stop-on-block move starts. `frame_source()` (optional) returns the cloth finger's
    tactile reading, rows x cols raw cells; without one the fingers serve `PatternFrames`.
    """

    def __init__(self, config=None, fingers=None, frame_source=None, initial_width=None, clock=time.monotonic):
        self.config = config or TWIN
        self.limits = self.config.limits
        self.fingers = fingers
        self.frame_source = frame_source or PatternFrames()
        self._clock = clock
        d = self.config.device
        self._width = float(d.stroke if initial_width is None else initial_width)
        self._speed = 0.0
        self._force_limit = d.force_limit
        self._acceleration = d.acceleration
        self._grasping = GraspingState.IDLE
        self._referenced = self.config.behaviour.referenced_at_power_up
        self._fast_stop = False
        self._axis_stopped = False
        self._target_reached = False
        self._blocked = False
        self._finger_power = {1: True, 2: True}
        self._motion = None
        self._session = None
        self._sessions = 0
        self._last_tick = clock()
        self.stats = dict(frames=0, checksum_errors=0, garbage_bytes=0, truncated_frames=0, unknown_commands=0,
                          refused=0, finger_errors=0, link_loss_fast_stops=0)
        self._handlers = {
            Command.LOOP: self._on_loop, Command.DISCONNECT: self._on_disconnect, Command.HOMING: self._on_homing,
            Command.MOVE: self._on_move, Command.STOP: self._on_stop, Command.FAST_STOP: self._on_fast_stop,
            Command.ACK_FAULT: self._on_ack, Command.GRASP: self._on_grasp, Command.RELEASE: self._on_release,
            Command.SET_ACCELERATION: self._on_set_acceleration, Command.GET_ACCELERATION: self._on_get_acceleration,
            Command.SET_FORCE_LIMIT: self._on_set_force_limit, Command.GET_FORCE_LIMIT: self._on_get_force_limit,
            Command.TARE_FORCE: self._on_tare, Command.SYSTEM_INFO: self._on_system_info,
            Command.SYSTEM_LIMITS: self._on_system_limits,
        }
        for command in (Command.SYSTEM_STATE, Command.GRASPING_STATE, Command.OPENING_WIDTH, Command.SPEED,
                        Command.FORCE):
            self._handlers[command] = functools.partial(self._on_state_query, command)
        for finger, commands in FINGER_COMMANDS.items():
            self._handlers[commands['info']] = functools.partial(self._on_finger_info, finger)
            self._handlers[commands['flags']] = functools.partial(self._on_finger_flags, finger)
            self._handlers[commands['power']] = functools.partial(self._on_finger_power, finger)
            self._handlers[commands['data']] = functools.partial(self._on_finger_data, finger)
        self._set_fingers(self._width)

    # ------------------------------------------------------------------ what a test or the world reads

    @property
    def width(self):
        return self._width

    @property
    def grasping_state(self):
        return self._grasping

    @property
    def referenced(self):
        return self._referenced

    @property
    def fast_stop(self):
        return self._fast_stop

    @property
    def moving(self):
        return self._motion is not None

    @property
    def session_open(self):
        return self._session is not None

    @property
    def close_requested(self):
        """True once the client announced its disconnect (0x07): the transport closes after the reply."""
        return self._session is not None and self._session.announced

    def system_flags(self):
        flags = SystemFlag(0)
        for on, flag in ((self._referenced, SystemFlag.REFERENCED), (self._motion is not None, SystemFlag.MOVING),
                         (self._blocked, SystemFlag.BLOCKED_MINUS), (self._axis_stopped, SystemFlag.AXIS_STOPPED),
                         (self._target_reached, SystemFlag.TARGET_POS_REACHED),
                         (self._fast_stop, SystemFlag.FAST_STOP)):
            if on:
                flags |= flag
        return int(flags)

    def counters(self):
        stats = dict(self.stats)
        if self._session is not None:
            for name in ('frames', 'checksum_errors', 'garbage_bytes', 'truncated_frames'):
                stats[name] += getattr(self._session.parser, name)
        return stats

    # ------------------------------------------------------------------ the link

    def connect(self):
        """A client connected (the previous one, if any, is gone)."""
        if self._session is not None:
            self.disconnect()
        self._sessions += 1
        self._session = _Session(self._sessions, self._clock())

    def disconnect(self):
        """The client's connection ended. Without the 0x07 announcement this is a lost link: with the option
        "error state on TCP disconnect" the gripper enters FAST STOP (the running motion stops)."""
        session, self._session = self._session, None
        if session is None:
            return
        for name in ('frames', 'checksum_errors', 'garbage_bytes', 'truncated_frames'):
            self.stats[name] += getattr(session.parser, name)
        if not session.announced and self.config.behaviour.error_on_tcp_disconnect:
            self._enter_fast_stop()
            self.stats['link_loss_fast_stops'] += 1
            _LOG.warning('WSG simulator: connection lost without the disconnect announcement: FAST STOP')

    def receive(self, data):
        """Request bytes from the client -> the reply frames (bytes), in order."""
        session = self._session
        if session is None:
            raise RuntimeError('WSG device: bytes received with no client connected')
        now = self._clock()
        out = self._advance(now)
        for item in session.parser.feed(data, now):
            if self._session is not session or session.announced:
                break  # nothing after the disconnect announcement is served
            if not isinstance(item, CorruptFrame):
                session.last_request = now
            out += self._handle(session, item)
        return out

    def silent_for(self):
        """Seconds since the client's last complete, intact request (or its connection); None with no client."""
        session = self._session
        return None if session is None else self._clock() - session.last_request

    def poll(self):
        """Advance to the clock's time -> the frames that became due (motion replies, auto-updates)."""
        now = self._clock()
        out = self._advance(now)
        session = self._session
        if session is None:
            return out
        if session.parser.partial_expired(now, self.config.device.partial_frame_timeout):
            dropped = session.parser.discard_partial()
            _LOG.warning('WSG simulator: dropped %d bytes of a frame that never completed', dropped)
        for command, sub in list(session.subscriptions.items()):
            if now < sub.due:
                continue
            sub.due += sub.period
            if sub.due <= now:
                sub.due = now + sub.period  # a late poll does not send a burst to catch up
            value = self._state_value(command)
            if sub.on_change and value == sub.last:
                continue
            sub.last = value
            out.append(self._reply(command, Status.SUCCESS, value))
        return out

    def next_deadline(self, tick):
        """The clock time of the next poll that has something to do (`tick` s ahead while the fingers move)."""
        now = self._clock()
        deadlines = []
        if self._motion is not None:
            deadlines.append(now + tick)
        session = self._session
        if session is not None:
            deadlines += [sub.due for sub in session.subscriptions.values()]
            if session.parser.partial_since is not None:
                deadlines.append(session.parser.partial_since + self.config.device.partial_frame_timeout)
        return min(deadlines) if deadlines else None

    # ------------------------------------------------------------------ requests

    @staticmethod
    def _reply(command, status, body=b''):
        return encode_frame(command, pack_status(status, body))

    def _handle(self, session, item):
        if isinstance(item, CorruptFrame):
            return [self._reply(item.command, Status.CHECKSUM_ERROR)]
        handler = self._handlers.get(item.command)
        if handler is None:
            self.stats['unknown_commands'] += 1
            return [self._reply(item.command, Status.UNKNOWN_COMMAND)]
        out = []
        try:
            reply = handler(session, item.payload, out)
        except _Refused as refusal:
            self.stats['refused'] += 1
            return out + [self._reply(item.command, refusal.status)]
        if reply is not None:
            out.append(self._reply(item.command, Status.SUCCESS, reply))
        return out

    # Each handler gets (session, payload, out): it returns the body of a success reply, or None when it has
    # put its replies into `out` itself (a motion: 26 pending), or raises _Refused(status).

    def _on_loop(self, session, payload, out):
        return payload

    def _on_disconnect(self, session, payload, out):
        _no_params(payload)
        out += self._halt(Status.COMMAND_ABORTED)
        session.announced = True
        return b''

    def _check_motion_allowed(self):
        if self._fast_stop:
            raise _Refused(Status.ACCESS_DENIED)
        if not self._referenced:
            raise _Refused(Status.NOT_INITIALIZED)

    def _check_speed(self, speed):
        return _in_range(speed, self.limits.min_speed, self.limits.max_speed)

    def _on_homing(self, session, payload, out):
        (direction,) = _unpack(payload, '<B')
        if direction not in (0, 1, 2):
            raise _Refused(Status.INVALID_PARAMETER)
        if self._fast_stop:
            raise _Refused(Status.ACCESS_DENIED)
        target = 0.0 if direction == 2 else self.limits.stroke
        out += self._start_motion(session, Command.HOMING, target, self.config.device.homing_speed,
                                  GraspingState.POSITIONING, GraspingState.IDLE, Status.SUCCESS)
        self._referenced = False  # until this homing completes

    def _on_move(self, session, payload, out):
        flags, width, speed = _unpack(payload, '<Bff')
        if flags & ~(MOVE_RELATIVE | MOVE_STOP_ON_BLOCK):
            raise _Refused(Status.INVALID_PARAMETER)
        target = self._width + width if flags & MOVE_RELATIVE else width
        _in_range(target, 0.0, self.limits.stroke)
        self._check_speed(speed)
        self._check_motion_allowed()
        block_at = None
        if flags & MOVE_STOP_ON_BLOCK and target < self._width:
            part = self._part_width()
            if part is not None:
                contact = min(part - self.config.behaviour.block_squeeze, self._width)
                if contact > target:
                    block_at = contact
        # Without stop-on-block the cloth is soft: a move squeezes it rather than being blocked.
        out += self._start_motion(session, Command.MOVE, target, speed, GraspingState.POSITIONING, GraspingState.IDLE,
                                  Status.SUCCESS, block_at)

    def _on_grasp(self, session, payload, out):
        width, speed = _unpack(payload, '<ff')
        _in_range(width, 0.0, self.limits.stroke)
        self._check_speed(speed)
        self._check_motion_allowed()
        part = self._part_width()
        lowest = max(0.0, width - self.config.device.clamp_travel)
        contact = None if part is None else min(part, self._width)
        if contact is not None and contact >= lowest:
            out += self._start_motion(session, Command.GRASP, contact, speed, GraspingState.GRASPING,
                                      GraspingState.HOLDING, Status.SUCCESS)
        else:
            out += self._start_motion(session, Command.GRASP, lowest, speed, GraspingState.GRASPING,
                                      GraspingState.NO_PART, Status.COMMAND_FAILED)

    def _on_release(self, session, payload, out):
        width, speed = _unpack(payload, '<ff')
        _in_range(width, 0.0, self.limits.stroke)
        self._check_speed(speed)
        self._check_motion_allowed()
        out += self._start_motion(session, Command.RELEASE, width, speed, GraspingState.RELEASING, GraspingState.IDLE,
                                  Status.SUCCESS)

    def _on_stop(self, session, payload, out):
        _no_params(payload)
        out += self._halt(Status.COMMAND_ABORTED)
        return b''

    def _on_fast_stop(self, session, payload, out):
        _no_params(payload)
        out += self._enter_fast_stop()
        return b''

    def _on_ack(self, session, payload, out):
        if len(payload) < len(ACK_KEY):
            raise _Refused(Status.NOT_ENOUGH_PARAMS)
        if len(payload) > len(ACK_KEY):
            raise _Refused(Status.FORMAT_ERROR)
        if payload != ACK_KEY:
            raise _Refused(Status.INVALID_PARAMETER)
        self._fast_stop = False
        if self._grasping == GraspingState.ERROR:
            self._grasping = GraspingState.IDLE
        return b''

    def _on_set_acceleration(self, session, payload, out):
        (value,) = _unpack(payload, '<f')
        self._acceleration = _in_range(value, self.limits.min_acceleration, self.limits.max_acceleration)
        return b''

    def _on_get_acceleration(self, session, payload, out):
        _no_params(payload)
        return pack_float(self._acceleration)

    def _on_set_force_limit(self, session, payload, out):
        (value,) = _unpack(payload, '<f')
        self._force_limit = _in_range(value, self.limits.min_force, self.limits.max_force)
        return b''

    def _on_get_force_limit(self, session, payload, out):
        _no_params(payload)
        return pack_float(self._force_limit)

    def _on_tare(self, session, payload, out):
        _no_params(payload)
        return b''

    def _on_system_info(self, session, payload, out):
        _no_params(payload)
        return pack_info(self.config.info)

    def _on_system_limits(self, session, payload, out):
        _no_params(payload)
        return pack_limits(self.limits)

    def _on_state_query(self, command, session, payload, out):
        flags, period_ms = _unpack(payload, '<BH')
        if flags & ~(AUTO_UPDATE_PERIODIC | AUTO_UPDATE_ON_CHANGE):
            raise _Refused(Status.INVALID_PARAMETER)
        if flags & AUTO_UPDATE_PERIODIC:
            if period_ms < self.config.device.min_period_ms:
                raise _Refused(Status.INVALID_PARAMETER)
            sub = _Subscription(period_ms / 1000.0, bool(flags & AUTO_UPDATE_ON_CHANGE), self._clock())
            session.subscriptions[command] = sub
            sub.due += sub.period
            sub.last = self._state_value(command)
            return sub.last
        session.subscriptions.pop(command, None)  # a one-shot read also ends the auto-update
        return self._state_value(command)

    def _state_value(self, command):
        if command == Command.SYSTEM_STATE:
            return struct.pack('<I', self.system_flags())
        if command == Command.GRASPING_STATE:
            return struct.pack('<B', self._grasping)
        if command == Command.OPENING_WIDTH:
            return pack_float(self._width)
        if command == Command.SPEED:
            return pack_float(self._speed)
        return pack_float(self._force_limit if self._grasping == GraspingState.HOLDING else 0.0)

    # ------------------------------------------------------------------ fingers

    def _on_finger_info(self, finger, session, payload, out):
        _no_params(payload)
        return bytes.fromhex(self.config.fingers.finger(finger).info)

    def _on_finger_flags(self, finger, session, payload, out):
        _no_params(payload)
        return struct.pack('<H', self.config.fingers.finger(finger).flags)

    def _on_finger_power(self, finger, session, payload, out):
        (on,) = _unpack(payload, '<B')
        if on not in (0, 1):
            raise _Refused(Status.INVALID_PARAMETER)
        self._finger_power[finger] = bool(on)
        return b''

    def _on_finger_data(self, finger, session, payload, out):
        _no_params(payload)
        options = self.config.fingers.finger(finger)
        if options.data == 'error':
            raise _Refused(options.error_status)
        cells = self.finger_frame(finger)
        if cells is None:
            raise _Refused(Status.READ_ERROR)
        body = pack_finger_data(cells)
        return body[:len(body) // 2] if options.data == 'wrong_size' else body

    def finger_frame(self, finger):
        """Finger `finger`'s cells (row-major, TACTILE_CELLS of them), or None when the frame source failed."""
        try:
            frame = [list(row) for row in self.frame_source()]
            if finger != self.config.fingers.cloth_finger:
                frame = mirrored(frame)
            cells = [int(v) for row in frame for v in row]
            if len(frame) != TACTILE_ROWS or len(cells) != TACTILE_CELLS or not all(0 <= v <= 0xFFFF for v in cells):
                raise ValueError('a %d x %d frame of u16 cells expected, got %d rows, %d cells'
                                 % (TACTILE_ROWS, TACTILE_COLS, len(frame), len(cells)))
            return cells
        except Exception:  # noqa: BLE001 - a faulty model must not take the device down
            self.stats['finger_errors'] += 1
            _LOG.exception('WSG simulator: the frame source failed for finger %d; answering 8 (read error)', finger)
            return None

    # ------------------------------------------------------------------ motion

    def _part_width(self):
        if self.fingers is None:
            return None
        try:
            return self.fingers.part_width_mm()
        except Exception:  # noqa: BLE001 - a faulty model must not take the device down
            self.stats['finger_errors'] += 1
            _LOG.exception('WSG simulator: fingers.part_width_mm() failed; as if there were no part')
            return None

    def _set_fingers(self, width):
        if self.fingers is None:
            return
        try:
            self.fingers.set_width(width)
        except Exception:  # noqa: BLE001 - a faulty model must not take the device down
            self.stats['finger_errors'] += 1
            _LOG.exception('WSG simulator: fingers.set_width(%.3f) failed', width)

    def _start_motion(self, session, command, target, speed, moving_state, final_state, final_status,
                      block_at=None):
        out = self._halt(Status.COMMAND_ABORTED)  # a new motion replaces the running one
        out.append(self._reply(command, Status.PENDING))
        self._motion = _Motion(session, command, float(target), float(speed), final_state, final_status, block_at)
        self._grasping = moving_state
        self._speed = float(speed)
        self._axis_stopped = self._target_reached = self._blocked = False
        self._last_tick = self._clock()
        return out

    def _halt(self, status):
        """Stop the running motion (its client gets `status`); returns its reply frames."""
        motion, self._motion = self._motion, None
        self._speed = 0.0
        if motion is None:
            return []
        self._axis_stopped = True
        if self._grasping in (GraspingState.GRASPING, GraspingState.RELEASING, GraspingState.POSITIONING):
            self._grasping = GraspingState.IDLE
        return self._to_client(motion, status)

    def _enter_fast_stop(self):
        out = self._halt(Status.COMMAND_ABORTED)
        self._fast_stop = True
        self._grasping = GraspingState.ERROR
        return out

    def _to_client(self, motion, status):
        if motion.session is not self._session:
            return []  # the client that asked is gone
        return [self._reply(motion.command, status)]

    def _advance(self, now):
        dt, self._last_tick = now - self._last_tick, now
        motion = self._motion
        if motion is None:
            return []
        stop_at = motion.target if motion.block_at is None else motion.block_at
        step = motion.speed * max(dt, 0.0)
        remaining = stop_at - self._width
        if abs(remaining) > step:
            self._width += math.copysign(step, remaining)
            self._set_fingers(self._width)
            return []
        self._width = stop_at
        self._set_fingers(self._width)
        return self._finish(motion)

    def _finish(self, motion):
        self._motion = None
        self._speed = 0.0
        self._grasping = motion.final_state
        status = motion.final_status
        if motion.block_at is not None:
            status = Status.AXIS_BLOCKED  # the fingers met the part: stopped where they are
            self._blocked = self._axis_stopped = True
        self._target_reached = status == Status.SUCCESS
        if motion.command == Command.HOMING and status == Status.SUCCESS:
            self._referenced = True
        return self._to_client(motion, status)


def describe(config: Optional[TwinConfig] = None):
    """One line on the twin's options, for its start-up log."""
    c = config or TWIN
    return ('referenced at power-up %s, error state on TCP disconnect %s, cloth finger %d, finger data %s/%s'
            % (c.behaviour.referenced_at_power_up, c.behaviour.error_on_tcp_disconnect, c.fingers.cloth_finger,
               c.fingers.finger1.data, c.fingers.finger2.data))
