"""Simulated Weiss DSA tactile controller on a pseudo-terminal (the protocol of plas_ros.hardware.dsa).

`DsaSimulator(frame_source=None)` creates a pty (raw mode), optionally links it at `link`, and answers
controller info, sensor info, matrix info, start/stop acquisition (with and without RLE) and loop; while
acquiring it streams data frames at the requested rate, each stamped with the milliseconds since its boot.
It can emit boot garbage before answering, close and reopen its pty (same link, new pty) and corrupt or
truncate one data frame, to exercise a driver's recovery. Garbage, bad checksums and unknown commands from
the host never stop it.

    python -m plas_ros.sim.dsa [--link PATH] [--boot-garbage] [--rows 14 --cols 6]

prints the pty path; SIGUSR1 closes the pty and reopens it after --reopen-delay s, SIGUSR2 corrupts the next
data frame. Without a frame source it streams `pattern_frame(n)`, a deterministic pattern for tests.
"""
import argparse
import errno
import logging
import os
import random
import select
import signal
import struct
import sys
import threading
import time
import tty

import numpy as np

from plas_ros.hardware import dsa
from plas_ros.hardware.wsg import Status
from plas_ros.sim.cli import StopSignals, parse_without_ros_remappings

_LOG = logging.getLogger('plas_ros.sim.dsa')
PATTERN_MODULUS = dsa.FULLSCALE + 1


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


class DsaSimulator:
    """The DSA controller on a pty. Thread-based: start() returns once the pty exists; stop() ends it."""

    def __init__(self, frame_source=None, rows=dsa.ROWS, cols=dsa.COLS, boot_seconds=1.0, seed=0,
                 serial_number=0x00D5A032):
        self.rows, self.cols = int(rows), int(cols)
        self.frame_source = frame_source or PatternSource(self.rows, self.cols)
        self.boot_seconds = float(boot_seconds)
        self.serial_number = serial_number
        self.boot_garbage = False
        self.link = None
        self.path = None
        self.counts = {'frames_sent': 0, 'crc_errors': 0, 'garbage_bytes': 0, 'unknown_commands': 0,
                       'requests': 0, 'dropped_frames': 0, 'source_errors': 0, 'reopens': 0}
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread = None
        self._master = self._slave = None
        self._parser = None
        self._booted_at = 0.0
        self._acquiring = False
        self._rle = False
        self._period = 0.0
        self._next_frame = 0.0
        self._faults = []

    # ------------------------------------------------------------------ lifecycle

    def start(self, link=None, boot_garbage=False):
        """Create the pty (linked at `link` if given) and serve it from a thread; returns the pty path."""
        if self._thread is not None:
            raise RuntimeError('DsaSimulator already started')
        self.link = link
        self.boot_garbage = bool(boot_garbage)
        path = self.open_pty()
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name='dsa-sim', daemon=True)
        self._thread.start()
        return path

    def stop(self):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        self.close_pty()

    def open_pty(self):
        """A fresh pty (a new device boot), linked at self.link; returns its path."""
        with self._lock:
            if self._master is not None:
                return self.path
            master, slave = os.openpty()
            tty.setraw(slave)        # no echo, no line discipline: a serial line carries bytes as they are
            os.set_blocking(master, False)
            self._master, self._slave = master, slave
            self.path = os.ttyname(slave)
            self._parser = dsa.FrameParser()
            self._acquiring = False
            self._booted_at = time.monotonic()
            if self.link:
                self._relink(self.path)
            return self.path

    def _relink(self, target):
        tmp = '%s.tmp%d' % (self.link, os.getpid())
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(target, tmp)
        os.replace(tmp, self.link)

    def close_pty(self):
        """Close the pty as an unplugged controller would: the host's reads fail and the link vanishes."""
        with self._lock:
            if self._master is None:
                return
            if self.link and os.path.islink(self.link) and os.readlink(self.link) == self.path:
                os.unlink(self.link)
            for fd in (self._master, self._slave):
                os.close(fd)
            self._master = self._slave = None
            self._acquiring = False

    def reopen_pty(self, down_time=0.0):
        """Fault hook: close the pty, wait `down_time` s, open a new one at the same link; returns its path."""
        self.close_pty()
        if down_time > 0:
            time.sleep(down_time)
        self.counts['reopens'] += 1
        return self.open_pty()

    def inject_corrupt_frame(self):
        """Fault hook: the next data frame goes out with one payload byte flipped (its CRC then fails)."""
        with self._lock:
            self._faults.append('corrupt')

    def inject_truncated_frame(self):
        """Fault hook: only the first half of the next data frame goes out."""
        with self._lock:
            self._faults.append('truncate')

    @property
    def acquiring(self):
        return self._acquiring

    @property
    def booting(self):
        return self.boot_garbage and time.monotonic() - self._booted_at < self.boot_seconds

    # ------------------------------------------------------------------ the device loop

    def _serve(self):
        while not self._stop.is_set():
            with self._lock:
                master = self._master
            if master is None:
                self._stop.wait(0.02)
                continue
            try:
                self._step(master)
            except OSError as exc:
                if self._master == master:   # not a close from another thread: report, keep serving
                    _LOG.warning('DSA simulator: %s', exc)
                self._stop.wait(0.01)

    def _step(self, master):
        wait = 0.05
        if self._acquiring:
            wait = max(0.0, min(wait, self._next_frame - time.monotonic()))
        readable, _, _ = select.select([master], [], [], wait)
        with self._lock:
            if master != self._master:
                return
            if readable:
                self._receive(os.read(master, 4096))
            if self.booting:
                self._write(boot_garbage_chunk(self._rng))
            elif self._acquiring and time.monotonic() >= self._next_frame:
                self._send_data_frame()

    def _receive(self, data):
        parser = self._parser
        before = parser.crc_errors + parser.truncated
        frames = parser.feed(data)
        self.counts['crc_errors'] += parser.crc_errors + parser.truncated - before
        self.counts['garbage_bytes'] = parser.garbage_bytes
        if self.booting:
            return    # a booting controller does not listen yet
        for frame in frames:
            self.counts['requests'] += 1
            reply = self._answer(frame.command, frame.payload)
            if reply is not None:
                self._write(dsa.encode_frame(frame.command, reply))
                if frame.command == dsa.Command.ACQUISITION and self._acquiring:
                    self._next_frame = time.monotonic()

    def _write(self, data):
        """Write to the line; bytes nobody reads are lost, as on a serial line (never block the device)."""
        try:
            return os.write(self._master, data)
        except BlockingIOError:
            return 0
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                return 0
            raise

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

    def _send_data_frame(self):
        now = time.monotonic()
        self._next_frame = max(self._next_frame + self._period, now)   # keep the rate, never burst to catch up
        cells = self._next_cells()
        if cells is None:
            return
        stamp = int((now - self._booted_at) * 1000.0)
        frame = bytearray(dsa.encode_frame(dsa.Command.DATA_FRAME, dsa.encode_data_frame(stamp, cells, self._rle)))
        fault = self._faults.pop(0) if self._faults else None
        if fault == 'corrupt':
            frame[dsa.HEADER_SIZE + 2] ^= 0x5A
        elif fault == 'truncate':
            frame = frame[:len(frame) // 2]
        if self._write(bytes(frame)) < len(frame):
            self.counts['dropped_frames'] += 1
        else:
            self.counts['frames_sent'] += 1


def parse_args(argv):
    parser = argparse.ArgumentParser(prog='python -m plas_ros.sim.dsa', description=__doc__.split('\n\n')[0])
    parser.add_argument('--link', default=None, help='symlink to create to the pseudo-terminal')
    parser.add_argument('--boot-garbage', action='store_true', help='emit garbage for --boot-seconds first')
    parser.add_argument('--boot-seconds', type=float, default=1.0)
    parser.add_argument('--rows', type=int, default=dsa.ROWS)
    parser.add_argument('--cols', type=int, default=dsa.COLS)
    parser.add_argument('--reopen-delay', type=float, default=1.0,
                        help='seconds the pty stays closed after SIGUSR1')
    return parse_without_ros_remappings(parser, argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    sim = DsaSimulator(rows=args.rows, cols=args.cols, boot_seconds=args.boot_seconds)
    stop_signals = StopSignals()

    def reopen(*_):
        threading.Thread(target=lambda: print('pty reopened at %s' % sim.reopen_pty(args.reopen_delay),
                                              flush=True), daemon=True).start()
    signal.signal(signal.SIGUSR1, reopen)
    signal.signal(signal.SIGUSR2, lambda *_: sim.inject_corrupt_frame())
    path = sim.start(link=args.link, boot_garbage=args.boot_garbage)
    print('DSA simulator on %s%s' % (path, ' (link %s)' % args.link if args.link else ''), flush=True)
    try:
        stop_signals.wait()
    finally:
        sim.stop()
        print('DSA simulator stopped (%s)' % ', '.join('%s %d' % kv for kv in sim.counts.items()), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
