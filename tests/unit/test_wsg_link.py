"""No client holds the simulated WSG 32 forever, over real TCP (config/wsg_twin.yaml `link`, doc/wsg.md "Clients and
bounds"): a silent client makes way for our driver after the idle time (`yield`) or is closed even alone (`drop`);
with idle_timeout 0 one client keeps it (the third form); a client that floods commands without reading its replies
is closed and the next one is served; the driver comes back after being dropped; a started frame that never
completes, or one whose length field is beyond any WSG message, holds nothing."""
import socket
import struct
import threading
import time

import pytest

from plas_ros.hardware.wsg import MAX_PAYLOAD, Command, FrameError, SystemFlag, WsgClient, encode_frame
from plas_ros.hardware.wsg.protocol import FrameParser, unpack_status
from plas_ros.sim.wsg import TWIN, StaticPart, WsgSimulator
from tests.helpers.common import wait_for
from tests.helpers.wsg import LOOP_EMPTY, WAIT
from tests.unit.test_wsg_driver import Log, make_driver

REFERENCED = TWIN.with_options(referenced_at_power_up=True)
IDLE = 0.5  # s, the twin's idle timeout in these tests


def started(config):
    sim = WsgSimulator(fingers=StaticPart(), initial_width=30.0, config=config)
    sim.start()
    return sim


@pytest.fixture
def closing():
    """Everything a test opens (simulators, drivers, sockets), closed at its end."""
    things = []
    yield things.append
    for thing in reversed(things):
        (thing.stop if isinstance(thing, WsgSimulator) else thing.close)()


def raw_client(sim, closing):
    sock = socket.create_connection(('127.0.0.1', sim.port), timeout=WAIT)
    closing(sock)
    return sock


def read_frames(sock, count, timeout=WAIT):
    """The next `count` frames on a raw socket, within `timeout`."""
    parser, frames = FrameParser(), []
    deadline = time.monotonic() + timeout
    while len(frames) < count:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = sock.recv(4096)
        assert data, 'the twin closed the connection'
        frames += parser.feed(data)
    return frames


def closed_by_peer(sock, timeout=WAIT):
    """True once the twin closed the connection (EOF or reset), False if it is still open after `timeout`."""
    sock.settimeout(timeout)
    try:
        while sock.recv(4096):
            pass
    except socket.timeout:
        return False
    except ConnectionResetError:
        pass
    return True


def answers(client):
    try:
        return client.loop(b'ok') == b'ok'
    except Exception:  # noqa: BLE001 - not connected yet, or its request timed out: not served yet
        return False


def test_a_silent_client_makes_way_for_the_driver_after_the_idle_time(closing):
    sim = started(REFERENCED.with_link(idle_timeout=IDLE, idle_policy='yield'))
    closing(sim)
    raw_client(sim, closing)  # connects first and says nothing
    wait_for(lambda: sim.client_connected, WAIT, what='the silent client served')
    log = Log()
    driver = make_driver(sim, log)
    closing(driver)
    wait_for(lambda: driver.state() is not None, WAIT, what='the driver served after the silent client')
    assert sim.counters()['silent_drops'] == 1
    # the device saw the silent client's link end unannounced: the fast stop it latched waits for an operator's ack
    assert SystemFlag.FAST_STOP in SystemFlag(sim.system_flags())
    assert driver.trigger('ack')[0]
    result = driver.command('move', 20.0)
    assert result.success, result.message
    assert sim.width == pytest.approx(20.0)


def test_a_client_that_keeps_asking_is_not_displaced(closing):
    sim = started(REFERENCED.with_link(idle_timeout=IDLE, idle_policy='yield'))
    closing(sim)
    active = raw_client(sim, closing)
    waiting = None
    for _ in range(8):  # 8 requests, IDLE / 2 apart: never silent for IDLE
        active.sendall(LOOP_EMPTY)
        assert read_frames(active, 1)[0].command == Command.LOOP
        if waiting is None:
            waiting = raw_client(sim, closing)
            waiting.sendall(LOOP_EMPTY)
        time.sleep(IDLE / 2)
    assert sim.counters()['silent_drops'] == 0
    # once the active one falls silent, the waiting one is served (its queued request answered)
    assert read_frames(waiting, 1)[0].command == Command.LOOP
    assert closed_by_peer(active)


def test_with_idle_policy_drop_a_silent_client_is_closed_even_alone(closing):
    sim = started(REFERENCED.with_link(idle_timeout=IDLE, idle_policy='drop'))
    closing(sim)
    silent = raw_client(sim, closing)
    assert closed_by_peer(silent)
    assert sim.counters()['silent_drops'] == 1


def test_with_idle_timeout_0_one_silent_client_keeps_the_gripper(closing):
    sim = started(REFERENCED.with_link(idle_timeout=0.0))
    closing(sim)
    silent = raw_client(sim, closing)
    wait_for(lambda: sim.client_connected, WAIT, what='the silent client served')
    waiting = raw_client(sim, closing)
    waiting.sendall(LOOP_EMPTY)
    assert not closed_by_peer(silent, timeout=4 * IDLE)  # the default idle_timeout would have closed it by now
    silent.close()  # the next in the backlog is served once the first leaves
    assert read_frames(waiting, 1)[0].command == Command.LOOP


def test_a_client_that_floods_without_reading_is_dropped_and_the_next_is_served(closing):
    sim = started(REFERENCED.with_link(max_queued_bytes=64 * 1024, send_timeout=1.0))
    closing(sim)
    flooder = socket.socket()
    flooder.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # little room on its side: the twin's queue fills
    flooder.connect(('127.0.0.1', sim.port))
    closing(flooder)
    request = encode_frame(Command.LOOP, bytes(MAX_PAYLOAD - 2))  # echoed: each reply is about 1 KiB
    stopped = threading.Event()

    def flood():
        try:
            while not stopped.is_set():
                flooder.sendall(request * 16)
        except OSError:
            pass  # the twin closed it
    thread = threading.Thread(target=flood, daemon=True)
    thread.start()
    wait_for(lambda: sim.client_connected, WAIT, what='the flooder served')
    client = WsgClient('127.0.0.1', sim.port, timeout=1.0, backoff=(0.05, 0.2))
    closing(client)
    client.start()
    try:
        wait_for(lambda: sim.counters()['unread_drops'] >= 1, WAIT, what='the flooder dropped')
        wait_for(lambda: answers(client), WAIT, what='the next client served')
    finally:
        stopped.set()
        thread.join(WAIT)
    assert not thread.is_alive()


def test_the_driver_comes_back_after_the_twin_dropped_it(closing):
    """`drop`: the driver falls silent between commands and is closed; it reconnects, clears the fast stop that
    the lost link latched, and moves."""
    sim = started(REFERENCED.with_link(idle_timeout=IDLE, idle_policy='drop'))
    closing(sim)
    driver = make_driver(sim, Log())
    closing(driver)
    wait_for(lambda: sim.counters()['silent_drops'] >= 1, WAIT, what='the idle driver dropped')
    wait_for(lambda: driver.counters.fast_stops_cleared >= 1, WAIT, what='the latched fast stop cleared')
    result = driver.command('move', 25.0)
    assert result.success, result.message
    assert sim.width == pytest.approx(25.0)


def test_a_frame_dribbled_a_byte_at_a_time_is_dropped_after_the_partial_frame_timeout(closing):
    sim = started(REFERENCED)
    closing(sim)
    sock = raw_client(sim, closing)
    frame = encode_frame(Command.LOOP, b'x' * 64)
    timeout = REFERENCED.device.partial_frame_timeout
    deadline = time.monotonic() + 3 * timeout
    sent = 0
    while time.monotonic() < deadline:  # one byte every 50 ms: each byte comes in time, the frame never does
        sock.sendall(frame[sent:sent + 1])
        sent += 1
        time.sleep(0.05)
    assert sent < len(frame)
    wait_for(lambda: sim.counters()['truncated_frames'] >= 1, WAIT, what='the dribbled frame dropped')
    sock.sendall(LOOP_EMPTY)  # the link still serves what comes next
    reply = read_frames(sock, 1)[0]
    assert reply.command == Command.LOOP and unpack_status(reply.payload)[0] == 0


@pytest.mark.parametrize('length', [MAX_PAYLOAD + 1, 0xFFFF])
def test_a_length_field_beyond_any_wsg_message_is_skipped_without_waiting_for_it(closing, length):
    sim = started(REFERENCED)
    closing(sim)
    sock = raw_client(sim, closing)
    sock.sendall(b'\xaa\xaa\xaa' + struct.pack('<BH', Command.LOOP, length) + LOOP_EMPTY)
    reply = read_frames(sock, 1)[0]  # answered at once: the twin neither waited for nor kept `length` bytes
    assert reply.command == Command.LOOP and unpack_status(reply.payload)[0] == 0
    assert sim.counters()['garbage_bytes'] >= 6


@pytest.mark.parametrize('length', [MAX_PAYLOAD + 1, 0xFFFF])
def test_the_client_skips_a_reply_whose_length_field_is_beyond_any_wsg_message(closing, length):
    sim = started(REFERENCED)
    closing(sim)
    client = WsgClient('127.0.0.1', sim.port, timeout=1.0, backoff=(0.05, 0.2))
    closing(client)
    client.start()
    assert client.wait_connected(WAIT)
    sim.inject_bytes(b'\xaa\xaa\xaa' + struct.pack('<BH', Command.LOOP, length))
    assert client.loop(b'ok') == b'ok'
    assert client.stats()['garbage_bytes'] >= 6


def test_an_encoder_refuses_a_payload_its_length_field_cannot_carry():
    with pytest.raises(FrameError, match='does not fit the u16 length field'):
        encode_frame(Command.LOOP, bytes(0x10000))


@pytest.mark.parametrize('options, message', [
    ({'idle_policy': 'sometimes'}, 'idle_policy must be one of yield, drop'),
    ({'idle_timeout': -1.0}, 'idle_timeout must be >= 0'),
    ({'max_queued_bytes': 0}, 'max_queued_bytes and send_timeout > 0'),
])
def test_bad_link_options_are_refused_naming_them(options, message):
    with pytest.raises(ValueError, match=message):
        TWIN.with_link(**options)
