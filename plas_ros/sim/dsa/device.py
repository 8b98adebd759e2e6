"""The simulated DSACON32 controller's behaviour (doc/dsa.md): a pure state machine, bytes in, bytes out.

`DsaDevice` knows nothing of pseudo-terminals or threads: `receive(data)` takes the bytes the host wrote and
returns the frames the controller answers with, `poll()` returns what the controller sends by itself (boot
garbage, data frames) by the injected `clock`, and `power_on()` starts a new boot. `plas_ros.sim.dsa.pty` puts
it on a pseudo-terminal. It speaks the protocol through `plas_ros.hardware.dsa.protocol` only, never the
driver's client. Its options and their defaults: config/sim_dsa.yaml.

As the real controller, after public sources (doc/dsa.md): the controller info reply is 18 bytes; it drives
several matrices (sensor info says how many, matrix info describes each, a data frame carries them all in
matrix order); a boot takes seconds, with stray bytes and the terminal-presence query first; the loop reply is
either form (unverified, `loop_reply`).
"""
import dataclasses
import logging
import random
import time

import numpy as np

from plas_ros.config import load_section
from plas_ros.hardware.dsa import protocol as dsa
from plas_ros.hardware.wsg import Status


@dataclasses.dataclass(frozen=True)
class DsaTwinConfig:
    boot_seconds: float          # from power-on until it answers
    loop_reply: str              # one of protocol.LOOP_REPLY_FORMS
    controller_info_size: int    # 18 (as observed) or 19 (the structure)
    matrices: int                # finger-sized matrices on the controller
    contact_matrix: int          # the one fed by the frame source
    idle_fraction: float         # share of an idle matrix's cells with noise ...
    idle_max: int                # ... of 1..idle_max
    serial_number: int
    sw_version: int
    seed: int
    reopen_delay: float          # the command line's SIGUSR1 (cli)
    partial_frame_timeout: float # s a started request frame may wait for its remaining bytes


TWIN = load_section(DsaTwinConfig, 'sim_dsa.yaml', 'dsa')
_LOG = logging.getLogger('plas_ros.sim.dsa')
PATTERN_MODULUS = dsa.FULLSCALE + 1
GARBAGE_PERIOD = 0.05      # s between two chunks of boot garbage
# SDH dsa.cpp: after power-up the controller sends the "detect terminal presence" code ESC [ 5 n three times
# within 0.82 s, about 7 s after power-up, and accepts commands after about 8 s. Here: the same times, scaled
# to the boot's length (7/8 of it, then 0.41 and 0.82 s of 8 s later).
TERMINAL_QUERY = b'\x1b[5n'
TERMINAL_QUERY_AT = (7.0 / 8.0, 7.41 / 8.0, 7.82 / 8.0)


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


def idle_frame(rng, rows, cols, fraction=TWIN.idle_fraction, largest=TWIN.idle_max):
    """A matrix that touches nothing: zeros, and a little noise (1..largest) on a `fraction` of the cells."""
    noisy = rng.random((rows, cols)) < fraction
    return np.where(noisy, rng.integers(1, largest + 1, (rows, cols)), 0).astype(np.uint16)


class DsaDevice:
    """The controller: answers requests, boots, streams data frames. Not thread-safe (its host locks it).

    `matrices` finger-sized matrices (rows x cols), or `shapes` [(rows, cols), ...] for matrices of other sizes;
    `frame_source()` feeds matrix `contact_matrix` (its (rows, cols) array per frame), the others read
    `idle_frame`. With `boot_garbage`, each power-on is a boot of `boot_seconds`: stray bytes and the terminal
    query, no answer to anything. `loop_reply`: the form of the loop reply; `controller_info_size`: 18 or 19.
    """

    def __init__(self, frame_source=None, rows=dsa.ROWS, cols=dsa.COLS, matrices=TWIN.matrices,
                 contact_matrix=TWIN.contact_matrix, shapes=None, boot_seconds=TWIN.boot_seconds, boot_garbage=False,
                 loop_reply=TWIN.loop_reply, controller_info_size=TWIN.controller_info_size, seed=TWIN.seed,
                 serial_number=TWIN.serial_number, sw_version=TWIN.sw_version,
                 partial_frame_timeout=TWIN.partial_frame_timeout, clock=time.monotonic):
        self.shapes = [(int(r), int(c)) for r, c in shapes] if shapes is not None else [(int(rows), int(cols))] * int(
            matrices)
        if len(self.shapes) > dsa.MAX_MATRICES or any(r < 1 or c < 1 for r, c in self.shapes):
            raise ValueError('DSA twin: %d matrices of %s; a controller has at most %d, each at least 1 x 1'
                             % (len(self.shapes), self.shapes, dsa.MAX_MATRICES))
        self.contact_matrix = int(contact_matrix)
        if self.shapes and not 0 <= self.contact_matrix < len(self.shapes):
            raise ValueError('DSA twin: contact_matrix %d is not one of its %d matrices (0..%d)'
                             % (self.contact_matrix, len(self.shapes), len(self.shapes) - 1))
        if loop_reply not in dsa.LOOP_REPLY_FORMS:
            raise ValueError('DSA twin: loop_reply must be one of %s, got %r' % (', '.join(dsa.LOOP_REPLY_FORMS),
                                                                                loop_reply))
        if controller_info_size not in dsa.CONTROLLER_INFO_SIZES:
            raise ValueError('DSA twin: controller_info_size must be 18 or 19, got %r' % (controller_info_size,))
        self.rows, self.cols = self.shapes[self.contact_matrix] if self.shapes else (int(rows), int(cols))
        self.frame_source = frame_source or PatternSource(self.rows, self.cols)
        self.boot_seconds = float(boot_seconds)
        self.boot_garbage = bool(boot_garbage)
        self.loop_reply = loop_reply
        self.controller_info_size = int(controller_info_size)
        self.serial_number = int(serial_number)
        self.sw_version = int(sw_version)
        self.partial_frame_timeout = float(partial_frame_timeout)
        self.clock = clock
        self.counts = {'frames_sent': 0, 'crc_errors': 0, 'garbage_bytes': 0, 'unknown_commands': 0,
                       'requests': 0, 'source_errors': 0, 'truncated_requests': 0}
        self._rng = random.Random(seed)
        self._idle_rng = np.random.default_rng(seed)
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
        self._queries = [self._booted_at + f * self.boot_seconds for f in TERMINAL_QUERY_AT]

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
            return max(0.0, min([self._next_garbage] + self._queries) - now)
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
        frames = parser.feed(data, self.clock())
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
        """What the controller sends by itself now (a list of bytes): boot garbage and the terminal query while
        it boots, then a data frame whenever one is due. A request frame begun more than partial_frame_timeout s ago
        and still unfinished (a host that died mid-frame, or dribbles) is dropped."""
        now = self.clock()
        if self._parser.partial_expired(now, self.partial_frame_timeout):
            self._parser.reset()
            self.counts['truncated_requests'] += 1
        if self.booting:
            out = []
            while self._queries and self._queries[0] <= now:
                self._queries.pop(0)
                out.append(TERMINAL_QUERY)
            if now >= self._next_garbage:
                self._next_garbage = now + GARBAGE_PERIOD
                out.append(boot_garbage_chunk(self._rng))
            return out
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
            dsa.Command.LOOP: lambda body: dsa.pack_loop_reply(body, self.loop_reply),
        }.get(command)
        if handler is None:
            self.counts['unknown_commands'] += 1
            return dsa.pack_error(Status.UNKNOWN_COMMAND)
        return handler(payload)

    def _controller_info(self, payload):
        if payload:
            return dsa.pack_error(Status.NO_PARAM_EXPECTED)
        return dsa.pack_controller_info(dsa.ControllerInfo(
            error=0, serial_number=self.serial_number, hw_version=1, sw_version=self.sw_version,
            status_flags=0x80 | (0x40 if self._acquiring else 0), feature_flags=0x10, senscon_type=1,
            active_interface=0, can_baudrate=0, can_id=0), size=self.controller_info_size)

    def _sensor_info(self, payload):
        if payload:
            return dsa.pack_error(Status.NO_PARAM_EXPECTED)
        return dsa.pack_sensor_info(dsa.SensorInfo(error=0, matrices=len(self.shapes), generated_by=0,
                                                   hw_revision=1, serial_number=self.serial_number, feature_flags=0))

    def _matrix_info(self, payload):
        if len(payload) != 1:
            return dsa.pack_error(Status.NOT_ENOUGH_PARAMS if not payload else Status.FORMAT_ERROR)
        index = payload[0]
        if index >= len(self.shapes):
            return dsa.pack_error(Status.INDEX_OUT_OF_BOUNDS)
        rows, cols = self.shapes[index]
        info = dsa.MatrixInfo(error=0, texel_width=dsa.TEXEL_SIZE_MM, texel_height=dsa.TEXEL_SIZE_MM,
                              cells_x=cols, cells_y=rows)
        # the whole 52-byte structure: a driver reads the prefix and must tolerate the rest
        return dsa.pack_matrix_info(info, extra=dsa.matrix_info_tail(uid=bytes([0xD5, 0xA0, 0, 0, 0, index])))

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
        """All matrices' cells in matrix order: the source's on the contact matrix, idle ones elsewhere."""
        self._next_frame = max(self._next_frame + self._period, now)   # keep the rate, never burst to catch up
        matrices = []
        if self.shapes:
            cells = self._next_cells()
            if cells is None:
                return None
            matrices = [cells if i == self.contact_matrix else idle_frame(self._idle_rng, rows, cols)
                        for i, (rows, cols) in enumerate(self.shapes)]
        stamp = int((now - self._booted_at) * 1000.0)
        frame = bytearray(dsa.encode_frame(dsa.Command.DATA_FRAME, dsa.encode_data_frame(stamp, matrices, self._rle)))
        fault = self._faults.pop(0) if self._faults else None
        if fault == 'corrupt':
            frame[dsa.HEADER_SIZE + 2] ^= 0x5A
        elif fault == 'truncate':
            frame = frame[:len(frame) // 2]
        self.counts['frames_sent'] += 1
        return bytes(frame)
