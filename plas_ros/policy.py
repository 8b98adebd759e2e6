"""Load a trained checkpoint directory as a policy: `load_policy(DIR).act(obs)`.

PLAS, PLAS+P, BC and offline TD3 act deterministically. BCQ and BEAR act as their authors' select_action: the
best under Q1 of candidates sampled afresh at each call (torch's global generator: torch.manual_seed makes a
sequence of calls repeatable).

Loading never executes code from the checkpoint: config.yaml is read with yaml.safe_load and model.pt
with torch.load(weights_only=True), which only rebuilds containers, numbers, strings and tensors.
"""
import os
import pickle

import numpy as np
import torch
import yaml

from plas_ros.algos.checkpoint import CONFIG_FILE, FORMAT, MODEL_FILE
from plas_ros.algos.config import ALGOS, config_from_dict, fields_of
from plas_ros.algos.registry import build_algorithm


class Policy:
    """Actions inside [action_low, action_high] for one observation (D,) or a batch (N, D) (see the module's
    docstring for the algorithms that sample)."""

    def __init__(self, algorithm, config):
        self._algorithm = algorithm.eval()
        self.config = config
        self.algo = config['algo']
        self.obs_dim = int(config['obs_dim'])
        self.act_dim = int(config['act_dim'])
        self.action_low = np.asarray(config['action_low'], dtype=np.float32)
        self.action_high = np.asarray(config['action_high'], dtype=np.float32)

    def act(self, obs):
        batch, single = self._check_obs(obs)
        with torch.no_grad():
            action = self._algorithm.act(torch.from_numpy(batch)[None])[0].numpy()
        action = np.clip(action, self.action_low, self.action_high).astype(np.float32)
        return action[0] if single else action

    def _check_obs(self, obs):
        try:
            array = np.asarray(obs, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise ValueError('observation is not numeric: %s' % exc) from exc
        if array.ndim not in (1, 2) or array.shape[-1] != self.obs_dim:
            raise ValueError('observation has shape %s; this policy (%s) expects (%d,) or (N, %d)'
                             % (array.shape, self.algo, self.obs_dim, self.obs_dim))
        bad = ~np.isfinite(array)
        if bad.any():
            raise ValueError('observation holds %d non-finite values (NaN/inf), first at index %s'
                             % (int(bad.sum()), tuple(int(i) for i in np.argwhere(bad)[0])))
        single = array.ndim == 1
        return np.ascontiguousarray(array.reshape(-1, self.obs_dim)), single


def read_checkpoint_config(directory):
    path = os.path.join(str(directory), CONFIG_FILE)
    try:
        with open(path) as f:
            config = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as exc:
        hint = ''
        if os.path.isdir(str(directory)) and any(n.startswith('seed_') for n in os.listdir(str(directory))):
            hint = '; a multi-seed run keeps one checkpoint per seed in DIR/seed_<n>'
        raise ValueError('%s: cannot read the checkpoint configuration (%s)%s' % (path, exc, hint)) from exc
    required = ('format', 'algo', 'obs_dim', 'act_dim', 'action_low', 'action_high', 'train')
    if not isinstance(config, dict) or any(key not in config for key in required):
        raise ValueError('%s: not a plas_ros checkpoint configuration (needs keys %s)' % (path, ', '.join(required)))
    if config['format'] != FORMAT:
        raise ValueError('%s: format %r, expected %r' % (path, config['format'], FORMAT))
    check_dims_and_bounds(config, path)
    return config


def check_dims_and_bounds(config, where):
    """Sizes that are positive integers, bounds of act_dim finite numbers with low <= high: a clear error else."""
    for name in ('obs_dim', 'act_dim'):
        if isinstance(config[name], bool) or not isinstance(config[name], int) or config[name] < 1:
            raise ValueError('%s: %s must be a positive integer, got %r' % (where, name, config[name]))
    bounds = []
    for name in ('action_low', 'action_high'):
        try:
            bound = np.asarray(config[name], dtype=np.float64)
        except (TypeError, ValueError):
            bound = np.full(0, np.nan)
        if bound.shape != (config['act_dim'],) or not np.all(np.isfinite(bound)):
            raise ValueError('%s: %s must be %d finite numbers, got %r'
                             % (where, name, config['act_dim'], config[name]))
        bounds.append(bound)
    if np.any(bounds[0] > bounds[1]):
        raise ValueError('%s: action_low %s exceeds action_high %s' % (where, config['action_low'],
                                                                       config['action_high']))


def read_weights(directory):
    path = os.path.join(str(directory), MODEL_FILE)
    try:
        model = torch.load(path, map_location='cpu', weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError('%s: refused or unreadable weights file (only plain tensors and containers are '
                         'accepted): %s' % (path, reason)) from exc
    except OSError as exc:
        raise ValueError('%s: cannot read the weights (%s)' % (path, exc)) from exc
    if not isinstance(model, dict) or model.get('format') != FORMAT or not isinstance(model.get('modules'), dict):
        raise ValueError('%s: not a plas_ros weights file' % path)
    return model['modules']


# Version 1 checkpoints recorded every algorithm's fields, some under other names (algorithm -> {old: new}).
_V1_NAMES = {'plas_p': {'perturbation_phi': 'phi'},
             'td3': {'td3_policy_noise': 'policy_noise', 'td3_noise_clip': 'noise_clip',
                     'td3_policy_delay': 'policy_delay'},
             'bcq': {'bcq_phi': 'phi', 'bcq_target_samples': 'target_samples', 'bcq_act_samples': 'act_samples'}}


def train_section(config):
    """The checkpoint's training configuration with its algo; of a version 1 checkpoint, the fields the
    algorithm takes (under their present names)."""
    algo = config['algo']
    train = dict(config['train'], algo=algo)
    if int(config.get('version', 1)) >= 2 or algo not in ALGOS:
        return train
    names = _V1_NAMES.get(algo, {})
    renamed = {names.get(key, key): value for key, value in train.items()}
    return {key: value for key, value in renamed.items() if key in fields_of(algo)}


def load_policy(directory, obs_dim=None, act_dim=None) -> Policy:
    """Load DIR (model.pt + config.yaml). `obs_dim`/`act_dim`, when given, must match the checkpoint."""
    config = read_checkpoint_config(directory)
    for name, expected in (('obs_dim', obs_dim), ('act_dim', act_dim)):
        if expected is not None and int(config[name]) != int(expected):
            raise ValueError('%s: checkpoint %s is %d but %d was expected' % (directory, name, config[name], expected))
    cfg = config_from_dict(train_section(config), source=str(directory))
    algorithm = build_algorithm(cfg, int(config['obs_dim']), int(config['act_dim']), config['action_low'],
                                config['action_high'], seeds=[int(config.get('seed', 0))])
    built = {name: buffer.clone() for name, buffer in algorithm.named_buffers()}  # what config.yaml's bounds give
    try:
        algorithm.load_seed_state(read_weights(directory))
    except ValueError as exc:
        raise ValueError('%s: %s' % (directory, exc)) from exc
    for name, tensor in algorithm.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ValueError('%s: weights %s hold NaN/inf' % (directory, name))
    for name, buffer in algorithm.named_buffers():  # the heads' action bounds: stored twice, must agree
        if not torch.equal(buffer, built[name]):
            raise ValueError('%s: weights buffer %s disagrees with the action bounds of config.yaml'
                             % (directory, name))
    return Policy(algorithm, config)
