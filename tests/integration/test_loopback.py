"""In simulation nothing listens outside loopback: a collection started the way a user starts it (`source env.sh`,
then `roslaunch`, which starts its own master) has every listening socket of the master, roslaunch, the nodes and
the twins on 127.0.0.1; env.sh keeps an address the user chose."""
import os
import subprocess
import time

import pytest

from tests.helpers.common import free_port
from tests.helpers.ros import ManagedProcess, digest
from tests.helpers.sockets import is_loopback, listeners
from tests.helpers.tree import REPO_ROOT

pytestmark = pytest.mark.needs('env.sh', 'launch/collect.launch', 'launch/drivers.launch')

USER_ADDRESS_VARIABLES = ('ROS_IP', 'ROS_HOSTNAME', 'ROS_MASTER_URI')
OUR_ETC = os.path.join(REPO_ROOT, 'tools', 'ros_etc')  # the core with the rospy rosout


def _user_env(**variables):
    """The test process's environment without the ROS address variables the test fixtures set, plus `variables`."""
    env = {k: v for k, v in os.environ.items() if k not in USER_ADDRESS_VARIABLES}
    env.update(variables)
    return env


def _after_sourcing(**variables):
    """(ROS_IP, ROS_ETC_DIR) once env.sh is sourced with the user's `variables` (and the ROS_ETC_DIR of a shell that
    sourced env.sh on loopback before: ROS's setup script resets it)."""
    out = subprocess.run(['bash', '-c', 'source env.sh >/dev/null && printf "%s\n%s" "${ROS_IP-<unset>}" '
                          '"${ROS_ETC_DIR-<unset>}"'],
                         cwd=REPO_ROOT, env=_user_env(ROS_ETC_DIR=OUR_ETC, **variables), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return tuple(out.stdout.split('\n'))


@pytest.mark.parametrize('variables, expected', [
    ({}, '127.0.0.1'),
    ({'ROS_MASTER_URI': 'http://localhost:11311'}, '127.0.0.1'),
    ({'ROS_MASTER_URI': 'http://127.0.0.1:12345/'}, '127.0.0.1'),
    ({'ROS_IP': '192.168.1.5'}, '192.168.1.5'),
    ({'ROS_HOSTNAME': 'workstation.local'}, '<unset>'),
    ({'ROS_MASTER_URI': 'http://sawyer.local:11311'}, '<unset>'),
    ({'ROS_MASTER_URI': 'http://192.168.1.10:11311'}, '<unset>'),
])
def test_env_sh_defaults_ros_ip_to_loopback_unless_the_user_chose(variables, expected):
    ros_ip, etc_dir = _after_sourcing(**variables)
    assert ros_ip == expected
    # the core with the rospy rosout only where the graph stays on loopback
    assert (etc_dir == OUR_ETC) == (expected == '127.0.0.1'), etc_dir


def test_a_collection_listens_on_loopback_only(tmp_path):
    port, wsg_port, arm_port = free_port(), free_port(), free_port()
    output = str(tmp_path / 'collected.h5')
    args = ' '.join(['episodes:=1', 'seed:=5', 'output:=%s' % output, 'sim_wsg_port:=%d' % wsg_port,
                     'sim_arm_port:=%d' % arm_port, 'sim_dsa_link:=%s' % (tmp_path / 'dsa')])
    env = _user_env(ROS_MASTER_URI='http://localhost:%d' % port, ROS_HOME=str(tmp_path / 'ros_home'))
    env.pop('ROS_LOG_DIR', None)
    command = 'source env.sh && exec roslaunch -p %d plas_ros collect.launch %s' % (port, args)
    launch = ManagedProcess(['bash', '-c', command], str(tmp_path), 'collect', env=env)
    seen = {}
    try:
        deadline = time.monotonic() + 150
        while launch.running() and time.monotonic() < deadline:
            for listener in listeners(launch.proc.pid):
                seen[(listener.process, str(listener.address), listener.port)] = listener
            time.sleep(0.2)
        assert not launch.running(), 'collect still running after 150 s:\n%s' % digest(launch.output)
    finally:
        launch.stop()
    assert os.path.exists(output), digest(launch.output)
    processes = {listener.process for listener in seen.values()}
    # the sampling saw the graph: the master, roslaunch's own server, the twins and the nodes
    for name in ('rosmaster', 'roslaunch', 'rosout', 'sim_world', 'recorder_node', 'env_node', 'wsg_node'):
        assert any(name in p for p in processes), (name, sorted(processes))
    assert {port, wsg_port, arm_port} <= {listener.port for listener in seen.values()}  # the master and the twins
    outside = sorted('%s: %s:%d' % key for key, listener in seen.items() if not is_loopback(listener.address))
    print('listening sockets seen: %d, outside loopback: %d' % (len(seen), len(outside)))
    assert not outside, 'listening outside loopback:\n' + '\n'.join(outside)
