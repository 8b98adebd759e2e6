"""The simulated WSG 32's state machine without sockets (plas_ros.sim.wsg.device): request bytes in, reply frames
out, the clock injected, so motion timing, auto-updates and the link's coming and going are exact. Over real
TCP: tests/unit/test_wsg_sim.py."""
import json
import struct
import subprocess
import sys

import pytest

from plas_ros.hardware.wsg.protocol import (
    Command,
    FrameParser,
    GraspingState,
    Status,
    SystemFlag,
    encode_frame,
    pack_auto_update,
    pack_homing,
    pack_move,
    pack_width_speed,
    unpack_status,
)
from plas_ros.sim.wsg.device import TWIN, StaticPart, WsgDevice, load_twin_config


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


def replies(frames):
    """Encoded frames -> [(command, status, body)]."""
    parser = FrameParser()
    out = []
    for frame in frames:
        for item in parser.feed(frame):
            status, body = unpack_status(item.payload)
            out.append((item.command, status, body))
    return out


def ask(device, command, payload=b''):
    return replies(device.receive(encode_frame(command, payload)))


def statuses(device, command, payload=b''):
    return [status for _, status, _ in ask(device, command, payload)]


def flags(device):
    return SystemFlag(device.system_flags())


def run_for(device, clock, seconds, step=0.01):
    """Poll every `step` s for `seconds`; all frames that came out."""
    out = []
    for _ in range(int(round(seconds / step))):
        clock.advance(step)
        out += replies(device.poll())
    return out


@pytest.fixture
def clock():
    return FakeClock()


def make(clock, config=TWIN, **kwargs):
    device = WsgDevice(config=config, clock=clock, **kwargs)
    device.connect()
    return device


def test_the_yaml_is_the_default_and_it_starts_unreferenced(clock):
    assert load_twin_config() == TWIN
    device = make(clock, initial_width=40.0)
    assert not device.referenced and SystemFlag.REFERENCED not in flags(device)
    assert statuses(device, Command.MOVE, pack_move(30.0, 50.0)) == [Status.NOT_INITIALIZED]
    assert statuses(device, Command.GRASP, pack_width_speed(10.0, 50.0)) == [Status.NOT_INITIALIZED]
    assert statuses(device, Command.RELEASE, pack_width_speed(50.0, 50.0)) == [Status.NOT_INITIALIZED]


def test_homing_takes_stroke_over_homing_speed_then_references(clock):
    device = make(clock, initial_width=8.0)
    assert statuses(device, Command.HOMING, pack_homing(0)) == [Status.PENDING]
    travel_time = (TWIN.device.stroke - 8.0) / TWIN.device.homing_speed
    assert run_for(device, clock, travel_time - 0.02) == []
    assert not device.referenced and SystemFlag.MOVING in flags(device)
    assert run_for(device, clock, 0.05) == [(Command.HOMING, Status.SUCCESS, b'')]
    assert device.referenced and device.width == TWIN.device.stroke
    assert statuses(device, Command.MOVE, pack_move(30.0, 50.0)) == [Status.PENDING]


def test_homing_in_the_negative_direction_closes(clock):
    device = make(clock, initial_width=8.0)
    ask(device, Command.HOMING, pack_homing(2))
    run_for(device, clock, 1.0)
    assert device.referenced and device.width == 0.0


def test_a_move_reports_pending_then_success_when_the_fingers_arrive(clock):
    device = make(clock, config=TWIN.with_options(referenced_at_power_up=True), initial_width=40.0)
    assert statuses(device, Command.MOVE, pack_move(30.0, 10.0)) == [Status.PENDING]
    assert run_for(device, clock, 0.9) == []
    assert 30.0 < device.width < 32.0
    assert run_for(device, clock, 0.2) == [(Command.MOVE, Status.SUCCESS, b'')]
    assert device.width == 30.0 and SystemFlag.TARGET_POS_REACHED in flags(device)


def test_auto_updates_come_at_their_period(clock):
    device = make(clock, initial_width=40.0)
    assert ask(device, Command.OPENING_WIDTH, pack_auto_update(True, 50)) == [
        (Command.OPENING_WIDTH, Status.SUCCESS, struct.pack('<f', 40.0))]
    updates = run_for(device, clock, 1.0)
    assert len(updates) == 20 and {u[0] for u in updates} == {Command.OPENING_WIDTH}


def test_an_unannounced_disconnect_latches_a_fast_stop_and_stops_the_motion(clock):
    device = make(clock, config=TWIN.with_options(referenced_at_power_up=True), initial_width=40.0)
    ask(device, Command.MOVE, pack_move(0.0, 10.0))
    run_for(device, clock, 0.5)
    device.disconnect()
    width = device.width
    run_for(device, clock, 1.0)
    assert device.width == width and device.fast_stop and not device.moving
    assert device.grasping_state == GraspingState.ERROR
    device.connect()
    assert SystemFlag.FAST_STOP in flags(device)
    assert statuses(device, Command.MOVE, pack_move(30.0, 50.0)) == [Status.ACCESS_DENIED]
    assert statuses(device, Command.ACK_FAULT, b'ack') == [Status.SUCCESS]
    assert not device.fast_stop and statuses(device, Command.MOVE, pack_move(30.0, 50.0)) == [Status.PENDING]


def test_an_announced_disconnect_aborts_the_motion_and_latches_nothing(clock):
    device = make(clock, config=TWIN.with_options(referenced_at_power_up=True), initial_width=40.0)
    ask(device, Command.MOVE, pack_move(0.0, 10.0))
    assert ask(device, Command.DISCONNECT) == [(Command.MOVE, Status.COMMAND_ABORTED, b''),
                                               (Command.DISCONNECT, Status.SUCCESS, b'')]
    assert device.close_requested
    assert device.receive(encode_frame(Command.LOOP, b'late')) == []  # nothing after the announcement is served
    device.disconnect()
    assert not device.fast_stop


def test_without_the_option_a_lost_link_latches_nothing(clock):
    device = make(clock, config=TWIN.with_options(error_on_tcp_disconnect=False))
    device.disconnect()
    assert not device.fast_stop


def test_a_blocked_move_ends_with_29_at_the_block(clock):
    part = StaticPart(part_width=3.0)
    device = make(clock, config=TWIN.with_options(referenced_at_power_up=True, block_squeeze=0.25), fingers=part,
                  initial_width=4.0)
    assert statuses(device, Command.MOVE, pack_move(0.5, 10.0, stop_on_block=True)) == [Status.PENDING]
    assert run_for(device, clock, 0.2) == [(Command.MOVE, Status.AXIS_BLOCKED, b'')]
    assert device.width == pytest.approx(2.75) and part.width == pytest.approx(2.75)
    assert SystemFlag.BLOCKED_MINUS in flags(device) and SystemFlag.AXIS_STOPPED in flags(device)


def test_the_cloth_frames_come_from_the_frame_source(clock):
    frames = []

    def source():
        frames.append(len(frames))
        return [[len(frames)] * 6 for _ in range(14)]

    device = make(clock, frame_source=source)
    [(command, status, body)] = ask(device, Command.FINGER1_DATA)
    assert (command, status, struct.unpack('<84H', body)) == (Command.FINGER1_DATA, Status.SUCCESS, (1,) * 84)
    assert struct.unpack('<84H', ask(device, Command.FINGER2_DATA)[0][2]) == (2,) * 84


@pytest.mark.parametrize('bad', [lambda: [[1] * 6] * 13, lambda: [[70000] * 6] * 14, lambda: 1 / 0])
def test_a_faulty_frame_source_answers_8_and_is_counted(clock, bad):
    device = make(clock, frame_source=bad)
    assert statuses(device, Command.FINGER1_DATA) == [Status.READ_ERROR]
    assert device.counters()['finger_errors'] == 1


def test_a_frame_cut_short_is_dropped_after_the_partial_frame_timeout(clock):
    device = make(clock)
    assert device.receive(encode_frame(Command.LOOP, b'cut')[:7]) == []
    clock.advance(TWIN.device.partial_frame_timeout + 0.01)
    device.poll()
    assert ask(device, Command.LOOP, b'next') == [(Command.LOOP, Status.SUCCESS, b'next')]
    assert device.counters()['truncated_frames'] == 1


def test_the_twin_loads_no_driver_code():
    code = ('import json, sys; import plas_ros.sim.wsg, plas_ros.sim.wsg.__main__; '
            'print(json.dumps(sorted(m for m in sys.modules if m.startswith("plas_ros.hardware.wsg"))))')
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout) == ['plas_ros.hardware.wsg', 'plas_ros.hardware.wsg.protocol']
