"""The evaluation hook: roll out the current deterministic policy in any gymnasium env and score its critic.

The rollouts are the episode runner's (`plas_ros.env.runner`), with the policy under training as its
transport; the trainer (`plas_ros.algos.trainer`) only calls `evaluate(act_fn, q_fn)`.

`Evaluator(factory, episodes)` is called by the trainer every N steps with `act_fn(obs) -> action` and
`q_fn(obs_batch, action_batch) -> Q values` (None for algorithms without a critic). It returns episode
returns and the Q-function diagnostics of the PLAS paper, section 5.4: the error Q(s_t, a_t) - G_t against the
discounted Monte-Carlo return G_t of the rollout (up to the episode's end), reported as the mean squared error,
the share of over-estimates, the mean positive error and the mean negative error.
"""
import importlib
from typing import Callable, Dict, Optional

import numpy as np

from plas_ros.env.runner import EpisodeRunner, Transport


def discounted_returns(rewards, gamma):
    """G_t = sum_k gamma^k r_{t+k} to the end of the episode."""
    returns = np.zeros(len(rewards), dtype=np.float64)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        returns[t] = running
    return returns


def q_diagnostics(q_values, mc_returns) -> Dict[str, float]:
    """Section 5.4 metrics of error = Q - G; an empty side reports 0.0 (with its count 0 in the share)."""
    error = np.asarray(q_values, dtype=np.float64) - np.asarray(mc_returns, dtype=np.float64)
    positive, negative = error[error > 0], error[error < 0]
    return {
        'q_mse': float(np.mean(error ** 2)),
        'q_overestimate_share': float(np.mean(error > 0)),
        'q_positive_error_mean': float(positive.mean()) if positive.size else 0.0,
        'q_negative_error_mean': float(negative.mean()) if negative.size else 0.0,
    }


def load_env_factory(spec: str) -> Callable:
    """'package.module:function' -> the callable (the trainer's --eval-env)."""
    module_name, sep, attr = spec.partition(':')
    if not sep or not module_name or not attr:
        raise ValueError('--eval-env must be MODULE:FACTORY, got %r' % spec)
    factory = getattr(importlib.import_module(module_name), attr, None)
    if not callable(factory):
        raise ValueError('--eval-env: %s has no callable %r' % (module_name, attr))
    return factory


class Evaluator:
    """Runs `episodes` episodes per call in one env made by `env_factory()` (reset seeds seed, seed+1, ...)."""

    def __init__(self, env_factory: Callable, episodes: int, gamma: float, seed: int = 0,
                 max_episode_steps: Optional[int] = None):
        if episodes < 1:
            raise ValueError('evaluation needs at least one episode, got %d' % episodes)
        self.env_factory, self.episodes, self.gamma, self.seed = env_factory, episodes, gamma, seed
        self.max_episode_steps = max_episode_steps
        self._env = None

    @property
    def env(self):
        if self._env is None:
            self._env = self.env_factory()
        return self._env

    def close(self):
        if self._env is not None:
            self._env.close()
            self._env = None

    def rollout(self, act_fn, episode_seed):
        """(observations, actions, rewards) of one episode of `act_fn` from `episode_seed`."""
        transport = _PolicyUnderTest(act_fn)
        EpisodeRunner(self.env, transport, faults=(), max_steps=self.max_episode_steps).run(0, seed=episode_seed)
        steps = transport.steps
        return (np.stack([np.asarray(s.observation, dtype=np.float32) for s in steps]),
                np.stack([s.action for s in steps]), np.asarray([s.reward for s in steps]))

    def evaluate(self, act_fn: Callable, q_fn: Optional[Callable] = None) -> Dict[str, float]:
        returns, lengths, all_q, all_g = [], [], [], []
        for episode in range(self.episodes):
            obs, actions, rewards = self.rollout(act_fn, self.seed + episode)
            returns.append(rewards.sum())
            lengths.append(len(rewards))
            if q_fn is not None:
                all_q.append(np.asarray(q_fn(obs, actions), dtype=np.float64).reshape(-1))
                all_g.append(discounted_returns(rewards, self.gamma))
        result = {'return_mean': float(np.mean(returns)), 'return_std': float(np.std(returns)),
                  'return_min': float(np.min(returns)), 'return_max': float(np.max(returns)),
                  'episode_length_mean': float(np.mean(lengths))}
        if q_fn is not None:
            result.update(q_diagnostics(np.concatenate(all_q), np.concatenate(all_g)))
        return result


class _PolicyUnderTest(Transport):
    """The evaluator's transport: the policy answers each observation; the steps are kept in memory."""

    def __init__(self, act_fn):
        self.act_fn = act_fn
        self.steps = []

    def act(self, episode, step, observation):
        return np.asarray(self.act_fn(np.asarray(observation, dtype=np.float32)), dtype=np.float32)

    def record(self, step):
        self.steps.append(step)
