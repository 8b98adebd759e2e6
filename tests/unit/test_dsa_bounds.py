"""The DSA twin and client hold nothing unbounded, over the real pseudo-terminal: a length field beyond any DSA
frame is skipped at once on either side, and a request dribbled a byte at a time is dropped by the twin after
partial_frame_timeout (config/sim_dsa.yaml), which then answers what follows."""
import struct
import time

import pytest

from plas_ros.hardware.dsa import protocol as dsa
from plas_ros.hardware.dsa.client import DsaClient
from plas_ros.sim.dsa.device import TWIN
from plas_ros.sim.dsa.pty import DsaSimulator
from tests.helpers.common import wait_for
from tests.helpers.dsa import RawPort
from tests.unit.test_dsa_client import read_frames

OVERSIZE = [dsa.MAX_PAYLOAD + 1, 0xFFFF]


@pytest.fixture
def sim_port(tmp_path):
    sim = DsaSimulator()
    sim.start(link=str(tmp_path / 'dsa'))
    port = RawPort(str(tmp_path / 'dsa'))
    yield sim, port
    port.close()
    sim.stop()


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


@pytest.mark.parametrize('length', OVERSIZE)
def test_the_client_skips_a_frame_whose_length_is_beyond_any_frame(tmp_path, length):
    link = str(tmp_path / 'dsa')
    sim = DsaSimulator(boot_seconds=0.5)
    sim.start(link=link)
    client = DsaClient(link, frame_rate=100, boot_timeout=5.0)
    try:
        read_frames(client, 2)
        sim.inject_bytes(header(dsa.Command.DATA_FRAME, length))
        read_frames(client, 5)  # frames keep coming: the client neither waited for nor kept `length` bytes
        assert client.stats()['garbage_bytes'] >= 6
    finally:
        client.close()
        sim.stop()
