"""The evaluation hook (on a tiny gymnasium env defined here) and the `python -m plas_ros.train` CLI end to end."""
import os
import subprocess
import sys

import gymnasium as gym
import h5py
import numpy as np
import pytest
import yaml

from plas_ros.env.evaluation import Evaluator, discounted_returns, load_env_factory, q_diagnostics
from plas_ros.policy import load_policy
from tests.helpers.tree import REPO_ROOT

HERE = os.path.dirname(os.path.abspath(__file__))


class StepEnv(gym.Env):
    """obs = (t / 5, 1); reward = the action; 5 steps then truncated."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0, 1.0], np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t / 5, 1.0], np.float32), float(np.asarray(action)[0]), False, self.t >= 5, {}


def make_step_env():
    return StepEnv()


def test_discounted_returns_and_q_diagnostics():
    np.testing.assert_allclose(discounted_returns([1.0, 1.0, 1.0], 0.5), [1.75, 1.5, 1.0])
    metrics = q_diagnostics([3.0, 0.0, 1.0, 2.0], [1.0, 1.0, 1.0, 3.0])  # errors 2, -1, 0, -1
    assert metrics == {'q_mse': 1.5, 'q_overestimate_share': 0.25, 'q_positive_error_mean': 2.0,
                       'q_negative_error_mean': -1.0}


def test_evaluator_runs_episodes_and_scores_the_critic():
    evaluator = Evaluator(make_step_env, episodes=3, gamma=0.5)
    seen = []

    def q_fn(obs, actions):
        seen.append((obs.shape, actions.shape))
        return np.full(len(obs), 1.0)

    result = evaluator.evaluate(lambda obs: np.array([0.5], np.float32), q_fn)
    assert result['return_mean'] == pytest.approx(2.5) and result['episode_length_mean'] == 5
    # G_t for rewards 0.5 x 5 with gamma 0.5: 0.96875, 0.9375, 0.875, 0.75, 0.5 -> every error Q - G > 0.
    g = discounted_returns([0.5] * 5, 0.5)
    assert result['q_overestimate_share'] == 1.0
    assert result['q_mse'] == pytest.approx(np.mean((1.0 - g) ** 2))
    assert seen == [((5, 2), (5, 1))] * 3
    assert 'q_mse' not in evaluator.evaluate(lambda obs: np.array([0.0], np.float32), None)


def test_load_env_factory_errors():
    assert load_env_factory('test_train_cli:make_step_env') is make_step_env
    with pytest.raises(ValueError, match='MODULE:FACTORY'):
        load_env_factory('no_colon')
    with pytest.raises(ValueError, match='no callable'):
        load_env_factory('test_train_cli:nothing_here')


def write_dataset(path, n=200):
    rng = np.random.default_rng(0)
    obs = np.stack([np.tile(np.arange(5) / 5, n // 5), np.ones(n)], 1).astype(np.float32)
    actions = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
    with h5py.File(path, 'w') as f:
        f['observations'], f['actions'], f['rewards'] = obs, actions, actions[:, 0]
        f['terminals'] = np.zeros(n, bool)
        f['timeouts'] = np.tile([0, 0, 0, 0, 1], n // 5).astype(bool)


def run_cli(*args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, REPO_ROOT, os.environ.get('PYTHONPATH', '')]))
    return subprocess.run([sys.executable, '-m', 'plas_ros.train'] + list(args), cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_trains_several_seeds_with_evaluation(tmp_path):
    write_dataset(tmp_path / 'a.h5')
    write_dataset(tmp_path / 'b.h5')
    out = tmp_path / 'run'
    result = run_cli('--dataset', str(tmp_path / 'a.h5'), str(tmp_path / 'b.h5'), '--algo', 'plas', '--config',
                     'config/train_robot.yaml', '--out', str(out), '--seeds', '0,1', '--steps', '40',
                     '--vae-steps', '30', '--eval-env', 'test_train_cli:make_step_env', '--eval-every', '20',
                     '--eval-episodes', '2', '--threads', '1', '--no-progress', '--log-every', '10')
    assert result.returncode == 0, result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert summary.startswith('done: plas seeds=0,1') and 'eval return=' in summary and 'policy' in summary
    for seed in (0, 1):
        directory = out / ('seed_%d' % seed)
        policy = load_policy(str(directory), obs_dim=2)
        assert -1.0 <= float(policy.act([0.2, 1.0])[0]) <= 1.0
        config = yaml.safe_load(open(directory / 'config.yaml'))
        assert config['seed'] == seed and config['progress'] == {'vae_steps': 30, 'policy_steps': 40}
        assert len(config['datasets']) == 2
        events = os.listdir(directory / 'tb')
        assert any(name.startswith('events.out.tfevents') for name in events)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    scalars = EventAccumulator(str(out / 'seed_1' / 'tb')).Reload().Tags()['scalars']
    for tag in ('eval/return_mean', 'eval/q_mse', 'eval/q_overestimate_share', 'loss/critic', 'vae/reconstruction',
                'latent/norm'):
        assert tag in scalars


def test_cli_checkpoints_record_each_algorithms_own_settings(tmp_path):
    """A tiny run of each baseline on the robot preset (in-process): its config.yaml shows what it ran with."""
    from plas_ros import train
    write_dataset(tmp_path / 'a.h5')
    recorded = {}
    for algo in ('td3', 'bcq', 'bear', 'bc'):
        out = tmp_path / algo
        assert train.main(['--dataset', str(tmp_path / 'a.h5'), '--algo', algo, '--config',
                           os.path.join(REPO_ROOT, 'config', 'train_robot.yaml'), '--out', str(out), '--steps', '3',
                           '--batch-size', '16', '--no-progress']) == 0
        recorded[algo] = yaml.safe_load(open(out / 'config.yaml'))
        assert recorded[algo]['algo'] == algo and recorded[algo]['train']['batch_size'] == 16
        assert recorded[algo]['progress'] == {'vae_steps': 0, 'policy_steps': 3}  # none pre-trains a CVAE
        assert -1.0 <= float(load_policy(str(out), obs_dim=2).act([0.2, 1.0])[0]) <= 1.0
    td3, bcq, bear = (recorded[a]['train'] for a in ('td3', 'bcq', 'bear'))
    assert (td3['lmbda'], td3['policy_noise'], td3['noise_clip'], td3['policy_delay']) == (1.0, 0.2, 0.5, 2)
    assert (td3['actor_lr'], td3['critic_lr']) == (3e-4, 3e-4) and 'vae_lr' not in td3
    assert (bcq['actor_lr'], bcq['critic_lr'], bcq['vae_lr'], bcq['lmbda'], bcq['phi']) == (1e-3, 1e-3, 1e-3, 0.75,
                                                                                           0.05)
    assert (bcq['target_samples'], bcq['act_samples']) == (10, 100) and 'vae_steps' not in bcq
    assert (bear['kernel'], bear['mmd_sigma'], bear['mmd_samples'], bear['mmd_threshold']) == ('laplacian', 10.0, 5,
                                                                                               0.05)
    assert (bear['warmstart_steps'], bear['log_alpha_max'], bear['vae_lr']) == (48, 10.0, 1e-3)
    assert set(recorded['bc']['train']) == {'algo', 'actor_hidden', 'actor_lr', 'batch_size', 'steps', 'log_every',
                                            'eval_every', 'eval_episodes', 'threads'}
    with pytest.raises(SystemExit, match='td3 does not take vae_steps'):
        train.main(['--dataset', str(tmp_path / 'a.h5'), '--algo', 'td3', '--vae-steps', '5', '--out',
                    str(tmp_path / 'x')])


def test_cli_reports_bad_dataset_and_flags(tmp_path):
    with h5py.File(tmp_path / 'bad.h5', 'w') as f:
        f['observations'] = np.zeros((3, 2), np.float32)
    result = run_cli('--dataset', str(tmp_path / 'bad.h5'), '--algo', 'bc', '--out', str(tmp_path / 'o'))
    assert result.returncode != 0 and 'bad.h5[actions]: missing required key' in result.stderr
    result = run_cli('--dataset', 'x.h5', '--algo', 'bc', '--out', 'o', '--seed', '1', '--seeds', '0,1')
    assert result.returncode != 0 and 'not both' in result.stderr
