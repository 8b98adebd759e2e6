"""EnvConfig: every threshold of the cloth-sliding environment, loaded from `config/env.yaml`."""
import copy
import dataclasses
from dataclasses import dataclass

from plas_ros.config import check_keys, config_path, from_mapping, load_section, load_yaml, user_path
from plas_ros.env.gripper_controller import CalibrationConfig, GripperConfig

CONFIG_FILE = 'env.yaml'
DEFAULT_PATH = config_path(CONFIG_FILE)
SECTIONS = ('episode', 'gripper', 'calibration')
NODE_SECTION = 'node'   # the env node's parameters (config/env.yaml only; another thresholds file needs none)


@dataclass(frozen=True)
class EpisodeConfig:
    max_steps: int


@dataclass(frozen=True)
class EnvConfig:
    max_steps: int
    gripper: GripperConfig
    calibration: CalibrationConfig

    def to_dict(self):
        return dataclasses.asdict(self)


def load_env_config(path=None, overrides=None):
    """Load EnvConfig from YAML (default config/env.yaml), strictly (plas_ros.config.load_section);
    `overrides` is a nested dict merged on top."""
    path = user_path(path, CONFIG_FILE)
    raw = copy.deepcopy(load_yaml(path))
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {}).update(values)
    check_keys(raw, SECTIONS + (NODE_SECTION,), path, optional=(NODE_SECTION,))
    return EnvConfig(max_steps=load_section(EpisodeConfig, raw, 'episode', path).max_steps,
                     gripper=load_section(GripperConfig, raw, 'gripper', path),
                     calibration=load_section(CalibrationConfig, raw, 'calibration', path))


def env_config_from_dict(raw):
    """Rebuild an EnvConfig from `EnvConfig.to_dict()` output (e.g. a file attribute)."""
    return from_mapping(EnvConfig, raw, 'EnvConfig')
