"""Behaviour policies for data collection: uniform random, the scripted tactile-feedback expert, a trained
checkpoint with Gaussian exploration noise, a per-episode schedule mixing them, and online TD3, which learns
from what it collects (plas_ros.collect.online_td3).

Every policy maps one 89-d observation to one 2-d action in [-1, 1] (`act(obs)`), is told when an episode
starts (`start_episode(episode)`), so a stateful or per-episode policy can prepare, is handed every step that
is recorded (`observe(step)`, a plas_ros.data.episodes.Step: what a learning policy learns from) and is closed
when the collection ends, however it ends (`close()`: a learner saves its last checkpoint). Parameters come
from `config/collect.yaml` (load_collect_config). Seeded: the same seed gives the same actions for the same
observations.
"""
import dataclasses
import os
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import numpy as np

from plas_ros.config import (
    ConfigError,
    check_keys,
    config_path,
    convert,
    from_mapping,
    load_yaml,
    refer,
    reference,
    user_path,
)
from plas_ros.env import layout

CONFIG_FILE = 'collect.yaml'
DEFAULT_PATH = config_path(CONFIG_FILE)
SECTIONS = ('noise', 'expert', 'schedule', 'online_td3')
NODE_SECTIONS = ('node', 'recorder')   # the behaviour and recorder nodes' parameters (config/collect.yaml only)
POLICY_NAMES = ('random', 'expert', 'checkpoint', 'schedule', 'online_td3')


@dataclass(frozen=True)
class ExpertConfig:
    contact_taxel_threshold: float   # a taxel above this reads cloth
    target_edge_row: float           # where the edge should sit, in rows from the top (7 = finger centre)
    taxel_m: float                   # row pitch of the finger
    vertical_gain: float             # fraction of the edge offset corrected per step
    speed_max: float                 # a0 when the edge sits at the target
    speed_min: float                 # a0 when the edge is `slow_rows` or more off target, or out of sight
    slow_rows: float


@dataclass(frozen=True)
class ScheduleEntry:
    policy: str                      # random | expert | checkpoint
    weight: float                    # relative share of episodes
    noise: float                     # Gaussian action noise sigma (before clipping)
    expert: Tuple[Tuple[str, float], ...] = ()   # overrides of ExpertConfig for this member (e.g. speed_max)


@dataclass(frozen=True)
class OnlineTD3Config:
    """config/collect.yaml `online_td3` (the meaning of each field is documented there)."""
    warmup_steps: int
    exploration_noise: float
    updates_per_step: int
    batch_size: int
    actor_hidden: Tuple[int, ...]
    critic_hidden: Tuple[int, ...]
    actor_lr: float
    critic_lr: float
    gamma: float
    tau: float
    policy_noise: float
    noise_clip: float
    policy_delay: int
    checkpoint_every: int
    threads: int

    def validate(self, path=None):
        for name in ('warmup_steps', 'updates_per_step', 'checkpoint_every', 'threads'):
            if getattr(self, name) < 0:
                raise ConfigError(path, 'online_td3.' + name, 'must be >= 0, got %r' % getattr(self, name))
        for name in ('batch_size', 'policy_delay'):
            if getattr(self, name) < 1:
                raise ConfigError(path, 'online_td3.' + name, 'must be >= 1, got %r' % getattr(self, name))
        for name in ('exploration_noise', 'policy_noise', 'noise_clip', 'actor_lr', 'critic_lr'):
            if getattr(self, name) < 0:
                raise ConfigError(path, 'online_td3.' + name, 'must be >= 0, got %r' % getattr(self, name))
        if not (0.0 <= self.gamma <= 1.0 and 0.0 < self.tau <= 1.0):
            raise ConfigError(path, 'online_td3', 'gamma must lie in [0, 1] and tau in (0, 1], got %r and %r'
                              % (self.gamma, self.tau))
        for name in ('actor_hidden', 'critic_hidden'):
            if not getattr(self, name) or min(getattr(self, name)) < 1:
                raise ConfigError(path, 'online_td3.' + name, 'must be a non-empty list of positive sizes')
        return self


@dataclass(frozen=True)
class CollectConfig:
    expert: ExpertConfig
    schedule: Tuple[ScheduleEntry, ...]
    noise: float                     # default exploration noise of `checkpoint` (and `expert` when asked)
    online_td3: OnlineTD3Config


def schedule_entry(raw, path=None, key='schedule'):
    """A ScheduleEntry from its YAML mapping {policy, weight, noise, expert: {field: value}}."""
    if not isinstance(raw, dict):
        raise ConfigError(path, key, 'expected a mapping {policy, weight, noise, expert}, got %r' % (raw,))
    check_keys(raw, ('policy', 'weight', 'noise', 'expert'), path, key, optional=('noise', 'expert'))
    expert = raw.get('expert') or {}
    if not isinstance(expert, dict):
        raise ConfigError(path, key + '.expert', 'expected a mapping of expert fields, got %r' % (expert,))
    check_keys(expert, tuple(ExpertConfig.__dataclass_fields__), path, key + '.expert',
               optional=tuple(ExpertConfig.__dataclass_fields__))
    entry = from_mapping(_RawEntry, dict(raw, noise=raw.get('noise', 0.0), expert=expert), path, key)
    return ScheduleEntry(policy=entry.policy, weight=entry.weight, noise=entry.noise,
                         expert=tuple(sorted(entry.expert.items())))


@dataclass(frozen=True)
class _RawEntry:
    policy: str
    weight: float
    noise: float
    expert: Dict[str, float]


def expert_references():
    """The expert's fields other files own, {field: (where, value)}: the gripper controller's contact
    threshold (a taxel above it reads cloth) and the finger's row pitch."""
    return {'contact_taxel_threshold': reference('env.yaml', 'gripper.contact_taxel_threshold'),
            'taxel_m': ('config/robot.yaml finger.taxel_mm (in mm)', layout.TAXEL_M)}


def load_collect_config(path=None):
    """Read a collection config, strictly (plas_ros.config); a file that gives only some sections (say, its own
    schedule) takes the others from config/collect.yaml, so the expert's parameters live in one place. The
    expert's contact threshold and taxel pitch come from config/env.yaml and config/robot.yaml."""
    path = user_path(path, CONFIG_FILE)
    raw = load_yaml(path)
    check_keys(raw, SECTIONS + NODE_SECTIONS, path, optional=SECTIONS + NODE_SECTIONS)
    if os.path.abspath(path) != os.path.abspath(DEFAULT_PATH):
        raw = dict(load_yaml(DEFAULT_PATH), **raw)
    check_keys(raw, SECTIONS + NODE_SECTIONS, path, optional=NODE_SECTIONS)
    if not isinstance(raw['expert'], dict):
        raise ConfigError(path, 'expert', 'section missing or not a mapping')
    expert = from_mapping(ExpertConfig, refer(raw['expert'], expert_references(), path, 'expert'), path, 'expert')
    if not isinstance(raw['schedule'], list):
        raise ConfigError(path, 'schedule', 'expected a list of entries, got %r' % (raw['schedule'],))
    schedule = tuple(schedule_entry(e, path, 'schedule[%d]' % i) for i, e in enumerate(raw['schedule']))
    online = convert(OnlineTD3Config, raw['online_td3'], path, 'online_td3').validate(path)
    config = CollectConfig(expert=expert, schedule=schedule, noise=convert(float, raw['noise'], path, 'noise'),
                           online_td3=online)
    for entry in schedule:
        if entry.policy not in ('random', 'expert', 'checkpoint') or entry.weight < 0 or entry.noise < 0:
            raise ValueError('%s: bad schedule entry %s (policy random|expert|checkpoint, weight and noise >= 0)'
                             % (path, entry))
    if sum(e.weight for e in schedule) <= 0:
        raise ValueError('%s: schedule weights must not all be zero' % path)
    return config


def _clip(action):
    return np.clip(np.asarray(action, dtype=np.float64), layout.ACTION_LOW, layout.ACTION_HIGH).astype(np.float32)


class Policy:
    name = 'policy'
    learns = False  # True: it learns from the steps it is handed (`observe`), so it must be handed them

    def start_episode(self, episode):
        """Called before the first action of every episode."""

    def act(self, obs):
        raise NotImplementedError

    def observe(self, step):
        """Called with every step that is recorded (a Step; an error record too: it has no next observation)."""

    def close(self):
        """Called once when the collection ends, normally or not."""


class RandomPolicy(Policy):
    """Uniform in [-1, 1]^2."""
    name = 'random'

    def __init__(self, seed=None):
        self.rng = np.random.default_rng(seed)

    def act(self, obs):
        return self.rng.uniform(layout.ACTION_LOW, layout.ACTION_HIGH, layout.ACT_DIM).astype(np.float32)


class NoisyPolicy(Policy):
    """Gaussian exploration noise (sigma in action units) around another policy, clipped to [-1, 1]."""

    def __init__(self, base, noise, seed=None):
        self.base = base
        self.noise = float(noise)
        self.rng = np.random.default_rng(seed)
        self.name = base.name if self.noise == 0 else '%s+noise%g' % (base.name, self.noise)

    def start_episode(self, episode):
        self.base.start_episode(episode)

    def act(self, obs):
        action = np.asarray(self.base.act(obs), dtype=np.float64)
        return _clip(action + self.rng.normal(0.0, self.noise, action.shape))


def edge_row(tactile_raw, threshold):
    """Edge height as rows from the top of the finger (0..14); cloth lies below the edge, so the rows below
    it are covered. None when no taxel reads cloth."""
    covered = np.asarray(tactile_raw, dtype=np.float64).reshape(layout.TACTILE_ROWS, layout.TACTILE_COLS) > threshold
    if not covered.any():
        return None
    return layout.TACTILE_ROWS - covered.mean(axis=1).sum()


class ExpertPolicy(Policy):
    """Scripted tactile feedback: move the tip vertically to keep the edge at the target row, and slide as fast
    as the edge allows (full speed when centred, slower the further it drifts)."""
    name = 'expert'

    def __init__(self, config):
        self.config = config

    def act(self, obs):
        c = self.config
        _, tactile, _, _ = layout.split_observation(obs)
        row = edge_row(tactile, c.contact_taxel_threshold)
        if row is None:
            return _clip([self._speed_to_action(c.speed_min), 0.0])
        offset_rows = c.target_edge_row - row                  # > 0: the edge sits above the target
        dz = c.vertical_gain * offset_rows * c.taxel_m         # move up to bring it back down in the finger
        closeness = max(0.0, 1.0 - abs(offset_rows) / c.slow_rows)
        speed = c.speed_min + (c.speed_max - c.speed_min) * closeness
        return _clip([self._speed_to_action(speed), dz / layout.MAX_STEP_M])

    @staticmethod
    def _speed_to_action(speed):
        """Speed as a fraction of the largest horizontal step -> a0 (dy = (a0 + 1) / 2 * max step)."""
        return 2.0 * float(speed) - 1.0


class CheckpointPolicy(Policy):
    """A trained policy directory loaded with plas_ros.policy.load_policy (imported only when used)."""

    def __init__(self, directory):
        from plas_ros.policy import load_policy  # torch is heavy: only checkpoint users pay for it
        self.policy = load_policy(directory)
        if self.policy.obs_dim != layout.OBS_DIM or self.policy.act_dim != layout.ACT_DIM:
            raise ValueError('checkpoint %s has obs/act dims %d/%d, the cloth task needs %d/%d'
                             % (directory, self.policy.obs_dim, self.policy.act_dim, layout.OBS_DIM, layout.ACT_DIM))
        self.name = 'checkpoint:%s' % os.path.basename(os.path.normpath(directory))

    def act(self, obs):
        return _clip(self.policy.act(np.asarray(obs, dtype=np.float32)))


class SchedulePolicy(Policy):
    """Picks one behaviour per episode with the schedule's weights (seeded), e.g. mostly a noisy behaviour and a
    few expert episodes, like the paper's dataset."""

    def __init__(self, entries, make_member, seed=None):
        self.entries = tuple(entries)
        weights = np.array([e.weight for e in self.entries], dtype=np.float64)
        self.probabilities = weights / weights.sum()
        self.members = [make_member(e, seed_offset=i + 1) for i, e in enumerate(self.entries)]
        self.rng = np.random.default_rng(seed)
        self.current = self.members[0]
        self.name = 'schedule(%s)' % ', '.join('%s:%g' % (m.name, e.weight) for m, e in zip(self.members, self.entries))

    def start_episode(self, episode):
        self.current = self.members[int(self.rng.choice(len(self.members), p=self.probabilities))]
        self.current.start_episode(episode)

    def act(self, obs):
        return self.current.act(obs)


def _child_seed(seed, offset):
    return None if seed is None else [int(seed), int(offset)]


def default_checkpoint_out(output):
    """Where online_td3 puts its checkpoints when not told: next to the HDF5 file, OUTPUT without .h5 plus
    _online_td3 (collect.launch computes the same)."""
    output = str(output)
    return (output[:-3] if output.endswith('.h5') else output) + '_online_td3'


def make_policy(name, config=None, checkpoint=None, noise=None, seed=None, checkpoint_out: Optional[str] = None):
    """Build a behaviour policy by name (random | expert | checkpoint | schedule | online_td3).

    `noise` (Gaussian sigma) applies to expert and checkpoint (default for checkpoint: config.noise) and is
    online_td3's exploration noise (default: config.online_td3.exploration_noise); the schedule's members
    carry their own noise from the config. `checkpoint_out` is the folder online_td3 saves its checkpoints to
    (None: it saves none).
    """
    config = config or load_collect_config()
    if name not in POLICY_NAMES:
        raise ValueError('unknown policy %r; choose one of %s' % (name, ', '.join(POLICY_NAMES)))
    if name == 'online_td3':
        from plas_ros.collect.online_td3 import OnlineTD3Policy  # torch is heavy: only the learner pays for it
        return OnlineTD3Policy(config.online_td3, checkpoint_out=checkpoint_out, noise=noise, seed=seed)

    def member(entry, seed_offset):
        member_config = dataclasses.replace(config, expert=dataclasses.replace(config.expert, **dict(entry.expert)))
        return _build(entry.policy, member_config, checkpoint, entry.noise, _child_seed(seed, seed_offset))

    if name == 'schedule':
        return SchedulePolicy(config.schedule, member, seed=_child_seed(seed, 0))
    if noise is None:
        noise = config.noise if name == 'checkpoint' else 0.0
    return _build(name, config, checkpoint, noise, seed)


def _build(name, config, checkpoint, noise, seed):
    if name == 'random':
        return RandomPolicy(seed)
    if name == 'expert':
        base = ExpertPolicy(config.expert)
    else:
        if not checkpoint:
            raise ValueError('policy %r needs a checkpoint directory (~checkpoint / checkpoint:=DIR)' % name)
        base = CheckpointPolicy(checkpoint)
    return NoisyPolicy(base, noise, seed) if noise > 0 else base
