"""Shared test fixtures: a private ROS master per test process, rospy in this process, and managed
subprocesses (nodes, roslaunch, rosbag) that are always stopped with their whole process group.

Unit tests (tests/unit) use none of these and run without ROS.
"""
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO_ROOT, 'tests'))


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout, interval=0.05, what='condition'):
    """Poll `predicate` until it returns a truthy value; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError('timed out after %.1f s waiting for %s' % (timeout, what))


def digest(output, lines=60):
    """A process's output for a failure message: runs of lines that differ only in their numbers (a node
    repeating a warning every second) collapsed to one, then the first and last `lines` of what is left."""
    kept, last_shape, repeats = [], None, 0
    for line in output.splitlines():
        shape = re.sub(r'[\d.]+', '#', line)
        if shape == last_shape:
            repeats += 1
            continue
        if repeats:
            kept.append('    [... %d more like the line above]' % repeats)
        kept.append(line)
        last_shape, repeats = shape, 0
    if repeats:
        kept.append('    [... %d more like the line above]' % repeats)
    if len(kept) > 2 * lines:
        kept = kept[:lines] + ['    [... %d lines ...]' % (len(kept) - 2 * lines)] + kept[-lines:]
    return '\n'.join(kept)


class TopicLog:
    """Every message of a topic as this test process receives them: the latest, how many, those since a mark."""

    def __init__(self, rospy, topic, cls):
        self._msgs = []
        self._lock = threading.Lock()
        self.sub = rospy.Subscriber(topic, cls, self._on)

    def _on(self, msg):
        with self._lock:
            self._msgs.append(msg)

    @property
    def msg(self):
        """The latest message, None before the first."""
        with self._lock:
            return self._msgs[-1] if self._msgs else None

    @property
    def count(self):
        with self._lock:
            return len(self._msgs)

    def snapshot(self):
        with self._lock:
            return list(self._msgs)

    def since(self, index):
        with self._lock:
            return self._msgs[index:]

    def after(self, count):
        """The latest message once more than `count` arrived, else None."""
        with self._lock:
            return self._msgs[-1] if len(self._msgs) > count else None


class ManagedProcess:
    """A subprocess in its own session, its output in a log file, stopped with SIGTERM to the group.

    Background processes of a non-interactive shell ignore SIGINT, so SIGTERM is what stops
    roslaunch and its children reliably (doc/install.md, testing).
    """

    def __init__(self, args, log_dir, name, env=None, cwd=REPO_ROOT):
        self.args = list(args)
        self.log_path = os.path.join(log_dir, '%s.log' % name)
        self._log = open(self.log_path, 'wb')
        env = dict(env or os.environ)
        env.setdefault('PYTHONUNBUFFERED', '1')  # so a failing test shows the process's last words
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT, cwd=cwd,
                                     env=env, stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def output(self):
        self._log.flush()
        with open(self.log_path, 'rb') as f:
            return f.read().decode('utf-8', 'replace')

    def running(self):
        return self.proc.poll() is None

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError('%s still running after %.0f s; output:\n%s'
                                 % (' '.join(self.args), timeout, digest(self.output))) from None

    def signal(self, sig):
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, timeout=10.0):
        if self.running():
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.proc.wait(5)
        else:
            self.signal(signal.SIGKILL)  # reap stray children left in the group
        self._log.close()
        return self.proc.returncode


@pytest.fixture(scope='session')
def ros_home(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('ros_home'))
    os.environ['ROS_HOME'] = path
    os.environ['ROS_LOG_DIR'] = os.path.join(path, 'log')
    return path


@pytest.fixture(scope='session')
def ros_master(ros_home):
    """A private `rosmaster --core` on a free port; ROS_MASTER_URI points at it for this process."""
    port = free_port()
    uri = 'http://127.0.0.1:%d' % port
    os.environ['ROS_MASTER_URI'] = uri
    os.environ['ROS_IP'] = '127.0.0.1'
    os.environ.pop('ROS_HOSTNAME', None)
    master = ManagedProcess(['rosmaster', '--core', '-p', str(port)], ros_home, 'rosmaster')

    def master_up():
        with socket.socket() as s:
            return s.connect_ex(('127.0.0.1', port)) == 0
    wait_for(master_up, 15, what='rosmaster on port %d' % port)
    yield uri
    master.stop()


@pytest.fixture(scope='session')
def rospy_node(ros_master):
    """rospy initialised in the test process (possible only once per process)."""
    import rospy
    rospy.init_node('pytest_%d' % os.getpid(), anonymous=False, disable_signals=True)
    yield rospy
    rospy.signal_shutdown('tests done')


@pytest.fixture
def processes(ros_master, ros_home):
    """Factory for managed subprocesses that share this test's master; all stopped at teardown.

    start(['roslaunch', 'plas_ros', 'x.launch', 'a:=1'], name='x') -> ManagedProcess
    """
    started = []
    log_dir = tempfile.mkdtemp(prefix='procs_', dir=ros_home)

    def start(args, name=None, env=None):
        name = name or os.path.basename(str(args[0]))
        proc = ManagedProcess(args, log_dir, '%s_%d' % (name, len(started)), env=env)
        started.append(proc)
        return proc

    yield start
    for proc in reversed(started):
        proc.stop()


@pytest.fixture
def roslaunch(processes):
    """Start `roslaunch plas_ros <file> key:=value ...` under the test's master (no own roscore).

    Not `--wait`: on Debian's roslaunch 1.15 it hangs in getParam('/run_id') against a bare
    `rosmaster --core`; the master fixture has already waited for the master.
    """
    def start(launch_file, name=None, **args):
        where = [launch_file] if os.path.isabs(launch_file) else ['plas_ros', launch_file]
        cmd = ['roslaunch'] + where
        cmd += ['%s:=%s' % (k, v) for k, v in sorted(args.items())]
        return processes(cmd, name=name or os.path.basename(launch_file).replace('.launch', ''))
    return start
