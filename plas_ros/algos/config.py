"""One `TrainConfig` dataclass for every algorithm; its defaults live in config/train.yaml, presets in
config/train_*.yaml."""
import dataclasses
import os
from dataclasses import dataclass
from typing import List, Optional

from plas_ros.config import ConfigError, check_keys, config_path, load_yaml, section

ALGOS = ('plas', 'plas_p', 'bc', 'td3', 'bcq')
# Algorithms whose first phase trains the CVAE behaviour model.
CVAE_ALGOS = ('plas', 'plas_p', 'bcq')


@dataclass
class TrainConfig:
    """Every training setting; the defaults live in config/train.yaml (`defaults`), presets override some."""
    algo: str
    # Network sizes (hidden layers).
    actor_hidden: List[int]
    critic_hidden: List[int]
    vae_hidden: List[int]
    # Optimisation.
    batch_size: int
    actor_lr: float
    critic_lr: float
    vae_lr: float
    vae_steps: int                  # phase 1: CVAE iterations
    steps: int                      # phase 2: policy (actor/critic) updates
    # RL.
    gamma: float
    tau: float
    lmbda: float                    # soft clipped double-Q weight of min(Q1', Q2')
    # PLAS.
    max_latent_action: float
    perturbation_phi: float         # PLAS+P residual limit, a fraction of the action half-range
    vae_kl_weight: float
    # Offline TD3 (Fujimoto et al.), noise as fractions of the action half-range.
    td3_policy_noise: float
    td3_noise_clip: float
    td3_policy_delay: int
    # BCQ.
    bcq_phi: float
    bcq_target_samples: int         # decoded candidates per next state in the target
    bcq_act_samples: int            # candidates when acting
    # Bookkeeping.
    log_every: int                  # steps between TensorBoard scalars (each costs one sync)
    eval_every: int                 # policy steps between evaluations (0: none)
    eval_episodes: int
    threads: int                    # torch threads (0: leave torch's default)

    def validate(self):
        if self.algo not in ALGOS:
            raise ValueError('config: algo %r is not one of %s' % (self.algo, ', '.join(ALGOS)))
        for name in ('batch_size', 'td3_policy_delay', 'bcq_target_samples', 'bcq_act_samples', 'log_every'):
            if getattr(self, name) < 1:
                raise ValueError('config: %s must be >= 1, got %r' % (name, getattr(self, name)))
        for name in ('vae_steps', 'steps', 'eval_every', 'eval_episodes', 'threads'):
            if getattr(self, name) < 0:
                raise ValueError('config: %s must be >= 0, got %r' % (name, getattr(self, name)))
        if not 0.0 <= self.lmbda <= 1.0:
            raise ValueError('config: lmbda must lie in [0, 1], got %r' % self.lmbda)
        for name in ('actor_hidden', 'critic_hidden', 'vae_hidden'):
            sizes = getattr(self, name)
            if not sizes or any(int(h) < 1 for h in sizes):
                raise ValueError('config: %s must be a non-empty list of positive sizes, got %r' % (name, sizes))
        return self

    @property
    def needs_cvae(self) -> bool:
        return self.algo in CVAE_ALGOS

    def to_dict(self):
        return dataclasses.asdict(self)


DEFAULTS_FILE = 'train.yaml'


def defaults():
    """The default of every TrainConfig field: config/train.yaml `defaults` (a fresh dict)."""
    path = config_path(DEFAULTS_FILE)
    values = section(path, 'defaults')
    check_keys(values, [f.name for f in dataclasses.fields(TrainConfig)], path, 'defaults')
    return values


def config_from_dict(values, source='config'):
    """Build a TrainConfig from a mapping over the defaults; unknown keys are an error (a typo must not be
    ignored)."""
    known = {f.name: f for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(source, None, 'unknown keys %s' % ', '.join(unknown))
    cfg = TrainConfig(**dict(defaults(), **values))
    for name in ('actor_hidden', 'critic_hidden', 'vae_hidden'):
        sizes = getattr(cfg, name)
        if not isinstance(sizes, (list, tuple)):
            raise ConfigError(source, name, '%s must be a list of layer sizes, got %r' % (name, sizes), in_text=False)
        setattr(cfg, name, [int(h) for h in sizes])
    for name, f in known.items():
        if f.type in (int, float):
            setattr(cfg, name, _number(source, name, getattr(cfg, name), f.type))
    return cfg.validate()


def _number(source, name, value, kind):
    """A number of the field's kind; YAML's '5e5' (a string) and 5.0e5 (a float) are fine for an int field."""
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(source, name, '%s must be a number, got %r' % (name, value), in_text=False) from exc
    if isinstance(value, bool) or (kind is int and not number.is_integer()):
        raise ConfigError(source, name, '%s must be %s, got %r' % (name, 'an integer' if kind is int else 'a number',
                                                                   value), in_text=False)
    return kind(number)


def load_config(path: Optional[str] = None, **overrides) -> TrainConfig:
    """The defaults (config/train.yaml), then a preset YAML (flat keys of TrainConfig), then the non-None
    overrides."""
    values = {}
    if path is not None:
        values = load_yaml(os.path.abspath(path))  # a path as given, never looked up in config/
    values.update({k: v for k, v in overrides.items() if v is not None})
    return config_from_dict(values, source=str(path or 'config'))
