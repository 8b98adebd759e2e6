"""The full training state of a run, saved so that a killed run resumes bit-identically (on CPU).

DIR/train_state.pt (beside the checkpoint; a multi-seed run's top folder) holds plain containers, numbers,
strings and tensors only, read back with torch.load(weights_only=True):

  format, version           'plas_ros-train-state', VERSION
  algo, seeds, config       what the run trains (the resolved configuration, exactly its algorithm's fields)
  datasets                  [{path, size, sha256}] of the files it trains on
  device                    the torch device it ran on ('cpu', 'cuda:0')
  phase, step               the last finished update: phase 'vae' | 'policy' | 'done', its step (1-based)
  modules                   Algorithm.state_dict(): every network and target network
  mutable                   everything else the algorithm changes while it trains, found by `mutable_state`:
                            optimiser states, torch.Generator states (per-seed noise), counters, tensors
  sampler                   the per-seed batch generators' states
  rng                       torch's global CPU generator, CUDA's (on cuda), numpy's, Python's `random`
  history, last_stats       the evaluation results so far, the last logged statistics
  tensorboard               {seed folder: {event file name: bytes}} as flushed at the save (see trainer.py)
  extra                     what the caller keeps with the state (the CLI: where the CVAE came from)

`mutable_state` walks the algorithm rather than listing its attributes, so that state an algorithm adds later
(a counter, a generator of its own) is saved without a change here; the resume tests of every algorithm
catch what it would miss.
"""
import os
import pickle
import random
from typing import Dict, Iterator, Tuple

import numpy as np
import torch
from torch import nn

from plas_ros.algos.checkpoint import atomic_write
from plas_ros.algos.config import TrainConfig

FORMAT = 'plas_ros-train-state'
VERSION = 1
STATE_FILE = 'train_state.pt'
# Attributes every nn.Module (and ParameterList) has: torch's own bookkeeping, never training state.
_MODULE_INTERNALS = (frozenset(nn.Module().__dict__) | frozenset(nn.ParameterList().__dict__)) - {'training'}


class TrainStateError(ValueError):
    """A training state that is missing, damaged or does not fit the run that would resume from it."""


def is_optimizer(value) -> bool:
    """torch.optim optimisers and nets.FusedAdam (anything that steps and has a loadable state_dict)."""
    return isinstance(value, torch.optim.Optimizer) or all(
        callable(getattr(value, name, None)) for name in ('step', 'zero_grad', 'state_dict', 'load_state_dict'))


def _children(value) -> Iterator[Tuple[object, object]]:
    """(key, child) of a container or an object of this package whose attributes may hold training state."""
    if isinstance(value, (list, tuple)):
        return iter(enumerate(value))
    if isinstance(value, dict):
        return ((k, v) for k, v in value.items() if isinstance(k, (str, int)))
    if isinstance(value, nn.Module):
        own = [(k, v) for k, v in value.__dict__.items() if k not in _MODULE_INTERNALS]
        return iter(list(value._modules.items()) + own)
    if type(value).__module__.startswith('plas_ros.') and hasattr(value, '__dict__'):
        return iter(value.__dict__.items())
    return iter(())


def walk(root, into_optimizers=False):
    """(path, holder, key, value) of every generator, optimiser, tensor and Python number reachable from
    `root` through its modules, containers and this package's objects; not the modules' registered parameters
    and buffers (their state_dict has them) nor the configuration. Optimisers are leaves unless
    `into_optimizers` (moving to a device walks their tensors)."""
    registered = set()
    if isinstance(root, nn.Module):
        registered = {id(t) for t in root.parameters()} | {id(t) for t in root.buffers()}
    seen = set()

    def visit(value, path):
        for key, child in _children(value):
            child_path = '%s.%s' % (path, key) if path else str(key)
            if id(child) in seen or isinstance(child, TrainConfig):
                continue
            if isinstance(child, torch.Tensor):
                if id(child) not in registered:
                    seen.add(id(child))
                    yield child_path, value, key, child
            elif isinstance(child, (torch.Generator, bool, int, float)):
                yield child_path, value, key, child
            elif is_optimizer(child) and not into_optimizers:
                seen.add(id(child))
                yield child_path, value, key, child
            elif not isinstance(child, (str, bytes, type(None))):
                seen.add(id(child))
                yield from visit(child, child_path)
    yield from visit(root, '')


def mutable_state(algorithm) -> Dict[str, object]:
    """{path: saved value} of everything `walk` finds: optimiser state dicts, generator states (uint8
    tensors), tensor copies (on the CPU), numbers."""
    state = {}
    for path, _, _, value in walk(algorithm):
        if isinstance(value, torch.Generator):
            state[path] = {'generator': value.get_state()}
        elif isinstance(value, torch.Tensor):
            state[path] = value.detach().cpu().clone()
        elif isinstance(value, (bool, int, float)):
            state[path] = value
        else:
            state[path] = {'optimizer': _cpu(value.state_dict())}
    return state


def load_mutable_state(algorithm, saved: Dict[str, object]):
    """Put `mutable_state`'s values back (tensors copied in place, so views and aliases stay what they were)."""
    found = {path: (holder, key, value) for path, holder, key, value in walk(algorithm)}
    if set(found) != set(saved):
        raise TrainStateError('the training state does not fit this algorithm: %s'
                              % _difference(sorted(saved), sorted(found)))
    for path, (holder, key, value) in found.items():
        entry = saved[path]
        try:
            if isinstance(value, torch.Generator):
                value.set_state(entry['generator'])
            elif isinstance(value, torch.Tensor):
                if tuple(value.shape) != tuple(entry.shape):
                    raise ValueError('shape %s, expected %s' % (tuple(entry.shape), tuple(value.shape)))
                with torch.no_grad():
                    value.copy_(entry)
            elif isinstance(value, (bool, int, float)):
                assign(holder, key, type(value)(entry))
            else:
                value.load_state_dict(entry['optimizer'])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise TrainStateError('the training state of %s does not fit: %s' % (path, exc)) from None


def assign(holder, key, value):
    """holder[key] = value (a list or dict) or holder.key = value (an object); a tuple cannot take it."""
    if isinstance(holder, tuple):
        raise TypeError('cannot replace item %r of a tuple' % (key,))
    if isinstance(holder, (list, dict)):
        holder[key] = value
    else:
        setattr(holder, key, value)


def _difference(saved, found):
    missing, extra = sorted(set(found) - set(saved)), sorted(set(saved) - set(found))
    parts = (['it lacks %s' % ', '.join(missing[:5])] if missing else []) + (
        ['it has %s, which this run does not' % ', '.join(extra[:5])] if extra else [])
    return '; '.join(parts)


def _cpu(value):
    """A copy of a nested state with every tensor on the CPU (a state saved on one device loads on another)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, dict):
        return {k: _cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_cpu(v) for v in value)
    return value


# ------------------------------------------------------------------------------------ the global generators

def global_rng_state(device: torch.device) -> Dict:
    np_state = np.random.get_state(legacy=False)
    state = {'torch': torch.get_rng_state(), 'python': random.getstate(),
             'numpy': {'bit_generator': np_state['bit_generator'], 'key': torch.from_numpy(
                 np_state['state']['key'].astype(np.int64)), 'pos': int(np_state['state']['pos']),
                 'has_gauss': int(np_state['has_gauss']), 'gauss': float(np_state['gauss'])}}
    if device.type == 'cuda':
        state['cuda'] = torch.cuda.get_rng_state(device)
    return state


def set_global_rng_state(state: Dict, device: torch.device):
    torch.set_rng_state(state['torch'])
    random.setstate(_tuples(state['python']))
    saved = state['numpy']
    np.random.set_state({'bit_generator': saved['bit_generator'],
                         'state': {'key': saved['key'].numpy().astype(np.uint32), 'pos': saved['pos']},
                         'has_gauss': saved['has_gauss'], 'gauss': saved['gauss']})
    if device.type == 'cuda':
        torch.cuda.set_rng_state(state['cuda'], device)


def _tuples(value):
    """random.setstate needs the tuples that pickling may hand back as lists."""
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


# ---------------------------------------------------------------------------------------------- the file

def state_path(directory: str) -> str:
    return os.path.join(str(directory), STATE_FILE)


def save_state(directory: str, state: Dict) -> str:
    """Write DIR/train_state.pt atomically: a kill at any moment leaves the previous state (or none) intact."""
    path = state_path(directory)
    atomic_write(path, lambda f: torch.save(dict(state, format=FORMAT, version=VERSION), f), binary=True)
    return path


def load_state(directory: str) -> Dict:
    """The state in DIR/train_state.pt; TrainStateError (one line) when it is missing, damaged or foreign."""
    path = state_path(directory)
    if not os.path.isfile(path):
        raise TrainStateError('%s: no training state to resume from (a run saves one with --save-every N)' % path)
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError, AttributeError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise TrainStateError('%s: damaged or unreadable training state (%s)' % (path, reason)) from None
    if not isinstance(state, dict) or state.get('format') != FORMAT:
        raise TrainStateError('%s: not a plas_ros training state' % path)
    if state.get('version') != VERSION:
        raise TrainStateError('%s: training state version %r; this plas_ros reads version %d'
                              % (path, state.get('version'), VERSION))
    missing = [k for k in ('algo', 'seeds', 'config', 'datasets', 'device', 'phase', 'step', 'modules', 'mutable',
                           'sampler', 'rng', 'history', 'tensorboard') if k not in state]
    if missing:
        raise TrainStateError('%s: damaged training state (no %s)' % (path, ', '.join(missing)))
    return state
