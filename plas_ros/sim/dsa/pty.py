"""The simulated DSACON32 controller's transport: `DsaDevice` on a pseudo-terminal (a serial line's stand-in).

`DsaSimulator` creates a pty (raw mode), optionally links it at `link`, and serves the device from one thread:
what the host writes goes to `DsaDevice.receive`, what the device answers or sends by itself goes back out.
Closing and reopening the pty is an unplugged and replugged controller (a new boot). Bytes nobody reads are lost
as on a serial line: writes never block the device.
"""
import errno
import logging
import os
import select
import threading
import time
import tty

from plas_ros.sim.dsa.device import DsaDevice

_LOG = logging.getLogger('plas_ros.sim.dsa')
IDLE_WAIT = 0.05           # s the serving thread waits for the host when the device has nothing due


class DsaSimulator:
    """The DSA controller on a pty. Thread-based: start() returns once the pty exists; stop() ends it.

    The keyword arguments go to `DsaDevice` (the controller's behaviour: matrices, boot, loop reply, ...; their
    defaults in config/sim_dsa.yaml)."""

    def __init__(self, frame_source=None, **device_options):
        self.device = DsaDevice(frame_source=frame_source, **device_options)
        self.link = None
        self.path = None
        self._link_counts = {'dropped_frames': 0, 'reopens': 0}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread = None
        self._master = self._slave = None

    # ------------------------------------------------------------------ the device, seen through the link

    @property
    def counts(self):
        with self._lock:
            return dict(self.device.counts, **self._link_counts)

    @property
    def acquiring(self):
        return self.device.acquiring

    @property
    def booting(self):
        with self._lock:
            return self.device.booting

    @property
    def boot_garbage(self):
        return self.device.boot_garbage

    def inject_corrupt_frame(self):
        """Fault hook: the next data frame goes out with one payload byte flipped (its CRC then fails)."""
        with self._lock:
            self.device.inject_corrupt_frame()

    def inject_truncated_frame(self):
        """Fault hook: only the first half of the next data frame goes out."""
        with self._lock:
            self.device.inject_truncated_frame()

    def inject_bytes(self, data):
        """Fault hook: raw bytes (garbage, a crafted header) onto the line, between two frames."""
        with self._lock:
            if self._master is not None:
                self._write(bytes(data))

    # ------------------------------------------------------------------ lifecycle

    def start(self, link=None, boot_garbage=False):
        """Create the pty (linked at `link` if given) and serve it from a thread; returns the pty path.

        With `boot_garbage` every opening of the pty is a boot: the device prints stray bytes and does not answer
        for its boot time."""
        if self._thread is not None:
            raise RuntimeError('DsaSimulator already started')
        self.link = link
        self.device.boot_garbage = bool(boot_garbage)
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
            self.device.power_on()
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

    def reopen_pty(self, down_time=0.0):
        """Fault hook: close the pty, wait `down_time` s, open a new one at the same link; returns its path."""
        self.close_pty()
        if down_time > 0:
            time.sleep(down_time)
        with self._lock:
            self._link_counts['reopens'] += 1
        return self.open_pty()

    # ------------------------------------------------------------------ serving

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
        with self._lock:
            due = self.device.next_due()
        wait = IDLE_WAIT if due is None else min(IDLE_WAIT, due)
        readable, _, _ = select.select([master], [], [], wait)
        with self._lock:
            if master != self._master:
                return
            if readable:
                self._send(self.device.receive(os.read(master, 4096)))
            self._send(self.device.poll())

    def _send(self, chunks):
        for chunk in chunks:
            if self._write(chunk) < len(chunk):
                self._link_counts['dropped_frames'] += 1

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
