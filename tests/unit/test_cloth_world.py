"""The simulated world process: CLI parsing, the shared cloth behind the device hooks, and one full start."""
import os
import socket
import subprocess
import sys

import numpy as np

from plas_ros.sim.world import SimWorld, parse_args
from tests.helpers.common import free_port


def test_cli_ignores_ros_remapping_arguments():
    args = parse_args(['--wsg-port', '1234', '__name:=sim_world', '--arm-port', '99', '__log:=/tmp/x.log',
                       '--dsa-link', '/tmp/l', '--seed', '4'])
    assert (args.wsg_port, args.arm_port, args.dsa_link, args.seed) == (1234, 99, '/tmp/l', 4)


def test_an_empty_seed_is_the_jobs_default():
    from plas_ros.config import job_seed
    assert parse_args(['--seed=', '--job', 'deploy']).seed == job_seed('deploy')
    assert parse_args([]).seed == job_seed('drivers')


def test_device_hooks_share_one_cloth():
    world = SimWorld(seed=2)
    world.fingers.set_width(1.8)
    assert world.cloth.width_mm == 1.8
    assert world.fingers.part_width_mm() == world.cloth.part_width_mm() > 1.8
    frame = world.tactile_frame()
    assert frame.shape == (14, 6) and frame.dtype == np.uint16 and frame.max() > 100  # squeezed: contact
    world.arm.move_tip(0.0, 0.1)  # the arm leaves the edge: the same cloth loses it
    assert world.fingers.part_width_mm() is None and world.tactile_frame().max() < 40
    world.arm.move_to_start()
    assert world.cloth.edge_held and world.cloth.width_mm == 1.8


def test_world_process_serves_all_three_devices(tmp_path):
    from plas_ros.sim.arm import SimArmClient
    link = str(tmp_path / 'dsa')
    wsg_port, arm_port = free_port(), free_port()
    proc = subprocess.Popen([sys.executable, '-m', 'plas_ros.sim.world', '--wsg-port', str(wsg_port),
                             '--arm-port', str(arm_port), '--dsa-link', link, '--seed', '1', '__name:=w'],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        if 'sim world up' not in line:
            proc.wait(10)
            raise AssertionError('the world did not start:\n' + line + proc.stdout.read())
        assert os.path.islink(link) and os.path.exists(os.path.realpath(link))
        with socket.create_connection(('127.0.0.1', wsg_port), timeout=5):
            pass
        client = SimArmClient('127.0.0.1', arm_port)
        assert client.move_tip(0.01, 0.0).pose[1] > client.move_to_start()[1]
        client.close()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0 and 'sim world stopped' in out


def test_the_wsg_cloth_finger_serves_the_cloths_tactile_reading(tmp_path):
    """Over real TCP: the world's WSG twin starts unreferenced, and after homing its cloth finger (config/
    wsg_twin.yaml fingers.cloth_finger) reads the cloth the fingers squeeze, through the finger data command."""
    from plas_ros.hardware.wsg import Status, WsgClient, WsgError
    from plas_ros.sim.wsg import TWIN
    world = SimWorld(seed=2)
    wsg_port, _, _ = world.start(dsa_link=str(tmp_path / 'dsa'))
    client = WsgClient('127.0.0.1', wsg_port, timeout=2.0).start()
    try:
        assert client.wait_connected(10)
        try:
            client.move(4.0, 70.0)
            raise AssertionError('an unreferenced gripper moved')
        except WsgError as exc:
            assert exc.status == Status.NOT_INITIALIZED
        client.homing()
        client.move(4.0, 400.0)
        cloth_finger = TWIN.fingers.cloth_finger
        assert max(client.finger_data(cloth_finger)) < 40  # open: no contact
        client.move(1.8, 70.0)
        squeezed = np.array(client.finger_data(cloth_finger)).reshape(14, 6)
        assert (squeezed > 100).sum() >= 12
        other = np.array(client.finger_data(3 - cloth_finger)).reshape(14, 6)
        assert (other > 100).sum() >= 12  # the other finger presses the same cloth
    finally:
        client.close()
        world.stop()
