"""The evaluation hook (on a tiny gymnasium env defined here) and the `python -m plas_ros.train` CLI end to end."""
import os
import subprocess
import sys

import gymnasium as gym
import h5py
import numpy as np
import pytest
import yaml

from plas_ros.env.evaluation import (
    Evaluator,
    discounted_returns,
    load_env_factory,
    q_diagnostics,
    window_returns,
)
from plas_ros.policy import load_policy
from tests.helpers.tree import REPO_ROOT

HERE = os.path.dirname(os.path.abspath(__file__))


class StepEnv(gym.Env):
    """obs = (t / 5, 1); reward = the action; truncated after `max_episode_steps` (5) steps, a writable limit."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    max_episode_steps = 5

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0, 1.0], np.float32), {}

    def step(self, action):
        self.t += 1
        return (np.array([self.t / 5, 1.0], np.float32), float(np.asarray(action)[0]), False,
                self.t >= self.max_episode_steps, {})


def make_step_env():
    return StepEnv()


class FixedLimitEnv(gym.Env):
    """StepEnv with a 5-step limit that cannot be lifted (no max_episode_steps attribute, no TimeLimit)."""

    observation_space, action_space = StepEnv.observation_space, StepEnv.action_space

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0, 1.0], np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t / 5, 1.0], np.float32), float(np.asarray(action)[0]), False, self.t >= 5, {}


class ConstantEnv(gym.Env):
    """Reward `reward` at every step; obs = (t, 1); a real terminal after `terminal_after` steps (None: never).
    No time limit of its own: the tests wrap it in gymnasium's TimeLimit."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float32)
    action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, reward=1.0, terminal_after=None):
        self.reward, self.terminal_after = reward, terminal_after
        self.steps_taken = 0

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0, 1.0], np.float32), {}

    def step(self, action):
        self.t += 1
        self.steps_taken += 1
        terminal = self.terminal_after is not None and self.t >= self.terminal_after
        return np.array([self.t, 1.0], np.float32), self.reward, terminal, False, {}


def test_discounted_returns_and_q_diagnostics():
    np.testing.assert_allclose(discounted_returns([1.0, 1.0, 1.0], 0.5), [1.75, 1.5, 1.0])
    metrics = q_diagnostics([3.0, 0.0, 1.0, 2.0], [1.0, 1.0, 1.0, 3.0])  # errors 2, -1, 0, -1
    assert metrics == {'q_mse': 1.5, 'q_overestimate_share': 0.25, 'q_positive_error_mean': 2.0,
                       'q_negative_error_mean': -1.0}
    assert all(np.isnan(v) for v in q_diagnostics([], []).values())


def test_window_returns_need_a_full_window_or_a_terminal():
    ones = [1.0] * 5
    g, scored = window_returns(ones, 0.5, window=2, terminated=False, first=3)
    assert scored.tolist() == [0, 1, 2] and g.tolist() == [1.5, 1.5, 1.5]
    g, scored = window_returns(ones, 0.5, window=2, terminated=False)
    assert scored.tolist() == [0, 1, 2, 3]  # state 4 has one reward ahead, not two, and no terminal
    g, scored = window_returns(ones, 0.5, window=2, terminated=True)
    assert scored.tolist() == [0, 1, 2, 3, 4] and g.tolist() == [1.5, 1.5, 1.5, 1.5, 1.0]  # exact at the end
    g, scored = window_returns(ones, 0.5, window=None, terminated=True)
    np.testing.assert_allclose(g, discounted_returns(ones, 0.5))
    assert window_returns(ones, 0.5, window=None, terminated=False)[1].size == 0
    assert window_returns(ones, 0.5, window=9, terminated=False)[1].size == 0


def test_evaluator_runs_episodes_and_scores_the_critic():
    evaluator = Evaluator(make_step_env, episodes=3, gamma=0.5)  # q_window 0 (config): W = L = 5
    seen = []

    def q_fn(obs, actions):
        seen.append((obs.shape, actions.shape))
        return np.full(len(obs), 1.0)

    result = evaluator.evaluate(lambda obs: np.array([0.5], np.float32), q_fn)
    assert (evaluator.limit, evaluator.window) == (5, 5) and evaluator.env.max_episode_steps == 10
    assert result['return_mean'] == pytest.approx(2.5) and result['episode_length_mean'] == 5
    # Every state has 5 rewards of 0.5 ahead: G = 0.5 (1 - 0.5^5) / (1 - 0.5) = 0.96875 -> every error Q - G > 0.
    assert result['q_overestimate_share'] == 1.0 and result['q_scored_states'] == 15
    assert result['q_mse'] == pytest.approx((1.0 - 0.96875) ** 2)
    assert seen == [((5, 2), (5, 1))] * 3
    no_critic = evaluator.evaluate(lambda obs: np.array([0.0], np.float32), None)
    assert 'q_mse' not in no_critic and no_critic['episode_length_mean'] == 5


def constant_env_factory(reward, limit, terminal_after=None):
    made = []

    def factory():
        base = ConstantEnv(reward, terminal_after)
        made.append(base)
        # An outer wrapper above the TimeLimit: it must keep working while the limit is lifted.
        return gym.wrappers.TransformReward(gym.wrappers.TimeLimit(base, limit), lambda r: 2.0 * r)
    return factory, made


def test_q_diagnostics_known_answer_constant_reward():
    """Reward 2 r a step, a 20-step TimeLimit: a critic answering the infinite-horizon value 2 r / (1 - gamma)
    is right up to the window's truncation gamma^W, and not an over-estimate at the end of the episodes."""
    r, gamma, limit, window, episodes = 0.5, 0.9, 20, 200, 4
    value = 2 * r / (1 - gamma)
    truncation = value * gamma ** window  # G = value (1 - gamma^W) over a full window
    factory, made = constant_env_factory(r, limit)
    evaluator = Evaluator(factory, episodes=episodes, gamma=gamma, q_window=window)
    exact = evaluator.evaluate(lambda obs: np.zeros(1, np.float32), lambda obs, act: np.full(len(obs), value))
    assert made[0].steps_taken == episodes * (limit + window)  # each episode ran past the limit for its window
    assert exact['return_mean'] == pytest.approx(2 * r * limit) and exact['return_std'] == 0.0
    assert exact['episode_length_mean'] == limit and exact['q_scored_states'] == episodes * limit
    assert exact['q_mse'] == pytest.approx(truncation ** 2, rel=1e-3) and exact['q_mse'] < 1e-15
    assert exact['q_positive_error_mean'] == pytest.approx(truncation, rel=1e-3)

    eps = 1e-3  # >> truncation (7e-9): the critic is off by +-eps, alternating from state to state
    def noisy(obs, act):
        return value + eps * np.where(obs[:, 0].astype(int) % 2 == 0, 1.0, -1.0)
    result = evaluator.evaluate(lambda obs: np.zeros(1, np.float32), noisy)
    assert result['q_overestimate_share'] == 0.5  # half, not the 100 % that episode-end returns gave
    assert result['q_mse'] == pytest.approx(eps ** 2, rel=1e-3)
    assert result['q_positive_error_mean'] == pytest.approx(eps, rel=1e-3)
    assert result['q_negative_error_mean'] == pytest.approx(-eps, rel=1e-3)
    # The former scoring, returns to the end of the time-limited episode, calls every state an over-estimate.
    cut_short = discounted_returns([2 * r] * limit, gamma)
    assert np.all(value - eps - cut_short > 0)
    assert result['return_mean'] == exact['return_mean']


def test_q_diagnostics_default_window_is_the_time_limit():
    """q_window 0: W = L, the official code's window; the perfect critic is then off by value * gamma^L."""
    r, gamma, limit = 1.0, 0.9, 10
    factory, made = constant_env_factory(r, limit)
    evaluator = Evaluator(factory, episodes=2, gamma=gamma, q_window=0)
    value = 2 * r / (1 - gamma)
    result = evaluator.evaluate(lambda obs: np.zeros(1, np.float32), lambda obs, act: np.full(len(obs), value))
    assert made[0].steps_taken == 2 * 2 * limit and result['q_scored_states'] == 2 * limit
    assert result['q_mse'] == pytest.approx((value * gamma ** limit) ** 2)
    assert result['return_mean'] == pytest.approx(2 * r * limit)


@pytest.mark.parametrize('terminal_after', [7, 25])
def test_a_terminal_ends_the_return_exactly(terminal_after):
    """Terminal before the limit (7 < 20) or inside the window past it (25): G up to the terminal, exact;
    every state of the time-limited episode is scored; the reported return is that of its first L steps."""
    r, gamma, limit = 0.5, 0.9, 20
    factory, _ = constant_env_factory(r, limit, terminal_after=terminal_after)
    evaluator = Evaluator(factory, episodes=2, gamma=gamma, q_window=0)

    def exact(obs, act):  # obs[:, 0] = t; rewards 2 r until the terminal, none after
        steps_left = np.minimum(limit, terminal_after - obs[:, 0].astype(np.float64))
        return 2 * r * (1 - gamma ** steps_left) / (1 - gamma)
    result = evaluator.evaluate(lambda obs: np.zeros(1, np.float32), exact)
    length = min(terminal_after, limit)
    assert result['q_scored_states'] == 2 * length and result['episode_length_mean'] == length
    assert result['q_mse'] < 1e-24
    assert result['return_mean'] == pytest.approx(2 * r * length)


def test_states_without_a_window_are_not_scored():
    """An env whose limit cannot be lifted: its states have no full window and no terminal ahead."""
    evaluator = Evaluator(FixedLimitEnv, episodes=2, gamma=0.5, max_episode_steps=5)
    with pytest.warns(RuntimeWarning, match='not scored'):
        result = evaluator.evaluate(lambda obs: np.array([0.5], np.float32), lambda obs, act: np.ones(len(obs)))
    # W = L = 5 and the run stops at 5 steps: only state 0 has its 5 rewards ahead.
    assert result['q_scored_states'] == 2 and result['q_mse'] == pytest.approx((1.0 - 0.96875) ** 2)
    assert result['return_mean'] == pytest.approx(2.5) and result['episode_length_mean'] == 5
    evaluator = Evaluator(FixedLimitEnv, episodes=1, gamma=0.5, max_episode_steps=5, q_window=6)
    with pytest.warns(RuntimeWarning, match='not scored'):
        result = evaluator.evaluate(lambda obs: np.array([0.5], np.float32), lambda obs, act: np.ones(len(obs)))
    assert result['q_scored_states'] == 0 and all(np.isnan(result[k]) for k in ('q_mse', 'q_overestimate_share'))
    evaluator = Evaluator(FixedLimitEnv, episodes=1, gamma=0.5, max_episode_steps=3, q_window=2)
    result = evaluator.evaluate(lambda obs: np.array([0.5], np.float32), lambda obs, act: np.ones(len(obs)))
    assert result['q_scored_states'] == 3 and result['return_mean'] == pytest.approx(1.5)  # 3 + 2 <= 5 steps
    with pytest.raises(ValueError, match='q_window'):
        Evaluator(make_step_env, episodes=1, gamma=0.5, q_window=-1)


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
    assert 'run record: %s' % (out / 'run.json') in result.stdout  # a multi-seed run's record: the top folder
    assert not (out / 'seed_0' / 'run.json').exists()
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
