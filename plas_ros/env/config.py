"""EnvConfig: every threshold of the cloth-sliding environment, loaded from `config/env.yaml`."""
import dataclasses
import os
from dataclasses import dataclass

import yaml

from plas_ros.env.gripper_controller import CalibrationConfig, GripperConfig

DEFAULT_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            'config', 'env.yaml')


@dataclass(frozen=True)
class EnvConfig:
    max_steps: int
    gripper: GripperConfig
    calibration: CalibrationConfig

    def to_dict(self):
        return dataclasses.asdict(self)


def _section(cls, raw, name, path):
    if not isinstance(raw, dict):
        raise ValueError('%s: section %r missing or not a mapping' % (path, name))
    fields = {f.name for f in dataclasses.fields(cls)}
    missing = sorted(fields - set(raw))
    unknown = sorted(set(raw) - fields)
    if missing or unknown:
        raise ValueError('%s: section %r: missing keys %s, unknown keys %s' % (path, name, missing, unknown))
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    return cls(**values)


def load_env_config(path=None, overrides=None):
    """Load EnvConfig from YAML (default config/env.yaml); `overrides` is a nested dict merged on top."""
    path = path or DEFAULT_PATH
    with open(path) as f:
        raw = yaml.safe_load(f) or {}
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {}).update(values)
    episode = raw.get('episode') or {}
    if 'max_steps' not in episode:
        raise ValueError('%s: episode.max_steps missing' % path)
    return EnvConfig(max_steps=int(episode['max_steps']),
                     gripper=_section(GripperConfig, raw.get('gripper'), 'gripper', path),
                     calibration=_section(CalibrationConfig, raw.get('calibration'), 'calibration', path))


def env_config_from_dict(raw):
    """Rebuild an EnvConfig from `EnvConfig.to_dict()` output (e.g. a file attribute)."""
    return EnvConfig(max_steps=int(raw['max_steps']), gripper=GripperConfig(**raw['gripper']),
                     calibration=CalibrationConfig(**raw['calibration']))
