"""Each driver's /diagnostics statuses from its client's state and counters, without ROS (doc/diagnostics.md).

Every function takes the device's `Monitor` (plas_ros.hardware.diagnostics), feeds it the running totals and
returns a Report; the nodes call them from diagnostic_updater's tasks.
"""
from plas_ros.hardware.diagnostics import ERROR, WARN
from plas_ros.hardware.wsg.protocol import SystemFlag

WSG_BAD_FRAMES = ('checksum_errors', 'truncated_frames', 'malformed_replies', 'status_errors', 'rejected_values')
WSG_SHOWN = ('connects', 'disconnects', 'timeouts', 'refused_commands', 'homings', 'fast_stops_cleared')
DSA_BAD_FRAMES = ('crc_errors', 'truncated', 'bad_frames')
DSA_SHOWN = ('connects', 'failed_connects', 'link_losses', 'unexpected_replies', 'garbage_bytes')


def gripper_report(driver, monitor):
    """The WSG's status: link and state rate (against state_rate), bad frames, fast stop, reference."""
    stats = driver.stats()
    monitor.count('state', stats['width_updates'])
    client = driver.client
    state = driver.state()
    address = '%s:%d' % (client.host, client.port)
    if state is not None:
        link = '%s, state current' % address
    else:
        link = '%s, %s' % (address, 'connected, no current state' if client.connected else 'not connected')
    problems, values = [], [('width', '%.2f mm' % state.width if state is not None else 'unknown')]
    if state is not None:
        flags = SystemFlag(state.system_flags)
        fast_stop = SystemFlag.FAST_STOP in flags
        if fast_stop:
            problems.append((ERROR, 'FAST STOP active: motions are refused until ack'))
        if SystemFlag.REFERENCED not in flags:
            problems.append((WARN, 'not referenced: call home'))
        values += [('fast stop', _fast_stop_text(fast_stop, driver.fast_stop_requested)),
                   ('referenced', str(SystemFlag.REFERENCED in flags).lower())]
    else:
        values += [('fast stop', 'unknown'), ('referenced', 'unknown')]
    values += [(name, stats[name]) for name in WSG_SHOWN]
    return monitor.report(state is not None, link, bad={name: stats[name] for name in WSG_BAD_FRAMES},
                          problems=problems, values=values)


def _fast_stop_text(on, requested):
    if not on:
        return 'off'
    return 'on (requested through fast_stop)' if requested else 'on'


def finger_report(driver, finger, monitor):
    """A tactile finger read through the WSG: its frame rate (against tactile_rate) and its failed reads."""
    counters = driver.counters
    monitor.count('frames', counters.finger_frames[finger])
    link = 'finger %d through %s:%d' % (finger, driver.client.host, driver.client.port)
    return monitor.report(driver.client.connected, link, bad={'finger_errors': counters.finger_errors[finger]},
                          values=[('frames', counters.finger_frames[finger])])


def dsa_report(client, monitor):
    """The DSACON32's status: link, frame rate (against frame_rate; the node ticks 'frames' per published frame),
    bad frames, the controller's set-up."""
    stats = client.stats()
    if client.connected:
        link = '%s, acquiring matrix %d (%d x %d)' % (client.port, client.matrix, client.rows, client.cols)
    else:
        link = '%s, %s' % (client.port, 'open, not acquiring' if client.serial is not None else 'not open')
    values = [(name, stats.get(name, 0)) for name in DSA_SHOWN]
    values.append(('loop reply', client.loop_reply or 'unknown'))
    return monitor.report(client.connected, link, bad={name: stats.get(name, 0) for name in DSA_BAD_FRAMES},
                          values=values)


def arm_report(monitor, reading_ok, read_errors, move_errors, what):
    """The arm's status: whether its last reading succeeded, the reading rate (against rate), failed readings
    (counted as bad frames) and failed moves (shown)."""
    link = '%s, %s' % (what, 'readings flowing' if reading_ok else 'the last reading failed')
    return monitor.report(reading_ok, link, bad={'failed_readings': read_errors},
                          values=[('failed_moves', move_errors)])
