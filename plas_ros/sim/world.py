"""The simulated world: one process hosting the cloth simulator and the three simulated devices.

- the WSG gripper server on <bind_host>:<wsg_port> (config/wsg_twin.yaml link: loopback) (its fingers drive the
  cloth simulator's width; its cloth finger serves the cloth's tactile reading through the finger commands),
- the DSA tactile controller on a pseudo-terminal, linked at <dsa_link> (its frames come from the cloth),
- the arm as line-delimited JSON RPC on <bind_host>:<arm_port> (config/sim_arm.yaml rpc: loopback) (moves the
  cloth simulator's tip).

All three share one ClothSim under one lock. The driver nodes connect to them exactly as they would to
the real devices.

    python -m plas_ros.sim.world --wsg-port P --arm-port Q --dsa-link PATH [--seed S | --job JOB]

Arguments of the form `name:=value` (ROS remappings such as __name:= and __log:= that roslaunch adds)
are ignored, so roslaunch can start this as a node.
"""
import argparse
import sys
import threading

from plas_ros.config import ConfigError, caller_path, job_seed
from plas_ros.sim.arm import ClothArm, SimArmServer
from plas_ros.sim.cli import StopSignals, parse_without_ros_remappings
from plas_ros.sim.cloth import ClothSim, load_cloth_config


class LockedFingers:
    """What the WSG simulator drives: the cloth simulator's finger width, under the world's lock."""

    def __init__(self, cloth, lock):
        self._cloth = cloth
        self._lock = lock

    def set_width(self, width_mm):
        with self._lock:
            self._cloth.set_width(width_mm)

    def part_width_mm(self):
        with self._lock:
            return self._cloth.part_width_mm()


class SimWorld:
    """ClothSim + WSG server + DSA pty + arm RPC server, started and stopped together."""

    def __init__(self, seed=None, config=None):
        self.cloth = ClothSim(config or load_cloth_config(), seed=seed)
        self.lock = threading.RLock()
        self.fingers = LockedFingers(self.cloth, self.lock)
        self.arm = ClothArm(self.cloth, self.lock)
        self.wsg = None
        self.dsa = None
        self.arm_server = None
        self.wsg_port = None
        self.arm_port = None
        self.dsa_path = None

    def tactile_frame(self):
        """The frame source of the DSA simulator and of the WSG's tactile finger: one noisy reading of the finger."""
        with self.lock:
            return self.cloth.tactile_raw()

    def start(self, wsg_port=0, arm_port=0, dsa_link=None):
        """Start all three devices; returns (wsg_port, arm_port, dsa_path)."""
        from plas_ros.sim.dsa.pty import DsaSimulator  # the device twins are imported only when a world runs
        from plas_ros.sim.wsg import WsgSimulator
        try:
            self.arm_server = SimArmServer(self.arm)
            self.arm_port = self.arm_server.start(port=arm_port)
            # The gripper owns the finger width: start it where the cloth model starts (around the edge).
            # finger 1 or 2 (config/wsg_twin.yaml) serves the same reading through the finger commands.
            self.wsg = WsgSimulator(fingers=self.fingers, initial_width=self.cloth.config.start_width_mm,
                                    frame_source=self.tactile_frame)
            self.wsg_port = self.wsg.start(port=wsg_port)
            self.dsa = DsaSimulator(frame_source=self.tactile_frame)
            self.dsa_path = self.dsa.start(link=dsa_link)
        except Exception:
            self.stop()
            raise
        return self.wsg_port, self.arm_port, self.dsa_path

    def stop(self):
        for device in (self.dsa, self.wsg, self.arm_server):
            if device is not None:
                device.stop()
        self.dsa = self.wsg = self.arm_server = None


def parse_args(argv):
    """Parse the CLI, dropping ROS remapping arguments (anything containing ':=')."""
    parser = argparse.ArgumentParser(prog='python -m plas_ros.sim.world', description=__doc__.split('\n\n')[0])
    parser.add_argument('--wsg-port', type=int, default=0, help='TCP port of the WSG server (0: any free port)')
    parser.add_argument('--arm-port', type=int, default=0, help='TCP port of the arm RPC (0: any free port)')
    parser.add_argument('--dsa-link', default=None, help='symlink to create to the DSA pseudo-terminal')
    parser.add_argument('--seed', default='', help='seed of the cloth episodes (empty: config/run.yaml seeds of '
                        '--job)')
    parser.add_argument('--job', default='drivers', help='the job whose default seed an empty --seed means')
    parser.add_argument('--config', default=None, help='cloth simulator config (default config/sim.yaml)')
    args = parse_without_ros_remappings(parser, argv)
    try:
        args.seed = job_seed(args.job, args.seed)
    except ConfigError as exc:
        parser.error(str(exc))
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    world = SimWorld(seed=args.seed, config=load_cloth_config(args.config))
    stop_signals = StopSignals()
    wsg_port, arm_port, dsa_path = world.start(args.wsg_port, args.arm_port, caller_path(args.dsa_link))
    print('sim world up: wsg %s:%d, arm %s:%d, dsa %s (link %s), seed %s'
          % (world.wsg.link.bind_host, wsg_port, world.arm_server.limits.bind_host, arm_port, dsa_path, args.dsa_link,
             args.seed), flush=True)
    try:
        stop_signals.wait()
    finally:
        world.stop()
        print('sim world stopped', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
