"""Write a trained seed as a checkpoint directory (read back by plas_ros.policy.load_policy).

DIR/model.pt      a dict of plain containers, strings, numbers and tensors only: {'format', 'version',
                  'modules': {module name: state dict}}; loadable with torch.load(weights_only=True).
DIR/config.yaml   the resolved configuration: algo, seed, dims, action bounds, `train` (the fields of the
                  algorithm's configuration, exactly those: what it ran with), the datasets, the progress.
Version 2: `train` holds the algorithm's own fields; version 1 held every algorithm's (plas_ros.policy reads both).
"""
import os

import numpy as np
import torch
import yaml

FORMAT = 'plas_ros-policy'
VERSION = 2
MODEL_FILE = 'model.pt'
CONFIG_FILE = 'config.yaml'


def checkpoint_config(algorithm, seed, datasets=(), progress=None):
    """The resolved configuration written next to the weights (plain YAML types only)."""
    return {
        'format': FORMAT, 'version': VERSION, 'algo': algorithm.cfg.algo, 'seed': int(seed),
        'obs_dim': int(algorithm.obs_dim), 'act_dim': int(algorithm.act_dim),
        'action_low': [float(v) for v in algorithm.action_low],
        'action_high': [float(v) for v in algorithm.action_high],
        'train': algorithm.cfg.to_dict(), 'datasets': [str(d) for d in datasets], 'progress': dict(progress or {}),
    }


def save_checkpoint(directory, algorithm, seed_index=0, datasets=(), progress=None):
    """Write seed number `seed_index` of `algorithm` to `directory` (created); files are replaced atomically."""
    os.makedirs(directory, exist_ok=True)
    seed = algorithm.seeds[seed_index]
    model = {'format': FORMAT, 'version': VERSION, 'modules': algorithm.seed_state(seed_index)}
    config = checkpoint_config(algorithm, seed, datasets, progress)
    model_path = os.path.join(directory, MODEL_FILE)
    torch.save(model, model_path + '.tmp')
    os.replace(model_path + '.tmp', model_path)
    config_path = os.path.join(directory, CONFIG_FILE)
    with open(config_path + '.tmp', 'w') as f:
        yaml.safe_dump(_plain(config), f, sort_keys=False)
    os.replace(config_path + '.tmp', config_path)
    return directory


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
