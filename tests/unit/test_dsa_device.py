"""The twin's controller state machine without a pty: requests written by hand go in, the bytes it answers come
out, on a fake clock. Each test is one behaviour of the real DSACON32 (doc/dsa.md names the source)."""
import struct

import numpy as np
import pytest

from plas_ros.hardware.dsa import protocol as dsa
from plas_ros.sim.dsa.device import TERMINAL_QUERY, TWIN, DsaDevice, pattern_frame
from tests.helpers.dsa import hand_frame, le16


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


def reply(device, command, payload=b''):
    """The one frame the device answers a hand-written request with, as raw bytes."""
    out = device.receive(hand_frame(command, payload))
    assert len(out) == 1, out
    return out[0]


def payload_of(frame):
    command, payload = dsa.decode_frame(frame)
    return payload


def test_the_twins_defaults_are_the_yaml_file():
    from plas_ros.config import load_yaml
    twin = load_yaml('sim_dsa.yaml')['dsa']
    device = DsaDevice()
    assert (device.boot_seconds, device.loop_reply, device.controller_info_size, len(device.shapes),
            device.contact_matrix) == (twin['boot_seconds'], twin['loop_reply'], twin['controller_info_size'],
                                       twin['matrices'], twin['contact_matrix'])
    assert TWIN.boot_seconds >= 8.0 and twin['controller_info_size'] == 18 and twin['loop_reply'] in (
        'echo', 'error_code_prefixed')


@pytest.mark.parametrize('size', [18, 19])
def test_controller_info_reply_is_18_bytes_as_observed(clock, size):
    device = DsaDevice(controller_info_size=size, clock=clock)
    frame = reply(device, 0x01)
    assert frame[:6] == b'\xaa\xaa\xaa\x01' + le16(size) and len(frame) == 6 + size + 2
    payload = payload_of(frame)
    assert payload[:2] == b'\x00\x00' and struct.unpack_from('<I', payload, 2)[0] == TWIN.serial_number
    assert payload[9] & 0x80 and not payload[9] & 0x40   # status flags: operable, not acquiring


def test_sensor_info_counts_the_matrices_and_matrix_info_describes_each(clock):
    device = DsaDevice(shapes=[(14, 6), (13, 6), (14, 6)], contact_matrix=1, clock=clock)
    sensor = payload_of(reply(device, 0x02))
    assert len(sensor) == 12 and sensor[:4] == le16(0) + le16(3)
    for index, (rows, cols) in enumerate(device.shapes):
        info = payload_of(reply(device, 0x0B, bytes([index])))
        assert len(info) == dsa.MATRIX_INFO_SIZE
        assert info[:2] == le16(0) and info[10:14] == le16(cols) + le16(rows)
    assert payload_of(reply(device, 0x0B, b'\x03')) == le16(25)     # index out of bounds
    assert payload_of(reply(device, 0x0B)) == le16(13)              # not enough parameters


def test_one_data_frame_carries_all_matrices_the_contact_one_streams_the_source(clock):
    device = DsaDevice(shapes=[(14, 6), (13, 6), (14, 6)], contact_matrix=1, clock=clock)
    assert payload_of(reply(device, 0x03, bytes([0x80, 50, 0]))) == le16(0)
    frames = []
    for _ in range(5):
        frames += device.poll()
        clock.now += 0.02
    assert len(frames) == 5
    for n, frame in enumerate(frames):
        payload = payload_of(frame)
        assert len(payload) == 5 + 2 * (84 + 78 + 84)
        cells = np.frombuffer(payload[5:], dtype='<u2')
        idle_a, contact, idle_b = cells[:84], cells[84:84 + 78], cells[84 + 78:]
        assert np.array_equal(contact.reshape(13, 6), pattern_frame(n, 13, 6))
        for idle in (idle_a, idle_b):              # no contact: zeros, and a little noise on a few cells
            assert idle.max() <= TWIN.idle_max and (idle == 0).mean() > 0.5
    stamps = [struct.unpack_from('<I', payload_of(f))[0] for f in frames]
    assert stamps[0] == 0 and all(19 <= b - a <= 21 for a, b in zip(stamps, stamps[1:])), stamps   # ms since boot


def test_a_controller_without_matrices_sends_headers_only(clock):
    device = DsaDevice(matrices=0, clock=clock)
    assert payload_of(reply(device, 0x02))[2:4] == le16(0)
    reply(device, 0x03, bytes([0x80, 10, 0]))
    (frame,) = device.poll()
    assert len(payload_of(frame)) == 5


def test_bad_twin_options_are_refused_naming_the_value():
    with pytest.raises(ValueError, match='contact_matrix 2 is not one of its 2 matrices'):
        DsaDevice(matrices=2, contact_matrix=2)
    with pytest.raises(ValueError, match="loop_reply must be one of echo, error_code_prefixed, got 'status'"):
        DsaDevice(loop_reply='status')
    with pytest.raises(ValueError, match='controller_info_size must be 18 or 19, got 17'):
        DsaDevice(controller_info_size=17)


@pytest.mark.parametrize('form, expected', [('echo', b'hello'), ('error_code_prefixed', b'\x00\x00hello')])
def test_loop_reply_in_either_form(clock, form, expected):
    device = DsaDevice(loop_reply=form, clock=clock)
    assert reply(device, 0x06, b'hello') == hand_frame(0x06, expected)


def test_boot_takes_seconds_with_stray_bytes_and_the_terminal_query_first(clock):
    # SDH dsa.cpp: ESC [ 5 n three times within 0.82 s about 7 s after power-up, commands accepted after ~8 s;
    # SDH detects the end of the boot by repeating a request until it is answered
    device = DsaDevice(boot_seconds=8.0, boot_garbage=True, clock=clock)
    start = clock.now
    sent, answered_at, queries = bytearray(), None, []
    while clock.now - start < 10.0 and answered_at is None:
        for chunk in device.poll():
            if chunk == TERMINAL_QUERY:
                queries.append(clock.now - start)
            sent += chunk
        if round((clock.now - start) * 100) % 25 == 0:     # a loop request every 0.25 s
            out = device.receive(hand_frame(0x06, b'up?'))
            if out:
                assert out == [hand_frame(0x06, b'up?')]
                answered_at = clock.now - start
        clock.now += 0.01
    assert answered_at is not None and 8.0 <= answered_at < 8.3
    assert len(queries) == 3 and 7.0 <= queries[0] and queries[-1] - queries[0] <= 0.82 + 0.02 and queries[-1] < 8
    assert len(sent) > 100 and b'\xaa\xaa' in sent               # noise, preamble fragments
    assert device.counts['requests'] >= 1 and not device.booting
    assert device.poll() == []                                    # silent once booted, until acquisition


def test_power_on_reboots_and_stops_acquisition(clock):
    device = DsaDevice(boot_seconds=2.0, boot_garbage=True, clock=clock)
    clock.now += 2.0
    reply(device, 0x03, bytes([0x80, 10, 0]))
    assert device.acquiring
    device.power_on()
    assert not device.acquiring and device.booting
    assert device.receive(hand_frame(0x06, b'x')) == []
