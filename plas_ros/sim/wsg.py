"""Simulated WSG 32: a TCP server speaking the WSG binary command set (doc/wsg.md, command set).

One thread runs a selector loop: it accepts one client at a time (further clients wait in the listen
backlog and are served in turn), parses requests with the shared codec, moves the fingers at the commanded
speed in real time and sends the motion replies (26 pending, then the final status) and the periodic
auto-updates. Garbage, corrupt or truncated frames and dropped connections are answered or counted, never
fatal.

    python -m plas_ros.sim.wsg --port P [--host H] [--part-width MM]

Device values (limits, system info, homing speed, clamping travel) are those of this simulation, chosen to be
plausible for a WSG 32; the real gripper's are read from it (0x50, 0x53).
"""
import argparse
import functools
import logging
import math
import selectors
import socket
import struct
import sys
import threading
import time

from plas_ros.hardware.wsg import (
    ACK_KEY,
    AUTO_UPDATE_ON_CHANGE,
    AUTO_UPDATE_PERIODIC,
    MIN_PERIOD_MS,
    MOVE_RELATIVE,
    MOVE_STOP_ON_BLOCK,
    Command,
    CorruptFrame,
    FrameParser,
    GraspingState,
    Status,
    SystemFlag,
    SystemInfo,
    SystemLimits,
    encode_frame,
    pack_float,
    pack_info,
    pack_limits,
    pack_status,
)
from plas_ros.sim.cli import StopSignals, parse_without_ros_remappings

SIM_LIMITS = SystemLimits(stroke=68.0, min_speed=0.1, max_speed=420.0, min_acceleration=100.0,
                          max_acceleration=5000.0, min_force=5.0, max_force=80.0, overdrive_force=80.0)
SIM_INFO = SystemInfo(device_type=32, hardware_revision=1, firmware_version=0x0400, serial_number=20240001)
HOMING_SPEED = 100.0          # mm/s
CLAMP_TRAVEL = 10.0           # mm a grasp may close past its nominal width before it reports "no part"
DEFAULT_FORCE_LIMIT = 40.0    # N
DEFAULT_ACCELERATION = 1000.0  # mm/s^2 (motion itself runs at constant speed)
MOTION_TICK = 0.005           # s between finger updates while moving
PARTIAL_FRAME_TIMEOUT = 1.0   # s a started frame may wait for its remaining bytes
MAX_OUTBOX = 1 << 20          # bytes queued for a client that does not read; beyond, it is dropped

_LOG = logging.getLogger('plas_ros.sim.wsg')


class StaticPart:
    """Fingers with a fixed part between them (or none): for the standalone simulator and tests."""

    def __init__(self, part_width=None):
        self.part_width = part_width
        self.width = None

    def set_width(self, width_mm):
        self.width = width_mm

    def part_width_mm(self):
        return self.part_width


class _Refused(Exception):
    def __init__(self, status):
        super().__init__(status)
        self.status = status


class _Motion:
    def __init__(self, conn, command, target, speed, final_state, final_status):
        self.conn = conn
        self.command = command
        self.target = target
        self.speed = speed
        self.final_state = final_state
        self.final_status = final_status


class _Subscription:
    def __init__(self, period, on_change, due):
        self.period = period
        self.on_change = on_change
        self.due = due
        self.last = None


class _Connection:
    def __init__(self, sock, now):
        self.sock = sock
        self.parser = FrameParser()
        self.out = bytearray()
        self.subscriptions = {}
        self.last_rx = now
        self.close_when_flushed = False
        self.open = True


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


class WsgSimulator:
    """The simulated gripper. `fingers` (optional) gets `set_width(mm)` as the fingers move and answers
    `part_width_mm()` (None: no part) when a grasp starts. Thread-safe; all state lives in the loop thread.
    """

    def __init__(self, fingers=None, limits=SIM_LIMITS, initial_width=None, clock=time.monotonic):
        self.fingers = fingers
        self.limits = limits
        self._clock = clock
        self._width = float(limits.stroke if initial_width is None else initial_width)
        self._speed = 0.0
        self._force_limit = DEFAULT_FORCE_LIMIT
        self._acceleration = DEFAULT_ACCELERATION
        self._grasping = GraspingState.IDLE
        self._referenced = True
        self._fast_stop = False
        self._axis_stopped = False
        self._target_reached = False
        self._motion = None
        self._conn = None
        self._listener = None
        self._address = None
        self._reopen_at = None
        self._calls = []
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._selector = None
        self._wake_r = self._wake_w = None
        self._thread = None
        self._last_tick = clock()
        self.stats = dict(connections=0, frames=0, checksum_errors=0, garbage_bytes=0, truncated_frames=0,
                          unknown_commands=0, refused=0, finger_errors=0, internal_errors=0)
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

    # ------------------------------------------------------------------ public API

    def start(self, host='127.0.0.1', port=0):
        """Listen on host:port (0: any free port) and serve in a background thread; returns the port."""
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, self._on_wake)
        self._address = (host, port)
        try:
            self._open_listener()
        except OSError:
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()
            raise
        self._address = self._listener.getsockname()[:2]
        self._set_fingers(self._width)
        self._last_tick = self._clock()
        self._thread = threading.Thread(target=self._run, name='wsg-sim', daemon=True)
        self._thread.start()
        return self._address[1]

    @property
    def port(self):
        return self._address[1] if self._address else None

    def stop(self):
        if self._thread is None:
            return
        self._stopping.set()
        self._wake()
        self._thread.join(5.0)
        self._thread = None
        with self._lock:
            self._close_connection('simulator stopped')
            self._close_listener()
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()

    def drop_connections(self, hold_off=0.0):
        """Fault injection: close the client's connection; with hold_off > 0 also refuse connections (the
        listening socket is closed) for that many seconds. Returns once done."""
        self._in_loop(lambda now: self._drop(now, float(hold_off)))

    def inject_bytes(self, data):
        """Fault injection: send raw bytes (garbage, a corrupt or truncated frame) to the connected client."""
        self._in_loop(lambda now: self._send_raw(self._conn, bytes(data)))

    def _in_loop(self, action, timeout=5.0):
        """Run action(now) in the loop thread (which owns the sockets) and wait for it."""
        done = threading.Event()
        with self._lock:
            self._calls.append((action, done))
        self._wake()
        if not done.wait(timeout):
            raise RuntimeError('WSG simulator loop did not run the request within %.0f s' % timeout)

    def _run_calls(self, now):
        calls, self._calls = self._calls, []
        for action, done in calls:
            try:
                action(now)
            finally:
                done.set()

    @property
    def width(self):
        with self._lock:
            return self._width

    @property
    def grasping_state(self):
        with self._lock:
            return self._grasping

    @property
    def client_connected(self):
        with self._lock:
            return self._conn is not None

    def counters(self):
        with self._lock:
            stats = dict(self.stats)
            if self._conn is not None:
                for name in ('frames', 'checksum_errors', 'garbage_bytes', 'truncated_frames'):
                    stats[name] += getattr(self._conn.parser, name)
            return stats

    def system_flags(self):
        with self._lock:
            flags = SystemFlag(0)
            for on, flag in ((self._referenced, SystemFlag.REFERENCED), (self._motion is not None, SystemFlag.MOVING),
                             (self._axis_stopped, SystemFlag.AXIS_STOPPED),
                             (self._target_reached, SystemFlag.TARGET_POS_REACHED),
                             (self._fast_stop, SystemFlag.FAST_STOP)):
                if on:
                    flags |= flag
            return int(flags)

    # ------------------------------------------------------------------ loop

    def _wake(self):
        try:
            self._wake_w.send(b'x')
        except OSError:
            pass

    def _on_wake(self, _mask):
        try:
            self._wake_r.recv(4096)
        except OSError:
            pass

    def _run(self):
        while not self._stopping.is_set():
            try:
                events = self._selector.select(self._select_timeout())
                with self._lock:
                    for key, mask in events:
                        key.data(mask)
                    now = self._clock()
                    self._run_calls(now)
                    self._reopen_if_due(now)
                    self._advance(now)
                    self._send_updates(now)
                    self._expire_partial_frame(now)
            except Exception:  # noqa: BLE001 - the device must outlive any bug a client can trigger
                self.stats['internal_errors'] += 1
                _LOG.exception('WSG simulator: internal error (continuing)')
                time.sleep(0.01)

    def _select_timeout(self):
        with self._lock:
            now = self._clock()
            deadlines = [now + 0.5]
            if self._motion is not None:
                deadlines.append(now + MOTION_TICK)
            if self._reopen_at is not None:
                deadlines.append(self._reopen_at)
            conn = self._conn
            if conn is not None:
                deadlines += [sub.due for sub in conn.subscriptions.values()]
                if conn.parser.pending_bytes:
                    deadlines.append(conn.last_rx + PARTIAL_FRAME_TIMEOUT)
            return max(0.0, min(deadlines) - now)

    # ------------------------------------------------------------------ connections

    def _open_listener(self):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(self._address)
            listener.listen(4)
        except OSError:
            listener.close()
            raise
        listener.setblocking(False)
        self._listener = listener
        if self._conn is None:
            self._selector.register(listener, selectors.EVENT_READ, self._on_accept)

    def _close_listener(self):
        if self._listener is None:
            return
        if self._conn is None:
            self._selector.unregister(self._listener)
        self._listener.close()
        self._listener = None

    def _on_accept(self, _mask):
        try:
            sock, peer = self._listener.accept()
        except OSError:
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._selector.unregister(self._listener)  # one client at a time; the next waits in the backlog
        self._conn = _Connection(sock, self._clock())
        self._selector.register(sock, selectors.EVENT_READ, self._on_connection_event)
        self.stats['connections'] += 1
        _LOG.info('WSG simulator: client %s:%d connected', *peer[:2])

    def _close_connection(self, reason):
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        conn.open = False
        for name in ('frames', 'checksum_errors', 'garbage_bytes', 'truncated_frames'):
            self.stats[name] += getattr(conn.parser, name)
        self._selector.unregister(conn.sock)
        conn.sock.close()
        if self._listener is not None:
            self._selector.register(self._listener, selectors.EVENT_READ, self._on_accept)
        _LOG.info('WSG simulator: connection closed (%s)', reason)

    def _drop(self, now, hold_off):
        self._close_connection('fault injection')
        if hold_off > 0:
            self._close_listener()
            self._reopen_at = now + hold_off

    def _reopen_if_due(self, now):
        if self._reopen_at is None or now < self._reopen_at:
            return
        try:
            self._open_listener()
            self._reopen_at = None
        except OSError as exc:
            _LOG.warning('WSG simulator: cannot listen on %s:%d again yet (%s)', self._address[0], self._address[1],
                         exc)
            self._reopen_at = now + 0.1

    def _on_connection_event(self, mask):
        conn = self._conn
        if conn is None:
            return  # closed by an earlier event of the same batch
        if mask & selectors.EVENT_WRITE:
            self._flush(conn)
        if conn.open and mask & selectors.EVENT_READ:
            try:
                data = conn.sock.recv(4096)
            except BlockingIOError:
                return
            except OSError as exc:
                self._close_connection('receive failed: %s' % exc)
                return
            if not data:
                self._close_connection('client closed the connection')
                return
            conn.last_rx = self._clock()
            for item in conn.parser.feed(data):
                if not conn.open:
                    break
                self._handle(conn, item)

    def _expire_partial_frame(self, now):
        conn = self._conn
        if conn is not None and conn.parser.pending_bytes and now - conn.last_rx > PARTIAL_FRAME_TIMEOUT:
            dropped = conn.parser.discard_partial()
            _LOG.warning('WSG simulator: dropped %d bytes of a frame that never completed', dropped)

    def _send(self, conn, command, status, body=b''):
        self._send_raw(conn, encode_frame(command, pack_status(status, body)))

    def _send_raw(self, conn, data):
        if conn is None or not conn.open:
            return  # the client that asked is gone
        conn.out += data
        if len(conn.out) > MAX_OUTBOX:
            self._close_connection('client does not read its replies')
            return
        self._flush(conn)

    def _flush(self, conn):
        try:
            sent = conn.sock.send(conn.out)
            del conn.out[:sent]
        except BlockingIOError:
            pass
        except OSError as exc:
            self._close_connection('send failed: %s' % exc)
            return
        if conn.close_when_flushed and not conn.out:
            self._close_connection('client announced its disconnect')
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.out else 0)
        self._selector.modify(conn.sock, events, self._on_connection_event)

    # ------------------------------------------------------------------ requests

    def _handle(self, conn, item):
        if isinstance(item, CorruptFrame):
            self._send(conn, item.command, Status.CHECKSUM_ERROR)
            return
        handler = self._handlers.get(item.command)
        if handler is None:
            self.stats['unknown_commands'] += 1
            self._send(conn, item.command, Status.UNKNOWN_COMMAND)
            return
        try:
            reply = handler(conn, item.payload)
        except _Refused as refusal:
            self.stats['refused'] += 1
            self._send(conn, item.command, refusal.status)
            return
        if reply is not None:
            self._send(conn, item.command, Status.SUCCESS, reply)

    def _on_loop(self, conn, payload):
        return payload

    def _on_disconnect(self, conn, payload):
        _no_params(payload)
        self._halt(Status.COMMAND_ABORTED)
        conn.close_when_flushed = True
        return b''

    def _check_motion_allowed(self):
        if self._fast_stop:
            raise _Refused(Status.ACCESS_DENIED)
        if not self._referenced:
            raise _Refused(Status.NOT_INITIALIZED)

    def _check_speed(self, speed):
        return _in_range(speed, self.limits.min_speed, self.limits.max_speed)

    def _on_homing(self, conn, payload):
        (direction,) = _unpack(payload, '<B')
        if direction not in (0, 1, 2):
            raise _Refused(Status.INVALID_PARAMETER)
        self._check_motion_allowed()
        target = 0.0 if direction == 2 else self.limits.stroke
        self._start_motion(conn, Command.HOMING, target, HOMING_SPEED, GraspingState.POSITIONING,
                           GraspingState.IDLE, Status.SUCCESS)

    def _on_move(self, conn, payload):
        flags, width, speed = _unpack(payload, '<Bff')
        if flags & ~(MOVE_RELATIVE | MOVE_STOP_ON_BLOCK):
            raise _Refused(Status.INVALID_PARAMETER)
        target = self._width + width if flags & MOVE_RELATIVE else width
        _in_range(target, 0.0, self.limits.stroke)
        self._check_speed(speed)
        self._check_motion_allowed()
        # The cloth is soft: a move squeezes it rather than being blocked, so stop-on-block never triggers.
        self._start_motion(conn, Command.MOVE, target, speed, GraspingState.POSITIONING, GraspingState.IDLE,
                           Status.SUCCESS)

    def _on_grasp(self, conn, payload):
        width, speed = _unpack(payload, '<ff')
        _in_range(width, 0.0, self.limits.stroke)
        self._check_speed(speed)
        self._check_motion_allowed()
        part = self._part_width()
        lowest = max(0.0, width - CLAMP_TRAVEL)
        contact = None if part is None else min(part, self._width)
        if contact is not None and contact >= lowest:
            self._start_motion(conn, Command.GRASP, contact, speed, GraspingState.GRASPING, GraspingState.HOLDING,
                               Status.SUCCESS)
        else:
            self._start_motion(conn, Command.GRASP, lowest, speed, GraspingState.GRASPING, GraspingState.NO_PART,
                               Status.COMMAND_FAILED)

    def _on_release(self, conn, payload):
        width, speed = _unpack(payload, '<ff')
        _in_range(width, 0.0, self.limits.stroke)
        self._check_speed(speed)
        self._check_motion_allowed()
        self._start_motion(conn, Command.RELEASE, width, speed, GraspingState.RELEASING, GraspingState.IDLE,
                           Status.SUCCESS)

    def _on_stop(self, conn, payload):
        _no_params(payload)
        self._halt(Status.COMMAND_ABORTED)
        return b''

    def _on_fast_stop(self, conn, payload):
        _no_params(payload)
        self._halt(Status.COMMAND_ABORTED)
        self._fast_stop = True
        self._grasping = GraspingState.ERROR
        return b''

    def _on_ack(self, conn, payload):
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

    def _on_set_acceleration(self, conn, payload):
        (value,) = _unpack(payload, '<f')
        self._acceleration = _in_range(value, self.limits.min_acceleration, self.limits.max_acceleration)
        return b''

    def _on_get_acceleration(self, conn, payload):
        _no_params(payload)
        return pack_float(self._acceleration)

    def _on_set_force_limit(self, conn, payload):
        (value,) = _unpack(payload, '<f')
        self._force_limit = _in_range(value, self.limits.min_force, self.limits.max_force)
        return b''

    def _on_get_force_limit(self, conn, payload):
        _no_params(payload)
        return pack_float(self._force_limit)

    def _on_tare(self, conn, payload):
        _no_params(payload)
        return b''

    def _on_system_info(self, conn, payload):
        _no_params(payload)
        return pack_info(SIM_INFO)

    def _on_system_limits(self, conn, payload):
        _no_params(payload)
        return pack_limits(self.limits)

    def _on_state_query(self, command, conn, payload):
        flags, period_ms = _unpack(payload, '<BH')
        if flags & ~(AUTO_UPDATE_PERIODIC | AUTO_UPDATE_ON_CHANGE):
            raise _Refused(Status.INVALID_PARAMETER)
        if flags & AUTO_UPDATE_PERIODIC:
            if period_ms < MIN_PERIOD_MS:
                raise _Refused(Status.INVALID_PARAMETER)
            sub = _Subscription(period_ms / 1000.0, bool(flags & AUTO_UPDATE_ON_CHANGE), self._clock())
            conn.subscriptions[command] = sub
            sub.due += sub.period
            sub.last = self._state_value(command)
            return sub.last
        conn.subscriptions.pop(command, None)
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

    def _send_updates(self, now):
        conn = self._conn
        if conn is None:
            return
        for command, sub in list(conn.subscriptions.items()):
            if now < sub.due:
                continue
            sub.due += sub.period
            if sub.due <= now:
                sub.due = now + sub.period  # a late loop does not send a burst to catch up
            value = self._state_value(command)
            if sub.on_change and value == sub.last:
                continue
            sub.last = value
            self._send(conn, command, Status.SUCCESS, value)

    # ------------------------------------------------------------------ motion

    def _part_width(self):
        if self.fingers is None:
            return None
        try:
            return self.fingers.part_width_mm()
        except Exception:  # noqa: BLE001 - a faulty model must not take the device down
            self.stats['finger_errors'] += 1
            _LOG.exception('WSG simulator: fingers.part_width_mm() failed; grasping as if there were no part')
            return None

    def _set_fingers(self, width):
        if self.fingers is None:
            return
        try:
            self.fingers.set_width(width)
        except Exception:  # noqa: BLE001 - a faulty model must not take the device down
            self.stats['finger_errors'] += 1
            _LOG.exception('WSG simulator: fingers.set_width(%.3f) failed', width)

    def _start_motion(self, conn, command, target, speed, moving_state, final_state, final_status):
        self._halt(Status.COMMAND_ABORTED)  # a new motion replaces the running one
        self._send(conn, command, Status.PENDING)
        self._motion = _Motion(conn, command, float(target), float(speed), final_state, final_status)
        self._grasping = moving_state
        self._speed = float(speed)
        self._axis_stopped = self._target_reached = False
        self._last_tick = self._clock()

    def _halt(self, status):
        motion, self._motion = self._motion, None
        self._speed = 0.0
        if motion is None:
            return
        self._axis_stopped = True
        if self._grasping in (GraspingState.GRASPING, GraspingState.RELEASING, GraspingState.POSITIONING):
            self._grasping = GraspingState.IDLE
        self._send(motion.conn, motion.command, status)

    def _advance(self, now):
        dt, self._last_tick = now - self._last_tick, now
        motion = self._motion
        if motion is None:
            return
        step = motion.speed * dt
        remaining = motion.target - self._width
        if abs(remaining) <= step:
            self._width = motion.target
            self._set_fingers(self._width)
            self._finish(motion)
        else:
            self._width += math.copysign(step, remaining)
            self._set_fingers(self._width)

    def _finish(self, motion):
        self._motion = None
        self._speed = 0.0
        self._grasping = motion.final_state
        self._target_reached = motion.final_status == Status.SUCCESS
        if motion.command == Command.HOMING:
            self._referenced = True
        self._send(motion.conn, motion.command, motion.final_status)


def parse_args(argv):
    parser = argparse.ArgumentParser(prog='python -m plas_ros.sim.wsg', description=__doc__.split('\n\n')[0])
    parser.add_argument('--host', default='127.0.0.1', help='address to listen on')
    parser.add_argument('--port', type=int, default=0, help='TCP port (0: any free port, printed at start)')
    parser.add_argument('--part-width', type=float, default=None,
                        help='width (mm) of a part between the fingers for grasps (default: no part)')
    return parse_without_ros_remappings(parser, argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s: %(message)s')
    simulator = WsgSimulator(fingers=StaticPart(args.part_width))
    stop_signals = StopSignals()
    port = simulator.start(args.host, args.port)
    print('WSG simulator listening on %s:%d' % (args.host, port), flush=True)
    try:
        stop_signals.wait()
    finally:
        simulator.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
