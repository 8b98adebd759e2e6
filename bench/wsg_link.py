"""WSG link figures against the simulated gripper over real TCP (no pass/fail):

- request round trip of WsgClient.loop() against a bare blocking socket sending the same loop frame and
  reading its reply (the peer measured in the same run, same simulator), as a ratio;
- how closely a move's duration follows width/speed (fingers moving in real time), as a ratio.

    python bench/wsg_link.py [--requests 2000]
"""
import argparse
import contextlib
import os
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from plas_ros.hardware.wsg import Command, FrameParser, WsgClient, encode_frame  # noqa: E402
from plas_ros.sim.wsg import TWIN, WsgSimulator  # noqa: E402


def bare_round_trips(port, count):
    frame = encode_frame(Command.LOOP, b'0123456789')
    parser = FrameParser()
    times = []
    with socket.create_connection(('127.0.0.1', port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(count):
            start = time.perf_counter()
            sock.sendall(frame)
            while not parser.feed(sock.recv(4096)):
                pass
            times.append(time.perf_counter() - start)
    return times


@contextlib.contextmanager
def connected_client(port):
    client = WsgClient('127.0.0.1', port).start()
    try:
        client.wait_connected(5.0)
        yield client
    finally:
        client.close()


def client_round_trips(port, count):
    times = []
    with connected_client(port) as client:
        for _ in range(count):
            start = time.perf_counter()
            client.loop(b'0123456789')
            times.append(time.perf_counter() - start)
    return times


def move_ratios(port, moves):
    ratios = []
    with connected_client(port) as client:
        client.move(40.0, 400.0)
        for width, speed in moves:
            start = time.perf_counter()
            before = client.width()
            client.move(width, speed)
            ratios.append((time.perf_counter() - start) / (abs(width - before) / speed))
    return ratios


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--requests', type=int, default=2000)
    args = parser.parse_args()
    # link figures only: no homing first, and the bare sockets may close without announcing it
    sim = WsgSimulator(config=TWIN.with_options(referenced_at_power_up=True, error_on_tcp_disconnect=False))
    port = sim.start()
    try:
        # interleave the two in blocks so a busy neighbour hits both alike
        bare, client = [], []
        block = max(1, args.requests // 10)
        for _ in range(10):
            bare += bare_round_trips(port, block)
            client += client_round_trips(port, block)
        moves = move_ratios(port, [(36.0, 20.0), (40.0, 70.0), (10.0, 100.0), (40.0, 300.0)])
    finally:
        sim.stop()
    b, c = statistics.median(bare) * 1e6, statistics.median(client) * 1e6
    print('loop round trip, median of %d: bare socket %.0f us, WsgClient %.0f us, ratio %.2f'
          % (len(bare), b, c, c / b))
    print('move duration / (distance/speed): %s' % ', '.join('%.3f' % r for r in moves))


if __name__ == '__main__':
    main()
