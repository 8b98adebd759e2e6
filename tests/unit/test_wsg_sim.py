"""The simulated WSG 32 over real TCP, spoken to byte by byte (no WsgClient): status codes, motion replies,
auto-update, fault handling, sequential clients and the CLI; the real gripper's behaviours of doc/wsg.md
(unreferenced at power-up, fast stop on an unannounced disconnect, 29 on a blocked move, the 0x53 field order,
the finger commands). The device without sockets: tests/unit/test_wsg_device.py."""
import dataclasses
import socket
import struct
import subprocess
import sys
import time

import pytest

from plas_ros.hardware.wsg import (
    FINGER_COMMANDS,
    TACTILE_COLS,
    TACTILE_ROWS,
    Command,
    CorruptFrame,
    FrameParser,
    GraspingState,
    Status,
    SystemFlag,
    encode_frame,
    pack_auto_update,
    pack_float,
    pack_homing,
    pack_move,
    pack_width_speed,
    unpack_info,
    unpack_limits,
    unpack_status,
)
from plas_ros.sim.wsg import SIM_LIMITS, TWIN, StaticPart, WsgSimulator
from tests.helpers.wsg import WAIT

REFERENCED = TWIN.with_options(referenced_at_power_up=True)  # for the tests that are not about homing


class RawLink:
    """A bare TCP connection to the simulator: send bytes, read replies as (command, status, body)."""

    def __init__(self, port):
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=WAIT)
        self.parser = FrameParser()
        self.items = []

    def send(self, command, payload=b''):
        self.sock.sendall(encode_frame(command, payload))

    def reply(self):
        deadline = time.monotonic() + WAIT
        while not self.items:
            if time.monotonic() > deadline:
                raise AssertionError('no reply within %.0f s' % WAIT)
            data = self.sock.recv(4096)
            if not data:
                raise AssertionError('the simulator closed the connection')
            self.items += self.parser.feed(data)
        item = self.items.pop(0)
        assert not isinstance(item, CorruptFrame), 'the simulator sent a corrupt frame'
        status, body = unpack_status(item.payload)
        return item.command, status, body

    def ask(self, command, payload=b''):
        self.send(command, payload)
        return self.reply()

    def close(self):
        self.sock.close()


def system_state(link):
    """The system-state flags, one-shot."""
    command, status, body = link.ask(Command.SYSTEM_STATE, pack_auto_update())
    assert (command, status) == (Command.SYSTEM_STATE, Status.SUCCESS)
    return struct.unpack('<I', body)[0]


def motion(link, command, payload):
    """Send a motion command; its statuses (26 pending first, then the final one; or the refusal alone)."""
    link.send(command, payload)
    first = link.reply()
    assert first[0] == command, first
    if first[1] != Status.PENDING:
        return [first[1]]
    final = link.reply()
    assert final[0] == command, final
    return [first[1], final[1]]


def served(config=TWIN, **kwargs):
    """A started WsgSimulator with `config`; stop it when done."""
    simulator = WsgSimulator(config=config, **kwargs)
    simulator.start()
    return simulator


@pytest.fixture
def sim():
    fingers = StaticPart(part_width=20.0)
    simulator = WsgSimulator(fingers=fingers, initial_width=40.0, config=REFERENCED)
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def link(sim):
    raw = RawLink(sim.port)
    yield raw
    raw.close()


def test_loop_echoes_and_info_and_limits_decode(link):
    assert link.ask(Command.LOOP, b'\x01\x02abc') == (Command.LOOP, Status.SUCCESS, b'\x01\x02abc')
    command, status, body = link.ask(Command.SYSTEM_LIMITS)
    assert (command, status) == (Command.SYSTEM_LIMITS, 0)
    assert unpack_limits(body).stroke == SIM_LIMITS.stroke
    assert unpack_info(link.ask(Command.SYSTEM_INFO)[2]).device_type == 32


@pytest.mark.parametrize('command, payload, status', [
    (0x7E, b'', Status.UNKNOWN_COMMAND),
    (Command.MOVE, pack_move(10, 50)[:-1], Status.NOT_ENOUGH_PARAMS),
    (Command.MOVE, pack_move(10, 50) + b'\x00', Status.FORMAT_ERROR),
    (Command.STOP, b'\x00', Status.NO_PARAM_EXPECTED),
    (Command.MOVE, pack_move(SIM_LIMITS.stroke + 1, 50), Status.RANGE_ERROR),
    (Command.MOVE, pack_move(-60, 50, relative=True), Status.RANGE_ERROR),
    (Command.MOVE, pack_move(10, SIM_LIMITS.max_speed * 2), Status.RANGE_ERROR),
    (Command.MOVE, b'\x00' + struct.pack('<ff', float('nan'), 50), Status.INVALID_PARAMETER),
    (Command.MOVE, b'\x80' + struct.pack('<ff', 10, 50), Status.INVALID_PARAMETER),
    (Command.GRASP, pack_width_speed(10, 0.0), Status.RANGE_ERROR),
    (Command.HOMING, b'\x05', Status.INVALID_PARAMETER),
    (Command.SET_FORCE_LIMIT, pack_float(SIM_LIMITS.max_force + 1), Status.RANGE_ERROR),
    (Command.SET_ACCELERATION, pack_float(1.0), Status.RANGE_ERROR),
    (Command.ACK_FAULT, b'ac', Status.NOT_ENOUGH_PARAMS),
    (Command.ACK_FAULT, b'ACK', Status.INVALID_PARAMETER),
    (Command.OPENING_WIDTH, b'\x01\x02\x00', Status.INVALID_PARAMETER),  # a 2 ms period
    (Command.OPENING_WIDTH, b'\x01', Status.NOT_ENOUGH_PARAMS),
])
def test_bad_requests_get_their_status_and_change_nothing(sim, link, command, payload, status):
    assert link.ask(command, payload) == (command, status, b'')
    assert sim.width == 40.0 and sim.grasping_state == GraspingState.IDLE
    assert link.ask(Command.LOOP, b'ok')[2] == b'ok'


def test_bad_checksum_is_answered_with_11_for_that_command(link):
    frame = bytearray(encode_frame(Command.MOVE, pack_move(10, 50)))
    frame[-1] ^= 0xFF
    link.sock.sendall(bytes(frame))
    assert link.reply() == (Command.MOVE, Status.CHECKSUM_ERROR, b'')
    assert link.ask(Command.LOOP, b'after')[2] == b'after'


def test_garbage_and_a_truncated_frame_do_not_stop_it(sim, link):
    link.sock.sendall(b'\x00garbage\xff' * 20 + encode_frame(Command.LOOP, b'x')[:6])
    time.sleep(0.1)
    link.sock.sendall(b'noise' + encode_frame(Command.LOOP, b'y'))
    replies = [link.reply(), link.reply()]
    assert replies[0][1] == Status.CHECKSUM_ERROR  # the cut frame swallowed the next bytes
    assert replies[1] == (Command.LOOP, Status.SUCCESS, b'y')
    counters = sim.counters()
    assert counters['garbage_bytes'] > 100 and counters['checksum_errors'] == 1


def test_move_answers_pending_then_success_after_the_fingers_arrive(sim, link):
    link.send(Command.MOVE, pack_move(30.0, 200.0))
    assert link.reply() == (Command.MOVE, Status.PENDING, b'')
    assert link.reply() == (Command.MOVE, Status.SUCCESS, b'')
    assert sim.width == 30.0 and sim.fingers.width == 30.0
    flags = SystemFlag(struct.unpack('<I', link.ask(Command.SYSTEM_STATE, pack_auto_update())[2])[0])
    assert SystemFlag.TARGET_POS_REACHED in flags and SystemFlag.MOVING not in flags


def test_fingers_see_every_intermediate_width():
    class Recorder(StaticPart):
        def __init__(self):
            super().__init__()
            self.widths = []

        def set_width(self, width_mm):
            self.widths.append(width_mm)

    fingers = Recorder()
    simulator = WsgSimulator(fingers=fingers, initial_width=10.0, config=REFERENCED)
    simulator.start()
    raw = RawLink(simulator.port)
    try:
        raw.send(Command.MOVE, pack_move(5.0, 20.0))
        assert [raw.reply()[1], raw.reply()[1]] == [Status.PENDING, Status.SUCCESS]
    finally:
        raw.close()
        simulator.stop()
    widths = fingers.widths
    assert widths[0] == 10.0 and widths[-1] == 5.0 and len(widths) > 5
    assert all(a >= b for a, b in zip(widths, widths[1:]))


def test_stop_aborts_the_motion_with_19(sim, link):
    link.send(Command.MOVE, pack_move(0.0, 1.0))
    assert link.reply()[1] == Status.PENDING
    link.send(Command.STOP)
    replies = {link.reply()[0]: None for _ in range(2)}
    link.items = []
    assert set(replies) == {Command.MOVE, Command.STOP}
    assert 0.0 < sim.width < 40.0


def test_fast_stop_refuses_motion_with_16_until_acknowledged(sim, link):
    assert link.ask(Command.FAST_STOP)[1] == Status.SUCCESS
    assert link.ask(Command.MOVE, pack_move(10, 50)) == (Command.MOVE, Status.ACCESS_DENIED, b'')
    assert link.ask(Command.HOMING, pack_homing(0))[1] == Status.ACCESS_DENIED
    assert link.ask(Command.GRASPING_STATE, pack_auto_update())[2] == bytes([GraspingState.ERROR])
    assert link.ask(Command.ACK_FAULT, b'ack')[1] == Status.SUCCESS
    link.send(Command.MOVE, pack_move(39.0, 100))
    assert [link.reply()[1], link.reply()[1]] == [Status.PENDING, Status.SUCCESS]


def test_grasp_holds_a_part_and_fails_with_18_without_one(sim, link):
    sim.fingers.part_width = 20.0
    link.send(Command.GRASP, pack_width_speed(18.0, 200.0))
    assert [link.reply()[1], link.reply()[1]] == [Status.PENDING, Status.SUCCESS]
    assert sim.width == 20.0 and sim.grasping_state == GraspingState.HOLDING
    force = struct.unpack('<f', link.ask(Command.FORCE, pack_auto_update())[2])[0]
    assert force > 0
    link.send(Command.RELEASE, pack_width_speed(30.0, 200.0))
    assert [link.reply()[1], link.reply()[1]] == [Status.PENDING, Status.SUCCESS]
    assert sim.grasping_state == GraspingState.IDLE
    sim.fingers.part_width = None
    link.send(Command.GRASP, pack_width_speed(25.0, 200.0))
    assert [link.reply()[1], link.reply()[1]] == [Status.PENDING, Status.COMMAND_FAILED]
    assert sim.grasping_state == GraspingState.NO_PART and sim.width == 15.0  # closed the clamping travel


def test_homing_opens_fully(sim, link):
    link.send(Command.HOMING, pack_homing(1))
    assert [link.reply()[1], link.reply()[1]] == [Status.PENDING, Status.SUCCESS]
    assert sim.width == SIM_LIMITS.stroke


def test_force_limit_and_acceleration_round_trip(link):
    assert link.ask(Command.SET_FORCE_LIMIT, pack_float(12.5))[1] == Status.SUCCESS
    assert link.ask(Command.GET_FORCE_LIMIT)[2] == pack_float(12.5)
    assert link.ask(Command.SET_ACCELERATION, pack_float(800.0))[1] == Status.SUCCESS
    assert link.ask(Command.GET_ACCELERATION)[2] == pack_float(800.0)


def test_periodic_width_updates_follow_the_motion_and_stop_when_cancelled(sim, link):
    assert link.ask(Command.OPENING_WIDTH, pack_auto_update(True, 20)) == (
        Command.OPENING_WIDTH, Status.SUCCESS, pack_float(40.0))
    link.send(Command.MOVE, pack_move(36.0, 20.0))
    widths, finals = [], []
    while not finals:
        command, status, body = link.reply()
        if command == Command.OPENING_WIDTH:
            widths.append(struct.unpack('<f', body)[0])
        elif status != Status.PENDING:
            finals.append(status)
    assert finals == [Status.SUCCESS]
    assert len(widths) >= 3 and all(a >= b for a, b in zip(widths, widths[1:])) and widths[-1] < 40.0
    # a one-shot request cancels the auto-update: after the loop's echo nothing more comes
    link.send(Command.OPENING_WIDTH, pack_auto_update())
    link.send(Command.LOOP, b'mark')
    while link.reply()[0] != Command.LOOP:
        pass
    assert not link.items
    link.sock.settimeout(0.3)
    with pytest.raises(socket.timeout):
        link.sock.recv(100)


def test_on_change_updates_only_when_the_value_changes(link):
    link.ask(Command.GRASPING_STATE, pack_auto_update(True, 10, on_change=True))
    link.sock.settimeout(0.3)
    with pytest.raises(socket.timeout):
        link.sock.recv(100)
    link.sock.settimeout(WAIT)
    link.send(Command.FAST_STOP)
    seen = {link.reply()[0] for _ in range(2)}
    assert seen == {Command.FAST_STOP, Command.GRASPING_STATE}


def test_clients_are_served_one_after_another(sim):
    first = RawLink(sim.port)
    second = RawLink(sim.port)  # waits in the backlog while the first is served
    try:
        assert first.ask(Command.LOOP, b'1')[2] == b'1'
        first.send(Command.DISCONNECT)
        assert first.reply()[1] == Status.SUCCESS
        assert first.sock.recv(10) == b''  # the simulator closed after the announced disconnect
        assert second.ask(Command.LOOP, b'2')[2] == b'2'
    finally:
        first.close()
        second.close()
    assert sim.counters()['connections'] == 2


def test_dropped_connections_and_hold_off(sim):
    first = RawLink(sim.port)
    assert first.ask(Command.LOOP, b'a')[2] == b'a'
    assert not SystemFlag(sim.system_flags()) & SystemFlag.FAST_STOP
    sim.drop_connections(hold_off=0.5)
    assert first.sock.recv(10) == b''
    first.close()
    with pytest.raises(OSError):
        RawLink(sim.port)  # nobody listens during the hold-off
    deadline = time.monotonic() + WAIT
    while True:
        try:
            again = RawLink(sim.port)
            break
        except OSError:
            assert time.monotonic() < deadline, 'the simulator never listened again'
            time.sleep(0.05)
    assert again.ask(Command.LOOP, b'b')[2] == b'b'
    assert SystemFlag.FAST_STOP in SystemFlag(system_state(again))  # the drop was a link lost unannounced
    again.close()


def test_a_client_vanishing_mid_motion_does_not_stop_the_simulator(sim):
    gone = RawLink(sim.port)
    gone.send(Command.MOVE, pack_move(39.0, 10.0))
    gone.sock.sendall(encode_frame(Command.LOOP, b'half')[:6])
    gone.close()
    link = RawLink(sim.port)
    try:
        assert link.ask(Command.LOOP, b'still here')[2] == b'still here'
    finally:
        link.close()
    assert sim.counters()['internal_errors'] == 0


def test_cli_serves_on_the_given_port(tmp_path):
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, '-m', 'plas_ros.sim.wsg', '--port', str(port), '--part-width', '5',
                             '__name:=ignored'], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        assert 'listening on 127.0.0.1:%d' % port in line, line
        link = RawLink(port)
        assert link.ask(Command.GRASP, pack_width_speed(5.0, 400.0))[1] == Status.NOT_INITIALIZED
        link.send(Command.HOMING, pack_homing(0))
        assert [link.reply()[1], link.reply()[1]] == [Status.PENDING, Status.SUCCESS]
        link.send(Command.GRASP, pack_width_speed(5.0, 400.0))
        assert [link.reply()[1], link.reply()[1]] == [Status.PENDING, Status.SUCCESS]
        link.send(Command.DISCONNECT)
        link.close()
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


# ------------------------------------------------------------------ the real gripper's behaviours (doc/wsg.md)

def test_it_starts_unreferenced_and_refuses_motion_with_3_until_homed():
    simulator = served(fingers=StaticPart(part_width=20.0), initial_width=40.0)  # config/wsg_twin.yaml as it is
    link = RawLink(simulator.port)
    try:
        assert not SystemFlag(system_state(link)) & SystemFlag.REFERENCED
        for command, payload in ((Command.MOVE, pack_move(30.0, 100.0)), (Command.GRASP, pack_width_speed(10, 100)),
                                 (Command.RELEASE, pack_width_speed(50, 100))):
            assert motion(link, command, payload) == [Status.NOT_INITIALIZED]
        assert simulator.width == 40.0
        assert motion(link, Command.HOMING, pack_homing(0)) == [Status.PENDING, Status.SUCCESS]
        assert SystemFlag.REFERENCED in SystemFlag(system_state(link)) and simulator.width == SIM_LIMITS.stroke
        assert motion(link, Command.MOVE, pack_move(30.0, 300.0)) == [Status.PENDING, Status.SUCCESS]
    finally:
        link.close()
        simulator.stop()


def test_an_aborted_homing_leaves_it_unreferenced():
    simulator = served(initial_width=10.0)
    link = RawLink(simulator.port)
    try:
        link.send(Command.HOMING, pack_homing(1))
        assert link.reply()[1] == Status.PENDING
        link.send(Command.STOP)
        assert sorted(link.reply()[1] for _ in range(2)) == [Status.SUCCESS, Status.COMMAND_ABORTED]
        assert not SystemFlag(system_state(link)) & SystemFlag.REFERENCED
        assert motion(link, Command.MOVE, pack_move(30.0, 100.0)) == [Status.NOT_INITIALIZED]
    finally:
        link.close()
        simulator.stop()


def test_referenced_at_power_up_is_an_option():
    simulator = served(config=REFERENCED, initial_width=40.0)
    link = RawLink(simulator.port)
    try:
        assert SystemFlag.REFERENCED in SystemFlag(system_state(link))
        assert motion(link, Command.MOVE, pack_move(30.0, 300.0)) == [Status.PENDING, Status.SUCCESS]
    finally:
        link.close()
        simulator.stop()


def test_a_link_lost_without_0x07_latches_a_fast_stop_until_ack(sim):
    first = RawLink(sim.port)
    first.send(Command.MOVE, pack_move(0.0, 5.0))
    assert first.reply()[1] == Status.PENDING
    first.close()  # no 0x07: the gripper sees a lost link
    link = RawLink(sim.port)
    try:
        flags = SystemFlag(system_state(link))
        assert SystemFlag.FAST_STOP in flags and SystemFlag.MOVING not in flags
        stopped = sim.width
        assert 0.0 < stopped < 40.0
        assert link.ask(Command.GRASPING_STATE, pack_auto_update())[2] == bytes([GraspingState.ERROR])
        for command, payload in ((Command.MOVE, pack_move(30.0, 100.0)), (Command.HOMING, pack_homing(0)),
                                 (Command.GRASP, pack_width_speed(10, 100)),
                                 (Command.RELEASE, pack_width_speed(39, 9))):
            assert motion(link, command, payload) == [Status.ACCESS_DENIED]
        assert sim.width == stopped
        assert link.ask(Command.ACK_FAULT, b'ack')[1] == Status.SUCCESS
        assert not SystemFlag(system_state(link)) & SystemFlag.FAST_STOP
        assert motion(link, Command.MOVE, pack_move(30.0, 300.0)) == [Status.PENDING, Status.SUCCESS]
        assert sim.counters()['link_loss_fast_stops'] == 1
    finally:
        link.close()


def test_an_announced_disconnect_latches_nothing(sim):
    first = RawLink(sim.port)
    assert first.ask(Command.DISCONNECT)[1] == Status.SUCCESS
    assert first.sock.recv(10) == b''
    first.close()
    link = RawLink(sim.port)
    try:
        assert not SystemFlag(system_state(link)) & SystemFlag.FAST_STOP
        assert motion(link, Command.MOVE, pack_move(30.0, 300.0)) == [Status.PENDING, Status.SUCCESS]
        assert sim.counters()['link_loss_fast_stops'] == 0
    finally:
        link.send(Command.DISCONNECT)
        link.close()


def test_without_the_factory_option_a_lost_link_latches_nothing():
    simulator = served(config=REFERENCED.with_options(error_on_tcp_disconnect=False), initial_width=40.0)
    try:
        RawLink(simulator.port).close()
        link = RawLink(simulator.port)
        assert not SystemFlag(system_state(link)) & SystemFlag.FAST_STOP
        assert motion(link, Command.MOVE, pack_move(30.0, 300.0)) == [Status.PENDING, Status.SUCCESS]
        link.close()
    finally:
        simulator.stop()


def test_a_stop_on_block_move_onto_the_part_ends_with_29_where_it_stopped(sim, link):
    squeeze = TWIN.behaviour.block_squeeze
    assert motion(link, Command.MOVE, pack_move(10.0, 200.0, stop_on_block=True)) == [
        Status.PENDING, Status.AXIS_BLOCKED]
    assert sim.width == pytest.approx(20.0 - squeeze)  # the part is 20 mm wide
    width = struct.unpack('<f', link.ask(Command.OPENING_WIDTH, pack_auto_update())[2])[0]
    assert width == pytest.approx(20.0 - squeeze)
    flags = SystemFlag(system_state(link))
    assert SystemFlag.BLOCKED_MINUS in flags and SystemFlag.TARGET_POS_REACHED not in flags
    # closing further while blocked: blocked at once, where it is
    assert motion(link, Command.MOVE, pack_move(5.0, 200.0, stop_on_block=True)) == [
        Status.PENDING, Status.AXIS_BLOCKED]
    assert sim.width == pytest.approx(20.0 - squeeze)
    # opening is never blocked; without the flag the fingers squeeze the soft cloth to the target
    assert motion(link, Command.MOVE, pack_move(30.0, 200.0, stop_on_block=True)) == [Status.PENDING, Status.SUCCESS]
    assert motion(link, Command.MOVE, pack_move(10.0, 200.0)) == [Status.PENDING, Status.SUCCESS]
    assert sim.width == 10.0 and not SystemFlag(system_state(link)) & SystemFlag.BLOCKED_MINUS
    sim.fingers.part_width = None  # nothing between the fingers: nothing blocks
    assert motion(link, Command.MOVE, pack_move(30.0, 300.0)) == [Status.PENDING, Status.SUCCESS]
    assert motion(link, Command.MOVE, pack_move(2.0, 300.0, stop_on_block=True)) == [Status.PENDING, Status.SUCCESS]


def test_system_limits_are_8_f32_with_the_nominal_force_seventh(link):
    body = link.ask(Command.SYSTEM_LIMITS)[2]
    d = TWIN.device
    assert body == struct.pack('<8f', d.stroke, d.min_speed, d.max_speed, d.min_acceleration, d.max_acceleration,
                               d.min_force, d.nominal_force, d.overdrive_force)
    assert unpack_limits(body).max_force == pytest.approx(d.nominal_force)


class CountingFrames:
    """A frame source whose n-th frame has every cell at 100 + n, except cell (0, 0) = n and (0, 5) = 4000 + n."""

    def __init__(self):
        self.count = 0

    def __call__(self):
        n, self.count = self.count, self.count + 1
        frame = [[100 + n] * TACTILE_COLS for _ in range(TACTILE_ROWS)]
        frame[0][0], frame[0][TACTILE_COLS - 1] = n, 4000 + n
        return frame


@pytest.mark.parametrize('finger', [1, 2])
def test_finger_commands_take_an_empty_payload_and_serve_84_cells(finger):
    commands = FINGER_COMMANDS[finger]
    simulator = served(config=REFERENCED, frame_source=CountingFrames())
    link = RawLink(simulator.port)
    try:
        info = bytes.fromhex(TWIN.fingers.finger(finger).info)
        assert link.ask(commands['info']) == (commands['info'], Status.SUCCESS, info)
        assert link.ask(commands['flags']) == (commands['flags'], Status.SUCCESS, struct.pack('<H', 0))
        for what in ('info', 'flags', 'data'):
            assert link.ask(commands[what], bytes([finger]))[1] == Status.NO_PARAM_EXPECTED  # no finger index
        assert link.ask(commands['power'], b'\x01')[1] == Status.SUCCESS
        assert link.ask(commands['power'], b'')[1] == Status.NOT_ENOUGH_PARAMS
        assert link.ask(commands['power'], b'\x02')[1] == Status.INVALID_PARAMETER
        command, status, body = link.ask(commands['data'])
        assert (command, status, len(body)) == (commands['data'], Status.SUCCESS, 168)
        cells = struct.unpack('<84H', body)
        if finger == TWIN.fingers.cloth_finger:  # the cloth finger serves the source's frame, row-major
            assert (cells[0], cells[TACTILE_COLS - 1], cells[TACTILE_COLS]) == (0, 4000, 100)
        else:  # the other finger faces it: the same contact, columns mirrored
            assert (cells[0], cells[TACTILE_COLS - 1], cells[TACTILE_COLS]) == (4000, 0, 100)
        assert struct.unpack('<84H', link.ask(commands['data'])[2])[TACTILE_COLS] == 101  # a fresh frame each time
    finally:
        link.close()
        simulator.stop()


def test_the_cloth_finger_is_configurable():
    config = dataclasses.replace(REFERENCED, fingers=dataclasses.replace(REFERENCED.fingers, cloth_finger=2))
    simulator = served(config=config, frame_source=CountingFrames())
    link = RawLink(simulator.port)
    try:
        one = struct.unpack('<84H', link.ask(Command.FINGER1_DATA)[2])
        two = struct.unpack('<84H', link.ask(Command.FINGER2_DATA)[2])
        assert (one[0], one[TACTILE_COLS - 1]) == (4000, 0) and (two[0], two[TACTILE_COLS - 1]) == (1, 4001)
    finally:
        link.close()
        simulator.stop()


@pytest.mark.parametrize('kind, expected', [('error', (Status.NO_SENSOR, 0)), ('wrong_size', (Status.SUCCESS, 84))])
def test_a_finger_that_is_not_tactile(kind, expected):
    simulator = served(config=REFERENCED.with_finger(2, data=kind))
    link = RawLink(simulator.port)
    try:
        command, status, body = link.ask(Command.FINGER2_DATA)
        assert (command, status, len(body)) == (Command.FINGER2_DATA,) + expected
        assert len(link.ask(Command.FINGER1_DATA)[2]) == 168  # the tactile finger is unaffected
    finally:
        link.close()
        simulator.stop()
