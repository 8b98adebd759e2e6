"""The ROS-free safety core of the deployed policy (the inference node only wires it to topics).

For every observation the core decides: an action, or nothing and why. Nothing is published when
- the emergency stop is latched (until reset) or the gate is not enabled;
- the observation has the wrong size or a value that is not finite;
- the observation's stamp is missing, older than `max_obs_age`, or as far in the future;
- a part of the observation lies outside its plausible range (ObservationRanges: taxels beyond full scale, a
  force beyond the sensor's range, the tip outside the safety box, the pitch beyond its bound);
- the policy returns a value that is not finite, or fails (a broken checkpoint must not move the arm).
The envelope belongs to the robot, not to the checkpoint: it is the task's action space (plas_ros.env.layout,
the gym env's action_space, what the env node accepts). A policy whose bounds are wider is refused
(check_policy_bounds); every action is clipped to the configured bounds (never wider than the policy's, so never
wider than the envelope) and checked against the envelope again right before it is published (doc/deploy.md).

The per-episode return log over the transition stream is `plas_ros.data.episodes.EpisodeReturns`.
"""
import threading
from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np

from plas_ros.config import ConfigError, check_keys, config_path, load_section, load_yaml, section, user_path
from plas_ros.data.schema import ACTION_TOLERANCE  # a float32 round trip of a bound still counts as inside
from plas_ros.env import layout

CONFIG_FILE = 'deploy.yaml'
SECTIONS = ('inference', 'plausible', 'node')
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
POLICY_FAILED = 'policy failed'
IMPLAUSIBLE = 'observation outside its plausible range'
OUTSIDE_ENVELOPE = 'action outside the robot envelope'


@dataclass(frozen=True)
class DeployConfig:
    max_obs_age: float   # s
    warn_period: float   # s
    threads: int


@dataclass(frozen=True)
class PlausibleConfig:
    force_max_n: float       # N, largest plausible |force| component
    tip_margin_m: float      # m the measured tip z may lie outside the safety box
    pitch_margin_deg: float  # deg the measured pitch may lie outside the arm's pitch range


def load_deploy_config(path=None, overrides=None):
    """Load DeployConfig from YAML (default config/deploy.yaml), strictly (plas_ros.config.load_section);
    `overrides` replaces single keys (node parameters)."""
    path = user_path(path, CONFIG_FILE)
    raw = load_yaml(path)
    check_keys(raw, SECTIONS, path, optional=('node', 'plausible'))
    if overrides:
        if not isinstance(raw.get('inference'), dict):
            raise ConfigError(path, 'inference', 'section missing or not a mapping')
        raw = dict(raw, inference=dict(raw['inference'], **overrides))
    config = load_section(DeployConfig, raw, 'inference', path)
    if not config.max_obs_age > 0 or config.threads < 1:
        raise ValueError('%s: max_obs_age must be > 0 and threads >= 1, got %s' % (path, config))
    return config


def task_envelope():
    """The robot's envelope: the task's action space (plas_ros.env.layout), as float32 (low, high) arrays."""
    return (np.full(layout.ACT_DIM, layout.ACTION_LOW, np.float32),
            np.full(layout.ACT_DIM, layout.ACTION_HIGH, np.float32))


def check_policy_bounds(policy_low, policy_high, envelope, what="the policy's"):
    """The policy's action bounds, if they lie within `envelope` (low, high); a clear error otherwise.

    Bounds that are not finite, of another length, inverted (low > high) or wider than the envelope are refused:
    a checkpoint must not widen what the robot accepts (narrower bounds are allowed and used).
    """
    env_low, env_high = envelope
    low = _bound_array(policy_low, len(env_low), what + ' action_low')
    high = _bound_array(policy_high, len(env_high), what + ' action_high')
    if np.any(low > high):
        raise ValueError('%s action_low %s exceeds its action_high %s' % (what, low.tolist(), high.tolist()))
    if np.any(low < env_low - ACTION_TOLERANCE) or np.any(high > env_high + ACTION_TOLERANCE):
        raise ValueError('%s action bounds [%s, %s] are wider than the task\'s action space [%s, %s] (the robot\'s '
                         'envelope): refused' % (what, low.tolist(), high.tolist(), env_low.tolist(),
                                                 env_high.tolist()))
    return np.maximum(low, env_low), np.minimum(high, env_high)


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


def load_plausible_config(path=None):
    """PlausibleConfig from the `plausible` section of `path` (default config/deploy.yaml; a file without the
    section takes the default file's)."""
    path = user_path(path, CONFIG_FILE)
    raw = load_yaml(path)
    if 'plausible' not in raw:
        path, raw = DEFAULT_CONFIG_PATH, load_yaml(DEFAULT_CONFIG_PATH)
    config = load_section(PlausibleConfig, raw, 'plausible', path)
    if not config.force_max_n > 0 or config.tip_margin_m < 0 or config.pitch_margin_deg < 0:
        raise ValueError('%s: plausible.force_max_n must be > 0 and the margins >= 0, got %s' % (path, config))
    return config


class ObservationRanges:
    """The plausible [low, high] of every value of the task's observation, per part of plas_ros.env.layout.

    |force| from 0 to plausible.force_max_n; taxels from 0 to full scale (config/robot.yaml finger.full_scale);
    tip z within the safety box's z (arm.safety_box_low/high) widened by plausible.tip_margin_m; pitch within
    arm.pitch_range_deg widened by plausible.pitch_margin_deg; each in the observation's scaling.
    """

    def __init__(self, parts):
        """`parts`: (name, start, stop, low, high) in observation units; together they cover the observation."""
        self.parts = tuple((str(n), int(a), int(b), float(lo), float(hi)) for n, a, b, lo, hi in parts)
        self.obs_dim = max(stop for _, _, stop, _, _ in self.parts)
        self.low = np.full(self.obs_dim, np.nan, np.float32)
        self.high = np.full(self.obs_dim, np.nan, np.float32)
        for _, start, stop, low, high in self.parts:
            self.low[start:stop] = low - ACTION_TOLERANCE
            self.high[start:stop] = high + ACTION_TOLERANCE
        if np.isnan(self.low).any() or np.any(self.low > self.high):
            raise ValueError('observation ranges must cover every value with low <= high: %s' % (self.parts,))

    @classmethod
    def from_config(cls, plausible, arm):
        """The cloth task's ranges from a PlausibleConfig and the arm section of config/robot.yaml."""
        pitch_low, pitch_high = (float(v) for v in arm['pitch_range_deg'])
        margin = plausible.pitch_margin_deg
        bounds = [(layout.FORCE.start, layout.FORCE.stop, 0.0, plausible.force_max_n / layout.FORCE_SCALE_N),
                  (layout.TACTILE.start, layout.TACTILE.stop, 0.0, 1.0),  # raw / full scale
                  (layout.TIP_Z, layout.TIP_Z + 1, float(arm['safety_box_low'][2]) - plausible.tip_margin_m,
                   float(arm['safety_box_high'][2]) + plausible.tip_margin_m),
                  (layout.PITCH, layout.PITCH + 1, (pitch_low - margin) / layout.PITCH_SCALE_DEG,
                   (pitch_high + margin) / layout.PITCH_SCALE_DEG)]
        names = {start: name for name, start, _ in layout.OBS_LAYOUT}  # the names the dataset files carry
        return cls([(names[start], start, stop, low, high) for start, stop, low, high in bounds])

    def violation(self, obs):
        """None when every value of `obs` (float32, finite) is plausible, else which part and value is not."""
        if (obs >= self.low).all() and (obs <= self.high).all():  # the methods: half the time of np.all's dispatch
            return None
        index = int(np.flatnonzero((obs < self.low) | (obs > self.high))[0])
        name, start, _, low, high = next(p for p in self.parts if p[1] <= index < p[2])
        return '%s[%d] (observation index %d) = %.6g outside [%.6g, %.6g]' % (name, index - start, index,
                                                                               float(obs[index]), low, high)


def load_observation_ranges(path=None):
    """The cloth task's ObservationRanges: `plausible` of `path` (default config/deploy.yaml) and the robot's arm."""
    return ObservationRanges.from_config(load_plausible_config(path), section('robot.yaml', 'arm'))


class EpisodeOnce:
    """True the first time a key is seen in an episode: a problem is said once per episode, not per step."""

    def __init__(self):
        self._episode = None
        self._seen = set()

    def first(self, episode, key):
        if episode != self._episode:
            self._episode, self._seen = episode, set()
        if key in self._seen:
            return False
        self._seen.add(key)
        return True


class SafetyGate:
    """Enable switch, latched emergency stop, observation checks, action clipping and the envelope check.

    `envelope` (low, high) defaults to the task's action space and `ranges` to the cloth task's ObservationRanges
    from config; the clipping bounds must lie within the envelope.
    Thread-safe: the switch and the stop are flipped from service and topic threads while the
    observation thread decides; a stop seen at any point before publishing wins.
    """

    def __init__(self, obs_dim, action_low, action_high, max_obs_age, enabled=False, envelope=None, ranges=None):
        self.obs_dim = int(obs_dim)
        self.envelope_low, self.envelope_high = envelope if envelope is not None else task_envelope()
        self.action_low, self.action_high = check_policy_bounds(
            action_low, action_high, (self.envelope_low, self.envelope_high), what="the gate's")
        self._envelope = list(zip(self.envelope_low.tolist(), self.envelope_high.tolist()))
        self.ranges = ranges if ranges is not None else load_observation_ranges()
        if self.ranges.obs_dim != self.obs_dim:
            raise ValueError('the observation ranges cover %d values but the gate takes %d-d observations'
                             % (self.ranges.obs_dim, self.obs_dim))
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
        reason = self.check_stamp(stamp_s, now_s)
        if reason:
            return reason
        return IMPLAUSIBLE if self.ranges.violation(data) else None

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

    def outside_envelope(self, action):
        """True unless `action` is act_dim finite values within the robot's envelope (plain Python: for two values
        a loop is several times faster than numpy's calls; NaN fails every comparison, so it is outside)."""
        values = action.tolist() if isinstance(action, np.ndarray) else list(action)
        if len(values) != len(self._envelope):
            return True
        return not all(low <= value <= high for value, (low, high) in zip(values, self._envelope))

    def publish_reason(self, action):
        """The last look before publishing `action`: why it must not go out (stop, switch, envelope), or None."""
        return self.blocking_reason() or (OUTSIDE_ENVELOPE if self.outside_envelope(action) else None)


class Decision(NamedTuple):
    action: Optional[np.ndarray]   # float32 (act_dim,), within bounds; None: publish nothing
    reason: Optional[str]          # why there is no action (None when there is one)
    clipped: bool = False          # the policy's raw action lay outside the bounds
    detail: Optional[str] = None   # IMPLAUSIBLE: which part of the observation, its value; POLICY_FAILED: why


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
            detail = self.gate.ranges.violation(self._obs) if reason == IMPLAUSIBLE else None
            return Decision(None, reason, detail=detail)
        try:
            raw = np.asarray(self.policy.act(self._obs), dtype=np.float32).reshape(-1)
        except (ValueError, RuntimeError) as error:  # a broken network (or TorchScript program): nothing moves
            return Decision(None, POLICY_FAILED, detail=str(error).splitlines()[0] if str(error) else None)
        if raw.shape != self.gate.action_low.shape or not np.all(np.isfinite(raw)):
            return Decision(None, POLICY_NOT_FINITE)
        action = self.gate.clip(raw)
        reason = self.gate.publish_reason(action)  # a stop that arrived during the forward pass still wins
        if reason:
            return Decision(None, reason)
        return Decision(action, None, bool(np.any(action != raw)))


def build_core(checkpoint, config, enabled=False, bounds=(None, None), ranges=None):
    """The InferenceCore of the node: the policy of `checkpoint` (a checkpoint folder or an exported TorchScript
    file, plas_ros.policy) for the task's observation and action sizes, its bounds checked against the robot's
    envelope (wider: refused), `bounds` (the operator's, tighter or None) resolved within them."""
    import torch  # heavy: imported when a policy is loaded
    torch.set_num_threads(config.threads)
    torch.set_flush_denormal(True)  # denormal floats are many times slower on CPUs; zero is as good here
    from plas_ros.policy import load_policy
    policy = load_policy(checkpoint, obs_dim=layout.OBS_DIM, act_dim=layout.ACT_DIM)
    envelope = task_envelope()
    try:
        policy_low, policy_high = check_policy_bounds(policy.action_low, policy.action_high, envelope)
    except ValueError as error:
        raise ValueError('%s: %s' % (checkpoint, error)) from None
    low, high = resolve_action_bounds(policy_low, policy_high, policy.act_dim, *bounds)
    gate = SafetyGate(policy.obs_dim, low, high, config.max_obs_age, enabled=enabled, envelope=envelope,
                      ranges=ranges)
    return InferenceCore(policy, gate)
