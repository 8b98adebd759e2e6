"""The DSACON32 driver: `DsaClient` on a serial port (pyserial), over the codec of `protocol` (doc/dsa.md).

At each connection it waits out the controller's boot (repeating a loop request until it is answered, in either
of the two possible reply forms), stops any acquisition left running, reads the controller info (18 bytes, or
19), the sensor info (how many matrices) and every matrix's info, checks the configured matrix against the
expected shape, and starts acquisition. Each data frame carries all matrices' cells; the client returns the
configured matrix's.
"""
import collections
import logging
import os
import struct
import time

import serial

from plas_ros.hardware.dsa.protocol import (
    COLS,
    DATA_HEADER,
    MAX_MATRICES,
    MAX_PAYLOAD,
    ROBOT,
    ROWS,
    Command,
    DsaError,
    DsaLinkError,
    DsaReplyError,
    DsaTimeout,
    FrameError,
    FrameParser,
    command_name,
    encode_frame,
    line_frame_rate,
    pack_acquisition,
    parse_data_frames,
    parse_loop_reply,
    reply_error,
    unpack_controller_info,
    unpack_matrix_info,
    unpack_sensor_info,
)
from plas_ros.hardware.wsg import Status

_LOG = logging.getLogger('plas_ros.dsa')


class DsaClient:
    """The DSA controller on a serial port: set-up, acquisition and frames, reopening the port when it goes.

    `read_frame()` is the whole loop a driver needs: it (re)opens the port when needed (with backoff between
    attempts), flushes boot garbage, queries the matrices, starts acquisition and returns the next valid data
    frame of matrix `matrix` (0-based, in the controller's matrix order), or None when none came within the
    timeout. Corrupt, truncated and malformed frames are counted and skipped, never returned. `connect()` does
    the set-up once and raises DsaError saying what failed. `abort()`, if given, ends a wait for a booting
    controller early (a node passes rospy.is_shutdown). Not thread-safe: one thread drives a client.
    """

    def __init__(self, port, baudrate=ROBOT['baudrate'], timeout=ROBOT['timeout'], frame_rate=ROBOT['frame_rate'],
                 rle=ROBOT['rle'], shape=(ROWS, COLS), matrix=ROBOT['matrix'], boot_timeout=ROBOT['boot_timeout'],
                 backoff=(0.1, 2.0), stale_after=None, log=None, abort=None):
        self.port = port
        self.matrix = int(matrix)
        if not 0 <= self.matrix < MAX_MATRICES:
            raise ValueError('DSA matrix must be 0..%d (a controller addresses its matrices with one byte), got %d'
                             % (MAX_MATRICES - 1, self.matrix))
        self.baudrate = int(baudrate)
        self.timeout = float(timeout)
        self.frame_rate = int(frame_rate)
        self.rle = bool(rle)
        self.shape = tuple(shape) if shape else None
        self.boot_timeout = float(boot_timeout)
        self.backoff = (float(backoff[0]), float(backoff[1]))
        self.stale_after = float(stale_after) if stale_after else max(1.0, 10.0 / max(self.frame_rate, 1))
        self._log = log or (lambda level, text: _LOG.log(level, text))
        self._abort = abort or (lambda: False)
        pack_acquisition(self.frame_rate, self.rle)   # refuse a bad rate now, not at every reconnection
        # the longest frame expected is an uncompressed data frame: a tighter bound resyncs faster after garbage
        self.parser = FrameParser(max(64, DATA_HEADER.size + 2 * self.shape[0] * self.shape[1]) if self.shape
                                  else MAX_PAYLOAD)
        self.serial = None
        self.controller = None     # ControllerInfo, SensorInfo and one MatrixInfo per matrix, from the last set-up
        self.sensor = None
        self.matrices = []
        self.loop_reply = None     # the loop reply form the controller used: 'echo' or 'error_code_prefixed'
        self.acquiring = False
        self.counts = collections.Counter()
        self._frames = collections.deque(maxlen=64)
        self._delay = 0.0
        self._next_attempt = 0.0
        self._last_frame = 0.0

    # ------------------------------------------------------------------ state

    @property
    def connected(self):
        """The port is open, the controller answered the set-up and acquisition is running."""
        return self.serial is not None and self.acquiring

    @property
    def matrix_info_used(self):
        """The MatrixInfo of the configured matrix (None before a set-up)."""
        return self.matrices[self.matrix] if self.matrix < len(self.matrices) else None

    @property
    def rows(self):
        info = self.matrix_info_used
        return info.cells_y if info else None

    @property
    def cols(self):
        info = self.matrix_info_used
        return info.cells_x if info else None

    @property
    def shapes(self):
        """(rows, cols) of every matrix, in the order of the data frame."""
        return [(info.cells_y, info.cells_x) for info in self.matrices]

    def stats(self):
        """Counters: frames, crc_errors, truncated, garbage_bytes (parser); bad_frames, reconnects, ..."""
        stats = dict(self.counts)
        stats.update(self.parser.counters())
        return stats

    # ------------------------------------------------------------------ port

    def open(self):
        """Open the port and flush what the controller sent before (boot garbage, old frames)."""
        if self.serial is not None:
            return
        try:
            self.serial = serial.Serial(self.port, self.baudrate, timeout=0.05, write_timeout=self.timeout)
            self.serial.reset_input_buffer()
        except (serial.SerialException, OSError, ValueError) as exc:
            self.serial = None
            raise DsaLinkError('cannot open DSA port %s: %s' % (self.port, exc)) from None
        self.parser.reset()
        self._frames.clear()

    def close(self, stop=True):
        """Stop acquisition (best effort) and close the port."""
        if self.serial is None:
            return
        if stop and self.acquiring:
            try:
                self.stop_acquisition(timeout=min(self.timeout, 0.5))
            except DsaError as exc:
                self._log(logging.DEBUG, 'DSA %s: stopping acquisition on close failed: %s' % (self.port, exc))
        self._close_port()

    def _close_port(self):
        serial_port, self.serial = self.serial, None
        self.acquiring = False
        if self.parser.pending_bytes:
            self.parser.reset()
        try:
            serial_port.close()
        except Exception as exc:  # noqa: BLE001 - the port is already broken; closing must not raise
            self._log(logging.DEBUG, 'DSA %s: close: %s' % (self.port, exc))

    def _link_lost(self, reason):
        self.counts['link_losses'] += 1
        self._log(logging.WARNING, 'DSA %s: link lost (%s); reopening' % (self.port, reason))
        self._close_port()
        self._next_attempt = 0.0

    # ------------------------------------------------------------------ bytes and frames

    def _read_frames(self, wait):
        """Read what arrives within `wait` seconds (at least one poll) into the parser; returns Frames."""
        deadline = time.monotonic() + wait
        while True:
            try:
                data = self.serial.read(max(1, self.serial.in_waiting))
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                raise DsaLinkError('DSA port %s failed: %s' % (self.port, exc)) from None
            if data:
                frames = self.parser.feed(data)
                if frames:
                    return frames
            elif not os.path.exists(self.port):
                raise DsaLinkError('DSA port %s is gone' % self.port)
            if time.monotonic() >= deadline:
                return []

    def _write(self, command, payload):
        try:
            self.serial.write(encode_frame(command, payload))
            self.serial.flush()
        except (serial.SerialException, OSError) as exc:
            raise DsaLinkError('writing to DSA port %s failed: %s' % (self.port, exc)) from None

    def request(self, command, payload=b'', timeout=None):
        """Send one request; returns the payload of its reply (data frames meanwhile are kept)."""
        if self.serial is None:
            raise DsaLinkError('DSA port %s is not open' % self.port)
        timeout = self.timeout if timeout is None else timeout
        self._write(command, payload)
        deadline = time.monotonic() + timeout
        while True:
            reply = None
            for frame in self._read_frames(max(0.0, deadline - time.monotonic())):
                if frame.command == command and reply is None:
                    reply = frame.payload
                else:
                    self._route(frame)   # the rest of the batch may hold data frames that follow the reply
            if reply is not None:
                return reply
            if time.monotonic() >= deadline:
                raise DsaTimeout('DSA %s on %s: no reply within %.2f s' % (command_name(command), self.port,
                                                                            timeout))

    def _checked(self, command, payload=b'', timeout=None):
        reply = self.request(command, payload, timeout)
        status = reply_error(reply, command)
        if status != Status.SUCCESS:
            raise DsaReplyError(command, status, self.port)
        return reply

    def _route(self, frame):
        """A frame that is not the awaited reply: keep data frames, count the rest."""
        if frame.command == Command.DATA_FRAME:
            self._frames.append(frame)   # stop_acquisition() and connect() drop the ones nobody asked for
        else:
            self.counts['unexpected_replies'] += 1

    # ------------------------------------------------------------------ commands

    def loop(self, data=b'loop', timeout=None):
        return self.request(Command.LOOP, data, timeout)

    def controller_info(self):
        return unpack_controller_info(self._checked(Command.CONTROLLER_INFO))

    def sensor_info(self):
        return unpack_sensor_info(self._checked(Command.SENSOR_INFO))

    def matrix_info(self, matrix=0):
        return unpack_matrix_info(self._checked(Command.MATRIX_INFO, struct.pack('<B', matrix)))

    def start_acquisition(self, frame_rate=None, rle=None):
        frame_rate = self.frame_rate if frame_rate is None else int(frame_rate)
        rle = self.rle if rle is None else bool(rle)
        if frame_rate <= 0:
            raise ValueError('frame rate must be positive to start acquisition, got %d' % frame_rate)
        self._checked(Command.ACQUISITION, pack_acquisition(frame_rate, rle))
        self.frame_rate, self.rle, self.acquiring = frame_rate, rle, True
        self._last_frame = time.monotonic()

    def stop_acquisition(self, timeout=None):
        self.acquiring = False
        self._checked(Command.ACQUISITION, pack_acquisition(0), timeout)
        self._frames.clear()

    def wait_boot(self):
        """Repeat a loop request until the controller answers (it may be booting and sending garbage for
        seconds); returns the reply form. The form of the DSACON32's loop reply is unverified (doc/dsa.md): a
        bare echo and a u16 error code followed by the echo are both accepted."""
        deadline = time.monotonic() + self.boot_timeout
        token = b'plas_ros'   # does not start with 00 00, so the two forms cannot be mistaken for each other
        tries = odd = 0
        while True:
            tries += 1
            try:
                reply = self.loop(token, timeout=min(0.3, self.timeout))
            except DsaTimeout:
                reply = None
            if reply is not None:
                form = parse_loop_reply(reply, token)
                if form is None:
                    odd += 1
                    self.counts['bad_loop_replies'] += 1
                    self._log(logging.WARNING, 'DSA %s: loop reply %s is neither the echo of %s nor an error code '
                              'and the echo; ignored' % (self.port, reply[:32].hex(), token.hex()))
                elif form[1]:
                    raise DsaReplyError(Command.LOOP, form[1], self.port)
                else:
                    self.loop_reply = form[0]
                    return form[0]
            if self._abort():
                raise DsaTimeout('DSA on %s: stopped waiting for the controller to boot' % self.port)
            if time.monotonic() >= deadline:
                raise DsaTimeout('DSA on %s did not answer a loop request within %.1f s (%d tries%s; still booting? '
                                 'wrong port or baud rate?)' % (self.port, self.boot_timeout, tries,
                                                               ', %d odd replies' % odd if odd else ''))

    def connect(self):
        """Open the port, wait out the boot, read the controller, sensor and matrix infos, check the configured
        matrix and start acquisition; DsaError saying what failed."""
        self.open()
        try:
            self.wait_boot()
            self.stop_acquisition()   # it may still stream for a previous host
            self._frames.clear()
            self.controller = self.controller_info()
            self.sensor = self.sensor_info()
            self.matrices = self._check_matrices([self.matrix_info(i) for i in range(self._matrix_count())])
            # the longest frame now expected: an uncompressed data frame of all matrices
            self.parser.max_payload = max(64, DATA_HEADER.size + 2 * self._cells())
            self.start_acquisition()
        except DsaError:
            self._close_port()
            raise
        self._log(logging.INFO, 'DSA %s: controller %08X (firmware %d, loop reply: %s), %d matrices (%s), '
                  'publishing matrix %d (%d x %d), acquiring at %d frames/s%s' % (
                      self.port, self.controller.serial_number, self.controller.sw_version, self.loop_reply,
                      len(self.matrices), ', '.join('%d x %d' % shape for shape in self.shapes), self.matrix,
                      self.rows, self.cols, self.frame_rate, ' with RLE' if self.rle else ''))
        capacity = line_frame_rate(self.baudrate, self._cells(), 1)
        if self.frame_rate > capacity:
            self._log(logging.WARNING, 'DSA %s: %d baud carries about %.0f uncompressed frames/s; at %d frames/s '
                      'the controller will drop frames%s' % (self.port, self.baudrate, capacity, self.frame_rate,
                                                             '' if self.rle else ' (try rle)'))

    def _matrix_count(self):
        count = self.sensor.matrices
        if count == 0 or count <= self.matrix or count > MAX_MATRICES:
            raise DsaError('DSA on %s reports %d sensor matrices; matrix %d is configured (0-based), so it needs '
                           '%s' % (self.port, count, self.matrix, 'at least %d' % (self.matrix + 1)
                                   if count <= self.matrix else '1..%d' % MAX_MATRICES))
        return count

    def _cells(self):
        return sum(rows * cols for rows, cols in self.shapes)

    def _check_matrices(self, infos):
        info = infos[self.matrix]
        if self.shape and (info.cells_y, info.cells_x) != self.shape:
            raise DsaError('DSA on %s reports a %d x %d matrix (rows x cols) as matrix %d, expected %d x %d'
                           % (self.port, info.cells_y, info.cells_x, self.matrix, self.shape[0], self.shape[1]))
        cells = sum(i.cells_x * i.cells_y for i in infos)
        if DATA_HEADER.size + 2 * cells > 0xFFFF:
            raise DsaError('DSA on %s reports matrices of %d cells in all, more than a data frame carries'
                           % (self.port, cells))
        return infos

    def _try_connect(self):
        """One (re)connection attempt if the backoff allows it; True when connected."""
        now = time.monotonic()
        if now < self._next_attempt:
            return False
        try:
            self.connect()
        except DsaError as exc:
            self.counts['failed_connects'] += 1
            self._delay = min(self.backoff[1], max(self.backoff[0], 2.0 * self._delay))
            self._next_attempt = time.monotonic() + self._delay
            self._log(logging.WARNING, '%s (retrying in %.1f s)' % (exc, self._delay))
            return False
        self.counts['connects'] += 1
        self._delay = 0.0
        return True

    def read_frame(self, timeout=None):
        """The next valid data frame (DataFrame), or None if none arrived within `timeout` seconds.

        Reopens the port as needed; a link that stays silent for `stale_after` seconds is reopened too. Returns
        None at once when the link is lost, so a caller polling `connected` sees every outage. Opening a port
        that exists but whose controller does not answer can take up to `boot_timeout` seconds.
        """
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            if not self.connected and not self._try_connect():
                time.sleep(max(0.0, min(0.05, deadline - time.monotonic())))
            elif self._frames:
                frame = self._decode(self._frames.popleft())
                if frame is not None:
                    return frame
            else:
                try:
                    self._frames.extend(f for f in self._read_frames(max(0.0, deadline - time.monotonic()))
                                        if self._is_data(f))
                except DsaLinkError as exc:
                    self._link_lost(exc)
                    return None    # let the caller see the link down before the next attempt
                if not self._frames and time.monotonic() - self._last_frame > self.stale_after:
                    self._link_lost('no data frame for %.1f s' % (time.monotonic() - self._last_frame))
                    return None
            if time.monotonic() >= deadline:
                return None

    def _is_data(self, frame):
        if frame.command == Command.DATA_FRAME:
            return True
        self.counts['unexpected_replies'] += 1
        return False

    def _decode(self, frame):
        self._last_frame = time.monotonic()
        try:
            return parse_data_frames(frame.payload, self.shapes)[self.matrix]
        except FrameError as exc:
            self.counts['bad_frames'] += 1
            self._log(logging.WARNING, 'DSA %s: skipped a malformed data frame: %s' % (self.port, exc))
            return None
