"""python -m plas_ros.sim.dsa [--link PATH] [--boot-garbage] [--boot-seconds S] [--rows 14 --cols 6]
[--reopen-delay S]

Runs the simulated DSACON32 controller on a pseudo-terminal and prints its path; SIGUSR1 closes the pty and
reopens it after --reopen-delay s, SIGUSR2 corrupts the next data frame. It streams `pattern_frame(n)`, a
deterministic pattern for tests.
"""
import argparse
import signal
import sys
import threading

from plas_ros.hardware.dsa import protocol as dsa
from plas_ros.sim.cli import StopSignals, parse_without_ros_remappings
from plas_ros.sim.dsa.pty import DsaSimulator


def parse_args(argv):
    parser = argparse.ArgumentParser(prog='python -m plas_ros.sim.dsa',
                                     description='The simulated DSACON32 tactile controller on a pseudo-terminal.')
    parser.add_argument('--link', default=None, help='symlink to create to the pseudo-terminal')
    parser.add_argument('--boot-garbage', action='store_true', help='emit garbage for --boot-seconds first')
    parser.add_argument('--boot-seconds', type=float, default=1.0)
    parser.add_argument('--rows', type=int, default=dsa.ROWS)
    parser.add_argument('--cols', type=int, default=dsa.COLS)
    parser.add_argument('--reopen-delay', type=float, default=1.0,
                        help='seconds the pty stays closed after SIGUSR1')
    return parse_without_ros_remappings(parser, argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    sim = DsaSimulator(rows=args.rows, cols=args.cols, boot_seconds=args.boot_seconds)
    stop_signals = StopSignals()

    def reopen(*_):
        threading.Thread(target=lambda: print('pty reopened at %s' % sim.reopen_pty(args.reopen_delay),
                                              flush=True), daemon=True).start()
    signal.signal(signal.SIGUSR1, reopen)
    signal.signal(signal.SIGUSR2, lambda *_: sim.inject_corrupt_frame())
    path = sim.start(link=args.link, boot_garbage=args.boot_garbage)
    print('DSA simulator on %s%s' % (path, ' (link %s)' % args.link if args.link else ''), flush=True)
    try:
        stop_signals.wait()
    finally:
        sim.stop()
        print('DSA simulator stopped (%s)' % ', '.join('%s %d' % kv for kv in sim.counts.items()), flush=True)
    return 0
