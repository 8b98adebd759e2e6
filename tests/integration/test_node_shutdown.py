"""Every node ends on SIGTERM and on SIGINT after its master has gone away (doc/bounds.md, *Waits*).

Each case runs one node on a master of its own, with its device (or twin) in the state that matters: present
and streaming, absent (the node reopening, the DSA pty link path missing), booting (the DSA twin sending boot
garbage and no answer). Once the node is up, the master is frozen (SIGSTOP: a master that hangs, or whose host
vanished, takes connections and never answers) or killed (it refuses them at once); then the node gets the
signal and must exit within EXIT_BOUND with status 0 or the signal's own.

Before the fix each frozen case hung for good: rospy unregisters from the master inside its signal handler over
a connection without a timeout, and every rospy log line asked the master for an unset parameter, so a node
that logs from its main loop (the DSA driver) was already stuck there (plas_ros/nodes/lifecycle.py).
"""
import os
import signal
import sys
import time

import pytest

from tests.helpers.common import free_port
from tests.helpers.ros import ManagedProcess, digest, start_master
from tests.helpers.tree import script

pytestmark = pytest.mark.needs('scripts/dsa_node', 'scripts/wsg_node', 'scripts/arm_node', 'scripts/env_node',
                               'scripts/recorder_node', 'scripts/behaviour_node', 'scripts/inference_node')

EXIT_BOUND = 10.0   # s: master.timeout (config/run.yaml, 2 s) for the unregistering, plus the node's own
#                      clean-up, with room for a loaded machine; a node that hangs never exits at all
UP_TIMEOUT = 30.0   # s for a node to reach the state under test
SETTLE = 0.5        # s in that state before the master goes


def _world(tmp, ports):
    return [sys.executable, '-m', 'plas_ros.sim.world', '--wsg-port', str(ports[0]), '--arm-port', str(ports[1]),
            '--dsa-link', os.path.join(tmp, 'world_dsa')]


def _dsa_twin(boot_seconds):
    return lambda tmp, ports: [sys.executable, '-m', 'plas_ros.sim.dsa', '--link', os.path.join(tmp, 'dsa'),
                               '--boot-garbage', '--boot-seconds', str(boot_seconds)]


def _dsa_node(tmp, ports):
    return [script('dsa_node'), '__name:=dsa_driver', '_port:=%s' % os.path.join(tmp, 'dsa'), '_frame_rate:=50']


# name: (device command or None, node command, a line of the node's output that says it is in the state)
CASES = {
    'dsa_absent': (None, _dsa_node, 'cannot open DSA port'),
    'dsa_booting': (_dsa_twin(60), _dsa_node, 'dsa_driver: DSA on'),
    'dsa_streaming': (_dsa_twin(0.3), _dsa_node, 'frames flowing'),
    'wsg_absent': (None, lambda tmp, ports: [script('wsg_node'), '__name:=wsg_driver', '_host:=127.0.0.1',
                                             '_port:=%d' % ports[0]], 'wsg_driver: gripper at'),
    'wsg_streaming': (_world, lambda tmp, ports: [script('wsg_node'), '__name:=wsg_driver', '_host:=127.0.0.1',
                                                  '_port:=%d' % ports[0]], 'gripper state flowing'),
    'arm_streaming': (_world, lambda tmp, ports: [script('arm_node'), '__name:=arm_driver', '_sim:=true',
                                                  '_sim_port:=%d' % ports[1]], 'arm_driver: up'),
    'env_waiting': (None, lambda tmp, ports: [script('env_node'), '__name:=cloth_env'],
                    'waiting for the drivers'),
    'recorder': (None, lambda tmp, ports: [script('recorder_node'), '__name:=recorder',
                                           '_output:=%s' % os.path.join(tmp, 'out.h5')], 'recorder: writing'),
    'behaviour': (None, lambda tmp, ports: [script('behaviour_node'), '__name:=behaviour_policy'],
                  'behaviour_policy: schedule'),
    'inference': (None, lambda tmp, ports: [script('inference_node'), '__name:=inference', '_sim:=true',
                                            '_checkpoint:=%s' % os.path.join(tmp, 'checkpoint')], 'policy from'),
}

RUNS = [(name, 'frozen', signal.SIGTERM) for name in CASES] + [
    ('dsa_streaming', 'frozen', signal.SIGINT),
    ('dsa_absent', 'frozen', signal.SIGINT),
    ('dsa_absent', 'killed', signal.SIGTERM),
]


@pytest.fixture
def graph(tmp_path):
    """A master of this test's own (never the session's: it is frozen or killed) and start(args, name) for
    processes that use it; all stopped at teardown."""
    tmp = str(tmp_path)
    port = free_port()
    env = dict(os.environ, ROS_MASTER_URI='http://127.0.0.1:%d' % port, ROS_IP='127.0.0.1', ROS_HOME=tmp,
               ROS_LOG_DIR=os.path.join(tmp, 'log'))
    env.pop('ROS_HOSTNAME', None)
    master = start_master(port, tmp, env=env)
    started = []

    def start(args, name):
        proc = ManagedProcess(args, tmp, name, env=env)
        started.append(proc)
        return proc
    yield master, start
    for proc in reversed(started):
        proc.stop()
    master.signal(signal.SIGKILL)   # frozen or not: it is ours, and it is done
    master.stop()


def _wait_for_line(proc, line, timeout):
    deadline = time.monotonic() + timeout
    while line not in proc.output:
        assert proc.running(), 'ended before %r:\n%s' % (line, digest(proc.output))
        assert time.monotonic() < deadline, 'no %r within %.0f s:\n%s' % (line, timeout, digest(proc.output))
        time.sleep(0.1)


@pytest.mark.parametrize('case, master_fate, sig', RUNS,
                         ids=['%s-%s-%s' % (case, fate, sig.name) for case, fate, sig in RUNS])
def test_a_node_ends_on_a_signal_after_its_master_went_away(request, graph, case, master_fate, sig):
    master, start = graph
    device, node_args, ready_line = CASES[case]
    tmp = os.path.dirname(master.log_path)
    if case == 'inference':   # the trained checkpoint of this test process (tests/conftest.py), linked here
        os.symlink(request.getfixturevalue('checkpoint'), os.path.join(tmp, 'checkpoint'))
    ports = (free_port(), free_port())
    if device is not None:
        start(device(tmp, ports), 'device')
    # faulthandler: a node that hangs is sent SIGABRT, which prints every thread's stack for the failure message
    node = start([sys.executable, '-X', 'faulthandler'] + node_args(tmp, ports), case)
    _wait_for_line(node, ready_line, UP_TIMEOUT)
    time.sleep(SETTLE)
    if master_fate == 'frozen':
        master.signal(signal.SIGSTOP)
    else:
        master.signal(signal.SIGKILL)
        master.proc.wait(5)
    time.sleep(SETTLE)
    assert node.running(), 'the node ended when its master went, before the signal:\n%s' % digest(node.output)
    began = time.monotonic()
    node.proc.send_signal(sig)
    try:
        status = node.proc.wait(EXIT_BOUND)
    except Exception:
        node.proc.send_signal(signal.SIGABRT)
        node.proc.wait(5)
        raise AssertionError('%s still running %.0f s after %s (master %s); its threads:\n%s' % (
            case, EXIT_BOUND, sig.name, master_fate, digest(node.output, lines=80))) from None
    assert status in (0, -sig), '%s exited with status %s after %s:\n%s' % (case, status, sig.name,
                                                                           digest(node.output))
    print('%s, master %s: ended %.2f s after %s' % (case, master_fate, time.monotonic() - began, sig.name))
