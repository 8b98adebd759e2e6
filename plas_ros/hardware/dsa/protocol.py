"""Weiss DSA tactile controller (DSACON32) protocol (doc/dsa.md): frames, payload layouts and RLE. No I/O.

Frame: `AA AA AA | id u8 | payload length u16 LE | payload | CRC u16 LE`. Unlike the WSG, the CRC
(plas_ros.hardware.crc) covers id, length and payload but not the preamble, and is absent when the payload
is empty. Replies carry the request's id and begin with a u16 error code (the WSG status list).

Data frames (id 0x00, device to host): u32 timestamp ms, u8 flags (bit0 RLE), then the texels of every
matrix the controller drives, in matrix order, each matrix row-major, either one u16 each or as RLE units
(value = unit & 0x0FFF, repeat count = unit >> 12, 1..15).

The codec is shared by the driver (`plas_ros.hardware.dsa.client`) and the simulated controller
(`plas_ros.sim.dsa`); the tests pin it to frames written byte by byte from the layout above, so a symmetric bug
cannot hide.
"""
import collections
import enum
import struct

import numpy as np

from plas_ros.config import section
from plas_ros.hardware import framing
from plas_ros.hardware.crc import crc16
from plas_ros.hardware.finger import FINGER
from plas_ros.hardware.framing import AGAIN, CRC_SIZE, HEADER_SIZE, PREAMBLE, Frame, PreambleScanner, unsealed_frame
from plas_ros.hardware.wsg import status_name

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
MAX_MATRICES = 256         # the matrix info request addresses a matrix with one byte
LOOP_REPLY_FORMS = ('echo', 'error_code_prefixed')   # the loop reply is unverified (doc/dsa.md): either form


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
_CONTROLLER_INFO = struct.Struct('<HIBHBBBBIH')   # 19 bytes; the controller sends 18 (SDH dsa.cpp)
CONTROLLER_INFO_SIZE = 18                         # what the controller sends ...
CONTROLLER_INFO_SIZES = (CONTROLLER_INFO_SIZE, _CONTROLLER_INFO.size)   # ... and what a driver accepts
_SENSOR_INFO = struct.Struct('<HHHBIB')
_MATRIX_INFO = struct.Struct('<HffHH')   # the prefix a driver needs; the controller appends more fields:
_MATRIX_INFO_TAIL = struct.Struct('<6s2sB3f3ffB')   # uid, reserved, hw revision, centre, theta, fullscale, flags
MATRIX_INFO_SIZE = _MATRIX_INFO.size + _MATRIX_INFO_TAIL.size   # 52 bytes in all (SDH dsa.h, sMatrixInfo)
_ACQUISITION = struct.Struct('<BH')


# --------------------------------------------------------------------------------------------- frames

def frame_crc(command, payload):
    """The DSA CRC: over id, length and payload (not the preamble)."""
    return crc16(struct.pack('<BH', command, len(payload)) + payload)


def encode_frame(command, payload=b''):
    """A frame; its CRC covers id, length and payload and is left out when the payload is empty."""
    frame = unsealed_frame(command, payload, FrameError)
    if len(frame) > HEADER_SIZE:
        frame += struct.pack('<H', crc16(frame[3:]))
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
        self.partial_since = None

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
    """Payload of a data frame (id 0x00): `cells` is one matrix of raw cells, or a list of matrices (all the
    controller's, in matrix order); RLE runs over the texels of all matrices as one sequence."""
    matrices = [np.asarray(m) for m in cells] if isinstance(cells, (list, tuple)) else [np.asarray(cells)]
    flat = np.concatenate([m.reshape(-1) for m in matrices]) if matrices else np.zeros(0, dtype=np.int64)
    if flat.size and (flat.min() < 0 or flat.max() > 0xFFFF):
        raise FrameError('texel values must fit u16, got %d..%d' % (flat.min(), flat.max()))
    header = DATA_HEADER.pack(int(timestamp_ms) & 0xFFFFFFFF, RLE if rle else 0)
    body = rle_encode(flat) if rle else flat.astype('<u2').tobytes()
    return header + body


def parse_data_frames(payload, shapes):
    """Data frame payload -> one DataFrame(timestamp_ms, cells (rows, cols) uint16, rle) per matrix of `shapes`
    ((rows, cols) each, in matrix order): the frame carries all matrices' cells. FrameError if malformed."""
    if len(payload) < DATA_HEADER.size:
        raise FrameError('data frame of %d bytes is shorter than its %d-byte header'
                         % (len(payload), DATA_HEADER.size))
    timestamp, flags = DATA_HEADER.unpack_from(payload)
    body = payload[DATA_HEADER.size:]
    shapes = [(int(rows), int(cols)) for rows, cols in shapes]
    count = sum(rows * cols for rows, cols in shapes)
    if flags & RLE:
        values = rle_decode(body, count)
    else:
        if len(body) != 2 * count:
            raise FrameError('uncompressed data frame has %d texel bytes; its matrices (%s) need %d' % (
                len(body), ' + '.join('%d x %d' % shape for shape in shapes) or 'none', 2 * count))
        values = np.frombuffer(body, dtype='<u2').astype(np.uint16)
    frames, start = [], 0
    for rows, cols in shapes:
        frames.append(DataFrame(timestamp, values[start:start + rows * cols].reshape(rows, cols), bool(flags & RLE)))
        start += rows * cols
    return frames


def parse_data_frame(payload, rows, cols):
    """Data frame payload of a controller with one rows x cols matrix -> DataFrame; FrameError if malformed."""
    return parse_data_frames(payload, [(rows, cols)])[0]


def line_frame_rate(baudrate, rows=ROWS, cols=COLS):
    """Uncompressed data frames per second a serial line carries (8N1: 10 bits a byte) for rows x cols cells."""
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


def pack_controller_info(info, size=CONTROLLER_INFO_SIZE):
    """The controller info reply: the 19-byte structure, cut to the 18 bytes the controller sends (SDH dsa.cpp:
    "the controller sends only 18 bytes although 19 are expected"), so can_id has only its low byte."""
    if size not in CONTROLLER_INFO_SIZES:
        raise ValueError('controller info is %s bytes, not %r' % (' or '.join(map(str, CONTROLLER_INFO_SIZES)), size))
    return _CONTROLLER_INFO.pack(*info)[:size]


def unpack_controller_info(payload):
    """18 bytes (what the controller sends; can_id is then its low byte only) or the full 19 -> ControllerInfo."""
    payload = bytes(payload)
    if len(payload) not in CONTROLLER_INFO_SIZES:
        raise FrameError('%s reply of %d bytes, expected %s' % (
            command_name(Command.CONTROLLER_INFO), len(payload), ' or '.join(map(str, CONTROLLER_INFO_SIZES))))
    return ControllerInfo(*_CONTROLLER_INFO.unpack(payload.ljust(_CONTROLLER_INFO.size, b'\x00')))


def pack_sensor_info(info):
    return _SENSOR_INFO.pack(*info)


def unpack_sensor_info(payload):
    return _unpack(_SENSOR_INFO, SensorInfo, payload, Command.SENSOR_INFO)


def pack_matrix_info(info, extra=b''):
    """The documented prefix of a matrix info reply, then `extra` (see matrix_info_tail)."""
    return _MATRIX_INFO.pack(*info) + bytes(extra)


def matrix_info_tail(uid=bytes(6), hw_revision=1, center=(0.0, 0.0, 0.0), theta=(0.0, 0.0, 0.0),
                     fullscale=FULLSCALE, feature_flags=0):
    """The fields after the prefix (SDH dsa.h sMatrixInfo): uid[6], reserved[2], u8 hw revision, f32 centre
    x/y/z, f32 theta x/y/z, f32 fullscale, u8 feature flags; with the prefix, a 52-byte reply."""
    return _MATRIX_INFO_TAIL.pack(bytes(uid), bytes(2), hw_revision, *center, *theta, float(fullscale),
                                  feature_flags)


def unpack_matrix_info(payload):
    return _unpack(_MATRIX_INFO, MatrixInfo, payload, Command.MATRIX_INFO)


def pack_loop_reply(data, form):
    """The controller's reply to a loop request carrying `data`, in one of LOOP_REPLY_FORMS (unverified)."""
    if form == 'echo':
        return bytes(data)
    if form == 'error_code_prefixed':
        return pack_error(0, data)
    raise ValueError('loop reply form must be one of %s, got %r' % (', '.join(LOOP_REPLY_FORMS), form))


def parse_loop_reply(reply, sent):
    """(form, error code) of a reply to a loop request that carried `sent`: ('echo', None) for a bare echo,
    ('error_code_prefixed', code) for a u16 error code then the echo; None if the reply is neither."""
    reply, sent = bytes(reply), bytes(sent)
    if reply == sent:
        return 'echo', None
    if len(reply) == len(sent) + 2 and reply[2:] == sent:
        return 'error_code_prefixed', struct.unpack_from('<H', reply)[0]
    return None
