"""The simulated DSACON32 controller's behaviour (doc/dsa.md): a pure state machine, bytes in, bytes out.

`DsaDevice` knows nothing of pseudo-terminals or threads: `receive(data)` takes the bytes the host wrote and
returns the frames the controller answers with, `poll()` returns what the controller sends by itself (boot
garbage, data frames) by the injected `clock`, and `power_on()` starts a new boot. `plas_ros.sim.dsa.pty` puts
it on a pseudo-terminal. It speaks the protocol through `plas_ros.hardware.dsa.protocol` only, never the
driver's client.
"""
import logging
import random
import struct
import time

import numpy as np

from plas_ros.hardware.dsa import protocol as dsa
from plas_ros.hardware.wsg import Status

_LOG = logging.getLogger('plas_ros.sim.dsa')
PATTERN_MODULUS = dsa.FULLSCALE + 1
GARBAGE_PERIOD = 0.05      # s between two chunks of boot garbage


def pattern_frame(n, rows=dsa.ROWS, cols=dsa.COLS):
    """Frame n of the built-in pattern: cell (0, 0) is n mod 3896, so a reader can recompute the whole frame.

    The upper half holds runs of three equal values and the lower half zeros, so RLE has work to do.
    """
    r = np.arange(rows)[:, None]
    c = np.arange(cols)[None, :]
    values = (n + 37 * r + 11 * (c // 3)) % PATTERN_MODULUS
    return np.where(r < (rows + 1) // 2, values, 0).astype(np.uint16)


class PatternSource:
    """The default frame source: pattern_frame(0), pattern_frame(1), ..."""

    def __init__(self, rows=dsa.ROWS, cols=dsa.COLS):
        self.rows, self.cols = rows, cols
        self.count = 0

    def __call__(self):
        frame = pattern_frame(self.count, self.rows, self.cols)
        self.count += 1
        return frame


def boot_garbage_chunk(rng):
    """What a booting controller may print: text, noise, preamble fragments and a fake header."""
    choices = (b'DSACON32 booting...\r\n', bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 40))),
               b'\xaa\xaa', b'\xaa\xaa\xaa\x0b\x40\x00', b'\xaa\xaa\xaa\xaa\x00\x07\x00\x01\x02')
    return rng.choice(choices)


class DsaDevice:
    """The controller: answers requests, boots, streams data frames. Not thread-safe (its host locks it)."""

    def __init__(self, frame_source=None, rows=dsa.ROWS, cols=dsa.COLS, boot_seconds=1.0, boot_garbage=False,
                 seed=0, serial_number=0x00D5A032, clock=time.monotonic):
        self.rows, self.cols = int(rows), int(cols)
        self.frame_source = frame_source or PatternSource(self.rows, self.cols)
        self.boot_seconds = float(boot_seconds)
        self.boot_garbage = bool(boot_garbage)
        self.serial_number = serial_number
        self.clock = clock
        self.counts = {'frames_sent': 0, 'crc_errors': 0, 'garbage_bytes': 0, 'unknown_commands': 0,
                       'requests': 0, 'source_errors': 0}
        self._rng = random.Random(seed)
        self._faults = []
        self.power_on()

    # ------------------------------------------------------------------ state

    def power_on(self):
        """A new boot: nothing heard so far, acquisition stopped, the timestamps restart."""
        self._parser = dsa.FrameParser()
        self._acquiring = False
        self._rle = False
        self._period = 0.0
        self._booted_at = self.clock()
        self._next_frame = self._next_garbage = self._booted_at

    @property
    def acquiring(self):
        return self._acquiring

    @property
    def booting(self):
        return self.boot_garbage and self.clock() - self._booted_at < self.boot_seconds

    def next_due(self):
        """Seconds until poll() has something to send (0: now), or None when only a request would change that."""
        now = self.clock()
        if self.booting:
            return max(0.0, self._next_garbage - now)
        if self._acquiring:
            return max(0.0, self._next_frame - now)
        return None

    def inject_corrupt_frame(self):
        """Fault hook: the next data frame goes out with one payload byte flipped (its CRC then fails)."""
        self._faults.append('corrupt')

    def inject_truncated_frame(self):
        """Fault hook: only the first half of the next data frame goes out."""
        self._faults.append('truncate')

    # ------------------------------------------------------------------ bytes in, bytes out

    def receive(self, data):
        """The host's bytes -> the reply frames (a list of bytes); garbage and bad checksums are counted."""
        parser = self._parser
        before = parser.crc_errors + parser.truncated
        frames = parser.feed(data)
        self.counts['crc_errors'] += parser.crc_errors + parser.truncated - before
        self.counts['garbage_bytes'] = parser.garbage_bytes
        if self.booting:
            return []    # a booting controller does not listen yet
        replies = []
        for frame in frames:
            self.counts['requests'] += 1
            reply = self._answer(frame.command, frame.payload)
            if reply is not None:
                replies.append(dsa.encode_frame(frame.command, reply))
                if frame.command == dsa.Command.ACQUISITION and self._acquiring:
                    self._next_frame = self.clock()
        return replies

    def poll(self):
        """What the controller sends by itself now (a list of bytes): boot garbage, or a data frame when due."""
        now = self.clock()
        if self.booting:
            if now < self._next_garbage:
                return []
            self._next_garbage = now + GARBAGE_PERIOD
            return [boot_garbage_chunk(self._rng)]
        if self._acquiring and now >= self._next_frame:
            frame = self._data_frame(now)
            return [frame] if frame is not None else []
        return []

    # ------------------------------------------------------------------ commands

    def _answer(self, command, payload):
        """Reply payload for one request."""
        handler = {
            dsa.Command.CONTROLLER_INFO: self._controller_info,
            dsa.Command.SENSOR_INFO: self._sensor_info,
            dsa.Command.MATRIX_INFO: self._matrix_info,
            dsa.Command.ACQUISITION: self._acquisition,
            dsa.Command.LOOP: lambda body: body,
        }.get(command)
        if handler is None:
            self.counts['unknown_commands'] += 1
            return dsa.pack_error(Status.UNKNOWN_COMMAND)
        return handler(payload)

    def _controller_info(self, payload):
        if payload:
            return dsa.pack_error(Status.NO_PARAM_EXPECTED)
        return dsa.pack_controller_info(dsa.ControllerInfo(
            error=0, serial_number=self.serial_number, hw_version=1, sw_version=0x0263, status_flags=0,
            feature_flags=0, senscon_type=0, active_interface=1, can_baudrate=0, can_id=0))

    def _sensor_info(self, payload):
        if payload:
            return dsa.pack_error(Status.NO_PARAM_EXPECTED)
        return dsa.pack_sensor_info(dsa.SensorInfo(error=0, matrices=1, generated_by=0, hw_revision=1,
                                                   serial_number=self.serial_number, feature_flags=0))

    def _matrix_info(self, payload):
        if len(payload) != 1:
            return dsa.pack_error(Status.NOT_ENOUGH_PARAMS if not payload else Status.FORMAT_ERROR)
        if payload[0] != 0:
            return dsa.pack_error(Status.INDEX_OUT_OF_BOUNDS)
        info = dsa.MatrixInfo(error=0, texel_width=dsa.TEXEL_SIZE_MM, texel_height=dsa.TEXEL_SIZE_MM,
                              cells_x=self.cols, cells_y=self.rows)
        # the real reply goes on (uid, hardware revision, fullscale...): a driver must tolerate the extra bytes
        return dsa.pack_matrix_info(info, extra=bytes(8) + struct.pack('<BH', 1, dsa.FULLSCALE))

    def _acquisition(self, payload):
        try:
            acquire, rle, rate = dsa.unpack_acquisition(payload)
        except dsa.FrameError:
            return dsa.pack_error(Status.NOT_ENOUGH_PARAMS if len(payload) < 3 else Status.FORMAT_ERROR)
        if acquire and rate > dsa.MAX_FRAME_RATE:
            return dsa.pack_error(Status.RANGE_ERROR)
        self._acquiring, self._rle = acquire, rle
        if acquire:
            self._period = 1.0 / rate
        return dsa.pack_error(Status.SUCCESS)

    # ------------------------------------------------------------------ data frames

    def _next_cells(self):
        """One frame from the source, or None (logged, counted) if it is not a valid matrix: never invented."""
        try:
            cells = np.asarray(self.frame_source())
        except Exception as exc:  # noqa: BLE001 - a failing source must not kill the device
            self.counts['source_errors'] += 1
            _LOG.warning('DSA simulator: the frame source failed: %s', exc)
            return None
        if cells.shape != (self.rows, self.cols) or cells.min() < 0 or cells.max() > dsa.RLE_MAX_VALUE:
            self.counts['source_errors'] += 1
            _LOG.warning('DSA simulator: the frame source gave a %s array in %s..%s, not %d x %d in 0..%d',
                         cells.shape, cells.min(), cells.max(), self.rows, self.cols, dsa.RLE_MAX_VALUE)
            return None
        return cells

    def _data_frame(self, now):
        self._next_frame = max(self._next_frame + self._period, now)   # keep the rate, never burst to catch up
        cells = self._next_cells()
        if cells is None:
            return None
        stamp = int((now - self._booted_at) * 1000.0)
        frame = bytearray(dsa.encode_frame(dsa.Command.DATA_FRAME, dsa.encode_data_frame(stamp, cells, self._rle)))
        fault = self._faults.pop(0) if self._faults else None
        if fault == 'corrupt':
            frame[dsa.HEADER_SIZE + 2] ^= 0x5A
        elif fault == 'truncate':
            frame = frame[:len(frame) // 2]
        self.counts['frames_sent'] += 1
        return bytes(frame)
