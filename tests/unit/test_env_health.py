"""The env node's /diagnostics status without a master: the sensor streams' ages and rates, the step rate, the
session's phase and faults, on an injected clock (plas_ros.env.health)."""
from types import SimpleNamespace

import numpy as np

from plas_ros.env.health import expect_rates, task_monitor, task_report
from plas_ros.env.remote import FreshSensors
from plas_ros.env.runner import RESET_FAILED, RUNNING, WAITING, EpisodeRunner, Session, Transport
from plas_ros.env.task import RobotError, SensorError
from plas_ros.hardware.diagnostics import ERROR, OK, WARN, DiagnosticsConfig

CONFIG = DiagnosticsConfig(period=1.0, window=5.0, rate_warn=0.8, rate_error=0.5, bad_frames_warn=1,
                           bad_frames_error=10)
TOPICS = {'tactile': '/dsa/frame', 'wrench': '/arm/wrench', 'pose': '/arm/tip_pose', 'gripper': '/wsg/state'}
RATES = {'tactile': 25.0, 'wrench': None, 'pose': 100.0, 'gripper': 50.0}  # Hz; the wrench comes at 20 Hz


class Clock:
    """Seconds from 50 in 0.01 s ticks, counted as integers: a report's time is a whole second exactly."""

    def __init__(self):
        self.ticks = 0

    def advance(self):
        self.ticks += 1
        return self.ticks

    def __call__(self):
        return 50.0 + self.ticks / 100.0


class Task:
    """FreshSensors, a Session and the task's Monitor on one fake clock."""

    def __init__(self, world=None, transport=None, **session):
        self.clock = Clock()
        self.monitor = task_monitor(CONFIG, TOPICS, clock=self.clock)
        self.sensors = FreshSensors(TOPICS, max_age=0.5, clock=self.clock, on_store=self.monitor.tick)
        expect_rates(self.monitor, RATES)
        runner = EpisodeRunner(world, transport or Transport())
        self.session = Session(runner, on_fault=self.monitor.error, operator='/cloth/reset', **session)

    def report(self):
        return task_report(self.monitor, self.sensors, self.session)

    def stream(self, seconds, silent=()):
        """Every sensor but `silent` at its rate for `seconds`, reported every whole second (diagnostic_updater's
        period); the last report."""
        report = None
        for _ in range(int(round(seconds * 100))):
            tick = self.clock.advance()
            for name, hz in RATES.items():
                if name not in silent and tick % int(100 / (hz or 20.0)) == 0:
                    self.sensors.store(name, object())
            if tick % 100 == 0:
                report = self.report()
        return report


def test_streams_at_their_rates_are_ok_and_a_silent_one_warns_then_errors():
    task = Task()
    down = task.report()
    assert down.level == ERROR and down.message.startswith(
        'no link: waiting for the first message of /dsa/frame, /arm/wrench, /arm/tip_pose, /wsg/state'), down
    assert down.value('tactile age') == 'no message yet (/dsa/frame)'

    report = task.stream(6.0)
    assert report.level == OK and report.message == 'OK', report
    assert report.value('link') == 'up: all 4 sensor streams heard'
    assert report.value('pose rate').startswith('100.0 Hz (expected 100.0 Hz)'), report
    assert report.value('tactile rate') == '25.0 Hz (expected 25.0 Hz)', report
    assert report.value('wrench rate') == '20.0 Hz'  # measured, never judged
    assert report.value('step rate') == '0.0 Hz' and report.value('episode state') == 'starting'
    assert report.value('tactile age') == '0.00 s (/dsa/frame)' and report.value('last error') == 'none'

    task.stream(0.7, silent=('tactile',))
    stale = task.report()
    assert stale.level == WARN, stale
    assert stale.message == '/dsa/frame: last message 0.70 s old (sensor_max_age 0.50 s)', stale
    assert stale.value('tactile age') == '0.70 s (/dsa/frame)'
    assert stale.value('tactile rate') == '21.6 Hz (expected 25.0 Hz)'  # 4.3 s of 5: above rate_warn

    stopped = task.stream(3.0, silent=('tactile',))
    assert stopped.level == ERROR, stopped  # its rate fell below rate_error: worst first
    assert stopped.message == ('tactile 10.0 Hz (expected 25.0 Hz); '
                               '/dsa/frame: last message 3.00 s old (sensor_max_age 0.50 s)'), stopped

    back = task.stream(6.0)
    assert back.level == OK, back


class World:
    """Resets as scripted (an exception raises), then steps until its script of step ends runs out."""

    def __init__(self, resets, steps):
        self.resets, self.steps = list(resets), list(steps)

    def reset(self, seed=None):
        error = self.resets.pop(0)
        if error is not None:
            raise error
        return np.zeros(3, np.float32), {}

    def step(self, action):
        end = self.steps.pop(0)
        if isinstance(end, Exception):
            raise end
        return np.zeros(3, np.float32), 0.0, end == 'terminal', False, {}


class Watching(Transport):
    """Answers every step and keeps the task's report as it was while the step was asked for."""

    def __init__(self):
        self.task = None
        self.reports = []

    def act(self, episode, step, observation):
        self.reports.append(self.task.report())
        return np.zeros(2, np.float32)


def test_the_episode_state_the_counted_faults_and_the_last_error():
    """Episode 0 ends on a robot error; the reset of episode 1 fails (ERROR while the operator is awaited); the
    operator's reset runs episode 1 to its terminal (OK again, the faults still counted)."""
    transport = Watching()
    seen = {}

    def operator(timeout):
        seen[task.session.phase] = task.report()
        return SimpleNamespace(answer=lambda success, message: None)

    world = World([None, SensorError('stale /dsa/frame'), None], [None, RobotError('/arm/move_tip failed'),
                                                                  None, 'terminal'])
    task = Task(world, transport, episodes=2, wait_for_request=operator)
    transport.task = task
    task.stream(1.0)  # every stream heard
    task.session.run()

    running = transport.reports[0]
    assert running.level == OK and running.value('episode state') == RUNNING and running.value('episode') == '0'
    failed = seen[RESET_FAILED]
    assert failed.level == ERROR, failed
    assert failed.message == 'reset failed: waiting for /cloth/reset; episode 0 ended on an error'
    assert failed.value('episode state') == RESET_FAILED
    assert failed.value('last error') == 'reset for episode 1 failed: stale /dsa/frame (0.0 s ago)'
    assert (failed.value('episodes ended on an error'), failed.value('failed resets')) == ('1', '1')
    after = transport.reports[-1]  # episode 1, begun by the operator's reset: recovered, the faults counted
    assert after.value('episode state') == RUNNING and after.level == OK, after
    assert after.value('episodes ended on an error') == '1' and after.value('episode') == '1'

    done = task.report()
    assert done.level == OK and done.value('episode state') == 'done', done
    assert done.value('episodes finished') == '2' and done.value('episodes ended on an error') == '1'
    assert done.value('last error').startswith('reset for episode 1 failed')
    assert task.session.runner.steps == 3  # the error record of episode 0 is no transition


def test_without_autostart_the_session_waits_for_reset_without_an_error():
    seen = []

    def operator(timeout):
        seen.append(task.report())
        return None

    task = Task(World([], []), autostart=False, wait_for_request=operator,
                stopped=lambda: len(seen) >= 2)
    task.stream(1.0)
    task.session.run()
    assert [r.value('episode state') for r in seen] == [WAITING, WAITING]
    assert seen[-1].level == OK and task.session.phase == 'stopped'
