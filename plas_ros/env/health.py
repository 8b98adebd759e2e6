"""The env node's health without ROS: its /diagnostics status (doc/diagnostics.md, "cloth_env").

The task's `Monitor` (plas_ros.hardware.diagnostics, the drivers' thresholds: config/robot.yaml `diagnostics`)
measures every sensor stream the task consumes (`FreshSensors`) against the rate its driver publishes at, and
the step rate (shown, not judged: it follows the policy and the motions). `task_report` adds what the streams
and the episodes say:

* a stream that never published: ERROR (`no link`), the drivers are not all up;
* a stream whose latest message is older than the sensors' max_age (config/env.yaml `node.sensor_max_age`,
  the age at which a step fails): WARN;
* a reset that failed, the session waiting for the operator: ERROR;
* the latest episode ended on a fault (a robot error, a stale sensor) and no reset has worked since: WARN.

The last error is the session's last fault (`Session(on_fault=monitor.error)`) or the robot's last warning.
"""
import time

from plas_ros.env.runner import RESET_FAILED
from plas_ros.hardware.diagnostics import ERROR, WARN, Monitor

STEP = 'step'  # the rate of transitions recorded


def task_monitor(config, sensor_names, clock=time.monotonic):
    """The task's Monitor: the rate of each sensor stream of `sensor_names` (ticked by
    `FreshSensors(on_store=monitor.tick)`; judged once `expect_rates` says what to expect) and of the steps.

    Created with the runner: its running total of steps starts at zero here."""
    monitor = Monitor(config, clock=clock)
    for name in list(sensor_names) + [STEP]:
        monitor.expect(name, None)
    monitor.count(STEP, 0)
    return monitor


def expect_rates(monitor, sensor_rates):
    """From now on judge each stream of `sensor_rates` ({name: Hz its driver publishes at, None: not judged})."""
    for name, rate_hz in sensor_rates.items():
        monitor.expect(name, rate_hz)


def task_report(monitor, sensors, session):
    """The task's Report now, from `sensors` (FreshSensors) and `session` (the Session that runs the episodes)."""
    monitor.count(STEP, session.runner.steps)
    ages = sensors.ages()
    never = [sensors.topics[name] for name, age in ages.items() if age is None]
    link = ('waiting for the first message of %s' % ', '.join(never) if never
            else 'all %d sensor streams heard' % len(ages))
    problems = _stale_problems(sensors, ages) + _session_problems(session)
    values = [('%s age' % name, _age_text(age, sensors.topics[name])) for name, age in ages.items()]
    values += [('episode state', session.phase), ('episode', session.episode),
               ('episodes finished', session.finished), ('episodes ended on an error', session.error_episodes),
               ('failed resets', session.failed_resets)]
    return monitor.report(not never, link, problems=problems, values=values)


def _stale_problems(sensors, ages):
    return [(WARN, '%s: last message %.2f s old (sensor_max_age %.2f s)' % (sensors.topics[name], age,
                                                                            sensors.max_age))
            for name, age in ages.items() if age is not None and age > sensors.max_age]


def _session_problems(session):
    problems = []
    if session.phase == RESET_FAILED:
        problems.append((ERROR, 'reset failed: waiting for %s' % session.operator))
    if session.last_episode_failed:
        problems.append((WARN, 'episode %d ended on an error' % (session.episode - 1)))
    return problems


def _age_text(age, topic):
    if age is None:
        return 'no message yet (%s)' % topic
    return '%.2f s (%s)' % (age, topic)
