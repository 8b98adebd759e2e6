"""The simulated arm: an Arm over the cloth simulator, served as line-delimited JSON RPC on TCP.

The world's arm is a hand (`right_hand`) carrying the gripper tip at the same offset as the real one
(config/robot.yaml arm.tip_offset): it reports and takes hand poses, like the Sawyer, and the driver's
SimArmClient converts between tip and hand exactly as the real adapter does (plas_ros.hardware.arm.TipArm).

Wire format, one JSON object per line (UTF-8, '\\n'-terminated):
    request  {"id": 7, "method": "move_hand", "params": {"position": [x, y, z], "orientation": [x, y, z, w]}}
    reply    {"id": 7, "result": {"hand": {"position": [...], "orientation": [...]}, "clipped": false}}
    or       {"id": 7, "error": "what went wrong"}
Methods: ping, hand_pose, wrench (one reading), wrench_samples (every reading the simulated force sensor took, at
config/sim.yaml wrench.sample_rate_hz, since the previous request and since the last motion ended; at most
MAX_WRENCH_SAMPLES, oldest first), workspace (the world's safety box), move_hand, move_to_start (returns the
hand pose). A bad line gets an error reply and the connection stays open; the server never dies of a client.
A motion request is executed once per request line: the client never resends one (a move is not idempotent).
Bounds (config/sim_arm.yaml rpc): a line longer than max_line_bytes gets an error reply and closes the connection
(nothing is read past the limit), at most max_clients are served at once, and a connection without a complete
request for idle_timeout is closed; the client reads a reply line with the same limit and its timeout.
"""
import json
import math
import select
import socket
import socketserver
import threading
import time
from dataclasses import dataclass

import numpy as np

from plas_ros.config import load_section
from plas_ros.hardware.arm import (
    ROBOT,
    Arm,
    ArmError,
    PitchReference,
    SafetyBox,
    TipArm,
    TipFrame,
    finite,
    rotation_angle_deg,
    unit_quaternion,
)

PLANE_TOLERANCE_M = 1e-3    # a hand target whose tip leaves the sliding plane by more is refused
TURN_TOLERANCE_DEG = 0.05   # ... and one that turns the gripper other than about its pitch axis
MOTIONS = ('move_hand', 'move_to_start')  # never resent
MAX_WRENCH_SAMPLES = 100    # readings one wrench_samples reply carries at most (older ones are dropped)


@dataclass(frozen=True)
class RpcLimits:
    bind_host: str
    max_line_bytes: int
    max_clients: int
    idle_timeout: float


RPC = load_section(RpcLimits, 'sim_arm.yaml', 'rpc')


def read_line(stream, limit, what):
    """One '\n'-terminated line of at most `limit` bytes from a binary stream; b'' at the end of the stream;
    ValueError (naming `what`) for a longer one, of which no more than limit + 1 bytes were read."""
    line = stream.readline(limit + 1)
    if len(line) > limit:
        raise ValueError('%s line longer than %d bytes' % (what, limit))
    return line


class ClothArm(Arm):
    """The Arm of the simulated world: moves the cloth simulator's tip under the world's lock.

    The cloth simulator knows the tip (x fixed, y, z, pitch); this arm adds the hand behind it: the hand's
    orientation is `reference_orientation` pitched by the tip's pitch, its position the tip minus the tip
    offset. Clipping to the safety box happens inside ClothSim.move_tip (config/sim.yaml, robot.yaml).
    `move_to_start` goes back to the fixture and starts the next cloth episode; the fingers stay where
    the gripper has them (the WSG simulator owns the width).
    """

    def __init__(self, cloth, lock, tip_offset=ROBOT['tip_offset'],
                 reference_orientation=ROBOT['reference_orientation'], clock=time.monotonic):
        self._cloth = cloth
        self._lock = lock
        self.tip_frame = TipFrame(tip_offset)
        self.reference = PitchReference(reference_orientation)
        self._clock = clock
        self._sampled_until = clock()  # the force sensor's readings up to here have been handed out

    def _moved(self):
        """(under the lock) Readings before the end of a motion describe another contact: none is handed out."""
        self._sampled_until = self._clock()

    def tip_pose(self):
        with self._lock:
            return self._cloth.tip_pose()

    def wrench(self):
        with self._lock:
            return self._cloth.wrench()

    def wrench_samples(self):
        """The readings the force sensor took since the previous call and the last motion (the world between
        two motions of the arm is the one that is read now), oldest first, at most MAX_WRENCH_SAMPLES."""
        period = 1.0 / self._cloth.config.sample_rate_hz
        with self._lock:
            due = int((self._clock() - self._sampled_until) / period)
            self._sampled_until += due * period
            return [self._cloth.wrench() for _ in range(min(due, MAX_WRENCH_SAMPLES))]

    def move_tip(self, dy, dz, dpitch=0.0):
        with self._lock:
            result = self._cloth.move_tip(dy, dz, dpitch)
            self._moved()
            return result

    def move_to_start(self):
        with self._lock:
            width = self._cloth.width_mm
            pose = self._cloth.reset()
            self._cloth.set_width(width)
            self._moved()
            return pose

    def workspace(self):
        """The box the simulated tip is clipped to (robot.yaml's, y raised for the long cloth)."""
        box = self._cloth.config.safety_box
        return {'safety_box_low': box.low.tolist(), 'safety_box_high': box.high.tolist()}

    def hand_of(self, tip_pose):
        """{'position', 'orientation'} of the hand carrying the tip at `tip_pose` [x, y, z, pitch]."""
        orientation = self.reference.at(tip_pose[3])
        return {'position': self.tip_frame.hand_from_tip(tip_pose[:3], orientation).tolist(),
                'orientation': orientation.tolist()}

    def hand_pose(self):
        return self.hand_of(self.tip_pose())

    def move_hand(self, position, orientation):
        """Move the hand to a pose: the tip goes where the hand carries it -> (hand pose reached, clipped)."""
        orientation = unit_quaternion(orientation, 'hand orientation')
        tip = self.tip_frame.tip_from_hand(position, orientation)
        pitch = self.reference.pitch(orientation)
        with self._lock:
            current = self._cloth.tip_pose()
            if abs(tip[0] - current[0]) > PLANE_TOLERANCE_M:
                raise ValueError('the hand target puts the tip at x=%.4f m, off the sliding plane x=%.4f m'
                                 % (tip[0], current[0]))
            turn = rotation_angle_deg(orientation, self.reference.at(pitch))
            if turn > TURN_TOLERANCE_DEG:
                raise ValueError('hand orientation %r turns the gripper %.2f deg other than about its pitch axis'
                                 % (tuple(orientation.tolist()), turn))
            result = self._cloth.move_tip(tip[1] - current[1], tip[2] - current[2], pitch - current[3])
            self._moved()
            return self.hand_of(result.pose), result.clipped


def _number(params, name, default=None):
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError('parameter %r must be a finite number, got %r' % (name, value))
    return float(value)


def _numbers(params, name, size):
    value = params.get(name)
    if not isinstance(value, list) or len(value) != size:
        raise ValueError('parameter %r must be a list of %d numbers, got %r' % (name, size, value))
    return [_number({name: v}, name) for v in value]


def dispatch(arm, method, params):
    """Run one RPC call on `arm` and return its JSON-ready result."""
    if not isinstance(params, dict):
        raise ValueError('params must be an object, got %r' % (params,))
    if method == 'ping':
        return 'pong'
    if method == 'hand_pose':
        return arm.hand_pose()
    if method == 'wrench':
        return np.asarray(arm.wrench()).tolist()
    if method == 'wrench_samples':
        return [np.asarray(w).tolist() for w in arm.wrench_samples()]
    if method == 'workspace':
        return arm.workspace()
    if method == 'move_hand':
        hand, clipped = arm.move_hand(_numbers(params, 'position', 3), _numbers(params, 'orientation', 4))
        return {'hand': hand, 'clipped': bool(clipped)}
    if method == 'move_to_start':
        return arm.hand_of(arm.move_to_start())
    raise ValueError('unknown method %r' % (method,))


def handle_line(arm, line):
    """One request line -> one reply dict (errors become error replies)."""
    request_id = None
    try:
        request = json.loads(line)
        if not isinstance(request, dict) or 'method' not in request:
            raise ValueError('a request is an object with "method" (and "id", "params")')
        request_id = request.get('id')
        return {'id': request_id, 'result': dispatch(arm, request['method'], request.get('params') or {})}
    except (ValueError, TypeError, ArmError) as exc:  # json.JSONDecodeError is a ValueError
        return {'id': request_id, 'error': '%s: %s' % (type(exc).__name__, exc)}


class _Handler(socketserver.StreamRequestHandler):
    def setup(self):
        self.timeout = self.server.limits.idle_timeout or None  # applied to the socket by super().setup()
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.request)

    def finish(self):
        with self.server.connections_lock:
            self.server.connections.discard(self.request)
        super().finish()

    def handle(self):
        limits = self.server.limits
        if len(self.server.connections) > limits.max_clients:
            self._reply({'id': None, 'error': 'busy: %d clients are connected already' % limits.max_clients})
            return
        while True:
            try:
                raw = read_line(self.rfile, limits.max_line_bytes, 'request')
            except socket.timeout:
                return  # silent for idle_timeout: the connection is closed
            except ValueError as exc:
                self._reply({'id': None, 'error': '%s; closing the connection' % exc})
                return
            if not raw:
                return
            line = raw.decode('utf-8', 'replace').strip()
            if line and not self._reply(handle_line(self.server.arm, line)):
                return

    def _reply(self, reply):
        try:
            self.wfile.write((json.dumps(reply) + '\n').encode('utf-8'))
        except OSError:
            return False
        return True


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class SimArmServer:
    """Serves an Arm (normally ClothArm) on <bind_host>:<port> (config/sim_arm.yaml rpc) until stop()."""

    def __init__(self, arm, limits=RPC):
        self.arm = arm
        self.limits = limits
        self._server = None
        self._thread = None

    def start(self, host=None, port=0):
        host = self.limits.bind_host if host is None else host
        self._server = _Server((host, port), _Handler)
        self._server.arm = self.arm
        self._server.limits = self.limits
        self._server.connections = set()
        self._server.connections_lock = threading.Lock()
        self._thread = threading.Thread(target=self._server.serve_forever, name='sim-arm-rpc', daemon=True)
        self._thread.start()
        return self._server.server_address[1]

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            with self._server.connections_lock:
                for connection in list(self._server.connections):  # stopping means the clients lose us too
                    try:
                        connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
            self._thread.join(5.0)
            self._server = None


class SimArmClient(TipArm):
    """The driver's arm over the world process's JSON RPC: the tip logic of TipArm over the simulated hand.

    The safety box is the world's (asked once per connection: `workspace`), the tip offset, pitch reference
    and bounds the driver's own. Reads are retried once on a fresh connection when the link dropped; a motion
    request (move_hand, move_to_start) is sent once: a late or lost reply is an ArmError, never a resend.
    """

    def __init__(self, host=ROBOT['sim_host'], port=None, timeout=ROBOT['sim_timeout'], tip_x=ROBOT['tip_x'],
                 tip_offset=ROBOT['tip_offset'], reference_orientation=ROBOT['reference_orientation'],
                 pitch_range_deg=ROBOT['pitch_range_deg'], pitch_step_max_deg=ROBOT['pitch_step_max_deg']):
        if port is None:
            raise ValueError('SimArmClient needs the port of the simulated arm')
        super().__init__(None, tip_x, tip_offset=tip_offset, reference_orientation=reference_orientation,
                         pitch_range_deg=pitch_range_deg, pitch_step_max_deg=pitch_step_max_deg)
        self.address = (host, int(port))
        self.timeout = finite(timeout, 'timeout')
        self._sock = None
        self._reader = None
        self._next_id = 0
        self._lock = threading.Lock()

    def _connect(self):
        try:
            self._sock = socket.create_connection(self.address, timeout=self.timeout)
        except OSError as exc:
            raise ArmError('simulated arm at %s:%d unreachable: %s' % (self.address + (exc,))) from exc
        self._reader = self._sock.makefile('rb')

    def close(self):
        if self._sock is not None:
            self._reader.close()
            self._sock.close()
            self._sock = None
        self.safety_box = None  # the world may restart with another box

    def _link_is_stale(self):
        """True when the peer closed the link or something unasked for is waiting on it (a late reply)."""
        try:
            readable, _, _ = select.select([self._sock], [], [], 0.0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def _exchange(self, request):
        self._sock.sendall((json.dumps(request) + '\n').encode('utf-8'))
        line = read_line(self._reader, RPC.max_line_bytes, 'reply')
        if not line:
            raise ConnectionError('connection closed by the simulated arm')
        return json.loads(line.decode('utf-8'))

    def _send(self, request):
        """One request on a live link (connecting first when needed)."""
        if self._sock is not None and self._link_is_stale():
            self.close()
        if self._sock is None:
            self._connect()
        return self._exchange(request)

    def call(self, method, **params):
        """One RPC call; raises ArmError on an error reply, when the arm cannot be reached, or (never resent)
        when a motion request got no reply within the timeout."""
        with self._lock:
            self._next_id += 1
            request = {'id': self._next_id, 'method': method, 'params': params}
            try:
                reply = self._send(request)
            except (OSError, ValueError) as exc:
                self.close()  # a late reply must not be read as the answer to the next request
                if method in MOTIONS:
                    raise ArmError('simulated arm at %s:%d: no reply to %s within %.1f s (%s: %s); not resent, '
                                   'a move is not idempotent: the arm may have moved'
                                   % (self.address + (method, self.timeout, type(exc).__name__, exc))) from exc
                try:  # a read: stale link (world restarted?), one fresh attempt
                    reply = self._send(request)
                except (OSError, ValueError) as exc:
                    self.close()
                    raise ArmError('simulated arm at %s:%d: %s failed: %s'
                                   % (self.address + (method, exc))) from exc
        if not isinstance(reply, dict) or reply.get('id') != request['id']:
            raise ArmError('simulated arm answered request %r with %r' % (request['id'], reply))
        if 'error' in reply:
            raise ArmError('simulated arm refused %s: %s' % (method, reply['error']))
        return reply['result']

    @staticmethod
    def _hand(result, method):
        try:
            return list(result['position']), list(result['orientation'])
        except (KeyError, TypeError) as exc:
            raise ArmError('simulated arm: %s returned no hand pose (%r)' % (method, result)) from exc

    def _hand_pose(self):
        return self._hand(self.call('hand_pose'), 'hand_pose')

    def _box(self):
        if self.safety_box is None:
            result = self.call('workspace')
            try:
                self.safety_box = SafetyBox(result['safety_box_low'], result['safety_box_high'])
            except (KeyError, TypeError, ValueError) as exc:
                raise ArmError('simulated arm: workspace returned no usable box (%r): %s' % (result, exc)) from exc
        return self.safety_box

    def _move_hand(self, position, orientation):
        result = self.call('move_hand', position=[float(v) for v in position],
                           orientation=[float(v) for v in orientation])
        try:
            return bool(result['clipped'])
        except (KeyError, TypeError) as exc:
            raise ArmError('simulated arm: move_hand returned %r' % (result,)) from exc

    def wrench(self):
        return np.array(self.call('wrench'), dtype=np.float64)

    def wrench_readings(self):
        result = self.call('wrench_samples')
        if not isinstance(result, list):
            raise ArmError('simulated arm: wrench_samples returned %r' % (result,))
        return [np.array(w, dtype=np.float64) for w in result]

    def move_to_start(self):
        self._hand(self.call('move_to_start'), 'move_to_start')
        return self.tip_pose()
