"""Write a trained seed as a checkpoint directory (read back by plas_ros.policy.load_policy).

DIR/model.pt      a dict of plain containers, strings, numbers and tensors only: {'format', 'version',
                  'modules': {module name: state dict}}; loadable with torch.load(weights_only=True).
DIR/config.yaml   the resolved configuration: algo, seed, dims, action bounds, `train` (the fields of the
                  algorithm's configuration, exactly those: what it ran with), the datasets, the progress.
Version 2: `train` holds the algorithm's own fields; version 1 held every algorithm's (plas_ros.policy reads both).
The tensors are saved on the CPU whatever device trained them, so a checkpoint loads on any machine. The full
training state (optimisers, generators, ...) for resuming is a separate file: plas_ros.algos.train_state.
"""
import io
import os

import numpy as np
import torch
import yaml

from plas_ros.data.durable import write_bytes_atomically

FORMAT = 'plas_ros-policy'
VERSION = 2
MODEL_FILE = 'model.pt'
CONFIG_FILE = 'config.yaml'
# The optional observation normaliser (plas_ros.normaliser): {'mean', 'std'} tensors in model.pt, a flag in config.yaml.
NORMALISER_KEY = 'obs_normaliser'


def checkpoint_config(algorithm, seed, datasets=(), progress=None):
    """The resolved configuration written next to the weights (plain YAML types only)."""
    return {
        'format': FORMAT, 'version': VERSION, 'algo': algorithm.cfg.algo, 'seed': int(seed),
        'obs_dim': int(algorithm.obs_dim), 'act_dim': int(algorithm.act_dim),
        'action_low': [float(v) for v in algorithm.action_low],
        'action_high': [float(v) for v in algorithm.action_high],
        'train': algorithm.cfg.to_dict(), 'datasets': [str(d) for d in datasets], 'progress': dict(progress or {}),
    }


def save_checkpoint(directory, algorithm, seed_index=0, datasets=(), progress=None, obs_normaliser=None):
    """Write seed number `seed_index` of `algorithm` to `directory` (created); files are replaced atomically.
    `obs_normaliser`: the {'mean', 'std'} tensors the policy's observations are normalised with (or None)."""
    os.makedirs(directory, exist_ok=True)
    seed = algorithm.seeds[seed_index]
    modules = {name: {key: tensor.cpu() for key, tensor in state.items()}
               for name, state in algorithm.seed_state(seed_index).items()}
    model = {'format': FORMAT, 'version': VERSION, 'modules': modules}
    config = checkpoint_config(algorithm, seed, datasets, progress)
    if obs_normaliser is not None:
        model[NORMALISER_KEY] = {key: tensor.cpu() for key, tensor in obs_normaliser.items()}
        config[NORMALISER_KEY] = True
    atomic_write(os.path.join(directory, MODEL_FILE), lambda f: torch.save(model, f), binary=True)
    atomic_write(os.path.join(directory, CONFIG_FILE), lambda f: yaml.safe_dump(_plain(config), f, sort_keys=False))
    return directory


def atomic_write(path, write, binary=False):
    """`write(file)` into memory, then the whole file replaced atomically by the data layer's writer
    (plas_ros.data.durable: temporary, fsync, rename, fsync of the folder): a reader (or a run killed at any
    moment) sees the old file or the new one, never a part of one, and a failed write leaves no temporary."""
    buffer = io.BytesIO() if binary else io.StringIO()
    write(buffer)
    data = buffer.getvalue()
    write_bytes_atomically(path, data if binary else data.encode('utf-8'))


def _plain(value):
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
