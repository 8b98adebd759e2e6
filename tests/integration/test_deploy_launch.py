"""`roslaunch plas_ros deploy.launch checkpoint:=DIR episodes:=N [record:=X.h5]` in simulation: the policy
drives the simulated robot, each episode's return is logged, and the launch ends by itself."""
import re

import numpy as np
import pytest

from tests.helpers.common import free_port
from tests.helpers.ros import digest

pytestmark = pytest.mark.needs('launch/deploy.launch', 'launch/drivers.launch',
                               'plas_ros/sim/wsg/server.py', 'plas_ros/sim/dsa/',  # hosted by sim_world
                               *('scripts/' + s for s in ('sim_world', 'wsg_node', 'dsa_node', 'arm_node',
                                                          'env_node', 'inference_node')))


def sim_ports(tmp_path):
    return dict(sim_wsg_port=free_port(), sim_arm_port=free_port(), sim_dsa_link=str(tmp_path / 'dsa'))


def logged_returns(output):
    return [(int(e), float(r)) for e, r in re.findall(r'episode (\d+): return (-?[\d.]+) over', output)]


def test_deploy_runs_two_episodes_logs_their_returns_and_exits(roslaunch, checkpoint, tmp_path):
    launch = roslaunch('deploy.launch', checkpoint=checkpoint, episodes=2, seed=4, **sim_ports(tmp_path))
    assert launch.wait(timeout=150) == 0, digest(launch.output)
    returns = logged_returns(launch.output)
    assert [e for e, _ in returns] == [0, 1], digest(launch.output)
    assert all(r >= 0.0 for _, r in returns)
    assert '2 episode(s) done' in launch.output


@pytest.mark.needs('scripts/recorder_node')
def test_deploy_records_its_episodes_with_the_policy_actions(roslaunch, checkpoint, tmp_path):
    import h5py

    from plas_ros.policy import load_policy
    output = str(tmp_path / 'deploy.h5')
    launch = roslaunch('deploy.launch', checkpoint=checkpoint, episodes=2, record=output, seed=5,
                       action_high='[1.0, 0.5]', **sim_ports(tmp_path))
    assert launch.wait(timeout=150) == 0, digest(launch.output)
    with h5py.File(output, 'r') as f:
        observations, actions = f['observations'][:], f['actions'][:]
        complete_ends = f['terminals'][:] | f['timeouts'][:]
        acted = ~f['infos/errors'][:]  # a fault can end a step before its action is known (written, not counted)
        assert f.attrs['source'] == 'sim'
    assert complete_ends.sum() == 2 and complete_ends[-1]
    assert acted.sum() >= len(acted) - 2
    policy = load_policy(checkpoint)
    expected = np.clip(policy.act(observations[acted]), policy.action_low, [1.0, 0.5])
    np.testing.assert_allclose(actions[acted], expected, rtol=1e-5, atol=1e-6)
    assert np.all(actions[acted, 1] <= 0.5)

