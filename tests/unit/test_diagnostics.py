"""The drivers' health without ROS: rates against expected, bad frames in the window, levels, the last error,
the device reports over real clients' counters, and the check for diagnostic_updater."""
import logging

import pytest

from plas_ros.config import ConfigError
from plas_ros.hardware.device_health import arm_report, dsa_report, finger_report, gripper_report
from plas_ros.hardware.diagnostics import (
    ERROR,
    OK,
    WARN,
    DiagnosticsConfig,
    Monitor,
    load_diagnostics_config,
    missing_ros_modules,
)

CONFIG = DiagnosticsConfig(period=1.0, window=5.0, rate_warn=0.8, rate_error=0.5, bad_frames_warn=1,
                           bad_frames_error=10)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def feed(monitor, clock, name, hz, seconds):
    """`hz` events per second of `name` for `seconds`, in 0.01 s steps."""
    for _ in range(int(seconds * 100)):
        clock.now += 0.01
        if int(clock.now * hz) != int((clock.now - 0.01) * hz):
            monitor.tick(name)


@pytest.fixture
def monitor():
    clock = Clock()
    monitor = Monitor(CONFIG, clock=clock)
    monitor.expect('state', 30.0)
    return monitor, clock


def test_the_thresholds_come_from_robot_yaml_and_are_checked():
    config = load_diagnostics_config()
    assert config.rate_error <= config.rate_warn and config.bad_frames_warn <= config.bad_frames_error
    with pytest.raises(ValueError, match='rate_error <= rate_warn'):
        load_diagnostics_config(dict(vars(config), rate_warn=0.4, rate_error=0.6))
    with pytest.raises(ConfigError, match='diagnostics.window'):
        load_diagnostics_config(dict(vars(config), window='long'))


def test_the_rate_against_the_expected_one_sets_the_level(monitor):
    monitor, clock = monitor
    assert monitor.report(True, 'up').level == OK  # just connected: measuring, not judged
    feed(monitor, clock, 'state', 30.0, 6.0)
    report = monitor.report(True, 'up')
    assert report.level == OK and report.message == 'OK', report
    assert report.value('state rate').startswith('30.0 Hz (expected 30.0 Hz)')
    feed(monitor, clock, 'state', 20.0, 6.0)
    report = monitor.report(True, 'up')
    assert report.level == WARN and 'state 20.0 Hz (expected 30.0 Hz)' in report.message, report
    feed(monitor, clock, 'state', 10.0, 6.0)
    assert monitor.report(True, 'up').level == ERROR


def test_a_rate_expected_at_none_is_shown_and_never_judged(monitor):
    monitor, clock = monitor
    monitor.expect('steps', None)  # the env node's step rate: it follows the policy
    feed(monitor, clock, 'state', 30.0, 6.0)
    report = monitor.report(True, 'up')
    assert report.level == OK and report.value('steps rate') == '0.0 Hz', report
    monitor.expect('state', 60.0)  # expected at another rate: judged from now on, over what was measured
    report = monitor.report(True, 'up')
    assert report.level == WARN and report.value('state rate').startswith('30.0 Hz (expected 60.0 Hz)'), report


def test_no_link_is_an_error_and_rates_restart_when_it_comes_back(monitor):
    monitor, clock = monitor
    feed(monitor, clock, 'state', 30.0, 6.0)
    down = monitor.report(False, '127.0.0.1:1000, not connected')
    assert down.level == ERROR and down.message == 'no link: 127.0.0.1:1000, not connected'
    assert down.value('link') == 'down: 127.0.0.1:1000, not connected'
    clock.now += 30.0  # nothing for 30 s
    back = monitor.report(True, 'up')
    assert back.level == OK and back.value('state rate').endswith('measuring'), back
    feed(monitor, clock, 'state', 30.0, 3.0)
    assert monitor.report(True, 'up').level == OK  # judged over the 3 s since it came back


def test_bad_frames_count_within_the_window_and_in_all(monitor):
    monitor, clock = monitor
    feed(monitor, clock, 'state', 30.0, 6.0)
    assert monitor.report(True, 'up', bad={'checksum_errors': 4}).level == OK  # the first sample: the baseline
    clock.now += 1.0
    report = monitor.report(True, 'up', bad={'checksum_errors': 6})
    assert report.level == WARN and '2 bad frames in the last 5 s' in report.message
    assert report.value('checksum_errors') == '2 in the last 5 s, 6 in all'
    clock.now += 1.0
    assert monitor.report(True, 'up', bad={'checksum_errors': 16}).level == ERROR
    for _ in range(6):  # no new ones: they age out of the window
        clock.now += 1.0
        report = monitor.report(True, 'up', bad={'checksum_errors': 16})
    assert report.level in (OK, ERROR) and report.value('checksum_errors') == '0 in the last 5 s, 16 in all'


def test_problems_the_driver_adds_and_the_last_error(monitor):
    monitor, clock = monitor
    forwarded = []
    log = monitor.logger(lambda level, text: forwarded.append(text))
    log(logging.INFO, 'connected')
    assert monitor.report(True, 'up').value('last error') == 'none'
    log(logging.WARNING, 'link to 127.0.0.1:1000 down')
    clock.now += 2.0
    report = monitor.report(True, 'up', problems=[(WARN, 'not referenced'), (ERROR, 'FAST STOP active')],
                            values=[('width', '3.00 mm')])
    assert report.level == ERROR and report.message == 'FAST STOP active; not referenced'
    assert report.value('last error') == 'link to 127.0.0.1:1000 down (2.0 s ago)'
    assert report.value('width') == '3.00 mm' and forwarded == ['connected', 'link to 127.0.0.1:1000 down']


def test_running_totals_feed_the_rate(monitor):
    monitor, clock = monitor
    total = 0
    for _ in range(60):
        clock.now += 0.1
        total += 3
        monitor.count('state', 1000 + total)  # the first total is the baseline
    rate = float(monitor.report(True, 'up').value('state rate').split()[0])
    assert 29.0 <= rate <= 31.0  # 3 per 0.1 s (one sample more or less at the window's edge)


def test_a_missing_module_is_named_with_its_packages():
    assert missing_ros_modules() == []  # diagnostic_updater is installed here (tools/bootstrap.sh)
    [message] = missing_ros_modules({'no_such_module_%d' % 7: ('python3-no-such', 'ros-noetic-no-such')})
    assert message.startswith('the Python module no_such_module_7 is missing: install python3-no-such (Debian 12) '
                              'or ros-noetic-no-such (ROS Noetic)')


# ------------------------------------------------------------------------------------------ device reports

def test_gripper_report_from_a_real_client_on_the_simulated_wsg():
    """The WSG twin over TCP: connected and referenced is OK; a fast stop is an ERROR that says so; a lost link
    an ERROR naming the address."""
    from plas_ros.hardware.wsg.client import WsgClient
    from plas_ros.hardware.wsg.driver import WsgDriver
    from plas_ros.sim.wsg import StaticPart, WsgSimulator
    from tests.helpers.common import wait_for
    sim = WsgSimulator(fingers=StaticPart(part_width=12.0), initial_width=30.0)
    port = sim.start()
    monitor = Monitor(CONFIG)
    monitor.expect('state', 20.0)
    client = WsgClient('127.0.0.1', port, timeout=1.0, log=monitor.logger())
    driver = WsgDriver(client, 70.0, 1.0, 30.0, 120.0, stale_after=0.5, log=monitor.logger())
    client.subscribe_state(50)
    driver.start()
    try:
        report = wait_for(lambda: _level(gripper_report(driver, monitor), OK), 30, what='an OK gripper')
        assert report.value('fast stop') == 'off' and report.value('referenced') == 'true'
        assert driver.trigger('fast_stop')[0]
        report = wait_for(lambda: _level(gripper_report(driver, monitor), ERROR), 10, what='the fast stop')
        assert 'FAST STOP active' in report.message
        assert report.value('fast stop') == 'on (requested through fast_stop)'
        assert driver.trigger('ack')[0]
        wait_for(lambda: _level(gripper_report(driver, monitor), OK), 10, what='OK after ack')
        sim.stop()
        report = wait_for(lambda: _level(gripper_report(driver, monitor), ERROR), 10, what='the lost link')
        assert report.message.startswith('no link: 127.0.0.1:%d, ' % port), report
        assert report.value('fast stop') == 'unknown' and '127.0.0.1:%d' % port in report.value('last error')
        assert finger_report(driver, 1, _finger_monitor()).value('frames') == '0'
    finally:
        driver.close()
        sim.stop()


def _finger_monitor():
    monitor = Monitor(CONFIG)
    monitor.expect('frames', 10.0)
    return monitor


def _level(report, level):
    return report if report.level == level else None


def test_dsa_report_from_a_client_without_its_port_and_arm_report():
    from plas_ros.hardware.dsa.client import DsaClient
    monitor = Monitor(CONFIG)
    monitor.expect('frames', 30.0)
    client = DsaClient('/nonexistent/dsa_%d' % 5, log=monitor.logger())
    assert client.read_frame(0.1) is None
    report = dsa_report(client, monitor)
    assert report.level == ERROR and report.message == 'no link: /nonexistent/dsa_5, not open'
    assert 'cannot open DSA port /nonexistent/dsa_5' in report.value('last error')
    assert report.value('failed_connects') == '1'
    arm = Monitor(CONFIG)
    arm.expect('readings', 100.0)
    report = arm_report(arm, False, 3, 1, 'simulated arm at 127.0.0.1:1')
    assert report.level == ERROR and 'the last reading failed' in report.message
    assert report.value('failed_moves') == '1' and report.value('failed_readings').endswith('3 in all')
