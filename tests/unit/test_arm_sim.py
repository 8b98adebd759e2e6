"""SimArmClient against the world's arm RPC server over a real TCP socket."""
import json
import socket
import threading

import numpy as np
import pytest

from plas_ros.hardware.arm import ArmError
from plas_ros.sim.arm import ClothArm, SimArmClient, SimArmServer
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


def test_client_reads_and_moves_the_simulated_tip(served):
    cloth, _, client, _ = served
    np.testing.assert_allclose(client.tip_pose(), cloth.tip_pose())
    result = client.move_tip(0.05, 0.002, 1.5)
    assert not result.clipped
    np.testing.assert_allclose(result.pose, cloth.tip_pose())
    np.testing.assert_allclose(result.pose[1:], [cloth.config.start_y_m + 0.05, cloth.config.start_z_m + 0.002,
                                                 1.5])
    wrench = client.wrench()
    assert wrench.shape == (6,) and np.all(np.isfinite(wrench))
    assert client.move_tip(0.0, 1.0).clipped


def test_move_to_start_starts_the_next_cloth_episode(served):
    cloth, _, client, _ = served
    client.move_tip(0.1, 0.0)
    cloth.set_width(1.0)
    before = cloth.edge_offset_mm
    pose = client.move_to_start()
    assert cloth.edge_offset_mm != before  # a new episode
    np.testing.assert_allclose(pose[1:3], [cloth.config.start_y_m, cloth.config.start_z_m])
    assert cloth.width_mm == 1.0 and cloth.edge_held  # the gripper, not the arm, owns the width


def test_bad_requests_get_error_replies_and_the_link_survives(served):
    _, _, client, port = served
    with socket.create_connection(('127.0.0.1', port), timeout=5) as sock:
        reader = sock.makefile('rb')
        for line in (b'not json\n', b'[1, 2]\n', b'{"id": 3, "method": "fly"}\n',
                     b'{"id": 4, "method": "move_tip", "params": {"dy": "far", "dz": 0}}\n',
                     b'{"id": 5, "method": "move_tip", "params": {"dy": NaN, "dz": 0}}\n'):
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
        np.testing.assert_allclose(client.tip_pose(), cloth.tip_pose())
    finally:
        again.stop()


def test_unreachable_arm_is_a_clear_error():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    with pytest.raises(ArmError, match='unreachable'):
        SimArmClient('127.0.0.1', port, timeout=1.0).tip_pose()
