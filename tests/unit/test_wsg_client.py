"""WsgClient against the simulated WSG 32 over real TCP sockets: the two-reply motion pattern, fast stop and
acknowledge, auto-update, reconnection after dropped connections, garbage injection, silent devices."""
import socket
import struct
import threading
import time

import pytest

from plas_ros.hardware.wsg import (
    Command,
    FrameError,
    FrameParser,
    GraspingState,
    Status,
    SystemFlag,
    WsgClient,
    WsgError,
    WsgLinkError,
    encode_frame,
    pack_status,
)
from plas_ros.sim.wsg import SIM_LIMITS, TWIN, StaticPart, WsgSimulator
from tests.helpers.common import wait_for
from tests.helpers.wsg import WAIT

REFERENCED = TWIN.with_options(referenced_at_power_up=True)  # homing at start-up: the driver's job


@pytest.fixture
def sim():
    simulator = WsgSimulator(fingers=StaticPart(part_width=8.0), initial_width=30.0, config=REFERENCED)
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def client(sim):
    wsg = WsgClient('127.0.0.1', sim.port, timeout=2.0, backoff=(0.05, 0.2)).start()
    assert wsg.wait_connected(WAIT)
    yield wsg
    wsg.close()


def test_requests_and_replies(client):
    assert client.loop(b'ping') == b'ping'
    assert client.system_limits().stroke == SIM_LIMITS.stroke
    assert client.system_info().serial_number > 0
    assert client.width() == 30.0 and client.speed() == 0.0
    assert client.grasping_state() == GraspingState.IDLE
    assert SystemFlag.REFERENCED in SystemFlag(client.system_state())
    client.set_force_limit(20.0)
    assert client.get_force_limit() == 20.0
    client.set_acceleration(700.0)
    assert client.get_acceleration() == 700.0


def test_motion_returns_after_the_final_reply(sim, client):
    client.move(10.0, 200.0)  # returning on the 'pending' reply would leave the fingers far from 10 mm
    assert sim.width == 10.0
    client.move(2.5, 100.0, relative=True)
    assert sim.width == 12.5
    client.grasp(0.0, 300.0)
    assert sim.width == 8.0 and client.grasping_state() == GraspingState.HOLDING
    client.release(20.0, 300.0)
    assert sim.width == 20.0
    client.homing()
    assert sim.width == SIM_LIMITS.stroke


def test_device_errors_raise_wsg_error_with_status_and_command(sim, client):
    with pytest.raises(WsgError) as error:
        client.move(SIM_LIMITS.stroke + 5.0, 50.0)
    assert (error.value.status, error.value.command) == (Status.RANGE_ERROR, Command.MOVE)
    sim.fingers.part_width = None
    with pytest.raises(WsgError, match='18 COMMAND_FAILED') as error:
        client.grasp(25.0, 300.0)
    assert error.value.command == Command.GRASP
    with pytest.raises(WsgError, match='14 UNKNOWN_COMMAND'):
        client.request(0x7E)
    assert client.loop(b'fine') == b'fine'


def test_fast_stop_refuses_motion_until_acknowledged(sim, client):
    client.fast_stop()
    with pytest.raises(WsgError) as error:
        client.move(10.0, 50.0)
    assert error.value.status == Status.ACCESS_DENIED and not isinstance(error.value, WsgLinkError)
    assert SystemFlag.FAST_STOP in SystemFlag(client.system_state())
    client.ack_fault()
    client.move(25.0, 200.0)
    assert sim.width == 25.0


def start_slow_move(client):
    """A move to 0 mm at 2 mm/s on its own thread; the WsgError it ends with lands in outcome['error']."""
    outcome = {}

    def slow_move():
        try:
            client.move(0.0, 2.0)
        except WsgError as exc:
            outcome['error'] = exc

    mover = threading.Thread(target=slow_move)
    mover.start()
    return mover, outcome


def test_stop_aborts_a_running_motion(sim, client):
    mover, outcome = start_slow_move(client)
    wait_for(lambda: SystemFlag.MOVING in SystemFlag(client.system_state()), WAIT, what='the move to start')
    client.stop()
    mover.join(WAIT)
    assert outcome['error'].status == Status.COMMAND_ABORTED and outcome['error'].command == Command.MOVE
    assert 0.0 < sim.width < 30.0


def test_auto_update_state_and_fresh_values(sim, client):
    client.subscribe_state(20)
    state = wait_for(lambda: client.state(max_age=1.0), WAIT, what='the auto-updated state')
    assert state.width == 30.0 and state.grasping_state == GraspingState.IDLE
    with pytest.raises(ValueError, match='auto-updated'):
        client.width()  # a one-shot read would cancel the subscription on the gripper
    client.move(12.0, 300.0)
    assert client.wait_value(Command.OPENING_WIDTH, time.monotonic(), WAIT) == 12.0
    client.unsubscribe(Command.OPENING_WIDTH)
    assert client.value(Command.OPENING_WIDTH) is None and client.state(max_age=1.0) is None
    assert client.width() == 12.0


def test_reconnects_after_the_simulator_drops_the_connection(sim, client):
    client.subscribe_state(20)
    wait_for(lambda: client.state(max_age=1.0), WAIT, what='the auto-updated state')
    sim.drop_connections(hold_off=0.5)
    wait_for(lambda: not client.connected, WAIT, what='the client to notice the drop')
    with pytest.raises(WsgLinkError) as error:
        client.loop(b'x')
    assert error.value.status == Status.NOT_OPEN
    assert client.state(max_age=10.0) is None  # nothing current while down
    assert client.wait_connected(WAIT)
    started = time.monotonic()
    assert client.wait_value(Command.OPENING_WIDTH, started, WAIT) == 30.0  # subscriptions resumed
    # the gripper saw its link lost without the announcement: FAST STOP until acknowledged (the driver's job)
    assert SystemFlag.FAST_STOP in SystemFlag(client.wait_value(Command.SYSTEM_STATE, started, WAIT))
    with pytest.raises(WsgError) as error:
        client.move(15.0, 300.0)
    assert error.value.status == Status.ACCESS_DENIED
    client.ack_fault()
    assert client.move(15.0, 300.0) == Status.SUCCESS
    stats = client.stats()
    assert stats['connects'] >= 2 and stats['disconnects'] >= 1 and stats['connect_failures'] >= 1


def test_a_motion_cut_by_a_drop_raises_a_link_error(sim, client):
    mover, outcome = start_slow_move(client)
    wait_for(lambda: SystemFlag.MOVING in SystemFlag(sim.system_flags()), WAIT, what='the move to start')
    sim.drop_connections()
    mover.join(WAIT)
    assert isinstance(outcome['error'], WsgLinkError) and 'dropped' in str(outcome['error'])
    assert client.wait_connected(WAIT)
    client.stop()


def test_garbage_and_corrupt_frames_from_the_device_are_counted_and_skipped(sim, client):
    client.subscribe(Command.OPENING_WIDTH, 20)
    corrupt = bytearray(encode_frame(Command.OPENING_WIDTH, pack_status(0, b'\x00\x00\x80\x3f')))
    corrupt[-2] ^= 0x01
    sim.inject_bytes(b'\x01\x02garbage\xaa' + bytes(corrupt) + encode_frame(Command.LOOP, pack_status(0, b'??')))
    # The injected bytes may arrive in more than one read: wait for the last of them to be handled.
    wait_for(lambda: client.stats()['checksum_errors'] >= 1 and client.stats()['unexpected_frames'] >= 1, WAIT,
             what='the checksum error and the unasked loop reply to be counted')
    assert client.stats()['garbage_bytes'] >= 10
    assert client.loop(b'still fine') == b'still fine'
    assert client.value(Command.OPENING_WIDTH) == 30.0  # the corrupt 1.0 mm was never taken


class SilentDevice:
    """Accepts connections and never answers: a gripper that hangs."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(('127.0.0.1', 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        self.accepted = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                self.accepted.append(self.listener.accept()[0])
            except OSError:
                return

    def close(self):
        self.listener.close()
        for sock in self.accepted:
            sock.close()


def test_a_silent_device_times_out_and_is_reconnected():
    device = SilentDevice()
    client = WsgClient('127.0.0.1', device.port, timeout=0.3, backoff=(0.05, 0.2), stale_after=0.5)
    client.subscribe(Command.OPENING_WIDTH, 20)  # registered for every connection; its values never come
    client.start()
    try:
        assert client.wait_connected(WAIT)
        with pytest.raises(WsgLinkError) as error:
            client.loop(b'anyone?')
        assert error.value.status == Status.TIMEOUT
        wait_for(lambda: client.stats()['stale_drops'] >= 1, WAIT, what='the stale link to be dropped')
        assert client.stats()['timeouts'] == 1 and len(device.accepted) >= 2
        assert client.value(Command.OPENING_WIDTH) is None
    finally:
        client.close(announce=False)
        device.close()


def test_no_device_at_all_counts_connect_failures():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    client = WsgClient('127.0.0.1', port, timeout=0.5, backoff=(0.02, 0.05)).start()
    try:
        wait_for(lambda: client.stats()['connect_failures'] >= 3, WAIT, what='connect failures')
        with pytest.raises(WsgLinkError, match='not connected'):
            client.move(10.0, 50.0)
        simulator = WsgSimulator()
        simulator.start(port=port)
        try:
            assert client.wait_connected(WAIT)
            assert client.loop(b'late') == b'late'
        finally:
            simulator.stop()
    finally:
        client.close()


# ------------------------------------------------------------------ behaviours of doc/wsg.md, over real TCP

def test_close_announces_the_disconnect_so_no_fast_stop_latches(sim, client):
    client.subscribe_state(10)  # auto-updates in flight while it closes: unread bytes must not reset the link
    wait_for(lambda: client.state(max_age=1.0), WAIT, what='the auto-updated state')
    client.close()
    assert client.stats()['announced_disconnects'] == 1
    wait_for(lambda: not sim.client_connected, WAIT, what='the simulator to see the client go')
    assert sim.counters()['link_loss_fast_stops'] == 0
    assert not SystemFlag(sim.system_flags()) & SystemFlag.FAST_STOP


def test_a_move_blocked_on_the_part_returns_29_as_its_ordinary_end(sim, client):
    assert client.move(2.0, 100.0, stop_on_block=True) == Status.AXIS_BLOCKED  # the part is 8 mm wide
    assert sim.width == pytest.approx(8.0 - TWIN.behaviour.block_squeeze)
    assert client.move(20.0, 100.0, stop_on_block=True) == Status.SUCCESS
    with pytest.raises(WsgError) as error:  # only move() takes 29 as an end; a plain request reports it
        client.request(Command.MOVE, b'\x02' + struct.pack('<ff', 2.0, 100.0))
    assert error.value.status == Status.AXIS_BLOCKED


def test_finger_commands(sim, client):
    assert client.finger_info(1) == bytes.fromhex(TWIN.fingers.finger1.info)
    assert client.finger_flags(2) == struct.pack('<H', TWIN.fingers.finger2.flags)
    client.finger_power(2, True)
    cells = client.finger_data(1)
    assert len(cells) == 84 and all(0 <= v < 30 for v in cells)  # no frame source: the quiet pattern
    assert len(client.finger_data(2)) == 84
    with pytest.raises(ValueError, match='finger 3'):
        client.finger_data(3)


@pytest.mark.parametrize('kind', ['error', 'wrong_size'])
def test_a_finger_that_is_not_tactile_raises_naming_the_finger(kind):
    simulator = WsgSimulator(config=REFERENCED.with_finger(2, data=kind))
    simulator.start()
    wsg = WsgClient('127.0.0.1', simulator.port, timeout=2.0).start()
    try:
        assert wsg.wait_connected(WAIT)
        expected = (WsgError, 'FINGER2_DATA.*2 NO_SENSOR') if kind == 'error' else (FrameError, 'finger 2 .*84 bytes')
        with pytest.raises(expected[0], match=expected[1]):
            wsg.finger_data(2)
        assert len(wsg.finger_data(1)) == 84 and wsg.loop(b'ok') == b'ok'
    finally:
        wsg.close()
        simulator.stop()


def _width_frame(value):
    return encode_frame(Command.OPENING_WIDTH, pack_status(0, struct.pack('<f', value)))


def test_state_values_that_are_not_finite_or_that_the_validator_refuses_are_never_taken(sim, client):
    client.validator = lambda command, value: ('width %r beyond the stroke' % value
                                               if command == Command.OPENING_WIDTH and value > 68.0 else None)
    client.subscribe(Command.OPENING_WIDTH, 500)
    assert client.wait_value(Command.OPENING_WIDTH, 0.0, WAIT) == 30.0
    logs = []
    client._log = lambda level, text: logs.append(text)
    sim.inject_bytes(_width_frame(float('nan')) + _width_frame(float('inf')) + _width_frame(500.0)
                     + _width_frame(12.5))
    wait_for(lambda: client.value(Command.OPENING_WIDTH) == 12.5, WAIT, what='the good value after the bad ones')
    assert client.stats()['rejected_values'] == 3
    rejected = [line for line in logs if 'rejected' in line]
    assert len(rejected) == 1 and 'not a finite number' in rejected[0]  # throttled: one line for the burst


class PendingForever(SilentDevice):
    """Answers every request with 26 (pending) and never with a final status: a motion that never ends."""

    def _accept(self):
        while True:
            try:
                sock = self.listener.accept()[0]
            except OSError:
                return
            self.accepted.append(sock)
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock):
        parser = FrameParser()
        self.received = []
        while True:
            try:
                data = sock.recv(4096)
            except OSError:
                return
            if not data:
                return
            for item in parser.feed(data):
                self.received.append(item.command)
                sock.sendall(encode_frame(item.command, pack_status(Status.PENDING)))


def test_a_motion_that_never_ends_times_out_and_the_link_is_closed_announced():
    device = PendingForever()
    client = WsgClient('127.0.0.1', device.port, timeout=0.5, backoff=(0.05, 0.2)).start()
    try:
        assert client.wait_connected(WAIT)
        started = time.monotonic()
        with pytest.raises(WsgLinkError) as error:
            client.move(10.0, 50.0, timeout=0.5)
        assert error.value.status == Status.TIMEOUT and time.monotonic() - started < 3.0
        wait_for(lambda: Command.DISCONNECT in device.received, WAIT, what='the disconnect announcement')
        for bad in (float('inf'), float('nan'), -1.0, 0.0):
            with pytest.raises(ValueError, match='timeout'):
                client.move(10.0, 50.0, timeout=bad)
    finally:
        client.close(announce=False)
        device.close()


def test_a_timed_out_request_announces_before_it_drops_the_link():
    device = SilentDevice()
    client = WsgClient('127.0.0.1', device.port, timeout=0.3, backoff=(0.05, 0.2)).start()
    try:
        assert client.wait_connected(WAIT)
        with pytest.raises(WsgLinkError):
            client.loop(b'anyone?')
        sock = device.accepted[0]
        sock.settimeout(WAIT)
        data = b''
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        assert [item.command for item in FrameParser().feed(data)] == [Command.LOOP, Command.DISCONNECT]
        assert client.stats()['announced_disconnects'] == 1
    finally:
        client.close(announce=False)
        device.close()
