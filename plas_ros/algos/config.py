"""Training configuration: one dataclass per algorithm, the values in YAML (config/train.yaml and the presets
config/train_*.yaml); no dataclass here holds a default.

A run's configuration is resolved in this order, each step overriding the ones before it:

  1. config/train.yaml `defaults`   the settings algorithms share; each applies to the algorithms that take it
  2. config/train.yaml `<algo>`     the algorithm's own settings (its authors'), over the shared ones
  3. the preset's top-level keys    the experiment (network sizes, batch, budgets, evaluation): each applies
                                    to every algorithm that takes it and is skipped by the others
  4. the preset's `<algo>` section  the experiment's settings for that one algorithm
  5. the overrides                  (the command line) non-None values; each must be a field of the algorithm

Strict, as every section of config/ (plas_ros.config): a ConfigError names the file and the dotted key for an
unknown algorithm, an unknown section, a key no algorithm takes, a key that an algorithm's section (2, 4) or
an override (5) gives to an algorithm that does not take it, a missing default, and a value of the wrong type
or out of range. The resolved configuration (`TrainConfig.to_dict()`, written into each checkpoint's
config.yaml) holds exactly the fields of the algorithm that ran.
"""
import dataclasses
import math
import os
import re
import typing
from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Optional, Tuple

from plas_ros.config import ConfigError, config_path, load_yaml

DEFAULTS_FILE = 'train.yaml'
# Sections of config/train.yaml besides one per algorithm: the shared defaults, the train_offline node's parameters;
# evaluation: plas_ros.env.evaluation's; run: the CLI's options (device, save_every); ranges: every setting's;
# normaliser: plas_ros.normaliser's.
OTHER_SECTIONS = ('defaults', 'node', 'evaluation', 'run', 'ranges', 'normaliser')


@dataclass
class TrainConfig:
    """The fields every algorithm takes (the base of each algorithm's configuration)."""
    algo: str
    actor_hidden: List[int]         # hidden layers of the policy network
    actor_lr: float
    batch_size: int
    steps: int                      # policy updates (phase 2 of the algorithms that pre-train a CVAE)
    log_every: int                  # steps between TensorBoard scalars (each costs one sync)
    eval_every: int                 # policy steps between evaluations (0: none)
    eval_episodes: int
    threads: int                    # torch threads (0: leave torch's default)

    @property
    def needs_cvae(self) -> bool:
        """Whether phase 1 trains the CVAE before the policy (BCQ and BEAR train theirs with the critics)."""
        return self.algo in CVAE_ALGOS

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclass
class BCConfig(TrainConfig):
    """Behaviour cloning: nothing beyond the shared fields."""


@dataclass
class CriticConfig(TrainConfig):
    """Twin critics (an ensemble of two Q-functions per seed) with soft-updated targets."""
    critic_hidden: List[int]
    critic_lr: float
    gamma: float
    tau: float
    lmbda: float                    # soft clipped double Q: weight of min(Q1', Q2') (1: TD3's plain minimum)


@dataclass
class TD3Config(CriticConfig):
    policy_noise: float             # target policy smoothing, a fraction of the action half-range
    noise_clip: float               # its clip, a fraction of the action half-range
    policy_delay: int               # critic updates per actor (and target) update


@dataclass
class CVAEConfig(CriticConfig):
    """Algorithms with the CVAE behaviour model of BCQ (encoder (s, a) -> z, decoder (s, z) -> a)."""
    vae_hidden: List[int]
    vae_lr: float
    vae_kl_weight: float


@dataclass
class PLASConfig(CVAEConfig):
    vae_steps: int                  # phase 1: CVAE updates before the policy's
    max_latent_action: float        # the latent policy's box


@dataclass
class PLASPConfig(PLASConfig):
    phi: float                      # the perturbation's limit, a fraction of the action half-range


@dataclass
class BCQConfig(CVAEConfig):
    phi: float                      # the perturbation's limit, a fraction of the action half-range
    target_samples: int             # decoded actions per next state in the target
    act_samples: int                # decoded actions per state when acting


@dataclass
class BEARConfig(CVAEConfig):
    target_samples: int             # policy samples per next state in the target
    act_samples: int                # policy samples per state when acting
    mmd_samples: int                # samples of the policy and of the CVAE per state in the MMD
    kernel: str                     # laplacian | gaussian
    mmd_sigma: float                # the kernel's bandwidth
    mmd_threshold: float            # epsilon: the MMD the Lagrange multiplier holds the policy to
    alpha_lr: float                 # Adam learning rate of log(alpha), the Lagrange multiplier
    log_alpha_min: float            # log(alpha) clamped to [log_alpha_min, log_alpha_max] after each step
    log_alpha_max: float
    warmstart_steps: int            # first steps: the actor minimises alpha x MMD only (no Q term)


CONFIGS = {'plas': PLASConfig, 'plas_p': PLASPConfig, 'bc': BCConfig, 'td3': TD3Config, 'bcq': BCQConfig,
           'bear': BEARConfig}
ALGOS = tuple(CONFIGS)
# Algorithms whose phase 1 trains the CVAE behaviour model, frozen afterwards.
CVAE_ALGOS = ('plas', 'plas_p')
KERNELS = ('laplacian', 'gaussian')

# The allowed values of each setting: config/train.yaml `ranges`, intervals such as '(0, 1]' or '[1, inf)'.
_INTERVAL = re.compile(r'^\s*([\[(])\s*([-+0-9.eE]+|-inf)\s*,\s*([-+0-9.eE]+|inf)\s*([\])])\s*$')


class Interval(NamedTuple):
    low: float
    high: float
    low_open: bool
    high_open: bool
    text: str

    def holds(self, value) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def shown(self, kind) -> str:
        """'[0.0, 1.0]' for a float field, '[1, inf)' for an int one."""
        def bound(v):
            return str(v) if math.isinf(v) else str(kind(v))
        return '%s%s, %s%s' % ('(' if self.low_open else '[', bound(self.low), bound(self.high),
                               ')' if self.high_open else ']')


def parse_interval(text, path, key) -> Interval:
    match = _INTERVAL.match(str(text))
    if not match:
        raise ConfigError(path, key, "must be an interval such as '(0, 1]' or '[1, inf)', got %r" % (text,))
    opening, low, high, closing = match.groups()
    interval = Interval(float(low), float(high), opening == '(', closing == ')', str(text))
    if interval.low > interval.high:
        raise ConfigError(path, key, 'is an empty interval %r' % (text,))
    return interval


def fields_of(algo: str) -> Tuple[str, ...]:
    """The fields algorithm `algo` takes (the keys of its resolved configuration)."""
    return tuple(f.name for f in dataclasses.fields(CONFIGS[algo]))


def _all_fields():
    return {name for algo in ALGOS for name in fields_of(algo)}


def _dotted(prefix, key):
    return '%s.%s' % (prefix, key) if prefix else key


def _takes(algo, key, path, prefix):
    """ConfigError unless `algo` takes `key` (given in section `prefix` of `path`)."""
    if key in fields_of(algo):
        return
    if key not in _all_fields():
        raise ConfigError(path, _dotted(prefix, key), 'unknown key %r: no algorithm takes it' % key)
    raise ConfigError(path, _dotted(prefix, key), '%s does not take %s (its fields: %s)'
                      % (algo, key, ', '.join(fields_of(algo))))


def _mapping(value, path, key):
    if not isinstance(value, dict):
        raise ConfigError(path, key, 'section missing or not a mapping, got %r' % (value,))
    return dict(value)


def train_yaml() -> Tuple[str, Dict, Dict[str, Dict]]:
    """(path, shared defaults, {algo: its own section}) of config/train.yaml, checked: no unknown section,
    no key that no algorithm takes, no key an algorithm's section gives that it does not take, and a default
    for every field of every algorithm."""
    path = config_path(DEFAULTS_FILE)
    raw = load_yaml(path)
    for key in raw:
        if key not in OTHER_SECTIONS + ALGOS:
            raise ConfigError(path, str(key), 'unknown section %r (sections: %s and one per algorithm: %s)'
                              % (key, ', '.join(OTHER_SECTIONS), ', '.join(ALGOS)))
    shared = _mapping(raw.get('defaults'), path, 'defaults')
    for key in shared:
        if key not in _all_fields():
            raise ConfigError(path, _dotted('defaults', key), 'unknown key %r: no algorithm takes it' % key)
    own = {}
    for algo in ALGOS:
        own[algo] = _mapping(raw.get(algo), path, algo)
        for key in own[algo]:
            _takes(algo, key, path, algo)
        missing = [k for k in fields_of(algo) if k not in own[algo] and k not in shared]
        if missing:
            raise ConfigError(path, _dotted(algo, missing[0]), 'no default for %s of %s (give it in defaults or %s)'
                              % (', '.join(missing), algo, algo))
    return path, shared, own


def ranges() -> Dict[str, Interval]:
    """config/train.yaml `ranges`: {field: Interval}, checked (each key a field of some algorithm); a list
    field's interval holds for each of its numbers."""
    path = config_path(DEFAULTS_FILE)
    raw = _mapping(load_yaml(path).get('ranges'), path, 'ranges')
    found = {}
    for key, text in raw.items():
        if key not in _all_fields():
            raise ConfigError(path, _dotted('ranges', key), 'unknown key %r: no algorithm takes it' % key)
        found[key] = parse_interval(text, path, _dotted('ranges', key))
    return found


def defaults() -> Dict:
    """The shared defaults: config/train.yaml `defaults` (a fresh dict)."""
    return train_yaml()[1]


def read_preset(path: str) -> Tuple[Dict, Dict[str, Dict]]:
    """(top-level keys, {algo: section}) of a preset file, checked: a mapping-valued key must be an algorithm's
    section, every top-level key a field of some algorithm, every section's key a field of its algorithm."""
    raw = load_yaml(path)
    flat, sections = {}, {}
    for key, value in raw.items():
        if key in ALGOS:
            sections[key] = _mapping(value, path, key)
            for name in sections[key]:
                _takes(key, name, path, key)
        elif isinstance(value, dict):
            raise ConfigError(path, str(key), 'unknown section %r (a preset may have one section per algorithm: %s)'
                              % (key, ', '.join(ALGOS)))
        elif key not in _all_fields():
            raise ConfigError(path, str(key), 'unknown key %r: no algorithm takes it' % key)
        else:
            flat[key] = value
    return flat, sections


def list_fields(algo: str) -> Tuple[str, ...]:
    """The fields of `algo` that hold a list (the layer sizes)."""
    kinds = typing.get_type_hints(CONFIGS[algo])
    return tuple(name for name in fields_of(algo) if kinds[name] not in (int, float, str))


def load_config(path: Optional[str] = None, overrides_label: str = 'overrides', **overrides) -> TrainConfig:
    """The configuration of one run: config/train.yaml, then the preset YAML at `path` (a path as given, never
    looked up in config/), then the non-None `overrides`, in the order of this module's docstring; errors in
    an override name `overrides_label` as their source (the CLI: '--set')."""
    train_path, shared, own = train_yaml()
    flat, sections, preset_path = {}, {}, None
    if path is not None:
        preset_path = os.path.abspath(path)
        flat, sections = read_preset(preset_path)
    given = {k: v for k, v in overrides.items() if v is not None}
    algo = given.get('algo', flat.get('algo', shared.get('algo')))
    if algo not in CONFIGS:
        source = overrides_label if 'algo' in given else (preset_path if 'algo' in flat else train_path)
        raise ConfigError(source, 'algo', 'unknown algorithm %r (known: %s)' % (algo, ', '.join(ALGOS)))
    layers = [(shared, train_path, 'defaults', False), (own[algo], train_path, algo, True),
              (flat, preset_path, '', False), (sections.get(algo, {}), preset_path, algo, True),
              (given, overrides_label, '', True)]
    values, where = {}, {}
    for layer, source, prefix, strict in layers:
        for key, value in layer.items():
            if key not in fields_of(algo):
                if strict:
                    _takes(algo, key, source, prefix)
                continue
            values[key], where[key] = value, (source, _dotted(prefix, key))
    values['algo'], where['algo'] = algo, where.get('algo', (train_path, 'defaults.algo'))
    return build(CONFIGS[algo], values, where)


def config_from_dict(values, source='config') -> TrainConfig:
    """The configuration a checkpoint recorded: exactly the fields of its `algo`, nothing merged in."""
    algo = values.get('algo')
    if algo not in CONFIGS:
        raise ConfigError(source, 'algo', 'unknown algorithm %r (known: %s)' % (algo, ', '.join(ALGOS)))
    known = fields_of(algo)
    unknown = sorted(str(k) for k in values if k not in known)
    missing = [k for k in known if k not in values]
    if unknown or missing:
        parts = (['missing keys %s' % ', '.join(missing)] if missing else []) + (
            ['keys %s do not belong to %s' % (', '.join(unknown), algo)] if unknown else [])
        raise ConfigError(source, None, '; '.join(parts))
    return build(CONFIGS[algo], dict(values), {k: (source, k) for k in values})


def build(cls, values, where):
    """cls(**values), each value converted to its field's type and range-checked; errors name where[key]."""
    kinds = typing.get_type_hints(cls)
    allowed = ranges()
    converted = {}
    for f in dataclasses.fields(cls):
        source, key = where[f.name]
        converted[f.name] = _convert(kinds[f.name], values[f.name], source, key)
        problem = _range_problem(allowed.get(f.name), converted[f.name])
        if problem:
            raise ConfigError(source, key, problem)
    if 'kernel' in converted and converted['kernel'] not in KERNELS:
        source, key = where['kernel']
        raise ConfigError(source, key, 'must be one of %s, got %r' % (', '.join(KERNELS), converted['kernel']))
    return cls(**converted)


def _convert(kind, value, source, key):
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(source, key, 'must be a string, got %r' % (value,))
        return value
    if kind in (int, float):
        return _number(source, key, value, kind)
    # List[int]: layer sizes
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(source, key, 'must be a non-empty list of layer sizes, got %r' % (value,))
    return [_number(source, key, v, int) for v in value]  # their range: config/train.yaml ranges


def _number(source, key, value, kind):
    """A number of the field's kind; YAML's '5e5' (a string) and 5.0e5 (a float) are fine for an int field."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(source, key, 'must be a number, got %r' % (value,)) from None
    if isinstance(value, bool) or (kind is int and not number.is_integer()):
        raise ConfigError(source, key, 'must be %s, got %r' % ('an integer' if kind is int else 'a number', value))
    return kind(number)


def _range_problem(interval: Optional[Interval], value):
    if interval is None:
        return None
    numbers = value if isinstance(value, list) else [value]
    kind = type(numbers[0])
    if all(interval.holds(v) for v in numbers):
        return None
    what = 'list numbers in' if isinstance(value, list) else 'lie in'
    return 'must %s %s (config/train.yaml ranges), got %r' % (what, interval.shown(kind), value)
