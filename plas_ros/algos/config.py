"""One `TrainConfig` dataclass for every algorithm; presets live in config/train_*.yaml."""
import dataclasses
from dataclasses import dataclass, field
from typing import List, Optional

import yaml

ALGOS = ('plas', 'plas_p', 'bc', 'td3', 'bcq')
# Algorithms whose first phase trains the CVAE behaviour model.
CVAE_ALGOS = ('plas', 'plas_p', 'bcq')


@dataclass
class TrainConfig:
    algo: str = 'plas'
    # Network sizes (hidden layers).
    actor_hidden: List[int] = field(default_factory=lambda: [64, 64])
    critic_hidden: List[int] = field(default_factory=lambda: [64, 64])
    vae_hidden: List[int] = field(default_factory=lambda: [64, 64])
    # Optimisation.
    batch_size: int = 256
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    vae_lr: float = 1e-4
    vae_steps: int = 15000          # phase 1: CVAE iterations
    steps: int = 2400               # phase 2: policy (actor/critic) updates
    # RL.
    gamma: float = 0.99
    tau: float = 0.005
    lmbda: float = 0.75             # soft clipped double-Q weight of min(Q1', Q2')
    # PLAS.
    max_latent_action: float = 2.0
    perturbation_phi: float = 0.05  # PLAS+P residual limit, a fraction of the action half-range
    vae_kl_weight: float = 0.5
    # Offline TD3 (Fujimoto et al.), noise as fractions of the action half-range.
    td3_policy_noise: float = 0.2
    td3_noise_clip: float = 0.5
    td3_policy_delay: int = 2
    # BCQ.
    bcq_phi: float = 0.05
    bcq_target_samples: int = 10    # decoded candidates per next state in the target
    bcq_act_samples: int = 100      # candidates when acting
    # Bookkeeping.
    log_every: int = 100            # steps between TensorBoard scalars (each costs one sync)
    eval_every: int = 0             # policy steps between evaluations (0: none)
    eval_episodes: int = 5
    threads: int = 0                # torch threads (0: leave torch's default)

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


def config_from_dict(values, source='config'):
    """Build a TrainConfig from a mapping; unknown keys are an error (a typo must not be ignored)."""
    known = {f.name: f for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError('%s: unknown keys %s' % (source, ', '.join(unknown)))
    cfg = TrainConfig(**values)
    for name in ('actor_hidden', 'critic_hidden', 'vae_hidden'):
        setattr(cfg, name, [int(h) for h in getattr(cfg, name)])
    for name, f in known.items():
        if f.type in (int, float):
            setattr(cfg, name, _number(source, name, getattr(cfg, name), f.type))
    return cfg.validate()


def _number(source, name, value, kind):
    """A number of the field's kind; YAML's '5e5' (a string) and 5.0e5 (a float) are fine for an int field."""
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError('%s: %s must be a number, got %r' % (source, name, value)) from exc
    if isinstance(value, bool) or (kind is int and not number.is_integer()):
        raise ValueError('%s: %s must be %s, got %r' % (source, name, 'an integer' if kind is int else 'a number',
                                                           value))
    return kind(number)


def load_config(path: Optional[str] = None, **overrides) -> TrainConfig:
    """Load a preset YAML (flat keys of TrainConfig) and apply the non-None overrides."""
    values = {}
    if path is not None:
        with open(path) as f:
            values = yaml.safe_load(f) or {}
        if not isinstance(values, dict):
            raise ValueError('%s: expected a mapping of TrainConfig keys' % path)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return config_from_dict(values, source=str(path or 'config'))
