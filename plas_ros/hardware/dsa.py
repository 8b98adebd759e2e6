"""Weiss DSA tactile controller (DSACON32) over a serial port (doc/dsa.md, protocol): codec and client.

Frame: `AA AA AA | id u8 | payload length u16 LE | payload | CRC u16 LE`. Unlike the WSG, the CRC
(plas_ros.hardware.crc) covers id, length and payload but not the preamble, and is absent when the payload
is empty. Replies carry the request's id and begin with a u16 error code (the WSG status list).

Data frames (id 0x00, device to host): u32 timestamp ms, u8 flags (bit0 RLE), then the texels row-major,
either one u16 each or as RLE units (value = unit & 0x0FFF, repeat count = unit >> 12, 1..15).

The codec is shared by the driver (`DsaClient`) and the simulated controller (`plas_ros.sim.dsa`); the tests
pin it to frames written byte by byte from the layout above, so a symmetric bug cannot hide.
"""
import collections
import enum
import logging
import os
import struct
import time

import numpy as np
import serial

from plas_ros.config import section
from plas_ros.hardware import framing
from plas_ros.hardware.crc import crc16
from plas_ros.hardware.finger import FINGER
from plas_ros.hardware.framing import AGAIN, CRC_SIZE, HEADER_SIZE, PREAMBLE, Frame, PreambleScanner
from plas_ros.hardware.wsg import Status, status_name

MAX_PAYLOAD = 1024         # a 14 x 6 data frame is 173 bytes; a longer length field means garbage
ROWS, COLS = FINGER.rows, FINGER.cols   # the WSG-DSA finger (config/robot.yaml finger) ...
FULLSCALE = FINGER.full_scale           # ... its largest raw cell value ...
TEXEL_SIZE_MM = FINGER.taxel_mm         # ... and its cell pitch
ROBOT = section('robot.yaml', 'dsa')    # the driver's settings: their defaults here too
RLE_MAX_VALUE = 0x0FFF
RLE_MAX_COUNT = 0x0F
MAX_FRAME_RATE = 1000      # frames/s the acquisition command accepts (u16 field; the serial line limits it first)
ACQUIRE = 0x80             # acquisition flags
RLE = 0x01
DATA_HEADER = struct.Struct('<IB')   # timestamp ms, flags

_LOG = logging.getLogger('plas_ros.dsa')


class Command(enum.IntEnum):
    DATA_FRAME = 0x00
    CONTROLLER_INFO = 0x01
    SENSOR_INFO = 0x02
    ACQUISITION = 0x03
    LOOP = 0x06
    MATRIX_INFO = 0x0B


def command_name(command):
    return framing.command_name(Command, command)


class DsaError(Exception):
    """Something went wrong talking to the DSA controller; the text says what and where."""


class DsaLinkError(DsaError):
    """The serial link is down: the port is absent, cannot be opened, failed, or went silent."""


class DsaTimeout(DsaError):
    """The controller did not answer a request in time."""


class DsaReplyError(DsaError):
    """The controller answered a request with a non-zero error code."""

    def __init__(self, command, status, port=''):
        self.command = command
        self.status = status
        where = ' on %s' % port if port else ''
        super().__init__('DSA %s failed%s: error %s' % (command_name(command), where, status_name(status)))


class FrameError(DsaError, ValueError):
    """Bytes that are not one valid frame, or a payload that does not match its command's layout."""


DataFrame = collections.namedtuple('DataFrame', 'timestamp_ms cells rle')   # cells: (rows, cols) uint16
ControllerInfo = collections.namedtuple(
    'ControllerInfo', 'error serial_number hw_version sw_version status_flags feature_flags senscon_type '
                      'active_interface can_baudrate can_id')
SensorInfo = collections.namedtuple('SensorInfo', 'error matrices generated_by hw_revision serial_number '
                                                  'feature_flags')
MatrixInfo = collections.namedtuple('MatrixInfo', 'error texel_width texel_height cells_x cells_y')
_CONTROLLER_INFO = struct.Struct('<HIBHBBBBIH')
_SENSOR_INFO = struct.Struct('<HHHBIB')
_MATRIX_INFO = struct.Struct('<HffHH')   # the documented prefix; the controller may append more fields
_ACQUISITION = struct.Struct('<BH')


# --------------------------------------------------------------------------------------------- frames

def frame_crc(command, payload):
    """The DSA CRC: over id, length and payload (not the preamble)."""
    return crc16(struct.pack('<BH', command, len(payload)) + payload)


def encode_frame(command, payload=b''):
    payload = bytes(payload)
    if not 0 <= int(command) <= 0xFF:
        raise FrameError('command id %r does not fit in a byte' % (command,))
    if len(payload) > 0xFFFF:
        raise FrameError('payload of %d bytes does not fit the u16 length field' % len(payload))
    frame = PREAMBLE + struct.pack('<BH', int(command), len(payload)) + payload
    if payload:
        frame += struct.pack('<H', frame_crc(int(command), payload))
    return frame


def frame_size(payload_length):
    return HEADER_SIZE + payload_length + (CRC_SIZE if payload_length else 0)


def decode_frame(data):
    """Exactly one frame -> Frame; FrameError saying what is wrong otherwise."""
    data = bytes(data)
    if len(data) < HEADER_SIZE:
        raise FrameError('frame of %d bytes is shorter than the %d-byte header' % (len(data), HEADER_SIZE))
    if data[:3] != PREAMBLE:
        raise FrameError('frame starts with %s, not the preamble aa aa aa' % data[:3].hex())
    length = struct.unpack_from('<H', data, 4)[0]
    if len(data) != frame_size(length):
        raise FrameError('length field says %d payload bytes, so %d frame bytes, but there are %d'
                         % (length, frame_size(length), len(data)))
    if length and crc16(data[3:]) != 0:
        raise FrameError('checksum error in %s frame (trailer %s, expected %04x)' % (
            command_name(data[3]), data[-2:].hex(), frame_crc(data[3], data[HEADER_SIZE:-CRC_SIZE])))
    return Frame(data[3], data[HEADER_SIZE:HEADER_SIZE + length])


class FrameParser(PreambleScanner):
    """Byte stream -> Frames. Skips garbage by resynchronising on the preamble and counts what it drops.

    After a checksum failure only the first preamble byte is dropped and the search restarts, because the
    'preamble' may have been garbage and a real frame may begin inside the bytes it seemed to cover. A
    failed frame inside which another preamble starts is counted as truncated (the sender cut it short and
    began the next frame), otherwise as a CRC error.
    """

    def __init__(self, max_payload=MAX_PAYLOAD):
        super().__init__(max_payload, frame_size)
        self.crc_errors = 0
        self.truncated = 0

    def counters(self):
        return {'frames': self.frames, 'crc_errors': self.crc_errors, 'truncated': self.truncated,
                'garbage_bytes': self.garbage_bytes}

    def reset(self):
        """Forget buffered bytes (the port was reopened); a frame left half-received counts as truncated."""
        if self._buf.startswith(PREAMBLE):
            self.truncated += 1
            del self._buf[:]
        self._skip(len(self._buf))

    def _next_item(self):
        candidate = self._candidate()
        if candidate is None or candidate is AGAIN:
            return candidate
        raw, length = candidate
        if length and crc16(raw[3:]) != 0:  # the DSA CRC skips the preamble and is absent without payload
            if raw.find(PREAMBLE, 1) >= 0:
                self.truncated += 1
            else:
                self.crc_errors += 1
            self._skip(1)
            return AGAIN
        return self._accept(raw, length)


# --------------------------------------------------------------------------------------------- RLE

def rle_encode(values):
    """Cells (any shape, row-major) -> RLE bytes: u16 LE units of value (12 bits) and count (1..15)."""
    flat = np.asarray(values).reshape(-1)
    if flat.size and (flat.min() < 0 or flat.max() > RLE_MAX_VALUE):
        raise FrameError('RLE carries values 0..%d, got %d..%d' % (RLE_MAX_VALUE, flat.min(), flat.max()))
    units = []
    index = 0
    while index < flat.size:
        value = int(flat[index])
        count = 1
        while count < RLE_MAX_COUNT and index + count < flat.size and flat[index + count] == value:
            count += 1
        units.append((count << 12) | value)
        index += count
    return np.asarray(units, dtype='<u2').tobytes()


def rle_decode(data, cell_count):
    """RLE bytes -> exactly `cell_count` uint16 values; FrameError if the units do not add up to it."""
    if len(data) % 2:
        raise FrameError('RLE data of %d bytes is not a whole number of u16 units' % len(data))
    units = np.frombuffer(bytes(data), dtype='<u2')
    counts = (units >> 12).astype(np.int64)
    if (counts == 0).any():
        raise FrameError('RLE unit %d has a repeat count of 0' % int(np.argmax(counts == 0)))
    total = int(counts.sum())
    if total != cell_count:
        raise FrameError('RLE units expand to %d cells, the matrix has %d' % (total, cell_count))
    return np.repeat((units & RLE_MAX_VALUE).astype(np.uint16), counts)


# --------------------------------------------------------------------------------------------- payloads

def encode_data_frame(timestamp_ms, cells, rle=False):
    """Payload of a data frame (id 0x00) for one matrix of raw cells."""
    cells = np.asarray(cells)
    if cells.size and (cells.min() < 0 or cells.max() > 0xFFFF):
        raise FrameError('texel values must fit u16, got %d..%d' % (cells.min(), cells.max()))
    header = DATA_HEADER.pack(int(timestamp_ms) & 0xFFFFFFFF, RLE if rle else 0)
    body = rle_encode(cells) if rle else cells.astype('<u2').reshape(-1).tobytes()
    return header + body


def parse_data_frame(payload, rows, cols):
    """Data frame payload -> DataFrame(timestamp_ms, cells (rows, cols) uint16, rle); FrameError if malformed."""
    if len(payload) < DATA_HEADER.size:
        raise FrameError('data frame of %d bytes is shorter than its %d-byte header'
                         % (len(payload), DATA_HEADER.size))
    timestamp, flags = DATA_HEADER.unpack_from(payload)
    body = payload[DATA_HEADER.size:]
    count = rows * cols
    if flags & RLE:
        values = rle_decode(body, count)
    else:
        if len(body) != 2 * count:
            raise FrameError('uncompressed data frame has %d texel bytes, a %d x %d matrix needs %d'
                             % (len(body), rows, cols, 2 * count))
        values = np.frombuffer(body, dtype='<u2').astype(np.uint16)
    return DataFrame(timestamp, values.reshape(rows, cols), bool(flags & RLE))


def line_frame_rate(baudrate, rows=ROWS, cols=COLS):
    """Uncompressed data frames per second a serial line carries (8N1: 10 bits a byte)."""
    frame_bytes = frame_size(DATA_HEADER.size + 2 * rows * cols)
    return baudrate / 10.0 / frame_bytes


def pack_acquisition(frame_rate, rle=False):
    """Start acquisition at frame_rate frames/s (0 stops)."""
    frame_rate = int(frame_rate)
    if not 0 <= frame_rate <= MAX_FRAME_RATE:
        raise ValueError('frame rate must be 0..%d frames/s, got %d' % (MAX_FRAME_RATE, frame_rate))
    flags = (ACQUIRE | (RLE if rle else 0)) if frame_rate else 0
    return _ACQUISITION.pack(flags, frame_rate)


def unpack_acquisition(payload):
    """-> (acquire, rle, frame_rate); FrameError if it is not 3 bytes."""
    if len(payload) != _ACQUISITION.size:
        raise FrameError('acquisition request of %d bytes, expected %d' % (len(payload), _ACQUISITION.size))
    flags, rate = _ACQUISITION.unpack(payload)
    return bool(flags & ACQUIRE) and rate > 0, bool(flags & RLE), rate


def pack_error(status, body=b''):
    return struct.pack('<H', int(status)) + bytes(body)


def reply_error(payload, command):
    """The error code at the start of a reply (FrameError if there is none)."""
    if len(payload) < 2:
        raise FrameError('%s reply of %d bytes has no error code' % (command_name(command), len(payload)))
    return struct.unpack_from('<H', payload)[0]


def _unpack(layout, cls, payload, command):
    if len(payload) < layout.size:
        raise FrameError('%s reply of %d bytes, expected at least %d' % (command_name(command), len(payload),
                                                                          layout.size))
    return cls(*layout.unpack_from(payload))


def pack_controller_info(info):
    return _CONTROLLER_INFO.pack(*info)


def unpack_controller_info(payload):
    return _unpack(_CONTROLLER_INFO, ControllerInfo, payload, Command.CONTROLLER_INFO)


def pack_sensor_info(info):
    return _SENSOR_INFO.pack(*info)


def unpack_sensor_info(payload):
    return _unpack(_SENSOR_INFO, SensorInfo, payload, Command.SENSOR_INFO)


def pack_matrix_info(info, extra=b''):
    return _MATRIX_INFO.pack(*info) + bytes(extra)


def unpack_matrix_info(payload):
    return _unpack(_MATRIX_INFO, MatrixInfo, payload, Command.MATRIX_INFO)


# --------------------------------------------------------------------------------------------- client

class DsaClient:
    """The DSA controller on a serial port: set-up, acquisition and frames, reopening the port when it goes.

    `read_frame()` is the whole loop a driver needs: it (re)opens the port when needed (with backoff between
    attempts), flushes boot garbage, queries the matrix, starts acquisition and returns the next valid data
    frame, or None when none came within the timeout. Corrupt, truncated and malformed frames are counted and
    skipped, never returned. `connect()` does the set-up once and raises DsaError saying what failed.
    Not thread-safe: one thread drives a client.
    """

    def __init__(self, port, baudrate=ROBOT['baudrate'], timeout=ROBOT['timeout'], frame_rate=ROBOT['frame_rate'],
                 rle=ROBOT['rle'], shape=(ROWS, COLS), boot_timeout=ROBOT['boot_timeout'], backoff=(0.1, 2.0),
                 stale_after=None, log=None):
        self.port = port
        self.baudrate = int(baudrate)
        self.timeout = float(timeout)
        self.frame_rate = int(frame_rate)
        self.rle = bool(rle)
        self.shape = tuple(shape) if shape else None
        self.boot_timeout = float(boot_timeout)
        self.backoff = (float(backoff[0]), float(backoff[1]))
        self.stale_after = float(stale_after) if stale_after else max(1.0, 10.0 / max(self.frame_rate, 1))
        self._log = log or (lambda level, text: _LOG.log(level, text))
        pack_acquisition(self.frame_rate, self.rle)   # refuse a bad rate now, not at every reconnection
        # the longest frame expected is an uncompressed data frame: a tighter bound resyncs faster after garbage
        self.parser = FrameParser(max(64, DATA_HEADER.size + 2 * self.shape[0] * self.shape[1]) if self.shape
                                  else MAX_PAYLOAD)
        self.serial = None
        self.matrix = None
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
    def rows(self):
        return self.matrix.cells_y if self.matrix else None

    @property
    def cols(self):
        return self.matrix.cells_x if self.matrix else None

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
        """Loop until the controller echoes (it may be booting and sending garbage)."""
        deadline = time.monotonic() + self.boot_timeout
        token = b'plas_ros'
        while True:
            try:
                if self.loop(token, timeout=min(0.3, self.timeout)) == token:
                    return
            except DsaTimeout:
                pass
            if time.monotonic() >= deadline:
                raise DsaTimeout('DSA on %s did not answer a loop request within %.1f s (still booting? wrong '
                                 'port or baud rate?)' % (self.port, self.boot_timeout))

    def connect(self):
        """Open the port, wait out the boot, query the matrix and start acquisition; DsaError if any fails."""
        self.open()
        try:
            self.wait_boot()
            self.stop_acquisition()   # it may still stream for a previous host
            self._frames.clear()
            self.matrix = self._check_matrix(self.matrix_info(0))
            self.start_acquisition()
        except DsaError:
            self._close_port()
            raise
        self._log(logging.INFO, 'DSA %s: %d x %d matrix, acquiring at %d frames/s%s' % (
            self.port, self.rows, self.cols, self.frame_rate, ' with RLE' if self.rle else ''))
        capacity = line_frame_rate(self.baudrate, self.rows, self.cols)
        if self.frame_rate > capacity:
            self._log(logging.WARNING, 'DSA %s: %d baud carries about %.0f uncompressed frames/s; at %d frames/s '
                      'the controller will drop frames%s' % (self.port, self.baudrate, capacity, self.frame_rate,
                                                             '' if self.rle else ' (try rle)'))

    def _check_matrix(self, info):
        if self.shape and (info.cells_y, info.cells_x) != self.shape:
            raise DsaError('DSA on %s reports a %d x %d matrix (rows x cols), expected %d x %d'
                           % (self.port, info.cells_y, info.cells_x, self.shape[0], self.shape[1]))
        return info

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
            return parse_data_frame(frame.payload, self.rows, self.cols)
        except FrameError as exc:
            self.counts['bad_frames'] += 1
            self._log(logging.WARNING, 'DSA %s: skipped a malformed data frame: %s' % (self.port, exc))
            return None
