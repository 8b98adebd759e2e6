"""The torch device a run trains on (`--device cpu|cuda|cuda:N|auto`), and moving an algorithm onto it.

An algorithm is built on the CPU, where each seed's initial weights are drawn from its own CPU generator
(so they are the same on every device), then moved whole: networks, optimiser moments, plain tensors, and
its per-seed noise generators, replaced by generators of the device seeded as the CPU ones were (a CUDA
generator draws other numbers than a CPU one from the same seed: runs are repeatable per device type).
"""
import re

import torch

from plas_ros.algos.train_state import assign, walk

_FORMS = 'cpu, cuda, cuda:N or auto'


def resolve_device(name) -> torch.device:
    """'auto' (the default of config/train.yaml): cuda when torch sees a GPU, else cpu. ValueError (one line)
    for a form torch does not know here or a CUDA device this machine does not have."""
    name = str(name).strip().lower()
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if name == 'cpu':
        return torch.device('cpu')
    match = re.fullmatch(r'cuda(?::(\d+))?', name)
    if not match:
        raise ValueError('--device %r: expected %s' % (name, _FORMS))
    if not torch.cuda.is_available():
        reason = 'this torch is built without CUDA' if torch.version.cuda is None else 'torch sees no GPU'
        raise ValueError('--device %s: CUDA is not available on this machine (%s); use --device cpu' % (name, reason))
    index = int(match.group(1) or 0)
    if index >= torch.cuda.device_count():
        raise ValueError('--device %s: this machine has %d CUDA device(s) (cuda:0 to cuda:%d)'
                         % (name, torch.cuda.device_count(), torch.cuda.device_count() - 1))
    return torch.device('cuda', index)


def move_to_device(algorithm, device: torch.device):
    """Move `algorithm` (built on the CPU) to `device`, in place; on the CPU nothing changes."""
    device = torch.device(device)
    if device.type == 'cpu':
        return algorithm
    algorithm.to(device)  # parameters keep their identity: optimisers and soft updates still hold them
    for _, holder, key, value in list(walk(algorithm, into_optimizers=True)):
        if isinstance(value, torch.Generator):
            assign(holder, key, torch.Generator(device=device).manual_seed(value.initial_seed()))
        elif isinstance(value, torch.Tensor):
            assign(holder, key, value.to(device))
    return algorithm

