"""SimArmClient against the world's arm RPC server over a real TCP socket: the tip <-> hand conversion on both
sides, the world's box, and motion requests that are never resent."""
import collections
import json
import socket
import threading
import time

import numpy as np
import pytest

from plas_ros.hardware.arm import ArmError, rotation_matrix
from plas_ros.sim.arm import ClothArm, SimArmClient, SimArmServer, handle_line
from plas_ros.sim.cloth import ClothSim


@pytest.fixture
def served():
    cloth = ClothSim(seed=21)
    server = SimArmServer(ClothArm(cloth, threading.Lock()))
    port = server.start()
    client = SimArmClient('127.0.0.1', port, timeout=5.0)
    yield cloth, server, client, port
    client.close()
    server.stop()


def test_client_reads_the_tip_through_the_simulated_hand(served):
    cloth, _, client, _ = served
    np.testing.assert_allclose(client.tip_pose(), cloth.tip_pose(), atol=1e-12)  # pitch 0 at the start
    hand = client.call('hand_pose')
    offset = np.array(cloth.tip_pose()[:3]) - hand['position']
    np.testing.assert_allclose(offset, 0.13 * rotation_matrix(hand['orientation'])[:, 2], atol=1e-12)
    assert offset[2] < -0.12  # the world reports the hand, 0.13 m above its tip
    reading = client.tip_reading()
    assert reading.pitch == pytest.approx(0.0, abs=1e-9)


def test_client_moves_the_simulated_tip(served):
    cloth, _, client, _ = served
    start = cloth.tip_pose()
    result = client.move_tip(0.05, 0.002, 1.5)
    assert not result.clipped
    np.testing.assert_allclose(result.pose, cloth.tip_pose(), atol=1e-9)
    np.testing.assert_allclose(result.pose, start + [0.0, 0.05, 0.002, 1.5], atol=1e-9)
    wrench = client.wrench()
    assert wrench.shape == (6,) and np.all(np.isfinite(wrench))


def test_the_worlds_box_applies_to_the_tip(served):
    cloth, _, client, _ = served
    result = client.move_tip(0.0, 1.0)
    assert result.clipped and abs(cloth.tip_pose()[2] - 0.52) < 1e-9 and abs(result.pose[2] - 0.52) < 1e-9
    assert client.call('hand_pose')['position'][2] > 0.64
    assert not client.move_tip(0.1, -0.1).clipped  # the long simulated cloth: y beyond robot.yaml's 0.56 m ...
    assert client.safety_box.high[1] == cloth.config.safety_box.high[1] > 0.56  # ... the world's box


def test_the_world_models_the_tip_offset(served):
    """A driver that converts with another offset reads another tip, and its targets leave the sliding plane."""
    cloth, _, _, port = served
    wrong = SimArmClient('127.0.0.1', port, timeout=5.0, tip_offset=[0.0, 0.0, 0.0])
    try:
        assert abs(wrong.tip_pose()[2] - cloth.tip_pose()[2]) > 0.12
        before = cloth.tip_pose()
        with pytest.raises(ArmError, match='off the sliding plane'):
            wrong.move_tip(0.01, 0.0)
        np.testing.assert_array_equal(cloth.tip_pose(), before)
    finally:
        wrong.close()


def test_pitch_steps_are_bounded_and_bad_steps_refused_before_sending(served):
    cloth, _, client, _ = served
    before = cloth.tip_pose()
    with pytest.raises(ValueError, match='pitch step bound'):
        client.move_tip(0.0, 0.0, 5.5)
    with pytest.raises(ValueError, match="dz must be a finite number, got nan"):
        client.move_tip(0.0, float('nan'))
    np.testing.assert_array_equal(cloth.tip_pose(), before)
    for _ in range(7):
        result = client.move_tip(0.0, 0.0, -5.0)
    assert result.clipped and abs(cloth.tip_pose()[3] + 30.0) < 1e-9


def test_move_to_start_starts_the_next_cloth_episode(served):
    cloth, _, client, _ = served
    client.move_tip(0.1, 0.0)
    cloth.set_width(1.0)
    before = cloth.edge_offset_mm
    pose = client.move_to_start()
    assert cloth.edge_offset_mm != before  # a new episode
    np.testing.assert_allclose(pose[1:], [cloth.config.start_y_m, cloth.config.start_z_m, 0.0], atol=1e-9)
    assert cloth.width_mm == 1.0 and cloth.edge_held  # the gripper, not the arm, owns the width


def test_bad_requests_get_error_replies_and_the_link_survives(served):
    _, _, client, port = served
    hand = client.call('hand_pose')
    turned = [0.0, 0.0, 0.0, 1.0]
    with socket.create_connection(('127.0.0.1', port), timeout=5) as sock:
        reader = sock.makefile('rb')
        for params in ({'position': 'far', 'orientation': hand['orientation']},
                       {'position': [0.4, 0.0], 'orientation': hand['orientation']},
                       {'position': hand['position'], 'orientation': [0.0, 0.0, 0.0, 0.0]},
                       {'position': hand['position'], 'orientation': turned}):
            sock.sendall((json.dumps({'id': 1, 'method': 'move_hand', 'params': params}) + '\n').encode())
            reply = json.loads(reader.readline())
            assert 'error' in reply and 'result' not in reply, (params, reply)
        for line in (b'not json\n', b'[1, 2]\n', b'{"id": 3, "method": "fly"}\n',
                     b'{"id": 5, "method": "move_hand", "params": {"position": [NaN, 0, 0], '
                     b'"orientation": [0, 0, 0, 1]}}\n'):
            sock.sendall(line)
            reply = json.loads(reader.readline())
            assert 'error' in reply and 'result' not in reply, (line, reply)
        sock.sendall(b'{"id": 6, "method": "ping"}\n')
        assert json.loads(reader.readline()) == {'id': 6, 'result': 'pong'}
    with pytest.raises(ArmError, match='unknown method'):
        client.call('teleport')
    assert client.tip_pose().shape == (4,)  # the client's own link still works


def test_client_reconnects_after_the_server_restarts(served):
    cloth, server, client, port = served
    client.tip_pose()
    server.stop()
    with pytest.raises(ArmError, match='unreachable|failed'):
        client.tip_pose()
    again = SimArmServer(ClothArm(cloth, threading.Lock()))
    again.start('127.0.0.1', port)
    try:
        np.testing.assert_allclose(client.tip_pose(), cloth.tip_pose(), atol=1e-12)
        assert not client.move_tip(0.01, 0.0).clipped  # a move on the fresh link, after a restart
    finally:
        again.stop()


def test_unreachable_arm_is_a_clear_error():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    with pytest.raises(ArmError, match='unreachable'):
        SimArmClient('127.0.0.1', port, timeout=1.0).tip_pose()


class SlowServer:
    """The world's arm RPC (handle_line over a ClothArm) that answers motion requests late or never: it runs
    every request it receives, then `mode` 'late' replies after `delay` s and 'drop' closes the link."""

    def __init__(self, arm, mode, delay=1.0):
        self.arm, self.mode, self.delay = arm, mode, delay
        self.received = collections.Counter()
        self._listener = socket.create_server(('127.0.0.1', 0))
        self.port = self._listener.getsockname()[1]
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._stopped:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection):
        with connection, connection.makefile('rb') as reader:
            for line in reader:
                method = json.loads(line)['method']
                self.received[method] += 1
                reply = handle_line(self.arm, line)
                if method in ('move_hand', 'move_to_start'):
                    if self.mode == 'drop':
                        return
                    time.sleep(self.delay)
                try:
                    connection.sendall((json.dumps(reply) + '\n').encode())
                except OSError:
                    return

    def stop(self):
        self._stopped = True
        self._listener.close()


@pytest.mark.parametrize('mode', ['late', 'drop'])
def test_a_move_is_never_resent_on_a_late_or_lost_reply(mode):
    cloth = ClothSim(seed=4)
    server = SlowServer(ClothArm(cloth, threading.Lock()), mode, delay=1.0)
    client = SimArmClient('127.0.0.1', server.port, timeout=0.3)
    try:
        start = cloth.tip_pose()
        began = time.monotonic()
        expected = 'no reply to move_hand within 0.3 s' if mode == 'late' else 'no reply to move_hand'
        with pytest.raises(ArmError, match=expected + r'.*not resent, a move is not idempotent'):
            client.move_tip(0.05, 0.0)
        assert time.monotonic() - began < 1.0  # bounded by the client's timeout, not the server's delay
        assert server.received['move_hand'] == 1
        np.testing.assert_allclose(cloth.tip_pose()[1], start[1] + 0.05, atol=1e-9)  # moved once, not twice
        time.sleep(1.0)  # the late reply arrives on the abandoned link ...
        np.testing.assert_allclose(client.tip_pose(), cloth.tip_pose(), atol=1e-12)  # ... and is not taken as this
        with pytest.raises(ArmError, match='no reply to move_to_start'):
            client.move_to_start()
        assert server.received['move_to_start'] == 1
    finally:
        client.close()
        server.stop()


def test_the_force_sensor_hands_out_the_readings_taken_since_the_last_request_and_motion():
    now = [100.0]
    cloth = ClothSim(seed=22)
    arm = ClothArm(cloth, threading.Lock(), clock=lambda: now[0])
    period = 1.0 / cloth.config.sample_rate_hz
    now[0] += 10.5 * period
    assert len(arm.wrench_samples()) == 10              # ten sample instants passed
    assert arm.wrench_samples() == []                   # nothing new since
    now[0] += 3 * period
    arm.move_tip(0.01, 0.0)                             # the three taken during the move are never handed out
    now[0] += 2.2 * period
    samples = arm.wrench_samples()
    assert len(samples) == 2 and all(np.asarray(s).shape == (6,) for s in samples)
    assert samples[0].tolist() != samples[1].tolist()  # independent readings (their own noise)
    now[0] += 1000 * period
    assert len(arm.wrench_samples()) == 100             # MAX_WRENCH_SAMPLES, the newest


def test_the_client_fetches_the_batch_of_readings(served):
    _, _, client, _ = served
    time.sleep(0.02)
    readings = client.wrench_readings()
    assert readings and all(r.shape == (6,) and np.all(np.isfinite(r)) for r in readings)
