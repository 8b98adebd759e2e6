"""The simulated DSA controller over its real pseudo-terminal, spoken to byte by byte (no client)."""
import os
import select
import struct
import time

import numpy as np
import pytest

from plas_ros.hardware.crc import crc16
from plas_ros.hardware.dsa import protocol as dsa
from plas_ros.sim.dsa.device import pattern_frame
from plas_ros.sim.dsa.pty import DsaSimulator


class RawPort:
    """The host end of the pty, opened like a serial device; frames decoded by the codec's parser."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        self.parser = dsa.FrameParser()
        self.frames = []

    def send(self, data):
        os.write(self.fd, data)

    def next_frame(self, command, timeout=3.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, frame in enumerate(self.frames):
                if frame.command == command:
                    del self.frames[:i + 1]
                    return frame.payload
            if select.select([self.fd], [], [], 0.05)[0]:
                self.frames += self.parser.feed(os.read(self.fd, 4096))
        raise AssertionError('no %s frame within %.1f s' % (dsa.command_name(command), timeout))

    def request(self, command, payload=b''):
        self.send(dsa.encode_frame(command, payload))
        return self.next_frame(command)

    def close(self):
        os.close(self.fd)


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


def test_boot_garbage_then_answers(tmp_path):
    sim = DsaSimulator(boot_seconds=0.5)
    sim.start(link=str(tmp_path / 'dsa'), boot_garbage=True)
    port = RawPort(str(tmp_path / 'dsa'))
    try:
        time.sleep(0.2)
        assert select.select([port.fd], [], [], 1.0)[0] and os.read(port.fd, 4096)   # noise while booting
        answer = None
        for _ in range(40):
            port.send(dsa.encode_frame(dsa.Command.LOOP, b'hi'))
            try:
                answer = port.next_frame(dsa.Command.LOOP, timeout=0.1)
                break
            except AssertionError:
                pass
        assert answer == b'hi' and not sim.booting
    finally:
        port.close()
        sim.stop()
