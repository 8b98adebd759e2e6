"""The simulated arm: an Arm over the cloth simulator, served as line-delimited JSON RPC on TCP.

Wire format, one JSON object per line (UTF-8, '\\n'-terminated):
    request  {"id": 7, "method": "move_tip", "params": {"dy": 0.05, "dz": -0.01, "dpitch": 0.0}}
    reply    {"id": 7, "result": {"pose": [x, y, z, pitch_deg], "clipped": false}}
    or       {"id": 7, "error": "what went wrong"}
Methods: ping, tip_pose, wrench, move_tip, move_to_start. A bad line gets an error reply and the
connection stays open; the server never dies of a client.
"""
import json
import socket
import socketserver
import threading

import numpy as np

from plas_ros.hardware.arm import ROBOT, Arm, ArmError, MoveResult


class ClothArm(Arm):
    """The Arm of the simulated world: moves the cloth simulator's tip under the world's lock.

    Clipping to the safety box happens inside ClothSim.move_tip (config/sim.yaml, robot.yaml).
    `move_to_start` goes back to the fixture and starts the next cloth episode; the fingers stay where
    the gripper has them (the WSG simulator owns the width).
    """

    def __init__(self, cloth, lock):
        self._cloth = cloth
        self._lock = lock

    def tip_pose(self):
        with self._lock:
            return self._cloth.tip_pose()

    def wrench(self):
        with self._lock:
            return self._cloth.wrench()

    def move_tip(self, dy, dz, dpitch=0.0):
        with self._lock:
            return self._cloth.move_tip(dy, dz, dpitch)

    def move_to_start(self):
        with self._lock:
            width = self._cloth.width_mm
            pose = self._cloth.reset()
            self._cloth.set_width(width)
            return pose


def _number(params, name, default=None):
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError('parameter %r must be a number, got %r' % (name, value))
    return float(value)


def dispatch(arm, method, params):
    """Run one RPC call on `arm` and return its JSON-ready result."""
    if not isinstance(params, dict):
        raise ValueError('params must be an object, got %r' % (params,))
    if method == 'ping':
        return 'pong'
    if method == 'tip_pose':
        return np.asarray(arm.tip_pose()).tolist()
    if method == 'wrench':
        return np.asarray(arm.wrench()).tolist()
    if method == 'move_tip':
        result = arm.move_tip(_number(params, 'dy'), _number(params, 'dz'), _number(params, 'dpitch', 0.0))
        return {'pose': np.asarray(result.pose).tolist(), 'clipped': bool(result.clipped)}
    if method == 'move_to_start':
        return np.asarray(arm.move_to_start()).tolist()
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
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.request)

    def finish(self):
        with self.server.connections_lock:
            self.server.connections.discard(self.request)
        super().finish()

    def handle(self):
        for raw in self.rfile:
            line = raw.decode('utf-8', 'replace').strip()
            if not line:
                continue
            reply = handle_line(self.server.arm, line)
            try:
                self.wfile.write((json.dumps(reply) + '\n').encode('utf-8'))
            except OSError:
                return


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class SimArmServer:
    """Serves an Arm (normally ClothArm) on 127.0.0.1:<port> until stop()."""

    def __init__(self, arm):
        self.arm = arm
        self._server = None
        self._thread = None

    def start(self, host='127.0.0.1', port=0):
        self._server = _Server((host, port), _Handler)
        self._server.arm = self.arm
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


class SimArmClient(Arm):
    """The Arm interface over the world process's JSON RPC; reconnects once when the link dropped."""

    def __init__(self, host=ROBOT['sim_host'], port=None, timeout=ROBOT['sim_timeout']):
        if port is None:
            raise ValueError('SimArmClient needs the port of the simulated arm')
        self.address = (host, int(port))
        self.timeout = float(timeout)
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

    def _exchange(self, request):
        if self._sock is None:
            self._connect()
        self._sock.sendall((json.dumps(request) + '\n').encode('utf-8'))
        line = self._reader.readline()
        if not line:
            raise ConnectionError('connection closed by the simulated arm')
        return json.loads(line.decode('utf-8'))

    def call(self, method, **params):
        """One RPC call; raises ArmError on an error reply or when the arm cannot be reached."""
        with self._lock:
            self._next_id += 1
            request = {'id': self._next_id, 'method': method, 'params': params}
            try:
                reply = self._exchange(request)
            except (OSError, ValueError):
                self.close()  # stale link (world restarted?): one fresh attempt
                try:
                    reply = self._exchange(request)
                except (OSError, ValueError) as exc:
                    self.close()
                    raise ArmError('simulated arm at %s:%d: %s failed: %s'
                                   % (self.address + (method, exc))) from exc
        if reply.get('id') != request['id']:
            raise ArmError('simulated arm answered request %r with id %r' % (request['id'], reply.get('id')))
        if 'error' in reply:
            raise ArmError('simulated arm refused %s: %s' % (method, reply['error']))
        return reply['result']

    def tip_pose(self):
        return np.array(self.call('tip_pose'), dtype=np.float64)

    def wrench(self):
        return np.array(self.call('wrench'), dtype=np.float64)

    def move_tip(self, dy, dz, dpitch=0.0):
        result = self.call('move_tip', dy=float(dy), dz=float(dz), dpitch=float(dpitch))
        return MoveResult(np.array(result['pose'], dtype=np.float64), bool(result['clipped']))

    def move_to_start(self):
        return np.array(self.call('move_to_start'), dtype=np.float64)
