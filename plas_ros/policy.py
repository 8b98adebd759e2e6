"""Load a trained policy: `load_policy(PATH).act(obs)`, PATH a checkpoint folder or an exported TorchScript file.

PLAS, PLAS+P, BC and offline TD3 act deterministically. BCQ and BEAR act as their authors' select_action: the
best under Q1 of candidates sampled afresh at each call (torch's global generator: torch.manual_seed makes a
sequence of calls repeatable). A checkpoint trained with --obs-normalise carries its normaliser
(plas_ros.normaliser), applied here: raw observations in, actions out.

Loading a checkpoint folder never executes code from it: config.yaml is read with yaml.safe_load and model.pt
with torch.load(weights_only=True), which only rebuilds containers, numbers, strings and tensors.

Export for deployment without the Python training code: `python -m plas_ros.policy export DIR -o FILE.pt`
writes the deployable network (normaliser, actor, decoder, clip to the bounds) as TorchScript, with the
checkpoint's metadata beside it in the file; load_policy(FILE.pt) acts as load_policy(DIR) (doc/deploy.md,
"Exported policies"). A TorchScript file IS code: loading it runs no Python, but its program decides what it
computes. Load only files you exported yourself; the inference node keeps its gate and envelope checks around
either form (its bounds are checked against the robot's envelope, every action before it is published).
"""
import argparse
import copy
import os
import pickle
import sys

import numpy as np
import torch
import yaml
from torch import nn

from plas_ros.algos.checkpoint import CONFIG_FILE, FORMAT, MODEL_FILE, atomic_write
from plas_ros.algos.config import ALGOS, config_from_dict, fields_of
from plas_ros.algos.registry import build_algorithm
from plas_ros.normaliser import KEY as NORMALISER_KEY
from plas_ros.normaliser import ObsNormaliser

SAMPLING_ALGOS = ('bcq', 'bear')   # act by sampling afresh at each call: not exported
SCRIPT_FORMAT = 'plas_ros-torchscript'
SCRIPT_VERSION = 1
SCRIPT_META = 'plas_ros_policy.yaml'  # the metadata inside an exported file (torch.jit extra file)


class DeployableNetwork(nn.Module):
    """Raw observations (N, obs_dim) -> actions (N, act_dim): the normaliser (if any), the algorithm's act, the
    clip to the bounds. What Policy runs for a checkpoint, and what export traces into TorchScript."""

    def __init__(self, algorithm, normaliser=None):
        super().__init__()
        self.algorithm = algorithm.eval()
        self.normalise = normaliser is not None
        tensors = normaliser.tensors() if self.normalise else {'mean': torch.zeros(0), 'std': torch.ones(0)}
        self.register_buffer('obs_mean', tensors['mean'])
        self.register_buffer('obs_std', tensors['std'])
        self.register_buffer('low', algorithm.action_low.clone())
        self.register_buffer('high', algorithm.action_high.clone())

    def forward(self, obs):
        if self.normalise:
            obs = (obs - self.obs_mean) / self.obs_std
        return torch.clamp(self.algorithm.act(obs[None])[0], min=self.low, max=self.high)


class Policy:
    """Actions inside [action_low, action_high] for one observation (D,) or a batch (N, D) (see the module's
    docstring for the algorithms that sample). `network` maps raw observations (N, D) to actions (N, A)."""

    def __init__(self, network, config):
        self._network = network.eval()
        self._algorithm = network.algorithm if isinstance(network, DeployableNetwork) else None  # None: TorchScript
        self.config = config
        self.algo = config['algo']
        self.obs_dim = int(config['obs_dim'])
        self.act_dim = int(config['act_dim'])
        self.action_low = np.asarray(config['action_low'], dtype=np.float32)
        self.action_high = np.asarray(config['action_high'], dtype=np.float32)

    def act(self, obs):
        batch, single = self._check_obs(obs)
        with torch.no_grad():
            action = self._network(torch.from_numpy(batch))
        if not isinstance(action, torch.Tensor) or tuple(action.shape) != (len(batch), self.act_dim):
            raise ValueError('the %s network answered %s for %d observations, not (%d, %d) actions'
                             % (self.algo, tuple(getattr(action, 'shape', ())) or type(action).__name__, len(batch),
                                len(batch), self.act_dim))
        action = np.clip(action.numpy(), self.action_low, self.action_high).astype(np.float32)
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


def read_model(directory):
    """model.pt as a dict (weights under 'modules', the normaliser's tensors under 'obs_normaliser' if any)."""
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
    return model


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


def load_policy(path, obs_dim=None, act_dim=None) -> Policy:
    """Load PATH: a checkpoint folder (model.pt + config.yaml) or a TorchScript file written by export.
    `obs_dim`/`act_dim`, when given, must match."""
    if os.path.isfile(str(path)):
        return load_torchscript(path, obs_dim, act_dim)
    directory = path
    config = read_checkpoint_config(directory)
    check_dims(config, directory, obs_dim, act_dim)
    cfg = config_from_dict(train_section(config), source=str(directory))
    algorithm = build_algorithm(cfg, int(config['obs_dim']), int(config['act_dim']), config['action_low'],
                                config['action_high'], seeds=[int(config.get('seed', 0))])
    built = {name: buffer.clone() for name, buffer in algorithm.named_buffers()}  # what config.yaml's bounds give
    model = read_model(directory)
    try:
        algorithm.load_seed_state(model['modules'])
    except ValueError as exc:
        raise ValueError('%s: %s' % (directory, exc)) from exc
    for name, tensor in algorithm.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ValueError('%s: weights %s hold NaN/inf' % (directory, name))
    for name, buffer in algorithm.named_buffers():  # the heads' action bounds: stored twice, must agree
        if not torch.equal(buffer, built[name]):
            raise ValueError('%s: weights buffer %s disagrees with the action bounds of config.yaml'
                             % (directory, name))
    normaliser = None
    if config.get(NORMALISER_KEY):
        normaliser = ObsNormaliser.from_model(model, int(config['obs_dim']), str(directory))
    elif NORMALISER_KEY in model:
        raise ValueError('%s: model.pt holds a normaliser but config.yaml does not say %s' % (directory,
                                                                                            NORMALISER_KEY))
    return Policy(DeployableNetwork(algorithm, normaliser), config)


def check_dims(config, where, obs_dim=None, act_dim=None):
    for name, expected in (('obs_dim', obs_dim), ('act_dim', act_dim)):
        if expected is not None and int(config[name]) != int(expected):
            raise ValueError('%s: checkpoint %s is %d but %d was expected' % (where, name, config[name], expected))


# -- TorchScript -------------------------------------------------------------------------------------------------

def export_torchscript(directory, out_path):
    """Write the deployable policy of checkpoint DIR to `out_path` as TorchScript (replaced atomically)."""
    policy = load_policy(directory)
    if policy.algo in SAMPLING_ALGOS:
        raise ValueError('%s: %s acts by sampling (the best under Q1 of candidates drawn afresh at each call), which '
                         'export does not reproduce; export plas, plas_p, bc or td3, or deploy the checkpoint folder'
                         % (directory, policy.algo))
    example = torch.rand(3, policy.obs_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        traced = torch.jit.trace(acting_part(policy._network), example,
                                 check_inputs=[(example[:1],), (example * 4.0 - 2.0,)])
    meta = {key: policy.config[key] for key in ('algo', 'obs_dim', 'act_dim', 'action_low', 'action_high', 'seed')
            if key in policy.config}
    meta.update(format=SCRIPT_FORMAT, version=SCRIPT_VERSION, source=os.path.abspath(str(directory)),
                obs_normaliser=bool(policy.config.get(NORMALISER_KEY, False)))
    atomic_write(out_path, lambda f: torch.jit.save(traced, f, _extra_files={
        SCRIPT_META: yaml.safe_dump(meta, sort_keys=False)}), binary=True)
    return out_path


def acting_part(network):
    """A copy of a DeployableNetwork without what acting does not use: the critics, the targets, the encoder."""
    network = copy.deepcopy(network)
    for name in ('critic', 'critic_target', 'actor_target'):
        if hasattr(network.algorithm, name):
            delattr(network.algorithm, name)
    if getattr(network.algorithm, 'cvae', None) is not None:
        del network.algorithm.cvae.encoder
    return network


def load_torchscript(path, obs_dim=None, act_dim=None) -> Policy:
    """A Policy over an exported TorchScript file (this runs the file's program: see the module's docstring)."""
    extra = {SCRIPT_META: ''}
    try:
        module = torch.jit.load(str(path), map_location='cpu', _extra_files=extra)
    except (RuntimeError, ValueError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError('%s: not a TorchScript policy file (%s)' % (path, reason)) from exc
    try:
        meta = yaml.safe_load(extra[SCRIPT_META])
    except yaml.YAMLError as exc:
        raise ValueError('%s: unreadable policy metadata (%s)' % (path, exc)) from exc
    required = ('format', 'algo', 'obs_dim', 'act_dim', 'action_low', 'action_high')
    if not isinstance(meta, dict) or any(key not in meta for key in required) or meta['format'] != SCRIPT_FORMAT:
        raise ValueError('%s: not a plas_ros TorchScript policy (needs metadata %s with format %r)'
                         % (path, SCRIPT_META, SCRIPT_FORMAT))
    check_dims_and_bounds(meta, path)
    check_dims(meta, path, obs_dim, act_dim)
    return Policy(module, meta)


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m plas_ros.policy', description='deployable policies')
    commands = parser.add_subparsers(dest='command', required=True)
    export = commands.add_parser('export', help='write a checkpoint\'s deployable policy as TorchScript')
    export.add_argument('checkpoint', help='checkpoint folder written by python -m plas_ros.train')
    export.add_argument('-o', '--output', required=True, help='TorchScript file to write (e.g. policy.pt)')
    args = parser.parse_args(argv)
    try:
        out = export_torchscript(args.checkpoint, args.output)
    except (ValueError, OSError) as exc:
        sys.exit('error: %s' % exc)
    print('exported %s to %s' % (args.checkpoint, out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
