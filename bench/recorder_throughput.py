"""Recorder throughput: how many transitions per second the recorder node takes without a drop, as a
ratio against a bare rospy subscriber that only counts, both fed by the same publisher in the same run
through a private master. Also the commit cost of the writer against file size. Prints tables; no
pass/fail (the target is >= 200 transitions/s without a drop).

    python bench/recorder_throughput.py [--rates 100 200 ... 6400] [--seconds 3]
"""
import argparse
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from plas_ros.data.episodes import Step  # noqa: E402
from plas_ros.data.loader import read_file  # noqa: E402
from plas_ros.data.schema import episode_arrays  # noqa: E402
from plas_ros.data.writer import ReplayWriter  # noqa: E402
from plas_ros.env.layout import DATASET_FORMAT as CLOTH  # noqa: E402

EPISODE_STEPS = 70
COUNTER = '''
import sys, rospy
from plas_ros.msg import Transition
count = [0]
def on(msg): count[0] += 1
rospy.init_node('bare_counter')
rospy.Subscriber('/cloth/transition', Transition, on, queue_size=10000, buff_size=2 ** 24)
rospy.on_shutdown(lambda: open(sys.argv[1], 'w').write(str(count[0])))
rospy.spin()
'''


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start(args, log):
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO)


def stop(proc, sig=signal.SIGTERM):
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def transitions(count):
    """Pre-built messages (building them is not what is measured)."""
    from plas_ros.msg import Transition
    rng = np.random.default_rng(0)
    msgs = []
    for i in range(count):
        episode, step = divmod(i, EPISODE_STEPS)
        msg = Transition(episode=episode, step=step, observation=rng.random(89).tolist(),
                         action=rng.uniform(-1, 1, 2).tolist(), reward=0.01, next_observation=rng.random(89).tolist(),
                         gripper_width=2.0, tactile_raw=rng.integers(0, 3895, 84).tolist(),
                         force_raw=[1.0, 2.0, 3.0], tip_pose=[0.5, 0.1, 0.2, 10.0])
        msg.timeout = step == EPISODE_STEPS - 1
        msgs.append(msg)
    return msgs


def run_rate(rospy, pub, rate, seconds, workdir):
    """Publish at `rate` for about `seconds` into a recorder and a bare counter; returns their counts."""
    from plas_ros.msg import Transition  # noqa: F401  (the generated type must import before publishing)
    episodes = max(1, int(round(rate * seconds / EPISODE_STEPS)))
    msgs = transitions(episodes * EPISODE_STEPS)
    output = os.path.join(workdir, 'rate_%d.h5' % rate)
    count_file = os.path.join(workdir, 'count_%d' % rate)
    log = open(os.path.join(workdir, 'rate_%d.log' % rate), 'wb')
    recorder = start([sys.executable, os.path.join(REPO, 'scripts', 'recorder_node'), '__name:=bench_recorder',
                      '_output:=%s' % output, '_episodes:=%d' % episodes, '_append:=false'], log)
    counter = start([sys.executable, '-c', COUNTER, count_file], log)
    deadline = time.monotonic() + 30
    while pub.get_num_connections() < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    period = 1.0 / rate
    t0 = time.perf_counter()
    for i, msg in enumerate(msgs):
        msg.header.stamp = rospy.Time.now()
        pub.publish(msg)
        delay = t0 + (i + 1) * period - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    achieved = len(msgs) / (time.perf_counter() - t0)
    try:
        recorder.wait(max(10.0, seconds * 3))
    except subprocess.TimeoutExpired:  # it lost an episode end: stop it and count what it kept
        stop(recorder)
    time.sleep(0.5)
    stop(counter)
    log.close()
    recorded = len(read_file(output)[0]['rewards']) if os.path.exists(output) else 0
    counted = int(open(count_file).read()) if os.path.exists(count_file) else 0
    return len(msgs), achieved, recorded, counted


def throughput_table(rates, seconds):
    workdir = tempfile.mkdtemp(prefix='recorder_bench_')
    port = free_port()
    os.environ.update(ROS_MASTER_URI='http://127.0.0.1:%d' % port, ROS_IP='127.0.0.1', ROS_HOME=workdir)
    master = start(['rosmaster', '--core', '-p', str(port)], open(os.path.join(workdir, 'master.log'), 'wb'))
    time.sleep(1.0)
    import rospy

    from plas_ros.msg import Transition
    rospy.init_node('bench_publisher', disable_signals=True)
    pub = rospy.Publisher('/cloth/transition', Transition, queue_size=100000)
    best = {'recorder': 0, 'counter': 0}
    print('| offered rate (/s) | achieved (/s) | published | recorder kept | bare subscriber got |')
    print('|---|---|---|---|---|')
    try:
        for rate in rates:
            published, achieved, recorded, counted = run_rate(rospy, pub, rate, seconds, workdir)
            print('| %d | %.0f | %d | %d | %d |' % (rate, achieved, published, recorded, counted))
            if recorded == published:
                best['recorder'] = max(best['recorder'], achieved)
            if counted == published:
                best['counter'] = max(best['counter'], achieved)
    finally:
        rospy.signal_shutdown('bench done')
        stop(master)
        shutil.rmtree(workdir, ignore_errors=True)
    ratio = best['recorder'] / best['counter'] if best['counter'] else float('nan')
    print('\nhighest rate without a drop: recorder %.0f/s, bare subscriber %.0f/s, ratio %.2f (target: recorder '
          '>= 200/s)' % (best['recorder'], best['counter'], ratio))


def hdf5_straight_to_disk(path, arrays, attrs):
    """The commit before the in-memory image (HDF5 writing the temporary itself), for the cost comparison."""
    import h5py
    tmp = path + '.direct'
    with h5py.File(tmp, 'w') as f:
        for key, value in attrs.items():
            f.attrs[key] = value
        for key, value in arrays.items():
            f.create_dataset(key, data=value, fletcher32=len(value) > 0)
    fd = os.open(tmp, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    os.replace(tmp, path)


def best_of(repeats, call):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return min(times)


def commit_table(sizes, repeats=3):
    """Commit time of the atomic-replace writer (image built in memory, plain writes) against HDF5 writing
    the same file straight to disk (the commit before, which a full disk could crash) and against an
    in-place HDF5 append (the unsafe alternative). Best of `repeats`, fsync on."""
    import h5py
    rng = np.random.default_rng(0)
    steps = [Step(0, k, rng.random(89), rng.uniform(-1, 1, 2), 0.01, rng.random(89), timeout=k == EPISODE_STEPS - 1,
                  tactile_raw=rng.integers(0, 3895, 84), force_raw=rng.random(3), tip_pose=rng.random(4))
             for k in range(EPISODE_STEPS)]
    episode = episode_arrays(steps)
    workdir = tempfile.mkdtemp(prefix='commit_bench_')
    print('\n| rows in file | file MB | commit: in-memory image + writes (ms) | HDF5 straight to disk (ms) | ratio '
          '| in-place append + flush (ms) |')
    print('|---|---|---|---|---|---|')
    try:
        replay = ReplayWriter(os.path.join(workdir, 'a.h5'), CLOTH, append=False)
        inplace = h5py.File(os.path.join(workdir, 'b.h5'), 'w')
        for key, value in episode.items():
            inplace.create_dataset(key, data=value, maxshape=(None,) + value.shape[1:], chunks=True)
        for size in sizes:
            while replay.transitions + EPISODE_STEPS < size:
                replay.add_episode(episode)
            atomic = best_of(repeats, functools.partial(replay.write_episode, episode))
            arrays, attrs = read_file(replay.path)
            direct = best_of(repeats, functools.partial(hdf5_straight_to_disk, os.path.join(workdir, 'c.h5'), arrays,
                                                        attrs))
            n = inplace['rewards'].shape[0]
            t = time.perf_counter()
            for key, value in episode.items():
                inplace[key].resize(max(n + EPISODE_STEPS, size), axis=0)
                inplace[key][-EPISODE_STEPS:] = value
            inplace.flush()
            os.fsync(inplace.id.get_vfd_handle())
            append = time.perf_counter() - t
            print('| %d | %.1f | %.1f | %.1f | %.2f | %.1f |' % (
                replay.transitions, os.path.getsize(replay.path) / 1e6, atomic * 1e3, direct * 1e3, atomic / direct,
                append * 1e3))
        inplace.close()
        replay.close()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rates', type=int, nargs='+', default=[100, 200, 400, 800, 1600, 3200, 6400])
    parser.add_argument('--seconds', type=float, default=3.0)
    parser.add_argument('--sizes', type=int, nargs='+', default=[700, 7000, 35000, 105000])
    parser.add_argument('--skip-ros', action='store_true', help='only the commit-cost table')
    args = parser.parse_args()
    if not args.skip_ros:
        throughput_table(args.rates, args.seconds)
    commit_table(args.sizes)


if __name__ == '__main__':
    main()
