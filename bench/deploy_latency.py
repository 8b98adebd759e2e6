"""Latency of the deployed policy over ROS, against a bare rospy echo node measured in the same run.

In one run: a private rosmaster; a bare echo node (subscribes an observation topic, publishes an action
with the same ids, same transport settings, no work; its topics remapped under /bench/echo) and the
inference node with a checkpoint (trained here for a few steps with `python -m plas_ros.train`, or
--checkpoint DIR), side by side. At every tick (--rate Hz) each node gets one observation in turn and
answers it before the other is asked, so both are measured under the same background load (the machine
is shared) without competing with each other. Latency = observation published -> action received here.
The policy forward alone (`load_policy(DIR).act`) and the whole safety core (`InferenceCore.decide`)
are timed in-process.
Prints median / p99 / p99.9 and what the inference node adds at p99 over the echo baseline (target < 1 ms).

    python bench/deploy_latency.py [--count 3000] [--rate 100] [--checkpoint DIR]
"""
import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_ROOT)

from plas_ros.env import layout  # noqa: E402

TARGET_P99_MS = 1.0
WARMUP = 100  # first answers excluded (connection setup, lazy imports, allocator warm-up)
QUEUE = 1     # the inference node's transport settings, used by the echo node too
ECHO_PREFIX = '/bench/echo'  # the echo node's topics (remapped), so both nodes run side by side


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def echo_node():
    """The baseline: answer each observation with an action message, doing nothing else."""
    import rospy

    from plas_ros.msg import Action, Observation
    rospy.init_node('echo')
    pub = rospy.Publisher('/cloth/action', Action, queue_size=QUEUE, tcp_nodelay=True)

    def on_observation(msg):
        action = Action(episode=msg.episode, step=msg.step, data=[0.0] * layout.ACT_DIM)
        action.header.stamp = msg.header.stamp
        pub.publish(action)
    rospy.Subscriber('/cloth/observation', Observation, on_observation, queue_size=QUEUE, tcp_nodelay=True,
                     buff_size=2 ** 16)
    rospy.spin()


class Process:
    def __init__(self, args, log_dir, name):
        self.log_path = os.path.join(log_dir, name + '.log')
        self._log = open(self.log_path, 'wb')
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._log.close()


class Channel:
    """One node under test: publishes numbered observations and times the action answering each one."""

    def __init__(self, name, prefix, count):
        import rospy

        from plas_ros.msg import Action, Observation
        self.name, self.rospy, self.Observation = name, rospy, Observation
        self.sent = np.full(count, np.nan)
        self.received = np.full(count, np.nan)
        self.answered = threading.Event()
        self.pub = rospy.Publisher(prefix + '/observation', Observation, queue_size=QUEUE, tcp_nodelay=True)
        self.sub = rospy.Subscriber(prefix + '/action', Action, self._on_action, queue_size=100, tcp_nodelay=True)

    def _on_action(self, msg):
        now = time.perf_counter()
        if msg.step < len(self.received):
            self.received[msg.step] = now
            self.answered.set()

    def connected(self):
        return self.pub.get_num_connections() > 0 and self.sub.get_num_connections() > 0

    def ping(self, step, data, timeout):
        """Publish one observation and wait (up to `timeout` s) for its action."""
        msg = self.Observation(episode=1, step=step, data=data)
        msg.header.stamp = self.rospy.Time.now()
        self.answered.clear()
        self.sent[step] = time.perf_counter()
        self.pub.publish(msg)
        self.answered.wait(timeout)

    def latencies_ms(self):
        latency = (self.received - self.sent)[WARMUP:] * 1e3
        return latency[np.isfinite(latency)], int(np.sum(~np.isfinite(latency)))

    def close(self):
        self.pub.unregister()
        self.sub.unregister()


def wait_connected(channels, procs, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.proc.poll() is not None:
                with open(proc.log_path) as f:
                    raise RuntimeError('a node exited; its output:\n' + f.read()[-3000:])
        if all(channel.connected() for channel in channels):
            time.sleep(0.5)  # both directions of every link established
            return
        time.sleep(0.05)
    raise RuntimeError('nodes did not connect within %.0f s' % timeout)


def run_paired(channels, observations, rate):
    """At each tick, one observation to each node in turn (order alternating), each answered before the next:
    the two nodes never compete for the CPU and see the same background load within milliseconds."""
    period = 1.0 / rate
    start = time.perf_counter()
    for step, data in enumerate(observations):
        delay = start + step * period - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        for channel in (channels if step % 2 == 0 else channels[::-1]):
            channel.ping(step, data, timeout=period / 2)
    time.sleep(0.2)  # late answers still count (they are latencies, not losses)


def percentiles(values_ms):
    return [float(np.percentile(values_ms, q)) for q in (50, 99, 99.9)]


def time_in_process(function, inputs):
    for data in inputs[:WARMUP]:
        function(data)
    times = []
    for data in inputs:
        t = time.perf_counter()
        function(data)
        times.append(time.perf_counter() - t)
    return np.array(times) * 1e3


def forward_alone(checkpoint, observations, threads):
    """The policy's act() and the whole safety core's decide(), timed in this process."""
    import torch

    from plas_ros import deploy
    from plas_ros.policy import load_policy
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)  # as the inference node does
    policy = load_policy(checkpoint)
    arrays = [np.asarray(o, np.float32) for o in observations]
    with torch.inference_mode():
        act_ms = time_in_process(policy.act, arrays)
    gate = deploy.SafetyGate(policy.obs_dim, policy.action_low, policy.action_high, max_obs_age=1.0, enabled=True)
    core = deploy.InferenceCore(policy, gate)
    with torch.inference_mode():
        core_ms = time_in_process(lambda o: core.decide(o, time.time(), time.time()), observations)
    return act_ms, core_ms


def start_master(work_dir):
    port = free_port()
    os.environ.update({'ROS_MASTER_URI': 'http://127.0.0.1:%d' % port, 'ROS_IP': '127.0.0.1',
                       'ROS_HOME': work_dir, 'ROS_LOG_DIR': os.path.join(work_dir, 'log')})
    master = Process(['rosmaster', '--core', '-p', str(port)], work_dir, 'rosmaster')
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(('127.0.0.1', port)) == 0:
                return master
        time.sleep(0.05)
    raise RuntimeError('rosmaster did not start')


def row(name, values_ms, lost=None):
    p50, p99, p999 = percentiles(values_ms)
    lost_text = '' if lost is None else '%6d' % lost
    return '%-34s %8.3f %8.3f %8.3f %6d %s' % (name, p50, p99, p999, len(values_ms), lost_text)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--count', type=int, default=3000, help='observations per node (first %d not counted)'
                        % WARMUP)
    parser.add_argument('--rate', type=float, default=100.0, help='observations per second')
    parser.add_argument('--checkpoint', help='checkpoint folder (default: train one for a few steps)')
    parser.add_argument('--threads', type=int, default=1, help='torch threads for the in-process timing')
    args = parser.parse_args(argv)
    if args.count <= 2 * WARMUP:
        parser.error('--count must exceed %d' % (2 * WARMUP))
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['--echo-node']:  # the baseline subprocess started by this script
        return echo_node()
    args = parse_args(argv)
    work_dir = tempfile.mkdtemp(prefix='deploy_latency_')
    master = start_master(work_dir)
    try:
        return run_bench(args, work_dir)
    finally:
        master.stop()
        shutil.rmtree(work_dir, ignore_errors=True)


def run_bench(args, work_dir):
    import rospy
    checkpoint = args.checkpoint
    if not checkpoint:
        from tests.helpers.deploy import train_tiny_checkpoint
        print('training a checkpoint for a few steps ...', flush=True)
        checkpoint = train_tiny_checkpoint(work_dir)
    from tests.helpers.deploy import plausible_observations  # the gate answers these (config/deploy.yaml plausible)
    observations = plausible_observations(np.random.default_rng(0), args.count).tolist()
    rospy.init_node('deploy_latency_bench', disable_signals=True)
    echo = Channel('echo', ECHO_PREFIX, args.count)
    node = Channel('inference', '/cloth', args.count)
    remap = ['/cloth/observation:=%s/observation' % ECHO_PREFIX, '/cloth/action:=%s/action' % ECHO_PREFIX]
    procs = [Process([sys.executable, os.path.abspath(__file__), '--echo-node'] + remap, work_dir, 'echo'),
             Process([sys.executable, os.path.join(REPO_ROOT, 'scripts', 'inference_node'),
                      '_checkpoint:=%s' % checkpoint, '_sim:=true'], work_dir, 'inference')]
    try:
        wait_connected([echo, node], procs)
        print('publishing %d observations at %.0f Hz to each node, interleaved ...' % (args.count, args.rate),
              flush=True)
        run_paired([echo, node], observations, args.rate)
    finally:
        for proc in procs:
            proc.stop()
    echo_ms, echo_lost = echo.latencies_ms()
    node_ms, node_lost = node.latencies_ms()
    act_ms, core_ms = forward_alone(checkpoint, observations, args.threads)
    report(echo_ms, echo_lost, node_ms, node_lost, act_ms, core_ms)
    rospy.signal_shutdown('bench done')
    return 0


def report(echo_ms, echo_lost, node_ms, node_lost, act_ms, core_ms):
    print('\n%-34s %8s %8s %8s %6s %6s' % ('latency (ms)', 'median', 'p99', 'p99.9', 'n', 'lost'))
    print(row('echo node round trip (baseline)', echo_ms, echo_lost))
    print(row('inference node round trip', node_ms, node_lost))
    print(row('policy act() alone, in-process', act_ms))
    print(row('safety core decide(), in-process', core_ms))
    added = [n - e for n, e in zip(percentiles(node_ms), percentiles(echo_ms))]
    print('\ninference node adds %.3f ms at the median, %.3f ms at p99, %.3f ms at p99.9 over the echo node'
          % tuple(added))
    verdict = 'UNDER' if added[1] < TARGET_P99_MS else 'OVER'
    print('p99 added latency %.3f ms is %s the %.1f ms target (ratio node/echo at p99: %.2f)'
          % (added[1], verdict, TARGET_P99_MS, percentiles(node_ms)[1] / percentiles(echo_ms)[1]))


if __name__ == '__main__':
    sys.exit(main())
