"""python -m plas_ros.sim.wsg: the simulated WSG 32 on its own, on a TCP port (printed at start).

    python -m plas_ros.sim.wsg --port P [--host H] [--part-width MM] [--referenced] [--no-disconnect-error]

Its options default to config/wsg_twin.yaml (or --config FILE); ROS remapping arguments (name:=value) are
ignored, so roslaunch can start it.
"""
import argparse
import logging
import sys

from plas_ros.sim.cli import StopSignals, parse_without_ros_remappings
from plas_ros.sim.wsg.device import StaticPart, describe, load_twin_config
from plas_ros.sim.wsg.server import WsgSimulator


def parse_args(argv):
    parser = argparse.ArgumentParser(prog='python -m plas_ros.sim.wsg', description=__doc__.split('\n\n')[0])
    parser.add_argument('--host', default=None, help='address to listen on (default: the config link.bind_host)')
    parser.add_argument('--port', type=int, default=0, help='TCP port (0: any free port, printed at start)')
    parser.add_argument('--part-width', type=float, default=None,
                        help='width (mm) of a part between the fingers for grasps (default: no part)')
    parser.add_argument('--config', default=None, help='twin options (default config/wsg_twin.yaml)')
    parser.add_argument('--referenced', action='store_true', help='referenced at power-up (default: the config)')
    parser.add_argument('--no-disconnect-error', action='store_true',
                        help='no fast stop when the link drops unannounced (default: the config)')
    return parse_without_ros_remappings(parser, argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(name)s: %(message)s')
    config = load_twin_config(args.config)
    if args.referenced:
        config = config.with_options(referenced_at_power_up=True)
    if args.no_disconnect_error:
        config = config.with_options(error_on_tcp_disconnect=False)
    simulator = WsgSimulator(fingers=StaticPart(args.part_width), config=config)
    stop_signals = StopSignals()
    port = simulator.start(args.host, args.port)
    host = config.link.bind_host if args.host is None else args.host
    print('WSG simulator listening on %s:%d (%s)' % (host, port, describe(config)), flush=True)
    try:
        stop_signals.wait()
    finally:
        simulator.stop()
    return 0


if __name__ == '__main__':
    sys.exit(main())
