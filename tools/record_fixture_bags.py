#!/usr/bin/env python3
"""Regenerate the replay tests' fixture bag from the simulated stack (doc/replay.md).

    source env.sh && python tools/record_fixture_bags.py      # from the repository root

Starts a private master, `rosbag record` of the raw driver topics and the /cloth/* topics (started and
subscribed BEFORE anything publishes: record misses what is published while it subscribes), then
`roslaunch plas_ros collect.launch` with the simulated devices, which ends by itself after --episodes
complete episodes. The bag is closed with SIGINT (as Ctrl-C would) and written to --out only once complete.
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(REPO_ROOT, 'tests', 'fixtures', 'bags', 'sim_collect.bag')
TOPICS = ('/dsa/frame', '/dsa/connected', '/arm/wrench', '/arm/tip_pose', '/wsg/state',
          '/cloth/observation', '/cloth/action', '/cloth/transition')
RECORD_NODE = '/fixture_record'


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    sys.exit('error: timed out after %.0f s waiting for %s' % (timeout, what))


def record_subscribed():
    import rosgraph
    try:
        _, subscribers, _ = rosgraph.Master('/fixture_tool').getSystemState()
    except OSError:
        return False
    mine = {topic for topic, nodes in subscribers if RECORD_NODE in nodes}
    return set(TOPICS) <= mine


def check_closed(path, work):
    """Exit with an error unless `path` is a complete, indexed bag holding transitions."""
    import rosbag
    try:
        with rosbag.Bag(path) as bag:
            count = bag.get_message_count(topic_filters=['/cloth/transition'])
    except (OSError, rosbag.ROSBagException) as exc:
        sys.exit('error: rosbag record did not close %s (%s); logs in %s' % (path, exc, work))
    if not count:
        sys.exit('error: %s holds no /cloth/transition; logs in %s' % (path, work))


def start(args, env, log_dir, name):
    log = open(os.path.join(log_dir, name + '.log'), 'wb')
    return subprocess.Popen(args, env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def stop(proc, sig=signal.SIGTERM, timeout=20.0):
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    return proc.returncode


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default=DEFAULT_OUT, help='bag to write (default: %(default)s)')
    parser.add_argument('--episodes', type=int, default=2, help='complete episodes to collect')
    parser.add_argument('--policy', default='expert', help='behaviour policy of collect.launch')
    parser.add_argument('--seed', type=int, default=4, help='seed of the sim world and the behaviour policy')
    parser.add_argument('--keep-logs', action='store_true', help='leave the temporary folder with the logs')
    args = parser.parse_args(argv)

    work = tempfile.mkdtemp(prefix='plas_ros_fixture_')
    port = free_port()
    env = dict(os.environ, ROS_MASTER_URI='http://127.0.0.1:%d' % port, ROS_IP='127.0.0.1', ROS_HOME=work,
               ROS_LOG_DIR=os.path.join(work, 'log'), PYTHONUNBUFFERED='1')
    env.pop('ROS_HOSTNAME', None)
    os.environ.update({k: env[k] for k in ('ROS_MASTER_URI', 'ROS_IP', 'ROS_HOME')})
    partial = os.path.join(work, 'fixture.bag')
    procs = []
    done = False
    try:
        procs.append(start(['rosmaster', '--core', '-p', str(port)], env, work, 'rosmaster'))
        wait_until(lambda: socket.socket().connect_ex(('127.0.0.1', port)) == 0, 15, 'the master')
        record = start(['rosbag', 'record', '--bz2', '-O', partial, '__name:=' + RECORD_NODE[1:]] + list(TOPICS),
                       env, work, 'record')
        procs.append(record)
        wait_until(record_subscribed, 30, 'rosbag record to subscribe')
        launch = start(['roslaunch', 'plas_ros', 'collect.launch', 'episodes:=%d' % args.episodes,
                        'policy:=%s' % args.policy, 'seed:=%d' % args.seed,
                        'output:=%s' % os.path.join(work, 'collected.h5'), 'sim_wsg_port:=%d' % free_port(),
                        'sim_arm_port:=%d' % free_port(), 'sim_dsa_link:=%s' % os.path.join(work, 'dsa')],
                       env, work, 'collect')
        procs.append(launch)
        if launch.wait(600) != 0:
            sys.exit('error: collect.launch failed (exit %s); logs in %s' % (launch.returncode, work))
        stop(record, signal.SIGINT)  # its exit code varies with where the signal lands; the bag is what counts
        check_closed(partial, work)
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        shutil.move(partial, args.out)
        done = True
    finally:
        for proc in reversed(procs):
            stop(proc)
        if done and not args.keep_logs:  # on a failure the logs stay for the error message's folder
            shutil.rmtree(work, ignore_errors=True)
    print(subprocess.run(['rosbag', 'info', args.out], capture_output=True, text=True, env=env).stdout)
    return 0


if __name__ == '__main__':
    sys.exit(main())
