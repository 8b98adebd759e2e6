"""The simulated DSA controller over its real pseudo-terminal, spoken to byte by byte (no client)."""
import os
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

from plas_ros.hardware.crc import crc16
from plas_ros.hardware.dsa import protocol as dsa
from plas_ros.sim.dsa.device import TERMINAL_QUERY, TWIN, pattern_frame
from plas_ros.sim.dsa.pty import DsaSimulator
from tests.helpers.common import wait_for
from tests.helpers.dsa import RawPort, hand_frame


@pytest.fixture
def sim_port(tmp_path):
    sim = DsaSimulator()
    sim.start(link=str(tmp_path / 'dsa'))
    port = RawPort(str(tmp_path / 'dsa'))
    yield sim, port
    port.close()
    sim.stop()


def test_link_points_at_a_raw_pty(tmp_path):
    sim = DsaSimulator()
    link = str(tmp_path / 'dsa')
    path = sim.start(link=link)
    try:
        assert os.path.islink(link) and os.path.realpath(link) == path and path.startswith('/dev/pts/')
    finally:
        sim.stop()
    assert not os.path.lexists(link)


def test_info_replies(sim_port):
    _, port = sim_port
    assert port.request(dsa.Command.LOOP, b'\x01\xaa\xaa\xaa') == b'\x01\xaa\xaa\xaa'
    controller = dsa.unpack_controller_info(port.request(dsa.Command.CONTROLLER_INFO))
    assert controller.error == 0 and controller.serial_number == 0x00D5A032
    sensor = dsa.unpack_sensor_info(port.request(dsa.Command.SENSOR_INFO))
    assert sensor.error == 0 and sensor.matrices == 1
    matrix = dsa.unpack_matrix_info(port.request(dsa.Command.MATRIX_INFO, b'\x00'))
    assert (matrix.error, matrix.cells_x, matrix.cells_y) == (0, 6, 14)
    assert abs(matrix.texel_width - 3.4) < 1e-6


def test_bad_requests_get_error_codes_and_garbage_is_survived(sim_port):
    sim, port = sim_port
    port.send(b'\x00\xff garbage \xaa\xaa\xaa\x06\x03\x00abc\x00\x00')      # a loop with a wrong CRC
    bad = bytearray(dsa.encode_frame(dsa.Command.LOOP, b'bad'))
    bad[-1] ^= 0x01
    port.send(bytes(bad))
    assert port.request(0x42, b'?') == struct.pack('<H', 14)                   # unknown command
    assert port.request(dsa.Command.MATRIX_INFO) == struct.pack('<H', 13)      # not enough parameters
    assert port.request(dsa.Command.MATRIX_INFO, b'\x01') == struct.pack('<H', 25)   # index out of bounds
    assert port.request(dsa.Command.ACQUISITION, b'\x80') == struct.pack('<H', 13)
    assert port.request(dsa.Command.ACQUISITION, bytes([0x80, 0xE9, 0x03]) + b'\x00') == struct.pack('<H', 15)
    assert port.request(dsa.Command.ACQUISITION, bytes([0x80, 0xE9, 0x03])) == struct.pack('<H', 28)  # 1001/s
    assert port.request(dsa.Command.LOOP, b'alive') == b'alive'
    assert sim.counts['crc_errors'] == 2 and sim.counts['unknown_commands'] == 1 and not sim.acquiring


@pytest.mark.parametrize('rle', [False, True])
def test_acquisition_streams_the_pattern_and_stops(sim_port, rle):
    sim, port = sim_port
    covered = bytes([0x03, 0x03, 0x00, 0x81 if rle else 0x80, 100, 0])      # start at 100 frames/s, by hand
    port.send(b'\xaa\xaa\xaa' + covered + struct.pack('<H', crc16(covered)))
    assert port.next_frame(dsa.Command.ACQUISITION) == b'\x00\x00'
    frames = [dsa.parse_data_frame(port.next_frame(dsa.Command.DATA_FRAME), 14, 6) for _ in range(10)]
    assert [f.rle for f in frames] == [rle] * 10
    for n, frame in enumerate(frames):
        assert np.array_equal(frame.cells, pattern_frame(n))
    stamps = [f.timestamp_ms for f in frames]
    assert stamps == sorted(stamps) and stamps[-1] > stamps[0]
    assert port.request(dsa.Command.ACQUISITION, bytes(3)) == b'\x00\x00'
    assert not sim.acquiring


def test_a_bad_frame_source_sends_nothing(tmp_path):
    sources = iter([np.zeros((14, 5)), np.full((14, 6), 5000), pattern_frame(7)])
    sim = DsaSimulator(frame_source=lambda: next(sources))
    sim.start(link=str(tmp_path / 'dsa'))
    port = RawPort(str(tmp_path / 'dsa'))
    try:
        assert port.request(dsa.Command.ACQUISITION, dsa.pack_acquisition(50)) == b'\x00\x00'
        first = dsa.parse_data_frame(port.next_frame(dsa.Command.DATA_FRAME), 14, 6)
        assert np.array_equal(first.cells, pattern_frame(7))     # the two bad readings were never sent
        assert sim.counts['source_errors'] >= 2                   # (then StopIteration from the exhausted source)
    finally:
        port.close()
        sim.stop()


def test_boot_takes_its_time_with_stray_bytes_and_the_terminal_query(tmp_path):
    sim = DsaSimulator(boot_seconds=1.5)
    sim.start(link=str(tmp_path / 'dsa'), boot_garbage=True)
    started = time.monotonic()
    port = RawPort(str(tmp_path / 'dsa'))
    try:
        answer = None
        while answer is None and time.monotonic() - started < 5.0:    # repeat a request until it is answered
            port.send(dsa.encode_frame(dsa.Command.LOOP, b'hi'))
            try:
                answer = port.next_frame(dsa.Command.LOOP, timeout=0.1)
            except AssertionError:
                pass
        assert answer == b'hi' and not sim.booting
        assert time.monotonic() - started >= 1.5 - 0.05
        assert bytes(port.received).count(TERMINAL_QUERY) == 3 and b'\xaa\xaa' in port.received
        assert sim.counts['requests'] >= 1 and sim.counts['garbage_bytes'] == 0
    finally:
        port.close()
        sim.stop()


def test_controller_info_is_18_bytes_on_the_line(sim_port):
    _, port = sim_port
    port.send(b'\xaa\xaa\xaa\x01\x00\x00')
    port.next_frame(dsa.Command.CONTROLLER_INFO)
    start = bytes(port.received).index(b'\xaa\xaa\xaa\x01')
    assert port.received[start + 4:start + 6] == b'\x12\x00'          # length 18
    info = dsa.unpack_controller_info(bytes(port.received[start + 6:start + 24]))
    assert info.error == 0 and info.serial_number == TWIN.serial_number


@pytest.mark.parametrize('form, expected', [('echo', b'ping'), ('error_code_prefixed', b'\x00\x00ping')])
def test_loop_reply_in_either_form_on_the_line(tmp_path, form, expected):
    sim = DsaSimulator(loop_reply=form)
    sim.start(link=str(tmp_path / 'dsa'))
    port = RawPort(str(tmp_path / 'dsa'))
    try:
        port.send(hand_frame(0x06, b'ping'))
        assert port.next_frame(dsa.Command.LOOP) == expected
        assert hand_frame(0x06, expected) in port.received
    finally:
        port.close()
        sim.stop()


def test_several_matrices_on_the_line(tmp_path):
    shapes = [(14, 6), (13, 6), (14, 6), (13, 6)]
    sim = DsaSimulator(shapes=shapes, contact_matrix=2)
    sim.start(link=str(tmp_path / 'dsa'))
    port = RawPort(str(tmp_path / 'dsa'))
    try:
        assert dsa.unpack_sensor_info(port.request(dsa.Command.SENSOR_INFO)).matrices == 4
        infos = [dsa.unpack_matrix_info(port.request(dsa.Command.MATRIX_INFO, bytes([i]))) for i in range(4)]
        assert [(i.cells_y, i.cells_x) for i in infos] == shapes
        assert port.request(dsa.Command.ACQUISITION, dsa.pack_acquisition(50)) == b'\x00\x00'
        for _ in range(3):
            payload = port.next_frame(dsa.Command.DATA_FRAME)
            assert len(payload) == 5 + 2 * sum(r * c for r, c in shapes)
            cells = np.frombuffer(payload[5:], dtype='<u2')
            contact = cells[84 + 78:84 + 78 + 84].reshape(14, 6)       # matrix 2 follows matrices 0 and 1
            assert np.array_equal(contact, pattern_frame(int(contact[0, 0])))
            idle = np.concatenate([cells[:84 + 78], cells[84 + 78 + 84:]])
            assert idle.max() <= TWIN.idle_max
    finally:
        port.close()
        sim.stop()


def test_the_command_line_twin_with_its_options(tmp_path):
    link = str(tmp_path / 'dsa')
    proc = subprocess.Popen([sys.executable, '-m', 'plas_ros.sim.dsa', '--link', link, '--matrices', '2',
                             '--contact-matrix', '1', '--loop-reply', 'error_code_prefixed',
                             '--controller-info-size', '19'], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith('DSA simulator on /dev/pts/') and link in line, line
        port = RawPort(link)
        try:
            assert port.request(dsa.Command.LOOP, b'up') == b'\x00\x00up'
            assert len(port.request(dsa.Command.CONTROLLER_INFO)) == 19
            assert dsa.unpack_sensor_info(port.request(dsa.Command.SENSOR_INFO)).matrices == 2
        finally:
            port.close()
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_the_twin_does_not_load_the_driver():
    code = ('import sys, plas_ros.sim.dsa, plas_ros.sim.dsa.cli; '
            'print(sorted(m for m in sys.modules if m.startswith("plas_ros.hardware.dsa") or m == "serial"))')
    out = subprocess.run([sys.executable, '-c', code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "['plas_ros.hardware.dsa', 'plas_ros.hardware.dsa.protocol']"


# ------------------------------------------------------------------ bounds (doc/bounds.md)

OVERSIZE = [dsa.MAX_PAYLOAD + 1, 0xFFFF]


def header(command, length):
    return dsa.PREAMBLE + struct.pack('<BH', command, length)


@pytest.mark.parametrize('length', OVERSIZE)
def test_the_twin_skips_a_request_whose_length_is_beyond_any_frame(sim_port, length):
    sim, port = sim_port
    port.send(header(dsa.Command.LOOP, length))
    assert port.request(dsa.Command.LOOP, b'next').endswith(b'next')  # answered at once, nothing awaited
    assert sim.device.counts['garbage_bytes'] >= 6


def test_a_request_dribbled_a_byte_at_a_time_is_dropped_and_the_next_answered(sim_port):
    sim, port = sim_port
    frame = dsa.encode_frame(dsa.Command.LOOP, b'x' * 64)
    deadline = time.monotonic() + 3 * TWIN.partial_frame_timeout
    sent = 0
    while time.monotonic() < deadline:  # each byte in time, the frame never complete
        port.send(frame[sent:sent + 1])
        sent += 1
        time.sleep(0.05)
    assert sent < len(frame)
    wait_for(lambda: sim.device.counts['truncated_requests'] >= 1, 5.0, what='the dribbled request dropped')
    assert port.request(dsa.Command.LOOP, b'next').endswith(b'next')
