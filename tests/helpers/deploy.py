"""A small real checkpoint for the deployment tests (the `checkpoint` fixture) and the latency benchmark.

Writes a tiny D4RL-style HDF5 file (89-d observations, 2-d actions) and trains PLAS on it for a few
steps with the real trainer, so the inference node loads exactly what `python -m plas_ros.train` writes.
"""
import os
import subprocess
import sys

import h5py
import numpy as np

from plas_ros.env import layout
from tests.helpers.tree import REPO_ROOT, TRAIN_CONFIG


def write_tiny_dataset(path, rows=300, episode_length=30, seed=0):
    rng = np.random.default_rng(seed)
    observations = rng.uniform(0.0, 1.0, (rows + 1, layout.OBS_DIM)).astype(np.float32)
    ends = (np.arange(rows) % episode_length) == episode_length - 1
    with h5py.File(path, 'w') as f:
        f['observations'] = observations[:-1]
        f['next_observations'] = observations[1:]
        f['actions'] = rng.uniform(layout.ACTION_LOW, layout.ACTION_HIGH, (rows, layout.ACT_DIM)).astype(np.float32)
        f['rewards'] = rng.uniform(0.0, 0.1, rows).astype(np.float32)
        f['terminals'] = ends & (np.arange(rows) % (2 * episode_length) == episode_length - 1)
        f['timeouts'] = ends & ~f['terminals'][()]
    return path


def train_tiny_checkpoint(out_dir, steps=20, vae_steps=20):
    """Train PLAS for a few steps on a tiny dataset; return the checkpoint folder."""
    dataset = write_tiny_dataset(os.path.join(out_dir, 'tiny.h5'))
    checkpoint = os.path.join(out_dir, 'checkpoint')
    cmd = [sys.executable, '-m', 'plas_ros.train', '--dataset', dataset, '--algo', 'plas', '--config', TRAIN_CONFIG,
           '--out', checkpoint, '--steps', str(steps), '--vae-steps', str(vae_steps), '--batch-size', '32',
           '--threads', '1', '--no-progress']
    result = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError('training the test checkpoint failed:\n%s\n%s' % (result.stdout[-2000:],
                                                                           result.stderr[-4000:]))
    return checkpoint



def plausible_observations(rng, count):
    """`count` observations spread over the plausible range of every part (config/deploy.yaml `plausible`,
    config/robot.yaml): what the gate lets through to the policy."""
    from plas_ros import deploy
    ranges = deploy.load_observation_ranges()
    tolerance = 1e-4  # keep clear of the float32 edges of each range
    return rng.uniform(ranges.low + tolerance, ranges.high - tolerance, (count, layout.OBS_DIM)).astype(np.float32)
