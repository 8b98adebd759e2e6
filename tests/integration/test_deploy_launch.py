"""`roslaunch plas_ros deploy.launch checkpoint:=DIR episodes:=N [record:=X.h5]` in simulation: the policy
drives the simulated robot, each episode's return is logged, and the launch ends by itself."""
import os
import re

import numpy as np
import pytest
from conftest import REPO_ROOT, digest, free_port
from deploy_helpers import session_checkpoint

_NEEDED = [os.path.join(REPO_ROOT, 'launch', 'drivers.launch')]
_NEEDED += [os.path.join(REPO_ROOT, 'plas_ros', 'sim', m) for m in ('wsg.py', 'dsa.py')]  # hosted by sim_world
_NEEDED += [os.path.join(REPO_ROOT, 'scripts', s) for s in ('sim_world', 'wsg_node', 'dsa_node', 'arm_node',
                                                            'env_node', 'inference_node')]
_MISSING = [os.path.relpath(p, REPO_ROOT) for p in _NEEDED if not os.path.exists(p)]
pytestmark = pytest.mark.skipif(bool(_MISSING), reason='not in the tree yet: %s' % ', '.join(_MISSING))
RECORDER = os.path.join(REPO_ROOT, 'scripts', 'recorder_node')


@pytest.fixture(scope='session')
def checkpoint(tmp_path_factory):
    return session_checkpoint(tmp_path_factory)


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


@pytest.mark.skipif(not os.path.exists(RECORDER), reason='scripts/recorder_node not in the tree yet')
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

