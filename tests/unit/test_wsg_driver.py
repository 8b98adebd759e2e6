"""WsgDriver and TactilePoller (plas_ros.hardware.wsg.driver) against the simulated WSG 32 over real TCP: homing
at start-up, the fast stop a lost link latched (cleared) versus a requested one (kept), 29 as the end of a move,
impossible state values rejected, bounded waits, and the tactile fingers."""
import math
import struct
import threading
import time

import pytest

from plas_ros.hardware.wsg import (
    Command,
    Status,
    SystemFlag,
    TactilePoller,
    WsgClient,
    WsgDriver,
    encode_frame,
    pack_status,
)
from plas_ros.sim.wsg import TWIN, StaticPart, WsgSimulator
from tests.helpers.common import wait_for
from tests.helpers.wsg import WAIT

REFERENCED = TWIN.with_options(referenced_at_power_up=True)


class Log:
    def __init__(self):
        self.lines = []

    def __call__(self, level, text):
        self.lines.append(text)

    def having(self, words):
        return [line for line in self.lines if words in line]


def started_sim(config=TWIN, part_width=None, initial_width=30.0, **kwargs):
    sim = WsgSimulator(fingers=StaticPart(part_width=part_width), initial_width=initial_width, config=config,
                       **kwargs)
    sim.start()
    return sim


def make_driver(sim, log=None, home_on_start=True, stop_on_block=False, tactile_fingers=(), max_motion_time=120.0):
    client = WsgClient('127.0.0.1', sim.port, timeout=1.0, backoff=(0.05, 0.2), log=log)
    client.subscribe_state(20)
    driver = WsgDriver(client, default_speed=200.0, timeout=1.0, homing_timeout=10.0, max_motion_time=max_motion_time,
                       home_on_start=home_on_start, stop_on_block=stop_on_block, stale_after=0.5,
                       tactile_fingers=tactile_fingers, log=log)
    return driver.start()


@pytest.fixture
def world():
    """(simulator, driver, log): the default twin (unreferenced at power-up), a 12 mm part between the fingers."""
    log = Log()
    sim = started_sim(part_width=12.0)
    driver = make_driver(sim, log)
    yield sim, driver, log
    driver.close()
    sim.stop()


def ready(driver):
    """Wait until the driver has prepared the connection (state flowing, start-up done)."""
    wait_for(lambda: driver.state() is not None and driver._wait_ready() is None, WAIT, what='the driver ready')


def flags(sim):
    return SystemFlag(sim.system_flags())


def test_it_homes_at_start_up_when_the_gripper_is_not_referenced(world):
    sim, driver, log = world
    wait_for(lambda: SystemFlag.REFERENCED in flags(sim), WAIT, what='the gripper referenced')
    assert sim.width == TWIN.device.stroke and driver.counters.homings == 1
    assert log.having('not referenced (system state bit 0 clear): homing') and log.having('homing done')
    ready(driver)
    result = driver.command('move', 20.0, 300.0)
    assert result.success and result.status == Status.SUCCESS and abs(result.width - 20.0) < 1e-3, result


def test_a_motion_asked_for_during_the_start_up_homing_waits_for_it():
    log = Log()
    sim = started_sim(initial_width=0.0)  # homing: 68 mm at 100 mm/s, 0.7 s
    driver = make_driver(sim, log)
    try:
        assert driver.client.wait_connected(WAIT)
        result = driver.command('move', 10.0, 300.0)  # at once: it would get 3 (not initialized) from the gripper
        assert result.success and sim.width == 10.0 and driver.counters.homings == 1, result
    finally:
        driver.close()
        sim.stop()


def test_without_home_on_start_it_only_says_so():
    log = Log()
    sim = started_sim()
    driver = make_driver(sim, log, home_on_start=False)
    try:
        ready(driver)
        assert SystemFlag.REFERENCED not in flags(sim) and driver.counters.homings == 0
        assert log.having('home_on_start is false: call home')
        result = driver.command('move', 20.0, 300.0)
        assert not result.success and result.status == Status.NOT_INITIALIZED and 'call home' in result.message
        assert driver.trigger('home') == (True, 'home done')
        assert driver.command('move', 20.0, 300.0).success
    finally:
        driver.close()
        sim.stop()


def test_a_referenced_gripper_is_not_homed():
    sim = started_sim(config=REFERENCED)
    driver = make_driver(sim, Log())
    try:
        ready(driver)
        assert driver.counters.homings == 0 and sim.width == 30.0
    finally:
        driver.close()
        sim.stop()


def lose_link(sim, driver):
    """The network drops the connection; returns once the driver prepared the next one."""
    before = driver.client.connection[0]
    sim.drop_connections(hold_off=0.3)
    wait_for(lambda: (driver.client.connection or (0,))[0] > before and driver._wait_ready() is None
             and driver.state() is not None, WAIT, what='the reconnection prepared')


def test_after_a_reconnect_it_clears_the_fast_stop_the_lost_link_latched(world):
    sim, driver, log = world
    ready(driver)
    lose_link(sim, driver)
    assert sim.counters()['link_loss_fast_stops'] == 1
    wait_for(lambda: SystemFlag.FAST_STOP not in flags(sim), WAIT, what='the fast stop cleared')
    assert driver.counters.fast_stops_cleared == 1
    assert log.having('cleared (0x24 ack) the FAST STOP that the lost link latched')
    assert driver.command('move', 20.0, 300.0).success


def test_a_requested_fast_stop_is_never_cleared_not_even_after_a_link_loss(world):
    sim, driver, log = world
    ready(driver)
    assert driver.trigger('fast_stop')[0]
    lose_link(sim, driver)
    time.sleep(0.3)
    assert SystemFlag.FAST_STOP in flags(sim) and driver.counters.fast_stops_cleared == 0
    assert log.having('FAST STOP requested through fast_stop is still active')
    denied = driver.command('move', 20.0, 300.0)
    assert not denied.success and denied.status == Status.ACCESS_DENIED and 'call ack' in denied.message
    assert driver.trigger('ack')[0]
    assert driver.command('move', 20.0, 300.0).success
    lose_link(sim, driver)  # acknowledged: a later link loss is the link's again
    wait_for(lambda: driver.counters.fast_stops_cleared == 1, WAIT, what='the next link fast stop cleared')


def test_a_fast_stop_found_at_start_up_is_left_to_the_operator():
    sim = started_sim(config=REFERENCED)
    first = WsgClient('127.0.0.1', sim.port).start()  # an earlier process that dies without announcing
    assert first.wait_connected(WAIT)
    first.close(announce=False)
    wait_for(lambda: SystemFlag.FAST_STOP in flags(sim), WAIT, what='the fast stop')
    log = Log()
    driver = make_driver(sim, log)
    try:
        ready(driver)
        assert SystemFlag.FAST_STOP in flags(sim) and driver.counters.fast_stops_cleared == 0
        assert log.having('in FAST STOP at start-up, not caused by this driver: call ack')
    finally:
        driver.close()
        sim.stop()


def test_close_announces_the_disconnect(world):
    sim, driver, log = world
    ready(driver)
    driver.close()
    wait_for(lambda: not sim.client_connected, WAIT, what='the simulator to see the client go')
    assert SystemFlag.FAST_STOP not in flags(sim) and sim.counters()['link_loss_fast_stops'] == 0


def test_29_on_a_stop_on_block_move_is_its_ordinary_end():
    log = Log()
    sim = started_sim(config=REFERENCED, part_width=3.0, initial_width=4.0)
    driver = make_driver(sim, log, stop_on_block=True)
    try:
        ready(driver)
        result = driver.command('move', 0.5, 70.0)
        blocked = 3.0 - TWIN.behaviour.block_squeeze
        assert result.success and result.status == Status.AXIS_BLOCKED, result
        assert abs(result.width - blocked) < 1e-3 and 'axis blocked' in result.message
        assert abs(sim.width - blocked) < 1e-6
        assert driver.command('move', 4.0, 70.0).status == Status.SUCCESS
    finally:
        driver.close()
        sim.stop()


def _state_frame(command, fmt, value):
    return encode_frame(command, pack_status(0, struct.pack(fmt, value)))


@pytest.mark.parametrize('command, fmt, value', [
    (Command.OPENING_WIDTH, '<f', float('nan')), (Command.OPENING_WIDTH, '<f', TWIN.device.stroke + 5.0),
    (Command.OPENING_WIDTH, '<f', -3.0), (Command.SPEED, '<f', float('inf')),
    (Command.SPEED, '<f', 2 * TWIN.device.max_speed), (Command.FORCE, '<f', 1000.0),
    (Command.GRASPING_STATE, '<B', 9)])
def test_impossible_state_values_are_rejected_counted_and_never_a_reading(command, fmt, value):
    log = Log()
    sim = started_sim(config=REFERENCED)
    driver = make_driver(sim, log)
    try:
        ready(driver)
        good = driver.client.value(command)
        stop = threading.Event()
        seen = []

        def watch():
            while not stop.is_set():
                state = driver.state()
                if state is not None:
                    seen.append(state)
                time.sleep(0.002)

        watcher = threading.Thread(target=watch)
        watcher.start()
        for _ in range(5):
            sim.inject_bytes(_state_frame(command, fmt, value))
            time.sleep(0.03)
        stop.set()
        watcher.join()
        assert driver.stats()['rejected_values'] == 5
        assert driver.client.value(command) == good
        field = {Command.OPENING_WIDTH: 0, Command.SPEED: 1, Command.FORCE: 2, Command.GRASPING_STATE: 3}[command]
        assert seen and all(s[field] == good for s in seen)
        assert len(log.having('rejected a state value')) == 1  # logged throttled
    finally:
        driver.close()
        sim.stop()


def test_no_value_can_make_a_motion_wait_unbounded():
    log = Log()
    sim = started_sim(config=REFERENCED)
    driver = make_driver(sim, log, max_motion_time=20.0)
    try:
        ready(driver)
        slow = driver.command('move', 0.0, TWIN.device.min_speed)  # 30 mm at 0.1 mm/s: 5 minutes
        assert not slow.success and slow.status == Status.RANGE_ERROR and 'max_motion_time' in slow.message
        for width, speed in ((float('nan'), 50.0), (10.0, float('inf')), (1e30, 50.0), (10.0, 1e-30)):
            refused = driver.command('move', width, speed)
            assert not refused.success and refused.message.startswith('refused'), refused
        assert sim.width == 30.0
        sim.device._to_client = lambda motion, status: []  # fault injection: the final reply never comes
        started = time.monotonic()
        hung = driver.command('move', 20.0, 400.0)
        assert not hung.success and hung.status == Status.TIMEOUT and math.isnan(hung.width)
        assert time.monotonic() - started < 1.0 + 1.5 * 30.0 / 400.0 + 2.0
    finally:
        driver.close()
        sim.stop()


class CountingFrames:
    def __init__(self):
        self.count = 0

    def __call__(self):
        self.count += 1
        return [[self.count % 4000] * 6 for _ in range(14)]


def test_tactile_fingers_are_polled_at_the_rate_and_their_info_logged():
    log = Log()
    sim = started_sim(config=REFERENCED, frame_source=CountingFrames())
    driver = make_driver(sim, log, tactile_fingers=(1, 2))
    frames = []
    poller = TactilePoller(driver, 20.0, lambda finger, cells: frames.append((time.monotonic(), finger, cells)))
    try:
        ready(driver)
        wait_for(lambda: driver.finger_info.get(2) is not None, WAIT, what='the finger info')
        assert log.having('finger 1 info 01 00, flags 00 00 (raw codes, not interpreted)')
        poller.start()
        time.sleep(1.0)
        poller.close()
        ones = [f for f in frames if f[1] == 1]
        assert 14 <= len(ones) <= 22 and len([f for f in frames if f[1] == 2]) == len(ones)
        assert all(len(cells) == 84 for _, _, cells in frames)
        assert [cells[0] for _, f, cells in frames if f == 1] == sorted({cells[0] for _, f, cells in frames if f == 1})
        assert driver.counters.finger_errors == {1: 0, 2: 0}
    finally:
        poller.close()
        driver.close()
        sim.stop()


@pytest.mark.parametrize('kind, words', [('error', '2 NO_SENSOR'), ('wrong_size', 'carries 84 bytes')])
def test_a_finger_that_is_not_tactile_is_named_counted_and_never_published(kind, words):
    log = Log()
    sim = started_sim(config=REFERENCED.with_finger(2, data=kind))
    driver = make_driver(sim, log, tactile_fingers=(1, 2))
    frames = []
    poller = TactilePoller(driver, 20.0, lambda finger, cells: frames.append(finger))
    try:
        ready(driver)
        poller.start()
        wait_for(lambda: driver.counters.finger_errors[2] >= 5 and frames.count(1) >= 5, WAIT, what='polls')
        poller.close()
        assert 2 not in frames and driver.counters.finger_frames[2] == 0
        errors = log.having('finger 2 gives no tactile frame')
        assert len(errors) == 1 and words in errors[0]  # throttled, naming the finger and the reason
        assert driver.counters.finger_errors[1] == 0
    finally:
        poller.close()
        driver.close()
        sim.stop()


def test_while_the_link_is_down_the_poller_publishes_nothing_and_counts_no_finger_error():
    sim = started_sim(config=REFERENCED)
    driver = make_driver(sim, Log(), tactile_fingers=(1,))
    frames = []
    poller = TactilePoller(driver, 50.0, lambda finger, cells: frames.append(time.monotonic()))
    try:
        ready(driver)
        poller.start()
        wait_for(lambda: frames, WAIT, what='a frame')
        sim.drop_connections(hold_off=1.0)
        wait_for(lambda: not driver.client.connected, WAIT, what='the link down')
        mark = len(frames)
        time.sleep(0.5)
        assert len(frames) - mark <= 1 and driver.counters.finger_errors[1] == 0
        wait_for(lambda: len(frames) > mark + 5, WAIT, what='frames again after the reconnection')
    finally:
        poller.close()
        driver.close()
        sim.stop()


def test_bad_parameters_are_refused():
    client = WsgClient('127.0.0.1', 1)
    for kwargs, words in (({'tactile_fingers': [3]}, 'tactile_fingers'), ({'tactile_fingers': [1, 1]}, 'once'),
                          ({'max_motion_time': float('inf')}, 'max_motion_time')):
        args = dict(default_speed=70.0, timeout=1.0, homing_timeout=10.0, max_motion_time=60.0)
        args.update(kwargs)
        with pytest.raises(ValueError, match=words):
            WsgDriver(client, **args)
