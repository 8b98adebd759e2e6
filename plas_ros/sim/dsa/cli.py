"""python -m plas_ros.sim.dsa [--link PATH] [--boot-garbage] [--boot-seconds S] [--rows 14 --cols 6]
[--matrices N --contact-matrix I] [--loop-reply echo|error_code_prefixed] [--controller-info-size 18|19]
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
from plas_ros.sim.dsa.device import TWIN
from plas_ros.sim.dsa.pty import DsaSimulator


def parse_args(argv):
    parser = argparse.ArgumentParser(prog='python -m plas_ros.sim.dsa',
                                     description='The simulated DSACON32 tactile controller on a pseudo-terminal.')
    parser.add_argument('--link', default=None, help='symlink to create to the pseudo-terminal')
    parser.add_argument('--boot-garbage', action='store_true',
                        help='boot at each opening: stray bytes for --boot-seconds, no answer until then')
    parser.add_argument('--boot-seconds', type=float, default=TWIN.boot_seconds)
    parser.add_argument('--rows', type=int, default=dsa.ROWS, help='cells of each matrix along the finger')
    parser.add_argument('--cols', type=int, default=dsa.COLS, help='cells of each matrix across the finger')
    parser.add_argument('--matrices', type=int, default=TWIN.matrices, help='sensor matrices on the controller')
    parser.add_argument('--contact-matrix', type=int, default=TWIN.contact_matrix,
                        help='the matrix that streams the pattern; the others read idle')
    parser.add_argument('--loop-reply', choices=dsa.LOOP_REPLY_FORMS, default=TWIN.loop_reply,
                        help='form of the (unverified) loop reply')
    parser.add_argument('--controller-info-size', type=int, choices=dsa.CONTROLLER_INFO_SIZES,
                        default=TWIN.controller_info_size)
    parser.add_argument('--reopen-delay', type=float, default=TWIN.reopen_delay,
                        help='seconds the pty stays closed after SIGUSR1')
    return parse_without_ros_remappings(parser, argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        sim = DsaSimulator(rows=args.rows, cols=args.cols, matrices=args.matrices, contact_matrix=args.contact_matrix,
                           boot_seconds=args.boot_seconds, loop_reply=args.loop_reply,
                           controller_info_size=args.controller_info_size)
    except ValueError as exc:
        raise SystemExit('python -m plas_ros.sim.dsa: %s' % exc) from None
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
