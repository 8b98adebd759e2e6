"""The health of a device, without ROS: what the driver nodes publish on /diagnostics (doc/diagnostics.md).

A `Monitor` watches one device (or the env node's task: plas_ros.env.health) over a sliding window
(config/robot.yaml `diagnostics`): the rates at which its data arrive against the expected ones, the bad
frames its clients count, the last error it logged, and whatever the driver adds (a fast stop, a gripper that
is not referenced). `report()` turns that into a `Report`: a level (OK, WARN, ERROR, the values of
diagnostic_msgs/DiagnosticStatus), a one-line message and the key/value pairs a viewer shows. The nodes
(plas_ros/nodes/drivers.py `Diagnostics`) only hand reports to diagnostic_updater.

`missing_ros_modules()` says which ROS Python modules the driver nodes need but cannot find (without importing
ROS), for a launcher that checks before it starts anything.
"""
import collections
import dataclasses
import importlib.util
import logging
import threading
import time
from typing import Tuple

from plas_ros.config import from_mapping, section

OK, WARN, ERROR = 0, 1, 2
LEVEL_NAMES = {OK: 'OK', WARN: 'WARN', ERROR: 'ERROR'}

# module -> (Debian 12 package, ROS Noetic package): what the driver nodes import beyond rospy.
ROS_MODULES = {'diagnostic_updater': ('python3-diagnostic-updater', 'ros-noetic-diagnostic-updater')}


def missing_module_message(module, packages=None):
    """'the Python module diagnostic_updater is missing: install python3-diagnostic-updater (Debian 12) or ...'."""
    debian, noetic = packages or ROS_MODULES[module]
    return ('the Python module %s is missing: install %s (Debian 12) or %s (ROS Noetic); tools/bootstrap.sh '
            'installs it' % (module, debian, noetic))


def missing_ros_modules(modules=None):
    """One message (missing_module_message) per module of `modules` ({module: (debian, noetic)}, default
    ROS_MODULES) that Python cannot find; [] when all are there. Imports nothing."""
    modules = ROS_MODULES if modules is None else modules
    return [missing_module_message(name, packages) for name, packages in modules.items()
            if importlib.util.find_spec(name) is None]


@dataclasses.dataclass(frozen=True)
class DiagnosticsConfig:
    period: float          # s between two /diagnostics messages
    window: float          # s over which rates and bad frames are counted
    rate_warn: float       # a rate below this fraction of the expected one is WARN ...
    rate_error: float      # ... below this fraction ERROR
    bad_frames_warn: int   # this many bad frames within the window is WARN ...
    bad_frames_error: int  # ... this many ERROR

    def __post_init__(self):
        if not (self.period > 0 and self.window > 0 and 0 <= self.rate_error <= self.rate_warn <= 1
                and 1 <= self.bad_frames_warn <= self.bad_frames_error):
            raise ValueError('diagnostics: need period > 0, window > 0, 0 <= rate_error <= rate_warn <= 1 and '
                             '1 <= bad_frames_warn <= bad_frames_error, got %s' % (self,))


def load_diagnostics_config(values=None, path='robot.yaml'):
    """The thresholds: `values` (a mapping, e.g. a node's overlaid `diagnostics` parameter) or the
    `diagnostics` section of config/robot.yaml; ConfigError or ValueError naming the problem."""
    values = section(path, 'diagnostics') if values is None else values
    return from_mapping(DiagnosticsConfig, values, path, 'diagnostics')


@dataclasses.dataclass(frozen=True)
class Report:
    level: int
    message: str
    values: Tuple[Tuple[str, str], ...]

    @property
    def level_name(self):
        return LEVEL_NAMES[self.level]

    def value(self, key):
        return dict(self.values)[key]


class _Rate:
    """Events per second over the last `window` s (at most the time since `restart`)."""

    def __init__(self, expected):
        self.expected = None if expected is None else float(expected)
        self.times = collections.deque()
        self.total = None  # the last running total given to Monitor.count

    def add(self, now, count, window):
        self.times.extend([now] * count)
        self.prune(now, window)

    def prune(self, now, window):
        while self.times and self.times[0] <= now - window:
            self.times.popleft()

    def measured(self, now, window, since):
        self.prune(now, window)
        span = min(window, now - since)
        return len(self.times) / span if span > 0 else 0.0


class _Count:
    """How much a running total grew within the last `window` s (sampled at each report)."""

    def __init__(self):
        self.samples = collections.deque()

    def grown(self, now, total, window):
        self.samples.append((now, total))
        while len(self.samples) > 1 and self.samples[1][0] <= now - window:
            self.samples.popleft()
        return total - self.samples[0][1]


class Monitor:
    """One device's health over a sliding window (see the module). Thread-safe: the driver's threads tick and
    count while diagnostic_updater's timer reports."""

    def __init__(self, config, clock=time.monotonic):
        self.config = config
        self._clock = clock
        self._lock = threading.RLock()
        self._rates = {}
        self._counts = {}
        self._last_error = None        # (text, time)
        self._link_since = clock()     # rates are judged over the time since the link (re)appeared
        self._link_up = None

    def expect(self, name, rate_hz):
        """Measure `name` (events, e.g. 'state') against `rate_hz` (None: measured and shown, never judged); for a
        name already measured, only its expected rate changes (learnt once its source is up)."""
        with self._lock:
            if name in self._rates:
                self._rates[name].expected = _Rate(rate_hz).expected
            else:
                self._rates[name] = _Rate(rate_hz)

    def tick(self, name, count=1):
        with self._lock:
            self._rates[name].add(self._clock(), count, self.config.window)

    def count(self, name, total):
        """`name`'s events as a running total kept by the device's client: ticks what it grew by."""
        with self._lock:
            rate = self._rates[name]
            grown = int(total) - (rate.total if rate.total is not None else int(total))
            rate.total = int(total)
            if grown > 0:
                self.tick(name, grown)

    def error(self, text):
        self._last_error = (str(text), self._clock())

    def logger(self, forward=None):
        """A log(level, text) callback for the core's clients: WARNING and above become the last error; every
        line goes on to `forward` too."""
        def log(level, text):
            if level >= logging.WARNING:
                self.error(text)
            if forward is not None:
                forward(level, text)
        return log

    def report(self, link_up, link_text, bad=None, problems=(), values=()):
        """The device's Report now.

        `link_up`/`link_text`: whether the device answers, and what to say about the link; `bad`: {name: running
        total} of bad frames (judged by how much they grew within the window); `problems`: (level, text) pairs
        the driver found (a fast stop); `values`: further (key, value) pairs to show."""
        with self._lock:
            return self._report(link_up, link_text, bad or {}, problems, values)

    def _report(self, link_up, link_text, bad, problems, values):
        now = self._clock()
        if link_up and self._link_up is False:  # came back: judge the rates over the time since
            self._link_since = now
        self._link_up = bool(link_up)
        found = [] if link_up else [(ERROR, 'no link: %s' % link_text)]
        shown = [('link', ('up: ' if link_up else 'down: ') + link_text)]
        for name, rate in self._rates.items():
            level, text = self._judge_rate(name, rate, now)
            shown.append(('%s rate' % name, text))
            if link_up and level != OK:
                found.append((level, '%s %s' % (name, text)))
        recent = 0
        for name, total in bad.items():
            grown = self._counts.setdefault(name, _Count()).grown(now, int(total), self.config.window)
            recent += grown
            shown.append((name, '%d in the last %.0f s, %d in all' % (grown, self.config.window, total)))
        level = self._judge_count(recent)
        if level != OK:
            found.append((level, '%d bad frames in the last %.0f s' % (recent, self.config.window)))
        found.extend(problems)
        shown.append(('last error', self._last_error_text(now)))
        shown.extend((str(k), str(v)) for k, v in values)
        return _summary(found, shown)

    def _judge_rate(self, name, rate, now):
        measured = rate.measured(now, self.config.window, self._link_since)
        if rate.expected is None:
            return OK, '%.1f Hz' % measured
        text = '%.1f Hz (expected %.1f Hz)' % (measured, rate.expected)
        if now - self._link_since < self.config.window / 2.0:
            return OK, text + ', measuring'  # too soon after the link came up to tell
        ratio = measured / rate.expected if rate.expected > 0 else 1.0
        if ratio < self.config.rate_error:
            return ERROR, text
        if ratio < self.config.rate_warn:
            return WARN, text
        return OK, text

    def _judge_count(self, recent):
        if recent >= self.config.bad_frames_error:
            return ERROR
        if recent >= self.config.bad_frames_warn:
            return WARN
        return OK

    def _last_error_text(self, now):
        if self._last_error is None:
            return 'none'
        text, at = self._last_error
        return '%s (%.1f s ago)' % (text, now - at)


def _summary(found, shown):
    """The worst level found, its problems first in the message ('OK' when there are none)."""
    level = max([lvl for lvl, _ in found], default=OK)
    ordered = sorted(found, key=lambda problem: -problem[0])
    message = '; '.join(text for _, text in ordered) or 'OK'
    return Report(level, message, tuple(shown))
