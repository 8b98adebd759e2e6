"""The simulated WSG 32's transport: a TCP server in front of `WsgDevice` (doc/wsg.md, "Simulated WSG 32").

One thread runs a selector loop: it accepts one client at a time (further clients wait in the listen backlog
and are served in turn), hands the device the bytes it receives and the link's coming and going, polls it
while the fingers move and when auto-updates are due, and sends what it returns. Garbage, corrupt or truncated
frames and dropped connections are answered or counted, never fatal.

No client can hold it forever (config/wsg_twin.yaml `link`): one silent for `idle_timeout` (no complete request
frame) makes way for a client waiting to connect (`idle_policy: yield`) or is closed even alone (`drop`); one that
does not read its replies is closed once `max_queued_bytes` are queued or none was read for `send_timeout`. The
device sees each of these ends as a link lost without the 0x07 announcement.
"""
import logging
import selectors
import socket
import threading
import time

from plas_ros.sim.wsg.device import WsgDevice, describe

MOTION_TICK = 0.005           # s between finger updates while moving
IDLE_WAKE = 0.5               # s the loop sleeps at most when nothing is due
LISTEN_BACKLOG = 4            # clients that may wait, connected by the kernel, for their turn
RECV_CHUNK = 4096             # bytes read per event

_LOG = logging.getLogger('plas_ros.sim.wsg')


class _Connection:
    def __init__(self, sock):
        self.sock = sock
        self.out = bytearray()
        self.open = True
        self.stalled_since = None     # queued replies have waited, with none of their bytes read, since then


class WsgSimulator:
    """The simulated gripper on TCP. `config` (a TwinConfig, default config/wsg_twin.yaml), `fingers`,
    `frame_source` and `initial_width` are the device's (plas_ros.sim.wsg.device.WsgDevice). Thread-safe: the
    device lives in the loop thread, under one lock."""

    def __init__(self, fingers=None, initial_width=None, config=None, frame_source=None, clock=time.monotonic):
        self.device = WsgDevice(config=config, fingers=fingers, frame_source=frame_source,
                                initial_width=initial_width, clock=clock)
        self.fingers = fingers
        self.limits = self.device.limits
        self.link = self.device.config.link
        self._clock = clock
        self._conn = None
        self._listener = None
        self._listener_watched = False
        self._watch_listener_at = None   # a waiting client is looked at again then (the current one may fall silent)
        self._address = None
        self._reopen_at = None
        self._calls = []
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._selector = None
        self._wake_r = self._wake_w = None
        self._thread = None
        self.stats = dict(connections=0, internal_errors=0, silent_drops=0, unread_drops=0)

    # ------------------------------------------------------------------ public API

    def start(self, host=None, port=0):
        """Listen on host (default: config link.bind_host, loopback) : port (0: any free port) and serve in a
        background thread; returns the port."""
        host = self.link.bind_host if host is None else host
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
        self._thread = threading.Thread(target=self._run, name='wsg-sim', daemon=True)
        self._thread.start()
        _LOG.debug('WSG simulator on %s:%d (%s)', self._address[0], self._address[1], describe(self.device.config))
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
            self._close_connection('simulator stopped', lost=False)
            self._close_listener()
            self._selector.close()
            self._wake_r.close()
            self._wake_w.close()

    def drop_connections(self, hold_off=0.0):
        """Fault injection: the network loses the client's connection (to the device: a link lost without the
        disconnect announcement); with hold_off > 0 connections are also refused (the listening socket is
        closed) for that many seconds. Returns once done."""
        self._in_loop(lambda now: self._drop(now, float(hold_off)))

    def inject_bytes(self, data):
        """Fault injection: send raw bytes (garbage, a corrupt or truncated frame) to the connected client."""
        self._in_loop(lambda now: self._send(self._conn, bytes(data)))

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
            return self.device.width

    @property
    def grasping_state(self):
        with self._lock:
            return self.device.grasping_state

    @property
    def client_connected(self):
        with self._lock:
            return self._conn is not None

    def counters(self):
        with self._lock:
            return dict(self.device.counters(), **self.stats)

    def system_flags(self):
        with self._lock:
            return self.device.system_flags()

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
                    self._enforce_link_bounds(now)
                    self._send(self._conn, b''.join(self.device.poll()))
            except Exception:  # noqa: BLE001 - the device must outlive any bug a client can trigger
                self.stats['internal_errors'] += 1
                _LOG.exception('WSG simulator: internal error (continuing)')
                time.sleep(0.01)

    def _select_timeout(self):
        with self._lock:
            now = self._clock()
            deadlines = [now + IDLE_WAKE]
            due = self.device.next_deadline(MOTION_TICK)
            if due is not None:
                deadlines.append(due)
            deadlines += [t for t in (self._reopen_at, self._watch_listener_at) if t is not None]
            deadlines += self._link_deadlines(now)
            return max(0.0, min(deadlines) - now)

    # ------------------------------------------------------------------ bounds on what a client may hold

    def _silence_limit(self):
        """The silence after which the current client is closed even alone (`drop`); None otherwise (with
        `yield`, a client waiting in the backlog makes the listener readable: `_make_way` decides then)."""
        if self._conn is None or not self.link.idle_timeout or self.link.idle_policy != 'drop':
            return None
        return self.link.idle_timeout

    def _link_deadlines(self, now):
        conn = self._conn
        if conn is None:
            return []
        deadlines = []
        if conn.stalled_since is not None:
            deadlines.append(conn.stalled_since + self.link.send_timeout)
        limit = self._silence_limit()
        if limit is not None:
            deadlines.append(now - self.device.silent_for() + limit)
        return deadlines

    def _enforce_link_bounds(self, now):
        conn = self._conn
        if conn is None:
            return
        if conn.stalled_since is not None and now - conn.stalled_since >= self.link.send_timeout:
            self.stats['unread_drops'] += 1
            self._close_connection('the client read none of its replies for %.1f s' % self.link.send_timeout)
            return
        limit = self._silence_limit()
        if limit is not None and self.device.silent_for() >= limit:
            self.stats['silent_drops'] += 1
            self._close_connection('no request from the client for %.1f s' % limit)
        elif self._watch_listener_at is not None and now >= self._watch_listener_at:
            self._watch_listener_at = None
            self._watch_listener(True)   # a client still waiting makes it readable at once

    # ------------------------------------------------------------------ connections

    def _open_listener(self):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(self._address)
            listener.listen(LISTEN_BACKLOG)
        except OSError:
            listener.close()
            raise
        listener.setblocking(False)
        self._listener = listener
        self._watch_listener(self._conn is None or self._yields_when_silent())

    def _close_listener(self):
        if self._listener is None:
            return
        self._watch_listener(False)
        self._listener.close()
        self._listener = None

    def _yields_when_silent(self):
        return bool(self.link.idle_timeout) and self.link.idle_policy == 'yield'

    def _watch_listener(self, on):
        """Select on the listener (a connection waiting in the backlog makes it readable) or stop doing so."""
        if self._listener is None or on == self._listener_watched:
            return
        if on:
            self._selector.register(self._listener, selectors.EVENT_READ, self._on_accept)
        else:
            self._selector.unregister(self._listener)
        self._listener_watched = on

    def _on_accept(self, _mask):
        if self._conn is not None and not self._make_way():
            return
        try:
            sock, peer = self._listener.accept()
        except OSError:
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # one client at a time; the next waits in the backlog (looked at while this one is silent, with `yield`)
        self._watch_listener(self._yields_when_silent())
        self._conn = _Connection(sock)
        self._selector.register(sock, selectors.EVENT_READ, self._on_connection_event)
        self.device.connect()
        self.stats['connections'] += 1
        _LOG.info('WSG simulator: client %s:%d connected', *peer[:2])

    def _close_connection(self, reason, lost=True):
        """Close the client's connection; `lost`: the device sees it end (announced or not)."""
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        conn.open = False
        self._selector.unregister(conn.sock)
        conn.sock.close()
        if lost:
            self.device.disconnect()
        self._watch_listener_at = None
        self._watch_listener(True)
        _LOG.info('WSG simulator: connection closed (%s)', reason)

    def _make_way(self):
        """A client waits to connect while one is served (`yield`): True once the served one, silent for
        idle_timeout, is closed; else the waiting one is looked at again when that silence would be reached."""
        silent = self.device.silent_for()
        if silent >= self.link.idle_timeout:
            self.stats['silent_drops'] += 1
            self._close_connection('no request for %.1f s and another client is waiting' % silent)
            return True
        self._watch_listener(False)
        self._watch_listener_at = self._clock() + self.link.idle_timeout - silent
        return False

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
                data = conn.sock.recv(RECV_CHUNK)
            except BlockingIOError:
                return
            except OSError as exc:
                self._close_connection('receive failed: %s' % exc)
                return
            if not data:
                self._close_connection('client closed the connection')
                return
            self._send(conn, b''.join(self.device.receive(data)))

    def _send(self, conn, data):
        if conn is None or not conn.open:
            return  # the client that asked is gone
        conn.out += data
        if len(conn.out) > self.link.max_queued_bytes:
            self.stats['unread_drops'] += 1
            self._close_connection('the client does not read its replies (%d bytes queued)' % len(conn.out))
            return
        self._flush(conn)

    def _flush(self, conn):
        try:
            if conn.out:
                sent = conn.sock.send(conn.out)
                del conn.out[:sent]
                if sent:
                    conn.stalled_since = None
        except BlockingIOError:
            pass
        except OSError as exc:
            self._close_connection('send failed: %s' % exc)
            return
        if self.device.close_requested and not conn.out:
            self._close_connection('client announced its disconnect')
            return
        if conn.out and conn.stalled_since is None:
            conn.stalled_since = self._clock()
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.out else 0)
        self._selector.modify(conn.sock, events, self._on_connection_event)
