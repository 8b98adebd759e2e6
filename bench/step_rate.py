"""Steps per second of the ROS loop in collection, from the timestamps the recorder wrote, beside the authors' ~30 Hz.

Runs a real collection (a private rosmaster, `roslaunch plas_ros collect.launch` in simulation: sim world, the
three drivers, cloth_env, behaviour_policy, recorder), then reads `infos/timestamps` and `infos/episode_ids` of
the HDF5 file it wrote (or of --file, a file recorded elsewhere). The rate is that of the loop: consecutive
transitions of one episode (reset and grasp calibration between episodes are not steps). Prints the rate, the
median and p90 step period, and exits 1 when the rate is below the authors' 30 steps/s (their sawyer_control
`UPDATE_HZ`; doc/env.md, *Where the numbers come from*).

    python bench/step_rate.py [--episodes 3] [--policy expert] [--seed 5] [--file FILE.h5]
"""
import argparse
import os
import shutil
import sys
import tempfile

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from tests.helpers.common import free_port  # noqa: E402
from tests.helpers.ros import ManagedProcess, digest, roslaunch_command, start_master  # noqa: E402

AUTHORS_HZ = 30.0   # the authors' loop rate (sawyer_control base_config UPDATE_HZ)


def step_periods(episode_ids, timestamps):
    """Seconds between consecutive transitions of the same episode (finite stamps only)."""
    episode_ids, timestamps = np.asarray(episode_ids), np.asarray(timestamps, np.float64)
    same_episode = episode_ids[1:] == episode_ids[:-1]
    periods = np.diff(timestamps)[same_episode]
    return periods[np.isfinite(periods)]


def read_periods(path):
    import h5py
    with h5py.File(path, 'r') as f:
        return step_periods(f['infos/episode_ids'][:], f['infos/timestamps'][:])


def collect(args, work_dir):
    """Run collect.launch under a private master; the path of the file it recorded."""
    port = free_port()
    os.environ.update({'ROS_MASTER_URI': 'http://127.0.0.1:%d' % port, 'ROS_IP': '127.0.0.1',
                       'ROS_HOME': work_dir, 'ROS_LOG_DIR': os.path.join(work_dir, 'log')})
    output = os.path.join(work_dir, 'collected.h5')
    master = start_master(port, work_dir)
    launch = ManagedProcess(roslaunch_command('collect.launch', episodes=args.episodes, policy=args.policy,
                                              seed=args.seed, output=output, sim_wsg_port=free_port(),
                                              sim_arm_port=free_port(), sim_dsa_link=os.path.join(work_dir, 'dsa')),
                            work_dir, 'collect')
    try:
        launch.wait(args.timeout)
    finally:
        launch.stop()
        master.stop()
    if not os.path.exists(output):
        raise SystemExit('step_rate: collect.launch wrote no file; its output:\n' + digest(launch.output))
    return output


def report(periods, source):
    if periods.size == 0:
        print('step_rate: %s holds no two consecutive steps of one episode' % source)
        return 1
    rate = periods.size / periods.sum()
    print('\n%-44s %10s' % ('steps per second (%s)' % source, 'steps/s'))
    print('%-44s %10.1f' % ('this loop, mean over %d step periods' % periods.size, rate))
    print('%-44s %10.1f' % ("the authors' loop (UPDATE_HZ)", AUTHORS_HZ))
    print('step period: median %.1f ms, p90 %.1f ms, max %.1f ms'
          % tuple(1e3 * np.percentile(periods, q) for q in (50, 90, 100)))
    verdict = 'at or above' if rate >= AUTHORS_HZ else 'BELOW'
    print('%.1f steps/s is %s the authors\' %.0f Hz (ratio %.2f)' % (rate, verdict, AUTHORS_HZ, rate / AUTHORS_HZ))
    return 0 if rate >= AUTHORS_HZ else 1


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--episodes', type=int, default=3, help='episodes to collect')
    parser.add_argument('--policy', default='expert', help="collect.launch's policy (expert: long episodes)")
    parser.add_argument('--seed', type=int, default=5)
    parser.add_argument('--timeout', type=float, default=300.0, help='s the collection may take')
    parser.add_argument('--file', help='measure this recorded file instead of collecting one')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.file:
        return report(read_periods(args.file), os.path.basename(args.file))
    work_dir = tempfile.mkdtemp(prefix='step_rate_')
    try:
        print('collecting %d %s episode(s) in simulation ...' % (args.episodes, args.policy), flush=True)
        return report(read_periods(collect(args, work_dir)), 'collect.launch, simulation')
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
