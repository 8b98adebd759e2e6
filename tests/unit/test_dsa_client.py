"""DsaClient against the simulated controller over a real pseudo-terminal: boot garbage, RLE on and off,
corrupt and truncated frames, the pty closed and reopened, a port absent at start-up."""
import os
import time

import numpy as np
import pytest

from plas_ros.hardware.dsa import protocol as dsa
from plas_ros.hardware.dsa.client import DsaClient
from plas_ros.sim.dsa.device import pattern_frame
from plas_ros.sim.dsa.pty import DsaSimulator


@pytest.fixture
def link(tmp_path):
    return str(tmp_path / 'dsa')


@pytest.fixture
def sim(link):
    simulator = DsaSimulator(boot_seconds=0.5)
    yield simulator
    simulator.stop()


@pytest.fixture
def make_client():
    clients = []

    def make(port, **kwargs):
        kwargs.setdefault('frame_rate', 100)
        kwargs.setdefault('boot_timeout', 5.0)
        client = DsaClient(port, **kwargs)
        clients.append(client)
        return client
    yield make
    for client in clients:
        client.close()


def read_frames(client, count, timeout=5.0):
    frames = []
    deadline = time.monotonic() + timeout
    while len(frames) < count and time.monotonic() < deadline:
        frame = client.read_frame(0.5)
        if frame is not None:
            frames.append(frame)
    assert len(frames) == count, 'got %d of %d frames; %s' % (len(frames), count, client.stats())
    return frames


def pattern_index(frame):
    """The pattern frame number a received frame claims to be, after checking all its cells against it."""
    n = int(frame.cells[0, 0])
    assert frame.cells.dtype == np.uint16 and frame.cells.shape == (14, 6)
    assert np.array_equal(frame.cells, pattern_frame(n)), frame.cells
    return n


@pytest.mark.parametrize('rle', [False, True])
def test_frames_match_the_source_with_and_without_rle(sim, link, make_client, rle):
    sim.start(link=link)
    client = make_client(link, rle=rle)
    frames = read_frames(client, 20)
    indices = [pattern_index(f) for f in frames]
    assert indices == list(range(indices[0], indices[0] + 20)), 'frames lost or repeated: %s' % indices
    assert all(f.rle == rle for f in frames)
    assert client.connected and (client.rows, client.cols) == (14, 6)
    stamps = [f.timestamp_ms for f in frames]
    assert stamps == sorted(stamps)
    assert client.stats()['crc_errors'] == 0


def test_boot_garbage_is_flushed_and_skipped(sim, link, make_client):
    sim.start(link=link, boot_garbage=True)
    client = make_client(link)
    frames = read_frames(client, 5)
    indices = [pattern_index(f) for f in frames]
    assert indices == list(range(indices[0], indices[0] + 5))
    assert client.stats()['garbage_bytes'] > 0, client.stats()


def test_corrupt_and_truncated_frames_are_skipped_and_counted(sim, link, make_client):
    sim.start(link=link)
    client = make_client(link)
    before = read_frames(client, 3)
    sim.inject_corrupt_frame()
    sim.inject_truncated_frame()
    indices = [pattern_index(f) for f in before + read_frames(client, 15)]
    gaps = [b - a for a, b in zip(indices, indices[1:])]
    assert sorted(gaps) == [1] * 16 + [3], 'exactly the two damaged frames are missing: %s' % indices
    stats = client.stats()
    assert stats['crc_errors'] == 1 and stats['truncated'] == 1, stats


def test_the_pty_closed_and_reopened(sim, link, make_client):
    sim.start(link=link)
    client = make_client(link, backoff=(0.05, 0.2))
    first = pattern_index(read_frames(client, 3)[-1])
    sim.close_pty()
    assert not os.path.lexists(link)
    deadline = time.monotonic() + 5
    while client.connected and time.monotonic() < deadline:
        frame = client.read_frame(0.2)
        if frame is not None:
            pattern_index(frame)     # frames already on their way are fine, never a made-up one
    assert not client.connected
    assert client.read_frame(0.3) is None
    sim.open_pty()
    later = [pattern_index(f) for f in read_frames(client, 5)]
    assert client.connected and later[0] > first
    stats = client.stats()
    assert stats['link_losses'] == 1 and stats['connects'] == 2 and stats['failed_connects'] >= 1, stats


def test_port_absent_at_start_up(link, make_client):
    client = make_client(link, backoff=(0.05, 0.2))
    assert client.read_frame(0.5) is None and not client.connected
    assert client.stats()['failed_connects'] >= 1
    sim = DsaSimulator()
    sim.start(link=link)
    try:
        pattern_index(read_frames(client, 1)[0])
    finally:
        client.close()
        sim.stop()


def test_clear_errors(sim, link, make_client, tmp_path):
    with pytest.raises(dsa.DsaLinkError, match='cannot open DSA port .*nowhere'):
        make_client(str(tmp_path / 'nowhere')).connect()
    sim.start(link=link)
    with pytest.raises(dsa.DsaError, match='14 x 6 matrix .* expected 16 x 16'):
        make_client(link, shape=(16, 16)).connect()
    with pytest.raises(ValueError, match='frame rate'):
        make_client(link, frame_rate=5000)
    client = make_client(link)
    client.connect()
    with pytest.raises(dsa.DsaReplyError, match='INDEX_OUT_OF_BOUNDS'):
        client.matrix_info(3)


def test_a_silent_device_times_out(make_client):
    master, slave = os.openpty()     # a pty nobody answers on
    try:
        client = make_client(os.ttyname(slave), boot_timeout=0.5)
        with pytest.raises(dsa.DsaTimeout, match='did not answer a loop request within 0.5 s'):
            client.connect()
    finally:
        os.close(master)
        os.close(slave)
