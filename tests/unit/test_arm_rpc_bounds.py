"""The simulated arm's JSON RPC holds nothing unbounded, over real TCP (config/sim_arm.yaml rpc): an oversize line
gets an error reply and the connection is closed without reading it all, a line dribbled without its end is
closed after idle_timeout, clients beyond max_clients are turned away, and the driver's client refuses an
oversize reply line."""
import dataclasses
import json
import socket
import threading

import pytest

from plas_ros.hardware.arm import ArmError
from plas_ros.sim.arm import RPC, ClothArm, SimArmClient, SimArmServer
from plas_ros.sim.cloth import ClothSim
from tests.helpers.wsg import WAIT

LIMITS = dataclasses.replace(RPC, max_line_bytes=256, max_clients=2, idle_timeout=0.5)


@pytest.fixture
def server():
    served = SimArmServer(ClothArm(ClothSim(seed=0), threading.Lock()), limits=LIMITS)
    served.port = served.start(port=0)
    yield served
    served.stop()


def connect(port):
    sock = socket.create_connection(('127.0.0.1', port), timeout=WAIT)
    return sock, sock.makefile('rb')


def reply_then_closed(sock, reader):
    """The one reply line, then EOF (the server closed the connection)."""
    reply = json.loads(reader.readline().decode())
    assert reader.readline() == b''
    return reply


def test_an_oversize_request_line_is_refused_and_the_connection_closed(server):
    sock, reader = connect(server.port)
    with sock:
        sock.sendall(b'{"id": 1, "method": "ping", "params": {"pad": "' + b'x' * 10000)
        reply = reply_then_closed(sock, reader)
    assert 'longer than 256 bytes' in reply['error']
    sock, reader = connect(server.port)  # the server itself is fine
    with sock:
        sock.sendall(b'{"id": 2, "method": "ping"}\n')
        assert json.loads(reader.readline().decode())['id'] == 2


def test_a_line_that_never_ends_is_closed_after_the_idle_timeout(server):
    sock, reader = connect(server.port)
    with sock:
        sock.sendall(b'{"id": 1, "meth')  # and nothing more
        assert reader.readline() == b''   # closed by the server (bounded by WAIT)


def test_clients_beyond_max_clients_are_turned_away(server):
    held = [connect(server.port) for _ in range(LIMITS.max_clients)]
    for sock, reader in held:  # each one is served
        sock.sendall(b'{"id": 1, "method": "ping"}\n')
        assert 'result' in json.loads(reader.readline().decode())
    sock, reader = connect(server.port)
    with sock:
        assert 'busy' in reply_then_closed(sock, reader)['error']
    for sock, _ in held:
        sock.close()


def test_the_client_refuses_a_reply_line_beyond_the_limit():
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(2)

    def answer_with_a_huge_line():
        for _ in range(2):  # a read is tried once more on a fresh connection
            conn, _ = listener.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(b'{"id": 1, "result": "' + b'x' * (4 * RPC.max_line_bytes) + b'"}\n')
    thread = threading.Thread(target=answer_with_a_huge_line, daemon=True)
    thread.start()
    client = SimArmClient(port=listener.getsockname()[1], timeout=WAIT)
    with pytest.raises(ArmError, match='longer than %d bytes' % RPC.max_line_bytes):
        client.call('ping')
    client.close()
    thread.join(WAIT)
    listener.close()
