"""The evaluation hook: roll out the current deterministic policy in any gymnasium env and score its critic.

The rollouts are the episode runner's (`plas_ros.env.runner`), with the policy under training as its
transport; the trainer (`plas_ros.algos.trainer`) only calls `evaluate(act_fn, q_fn)`.

`Evaluator(factory, episodes)` is called by the trainer every N steps with `act_fn(obs) -> action` and
`q_fn(obs_batch, action_batch) -> Q values` (None for algorithms without a critic). It returns episode
returns and the Q-function diagnostics of the PLAS paper, section 5.4, computed as the official PLAS code
does (`eval_functions.py`, `eval_critic`):

* the error is Q(s_t, a_t) - G_t, with G_t = sum_{k < W} gamma^k r_{t+k} the discounted Monte-Carlo return
  of a full window of W rewards ahead of s_t (the paper: "until termination or up to r_{t+1000}");
* so that the states near the time limit L have their full window too, an episode with a critic runs past
  the limit, for L + W steps (the official code steps the env under its TimeLimit for up to 2 L steps), and
  only the states of its first L steps are scored;
* a real terminal ends the return: G_t is then exact, and needs no full window; a state with neither a full
  window nor a terminal ahead (the env ended the run on a limit that could not be lifted) is not scored;
* W is config/train.yaml `evaluation.q_window`; 0 means W = L, the official code's window;
* the reported returns (`return_mean`, ...) and `episode_length_mean` stay those of the time-limited
  episode, its first L steps.

The time limit L is `max_episode_steps` if given, else the env's own: the smallest of its gymnasium
`TimeLimit` wrappers' and of a `max_episode_steps` attribute of the unwrapped env (the cloth env's,
plas_ros.sim.gym_env). To run past it the evaluator raises those limits to L + W on the env it made; every
other wrapper keeps working. Reported as `q_mse`, `q_overestimate_share`, `q_positive_error_mean`,
`q_negative_error_mean` and `q_scored_states` (how many states were scored; with none, the four are NaN).
"""
import importlib
import warnings
from typing import Callable, Dict, NamedTuple, Optional

import gymnasium as gym
import numpy as np

from plas_ros.config import lookup
from plas_ros.env.runner import EpisodeRunner, Transport

CONFIG_FILE = 'train.yaml'


def default_q_window() -> int:
    """config/train.yaml `evaluation.q_window` (0: the episode's time limit)."""
    return int(lookup(CONFIG_FILE, 'evaluation.q_window'))


def discounted_returns(rewards, gamma):
    """G_t = sum_k gamma^k r_{t+k} to the end of the sequence."""
    returns = np.zeros(len(rewards), dtype=np.float64)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        running = rewards[t] + gamma * running
        returns[t] = running
    return returns


def window_returns(rewards, gamma, window, terminated, first=None):
    """(G, scored) for the states t < `first` (default: all) of one run of `rewards`.

    G_t = sum_{k < window} gamma^k r_{t+k} where the run holds the full window ahead of t; where it does not
    and the run ended on a terminal (`terminated`), the return up to the terminal, which is then exact;
    otherwise the state is not scored. `window` None: no window is ever full (only a terminal scores).
    `scored` holds the indices of the scored states, `G` their returns.
    """
    rewards = np.asarray(rewards, dtype=np.float64).reshape(-1)
    n = len(rewards)
    first = n if first is None else min(int(first), n)
    discounts = gamma ** np.arange(n if window is None else min(int(window), n), dtype=np.float64)
    scored, returns = [], []
    for t in range(first):
        if window is not None and t + int(window) <= n:
            end = t + int(window)
        elif terminated:
            end = n
        else:
            continue
        scored.append(t)
        returns.append(float(np.dot(rewards[t:end], discounts[:end - t])))
    return np.asarray(returns, dtype=np.float64), np.asarray(scored, dtype=np.int64)


def q_diagnostics(q_values, mc_returns) -> Dict[str, float]:
    """Section 5.4 metrics of error = Q - G; an empty side reports 0.0 (with its count 0 in the share), no
    state at all NaN."""
    error = np.asarray(q_values, dtype=np.float64).reshape(-1) - np.asarray(mc_returns, dtype=np.float64).reshape(-1)
    if error.size == 0:
        nan = float('nan')
        return {'q_mse': nan, 'q_overestimate_share': nan, 'q_positive_error_mean': nan,
                'q_negative_error_mean': nan}
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


def _time_limit_wrappers(env):
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            yield env
        env = env.env


def time_limit(env) -> Optional[int]:
    """The step limit of `env`: the smallest of its TimeLimit wrappers' and of the unwrapped env's
    `max_episode_steps` attribute; None when it has neither."""
    limits = [int(w._max_episode_steps) for w in _time_limit_wrappers(env) if w._max_episode_steps is not None]
    own = getattr(getattr(env, 'unwrapped', env), 'max_episode_steps', None)
    if own is not None:
        limits.append(int(own))
    return min(limits) if limits else None


def lift_time_limit(env, steps: int):
    """Raise every step limit of `env` below `steps` to `steps`: its TimeLimit wrappers' and a writable
    `max_episode_steps` of the unwrapped env (a read-only one stays)."""
    for wrapper in _time_limit_wrappers(env):
        if wrapper._max_episode_steps is not None and wrapper._max_episode_steps < steps:
            wrapper._max_episode_steps = int(steps)
    inner = getattr(env, 'unwrapped', env)
    own = getattr(inner, 'max_episode_steps', None)
    if own is not None and int(own) < steps:
        try:
            inner.max_episode_steps = int(steps)
        except AttributeError:
            pass


class Rollout(NamedTuple):
    observations: np.ndarray  # (T, obs_dim) float32
    actions: np.ndarray       # (T, act_dim)
    rewards: np.ndarray       # (T,)
    terminated: bool          # the last step was a real terminal


class Evaluator:
    """Runs `episodes` episodes per call in one env made by `env_factory()` (reset seeds seed, seed+1, ...).

    `max_episode_steps`: the evaluation episode's time limit L (default: the env's own, see `time_limit`).
    `q_window`: the window W of the Q diagnostics' returns (None: config/train.yaml `evaluation.q_window`;
    0: W = L).
    """

    def __init__(self, env_factory: Callable, episodes: int, gamma: float, seed: int = 0,
                 max_episode_steps: Optional[int] = None, q_window: Optional[int] = None):
        if episodes < 1:
            raise ValueError('evaluation needs at least one episode, got %d' % episodes)
        q_window = default_q_window() if q_window is None else int(q_window)
        if q_window < 0:
            raise ValueError('q_window must be >= 0 (0: the time limit), got %d' % q_window)
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError('max_episode_steps must be >= 1, got %r' % max_episode_steps)
        self.env_factory, self.episodes, self.gamma, self.seed = env_factory, episodes, gamma, seed
        self.max_episode_steps, self.q_window = max_episode_steps, q_window
        self._env = None
        self._limit = None
        self._warned = False
        self.last_observations = []  # the last call's episodes' observations, time-limited (for pictures)

    @property
    def env(self):
        if self._env is None:
            env = self.env_factory()
            self._limit = self.max_episode_steps if self.max_episode_steps is not None else time_limit(env)
            if self.diagnostic_steps(self._limit) is not None:
                lift_time_limit(env, self.diagnostic_steps(self._limit))
            self._env = env
        return self._env

    @property
    def limit(self) -> Optional[int]:
        """The evaluation episodes' time limit L (None: the env has none)."""
        _ = self.env
        return self._limit

    @property
    def window(self) -> Optional[int]:
        """W: q_window, or L where q_window is 0 (None: unbounded, only terminals end a return)."""
        return self.q_window or self.limit

    def diagnostic_steps(self, limit):
        """L + W, the length of a run with a critic (None where unbounded)."""
        window = self.q_window or limit
        return None if limit is None or window is None else limit + window

    def close(self):
        if self._env is not None:
            self._env.close()
            self._env = None

    def rollout(self, act_fn, episode_seed, max_steps=None) -> Rollout:
        """One episode of `act_fn` from `episode_seed`, for at most `max_steps` steps (default: the limit L)."""
        transport = _PolicyUnderTest(act_fn)
        steps = self.limit if max_steps is None else max_steps
        EpisodeRunner(self.env, transport, faults=(), max_steps=steps).run(0, seed=episode_seed)
        records = transport.steps
        return Rollout(np.stack([np.asarray(s.observation, dtype=np.float32) for s in records]),
                       np.stack([s.action for s in records]), np.asarray([s.reward for s in records]),
                       bool(records[-1].terminal))

    def evaluate(self, act_fn: Callable, q_fn: Optional[Callable] = None) -> Dict[str, float]:
        limit = self.limit
        run_steps = limit if q_fn is None else self.diagnostic_steps(limit)
        returns, lengths, all_q, all_g = [], [], [], []
        self.last_observations = []
        for episode in range(self.episodes):
            run = self.rollout(act_fn, self.seed + episode, max_steps=run_steps)
            length = len(run.rewards) if limit is None else min(len(run.rewards), limit)
            self.last_observations.append(run.observations[:length])
            returns.append(run.rewards[:length].sum())  # the time-limited episode's return
            lengths.append(length)
            if q_fn is not None:
                g, scored = window_returns(run.rewards, self.gamma, self.window, run.terminated, first=length)
                if len(scored) < length:
                    self._warn_unscored(length - len(scored), len(run.rewards))
                if len(scored):
                    q = np.asarray(q_fn(run.observations[scored], run.actions[scored]), dtype=np.float64)
                    all_q.append(q.reshape(-1))
                    all_g.append(g)
        result = {'return_mean': float(np.mean(returns)), 'return_std': float(np.std(returns)),
                  'return_min': float(np.min(returns)), 'return_max': float(np.max(returns)),
                  'episode_length_mean': float(np.mean(lengths))}
        if q_fn is not None:
            q_all = np.concatenate(all_q) if all_q else np.zeros(0)
            g_all = np.concatenate(all_g) if all_g else np.zeros(0)
            result.update(q_diagnostics(q_all, g_all))
            result['q_scored_states'] = float(len(g_all))
        return result

    def _warn_unscored(self, unscored, run_length):
        if self._warned:
            return
        self._warned = True
        warnings.warn('Q diagnostics: an evaluation run ended by a time limit after %d steps, before the %s steps '
                      'its window needs; its last %d states are not scored (give the env a writable '
                      'max_episode_steps or a gymnasium TimeLimit the evaluator can raise)'
                      % (run_length, self.diagnostic_steps(self._limit) or 'unbounded', unscored),
                      RuntimeWarning, stacklevel=3)


class _PolicyUnderTest(Transport):
    """The evaluator's transport: the policy answers each observation; the steps are kept in memory."""

    def __init__(self, act_fn):
        self.act_fn = act_fn
        self.steps = []

    def act(self, episode, step, observation):
        return np.asarray(self.act_fn(np.asarray(observation, dtype=np.float32)), dtype=np.float32)

    def record(self, step):
        self.steps.append(step)
