"""A private ROS master, subprocesses (nodes, roslaunch, rosbag) always stopped with their whole process group,
a digest of a process's output for failure messages, and TopicLog (what the test process receives on a topic).

rospy is never imported here: the test process gets it from the rospy_node fixture (tests/conftest.py).
"""
import os
import re
import signal
import socket
import subprocess
import threading

from tests.helpers.common import wait_for
from tests.helpers.tree import REPO_ROOT


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
    roslaunch and its children reliably.
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


def start_master(port, log_dir, timeout=15.0, env=None):
    """`rosmaster --core` on `port`, once it accepts connections (ROS_IP etc.: `env`, else the caller's)."""
    master = ManagedProcess(['rosmaster', '--core', '-p', str(port)], log_dir, 'rosmaster', env=env)

    def master_up():
        with socket.socket() as s:
            return s.connect_ex(('127.0.0.1', port)) == 0
    try:
        wait_for(master_up, timeout, what='rosmaster on port %d' % port)
    except AssertionError:
        master.stop()
        raise
    return master


def roslaunch_command(launch_file, **args):
    """`roslaunch plas_ros <file> key:=value ...` (or an absolute launch file path), without its own roscore.

    Not `--wait`: on Debian's roslaunch 1.15 it hangs in getParam('/run_id') against a bare
    `rosmaster --core`; the master fixture has already waited for the master.
    """
    where = [launch_file] if os.path.isabs(launch_file) else ['plas_ros', launch_file]
    return ['roslaunch'] + where + ['%s:=%s' % (k, v) for k, v in sorted(args.items())]
