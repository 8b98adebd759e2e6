"""The core's episode loop, reset/autostart state machine, sensor freshness and gripper retries, without a master."""
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from plas_ros.data.episodes import ERROR, TERMINAL, TIMEOUT
from plas_ros.env.remote import GRIPPER_ACK, GRIPPER_MOVE, MOVE_TIP, ActionInbox, DriverRobot, FreshSensors
from plas_ros.env.runner import EpisodeRunner, Session, Transport
from plas_ros.env.task import RobotError, SensorError


class ScriptedWorld:
    """A world whose steps end as scripted: 'terminal', 'timeout', an exception to raise, or None (go on)."""

    def __init__(self, script, reset_error=None):
        self.script = list(script)
        self.reset_error = reset_error
        self.resets = self.aborts = 0
        self.gripper_width = 2.5

    def reset(self, seed=None):
        self.resets += 1
        if self.reset_error is not None:
            raise self.reset_error
        return np.zeros(3, np.float32), {}

    def step(self, action):
        end = self.script.pop(0)
        if isinstance(end, Exception):
            raise end
        return (np.full(3, len(self.script), np.float32), 0.5, end == 'terminal', end == 'timeout',
                {'gripper_width': 3.0, 'gripper_adjustment': -1, 'tactile_raw': np.ones((2, 2), np.uint16)})

    def abort(self):
        self.aborts += 1


class Recording(Transport):
    def __init__(self, actions=None, stopped=False):
        self.records = []
        self.actions = actions
        self._stopped = stopped
        self.asked = []

    def act(self, episode, step, observation):
        self.asked.append((episode, step))
        if self.actions is not None:
            return self.actions.pop(0) if self.actions else None
        return np.array([0.1, -0.2], np.float32)

    def record(self, step):
        self.records.append(step)

    def stopped(self):
        return self._stopped


def test_an_episode_runs_to_its_terminal_and_records_every_step():
    world, transport = ScriptedWorld([None, None, 'terminal']), Recording()
    summary = EpisodeRunner(world, transport).run(episode=4)
    assert (summary.episode, summary.steps, summary.outcome, summary.ret) == (4, 3, TERMINAL, 1.5)
    assert [(r.episode, r.step) for r in transport.records] == [(4, 0), (4, 1), (4, 2)]
    assert transport.records[-1].terminal and not transport.records[0].ends_episode
    np.testing.assert_array_equal(transport.records[1].observation, transport.records[0].next_observation)
    assert transport.records[0].gripper_width == 3.0 and transport.records[0].gripper_adjustment == -1
    assert transport.records[0].tactile_raw.shape == (4,)


def test_max_steps_ends_an_episode_as_a_timeout():
    world, transport = ScriptedWorld([None] * 10), Recording()
    summary = EpisodeRunner(world, transport, max_steps=4).run(0)
    assert (summary.steps, summary.outcome) == (4, TIMEOUT) and transport.records[-1].timeout


@pytest.mark.parametrize('fault', [SensorError('stale /dsa/frame'), RobotError('/wsg/move failed')])
def test_a_fault_ends_the_episode_with_an_error_record_without_a_next_observation(fault):
    world, transport = ScriptedWorld([None, fault]), Recording()
    summary = EpisodeRunner(world, transport).run(0)
    assert (summary.steps, summary.outcome) == (2, ERROR)
    error = transport.records[-1]
    assert error.error and error.step == 1 and len(error.next_observation) == 0
    assert error.error_message == str(fault) and error.gripper_width == 2.5
    np.testing.assert_array_equal(error.action, np.float32([0.1, -0.2]))
    assert world.aborts == 1


def test_a_fault_while_the_process_stops_is_no_error_record():
    world, transport = ScriptedWorld([SensorError('silence')]), Recording(stopped=True)
    assert EpisodeRunner(world, transport).run(0) is None and transport.records == []


def test_a_transport_that_stops_ends_the_run_and_keeps_what_was_recorded():
    world = ScriptedWorld([None, None, None])
    transport = Recording(actions=[np.zeros(2, np.float32)])
    assert EpisodeRunner(world, transport).run(0) is None
    assert len(transport.records) == 1


class Requests:
    """Operator requests handed to the session one per wait, each recording its answer."""

    def __init__(self, count):
        self.count = count
        self.answers = []

    def __call__(self, timeout):
        if not self.count:
            return None
        self.count -= 1
        return SimpleNamespace(answer=lambda success, message: self.answers.append(success))


def test_a_failed_reset_stops_autostart_until_an_operator_reset_succeeds():
    errors = [RobotError('driver down'), None, None, None]

    class FlakyWorld(ScriptedWorld):
        def reset(self, seed=None):
            error = errors.pop(0)
            if error is not None:
                raise error
            return super().reset(seed)

    world = FlakyWorld(['timeout', 'timeout', 'terminal'])
    requests, log = Requests(1), []
    session = Session(EpisodeRunner(world, Recording()), episodes=3, wait_for_request=requests,
                      log=lambda level, text: log.append(text), operator='/cloth/reset')
    session.run()
    assert session.finished == 3 and session.episode == 3
    assert requests.answers == [True]  # one operator reset; then autostart ran the other two by itself
    assert any('waiting for /cloth/reset' in line for line in log)
    assert any('back to back again' in line for line in log)
    assert session.state() == 'all 3 episode(s) are done'


def test_without_autostart_every_episode_waits_for_an_operator_reset():
    world = ScriptedWorld(['terminal', 'terminal'])
    requests = Requests(2)
    session = Session(EpisodeRunner(world, Recording()), episodes=2, autostart=False, wait_for_request=requests)
    session.run()
    assert requests.answers == [True, True] and session.finished == 2


def test_a_session_stops_when_told():
    world = ScriptedWorld([])
    stop = threading.Event()
    stop.set()
    session = Session(EpisodeRunner(world, Recording()), stopped=stop.is_set)
    session.run()
    assert world.resets == 0


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_fresh_sensors_name_every_stale_or_silent_topic():
    clock = FakeClock()
    sensors = FreshSensors({'tactile': '/dsa/frame', 'wrench': '/arm/wrench'}, max_age=0.5, clock=clock)
    assert sensors.never_heard() == ['/dsa/frame', '/arm/wrench']
    sensors.store('tactile', 'frame')
    with pytest.raises(SensorError, match=r'/arm/wrench: no message yet'):
        sensors.check_alive()
    sensors.store('wrench', 'wrench')
    sensors.check_alive()
    clock.now += 0.6
    with pytest.raises(SensorError, match=r'/dsa/frame: last message 0.60 s old'):
        sensors.check_alive()


def test_a_reading_must_be_newer_than_the_last_motion_and_the_wait_is_bounded():
    sensors = FreshSensors({'tactile': '/dsa/frame'}, max_age=0.2)
    sensors.store('tactile', 'old')
    since = time.time()
    started = time.monotonic()
    with pytest.raises(SensorError, match='nothing new within 0.20 s'):
        sensors.wait_taken_after(since)
    assert time.monotonic() - started < 1.0
    threading.Timer(0.05, sensors.store, args=('tactile', 'new')).start()
    assert sensors.wait_taken_after(since) == {'tactile': 'new'}


def test_a_reading_stamped_before_the_move_ended_is_never_used_however_late_it_arrives():
    stamps = FakeClock()
    sensors = FreshSensors({'tactile': '/dsa/frame', 'wrench': '/arm/wrench'}, max_age=0.2, stamp_clock=stamps)
    calls = []
    robot = DriverRobot(lambda name, *args: calls.append(name) or SimpleNamespace(success=True), sensors,
                        to_reading=dict, width_speed=70.0, wsg_retries=0)
    stamps.now = 200.0
    robot.move_tip(0.01, 0.0)                                # the move's reply came at 200.0
    sensors.store('tactile', 'before the move', taken=199.99)  # arrives now, taken while the arm moved
    sensors.store('wrench', 'after the move', taken=200.01)
    threading.Timer(0.05, sensors.store, args=('tactile', 'after the move'), kwargs={'taken': 200.02}).start()
    assert robot.read() == {'tactile': 'after the move', 'wrench': 'after the move'}
    stamps.now = 201.0
    robot.set_width(2.0)                                     # every motion, the gripper's too
    sensors.store('tactile', 'late', taken=200.99)
    sensors.store('wrench', 'late', taken=201.0)             # taken at the very instant: not after it
    with pytest.raises(SensorError, match=r'/dsa/frame: newest reading taken 0.010 s before the last motion ended;'
                                          r' /arm/wrench: newest reading taken 0.000 s before'):
        robot.read()
    assert calls == [MOVE_TIP, GRIPPER_MOVE]


def test_the_action_inbox_returns_only_the_answer_to_the_asked_step():
    inbox = ActionInbox()
    inbox.put(SimpleNamespace(episode=1, step=3))
    assert inbox.wait_for(1, 4, timeout=0.05) is None
    threading.Timer(0.05, inbox.put, args=(SimpleNamespace(episode=1, step=4),)).start()
    assert inbox.wait_for(1, 4, timeout=2.0).step == 4


def _robot(results, retries=2):
    calls = []

    def call(name, *args):
        calls.append(name)
        return results.pop(0) if name == GRIPPER_MOVE else SimpleNamespace(success=True)

    sensors = FreshSensors({}, max_age=0.1)
    return DriverRobot(call, sensors, to_reading=dict, width_speed=70.0, wsg_retries=retries), calls


def test_a_failed_gripper_move_is_acknowledged_and_retried():
    failed = SimpleNamespace(success=False, status=16, message='fast stop active')
    robot, calls = _robot([failed, failed, SimpleNamespace(success=True)])
    robot.set_width(2.0)
    assert calls == [GRIPPER_MOVE, GRIPPER_ACK, GRIPPER_MOVE, GRIPPER_ACK, GRIPPER_MOVE]


def test_a_gripper_that_keeps_failing_is_a_robot_error_naming_the_status():
    failed = SimpleNamespace(success=False, status=18, message='command failed')
    robot, calls = _robot([failed] * 3)
    with pytest.raises(RobotError, match='after 2 retries: status 18: command failed'):
        robot.set_width(2.0)
    assert calls.count(GRIPPER_MOVE) == 3
