"""The ROS-free safety core of the deployed policy (the inference node only wires it to topics).

For every observation the core decides: an action, or nothing and why. Nothing is published when
- the emergency stop is latched (until reset) or the gate is not enabled;
- the observation has the wrong size or a value that is not finite;
- the observation's stamp is missing, older than `max_obs_age`, or as far in the future;
- the policy returns a value that is not finite (a broken checkpoint must not move the arm).
Every published action is clipped to the configured bounds, which are never wider than the policy's.

The per-episode return log over the transition stream is `plas_ros.data.episodes.EpisodeReturns`.
"""
import threading
from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np

from plas_ros.config import ConfigError, check_keys, config_path, load_section, load_yaml, user_path

CONFIG_FILE = 'deploy.yaml'
DEFAULT_CONFIG_PATH = config_path(CONFIG_FILE)

# Why an observation got no action (also the text of the node's throttled log line).
ESTOPPED = 'emergency stop latched'
DISABLED = 'not enabled'
WRONG_SIZE = 'wrong observation size'
NOT_FINITE = 'observation has a value that is not finite'
NO_STAMP = 'observation has no header stamp'
STALE = 'observation is too old'
FUTURE = 'observation stamp is in the future'
POLICY_NOT_FINITE = 'policy returned a value that is not finite'


@dataclass(frozen=True)
class DeployConfig:
    max_obs_age: float   # s
    warn_period: float   # s
    threads: int


def load_deploy_config(path=None, overrides=None):
    """Load DeployConfig from YAML (default config/deploy.yaml), strictly (plas_ros.config.load_section);
    `overrides` replaces single keys (node parameters)."""
    path = user_path(path, CONFIG_FILE)
    raw = load_yaml(path)
    check_keys(raw, ('inference', 'node'), path, optional=('node',))
    if overrides:
        if not isinstance(raw.get('inference'), dict):
            raise ConfigError(path, 'inference', 'section missing or not a mapping')
        raw = dict(raw, inference=dict(raw['inference'], **overrides))
    config = load_section(DeployConfig, raw, 'inference', path)
    if not config.max_obs_age > 0 or config.threads < 1:
        raise ValueError('%s: max_obs_age must be > 0 and threads >= 1, got %s' % (path, config))
    return config


def resolve_action_bounds(policy_low, policy_high, act_dim, low=None, high=None):
    """The bounds actions are clipped to: the policy's, or tighter ones given per dimension or as scalars.

    Bounds wider than the policy's are refused (a clear error naming the bound), as is low > high.
    Returns (low, high) as float32 arrays of length act_dim.
    """
    policy_low = _bound_array(policy_low, act_dim, 'policy action_low')
    policy_high = _bound_array(policy_high, act_dim, 'policy action_high')
    low = policy_low if low is None else _bound_array(low, act_dim, 'action_low')
    high = policy_high if high is None else _bound_array(high, act_dim, 'action_high')
    if np.any(low < policy_low):
        raise ValueError('action_low %s is wider than the policy bound %s' % (low.tolist(), policy_low.tolist()))
    if np.any(high > policy_high):
        raise ValueError('action_high %s is wider than the policy bound %s'
                         % (high.tolist(), policy_high.tolist()))
    if np.any(low > high):
        raise ValueError('action_low %s exceeds action_high %s' % (low.tolist(), high.tolist()))
    return low, high


def _bound_array(value, act_dim, name):
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        array = np.full(act_dim, float(array))
    if array.shape != (act_dim,) or not np.all(np.isfinite(array)):
        raise ValueError('%s must be a finite scalar or %d values, got %r' % (name, act_dim, value))
    return array.astype(np.float32)


class SafetyGate:
    """Enable switch, latched emergency stop, observation checks and action clipping.

    Thread-safe: the switch and the stop are flipped from service and topic threads while the
    observation thread decides; a stop seen at any point before publishing wins.
    """

    def __init__(self, obs_dim, action_low, action_high, max_obs_age, enabled=False):
        self.obs_dim = int(obs_dim)
        self.action_low = np.asarray(action_low, dtype=np.float32)
        self.action_high = np.asarray(action_high, dtype=np.float32)
        self.max_obs_age = float(max_obs_age)
        self._enabled = bool(enabled)
        self._estopped = False
        self._lock = threading.Lock()

    @property
    def enabled(self):
        return self._enabled

    @property
    def estopped(self):
        return self._estopped

    def enable(self, on):
        with self._lock:
            self._enabled = bool(on)

    def estop(self):
        """Latch the emergency stop: no action until reset_estop(), whatever the enable switch says."""
        with self._lock:
            self._estopped = True

    def reset_estop(self):
        with self._lock:
            self._estopped = False

    def blocking_reason(self):
        """Why nothing may be published right now (stop or switch), or None."""
        if self._estopped:
            return ESTOPPED
        if not self._enabled:
            return DISABLED
        return None

    def check_observation(self, data, stamp_s, now_s):
        """Why this observation must get no action, or None. `stamp_s` 0 means the stamp was never set."""
        if len(data) != self.obs_dim:
            return WRONG_SIZE
        if not np.isfinite(data).all():
            return NOT_FINITE
        return self.check_stamp(stamp_s, now_s)

    def check_stamp(self, stamp_s, now_s):
        if stamp_s <= 0.0:
            return NO_STAMP
        age = now_s - stamp_s
        if age > self.max_obs_age:
            return STALE
        if age < -self.max_obs_age:
            return FUTURE
        return None

    def clip(self, action):
        return np.clip(action, self.action_low, self.action_high)


class Decision(NamedTuple):
    action: Optional[np.ndarray]   # float32 (act_dim,), within bounds; None: publish nothing
    reason: Optional[str]          # why there is no action (None when there is one)
    clipped: bool = False          # the policy's raw action lay outside the bounds


class InferenceCore:
    """Observation in, safe action (or a reason for none) out, around a policy from load_policy."""

    def __init__(self, policy, gate):
        if int(policy.obs_dim) != gate.obs_dim:
            raise ValueError('the gate expects %d-d observations but the policy takes %d'
                             % (gate.obs_dim, policy.obs_dim))
        self.policy = policy
        self.gate = gate
        self._obs = np.empty(gate.obs_dim, dtype=np.float32)  # reused: no allocation per message

    def decide(self, data, stamp_s, now_s):
        """Decide for one observation `data` (sequence of floats) stamped at `stamp_s` (s), seen at `now_s`."""
        reason = self.gate.blocking_reason()
        if reason:
            return Decision(None, reason)
        if len(data) != self.gate.obs_dim:
            return Decision(None, WRONG_SIZE)
        self._obs[:] = data  # one conversion; a float beyond float32's range becomes inf and is refused below
        reason = self.gate.check_observation(self._obs, stamp_s, now_s)
        if reason:
            return Decision(None, reason)
        raw = np.asarray(self.policy.act(self._obs), dtype=np.float32).reshape(-1)
        if raw.shape != self.gate.action_low.shape or not np.all(np.isfinite(raw)):
            return Decision(None, POLICY_NOT_FINITE)
        action = self.gate.clip(raw)
        reason = self.gate.blocking_reason()  # a stop that arrived during the forward pass still wins
        if reason:
            return Decision(None, reason)
        return Decision(action, None, bool(np.any(action != raw)))
