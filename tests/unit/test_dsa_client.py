"""DsaClient against the simulated controller over a real pseudo-terminal: boot garbage, RLE on and off,
corrupt and truncated frames, the pty closed and reopened, a port absent at start-up; and the real controller's
behaviours (doc/dsa.md): either loop reply form, 18- or 19-byte controller info, several matrices with the
configured one taken out of each frame, clear errors for a matrix count or size that does not fit, a long boot."""
import os
import re
import struct
import time

import numpy as np
import pytest

from plas_ros.hardware.dsa import protocol as dsa
from plas_ros.hardware.dsa.client import DsaClient
from plas_ros.sim.dsa.device import TWIN, pattern_frame
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


# ------------------------------------------------------------------ as the real controller behaves (doc/dsa.md)

@pytest.fixture
def twin(link):
    """A twin with the given options, started at `link` (stopped at the end)."""
    started = []

    def start(boot_garbage=False, **options):
        simulator = DsaSimulator(**options)
        simulator.start(link=link, boot_garbage=boot_garbage)
        started.append(simulator)
        return simulator
    yield start
    for simulator in started:
        simulator.stop()


@pytest.mark.parametrize('form', ['echo', 'error_code_prefixed'])
def test_boot_detection_with_either_loop_reply(twin, link, make_client, form):
    sim = twin(boot_garbage=True, boot_seconds=1.0, loop_reply=form)
    client = make_client(link)
    indices = [pattern_index(f) for f in read_frames(client, 5, timeout=10)]
    assert indices == list(range(indices[0], indices[0] + 5))
    assert client.loop_reply == form and sim.device.loop_reply == form
    stats = client.stats()
    assert stats['garbage_bytes'] > 0 and stats['connects'] == 1 and not stats.get('failed_connects'), stats


@pytest.mark.parametrize('size', [18, 19])
def test_controller_info_of_18_bytes_and_of_19(twin, link, make_client, size):
    twin(controller_info_size=size)
    client = make_client(link)
    client.connect()                         # the set-up reads it (as SDH does)
    assert client.controller.serial_number == TWIN.serial_number
    assert client.controller.sw_version == TWIN.sw_version and client.controller.error == 0
    again = client.controller_info()
    assert again.serial_number == TWIN.serial_number and again.status_flags & 0x40    # acquiring now
    pattern_index(read_frames(client, 1)[0])


@pytest.mark.parametrize('shapes, matrix', [
    ([(14, 6)], 0),
    ([(14, 6)] * 6, 3),                  # SDH: a controller with six matrices
    ([(13, 6), (14, 6)], 1),             # a matrix of another size before the configured one
])
def test_the_configured_matrix_is_taken_out_of_each_frame(twin, link, make_client, shapes, matrix):
    twin(shapes=shapes, contact_matrix=matrix)
    client = make_client(link, matrix=matrix)
    indices = [pattern_index(f) for f in read_frames(client, 10)]
    assert indices == list(range(indices[0], indices[0] + 10))
    assert client.shapes == shapes and (client.rows, client.cols) == (14, 6) and client.sensor.matrices == len(shapes)
    assert not client.stats().get('bad_frames')


def test_an_untouched_matrix_is_published_as_it_reads(twin, link, make_client):
    twin(matrices=2, contact_matrix=1)          # the cloth touches matrix 1; matrix 0 is configured
    client = make_client(link, matrix=0)
    for frame in read_frames(client, 5):
        assert frame.cells.shape == (14, 6) and frame.cells.max() <= TWIN.idle_max   # idle, not the pattern


def test_bad_frames_of_several_matrices_are_skipped_and_counted(twin, link, make_client):
    sim = twin(matrices=3, contact_matrix=2)
    client = make_client(link, matrix=2)
    before = read_frames(client, 3)
    sim.inject_corrupt_frame()
    sim.inject_truncated_frame()
    indices = [pattern_index(f) for f in before + read_frames(client, 10)]
    assert sorted(b - a for a, b in zip(indices, indices[1:])) == [1] * 11 + [3], indices
    stats = client.stats()
    assert stats['crc_errors'] == 1 and stats['truncated'] == 1, stats


@pytest.mark.parametrize('options, matrix, message', [
    ({'matrices': 0}, 0, 'reports 0 sensor matrices; matrix 0 is configured .*at least 1'),
    ({'matrices': 2}, 2, 'reports 2 sensor matrices; matrix 2 is configured .*at least 3'),
    ({'shapes': [(14, 6), (16, 16)]}, 1, r'16 x 16 matrix \(rows x cols\) as matrix 1, expected 14 x 6'),
])
def test_an_unexpected_matrix_count_or_size_is_a_clear_error(twin, link, make_client, options, matrix, message):
    twin(**options)
    with pytest.raises(dsa.DsaError, match=message):
        make_client(link, matrix=matrix).connect()
    logged = []
    client = make_client(link, matrix=matrix, backoff=(0.05, 0.1), log=lambda level, text: logged.append(text))
    assert client.read_frame(0.5) is None and not client.connected        # nothing made up
    assert client.stats()['failed_connects'] >= 1 and any(re.search(message, t) for t in logged), logged


def test_a_matrix_index_a_controller_cannot_have_is_refused():
    for matrix in (-1, 256):
        with pytest.raises(ValueError, match=r'DSA matrix must be 0..255 .*, got %d' % matrix):
            DsaClient('/dev/null', matrix=matrix)


def test_a_long_boot_with_garbage(twin, link):
    # SDH dsa.cpp: the controller boots for about 8 s and SDH waits 12 s; the default allows at least 12 s
    assert dsa.ROBOT['boot_timeout'] >= 12.0 and DsaClient(link).boot_timeout == dsa.ROBOT['boot_timeout']
    twin(boot_garbage=True, boot_seconds=12.0)
    started = time.monotonic()
    client = DsaClient(link, frame_rate=100)
    try:
        indices = [pattern_index(f) for f in read_frames(client, 3, timeout=25)]
        assert time.monotonic() - started >= 12.0 - 0.1
        assert indices == list(range(indices[0], indices[0] + 3))
        stats = client.stats()
        assert stats['garbage_bytes'] > 100 and stats['connects'] == 1 and not stats.get('failed_connects'), stats
    finally:
        client.close()


def test_a_wait_for_a_booting_controller_can_be_aborted(make_client):
    master, slave = os.openpty()     # a pty nobody answers on: a controller still booting
    try:
        client = make_client(os.ttyname(slave), boot_timeout=30.0, abort=lambda: True)
        started = time.monotonic()
        with pytest.raises(dsa.DsaTimeout, match='stopped waiting for the controller to boot'):
            client.connect()
        assert time.monotonic() - started < 2.0
    finally:
        os.close(master)
        os.close(slave)


@pytest.mark.parametrize('length', [dsa.MAX_PAYLOAD + 1, 0xFFFF])
def test_the_client_skips_a_frame_whose_length_is_beyond_any_frame(tmp_path, length):
    link = str(tmp_path / 'dsa')
    sim = DsaSimulator(boot_seconds=0.5)
    sim.start(link=link)
    client = DsaClient(link, frame_rate=100, boot_timeout=5.0)
    try:
        read_frames(client, 2)
        sim.inject_bytes(dsa.PREAMBLE + struct.pack('<BH', dsa.Command.DATA_FRAME, length))
        read_frames(client, 5)  # frames keep coming: the client neither waited for nor kept `length` bytes
        assert client.stats()['garbage_bytes'] >= 6
    finally:
        client.close()
        sim.stop()
