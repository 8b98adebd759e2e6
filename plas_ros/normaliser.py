"""The optional observation normaliser (off by default, as in the PLAS paper): obs -> (obs - mean) / std.

`python -m plas_ros.train ... --obs-normalise` (or config/train.yaml `normaliser.enabled`) computes mean and std
per observation value from the training dataset, with std floored at `normaliser.std_floor` (a constant
feature must not divide by zero), trains and evaluates on normalised observations, and stores both with each
checkpoint: plain tensors under `obs_normaliser` in model.pt (still loadable with weights_only=True) and the flag
`obs_normaliser: true` in config.yaml. plas_ros.policy.load_policy applies them: raw observations in, actions out.
"""
from dataclasses import dataclass

import numpy as np
import torch

from plas_ros.algos.checkpoint import NORMALISER_KEY
from plas_ros.config import load_section

KEY = NORMALISER_KEY     # in model.pt (the tensors) and config.yaml (the flag)
SECTION = 'normaliser'   # of config/train.yaml


@dataclass(frozen=True)
class NormaliserConfig:
    enabled: bool        # normalise observations when the command line does not say
    std_floor: float     # the smallest std divided by


def load_normaliser_config():
    config = load_section(NormaliserConfig, 'train.yaml', SECTION)
    if not config.std_floor > 0:
        raise ValueError('config/train.yaml: normaliser.std_floor must be > 0, got %r' % config.std_floor)
    return config


class ObsNormaliser:
    """(obs - mean) / std with per-value float32 mean and std (std > 0)."""

    def __init__(self, mean, std, where='normaliser'):
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1)
        if self.mean.shape != self.std.shape or not (np.all(np.isfinite(self.mean)) and np.all(np.isfinite(self.std))):
            raise ValueError('%s: mean and std must be finite and of one size, got %s and %s'
                             % (where, self.mean.shape, self.std.shape))
        if np.any(self.std <= 0):
            raise ValueError('%s: std must be > 0 everywhere' % where)

    @classmethod
    def from_observations(cls, observations, std_floor):
        observations = np.asarray(observations, dtype=np.float64)
        return cls(observations.mean(axis=0), np.maximum(observations.std(axis=0), std_floor))

    @classmethod
    def from_model(cls, model, obs_dim, where):
        """The normaliser stored in a loaded model.pt dict."""
        stored = model.get(KEY)
        if not isinstance(stored, dict) or not all(isinstance(stored.get(k), torch.Tensor) for k in ('mean', 'std')):
            raise ValueError('%s: config.yaml says %s but model.pt holds no mean and std tensors under %r'
                             % (where, KEY, KEY))
        normaliser = cls(stored['mean'].numpy(), stored['std'].numpy(), where)
        if normaliser.mean.shape != (obs_dim,):
            raise ValueError('%s: the normaliser has %d values, the observation %d' % (where, normaliser.mean.size,
                                                                                       obs_dim))
        return normaliser

    @property
    def size(self):
        return self.mean.size

    def apply(self, observations):
        return ((np.asarray(observations, dtype=np.float32) - self.mean) / self.std).astype(np.float32)

    def tensors(self):
        return {'mean': torch.from_numpy(self.mean.copy()), 'std': torch.from_numpy(self.std.copy())}


class NormalisedEvaluator:
    """An Evaluator whose policy (and critic) see normalised observations while the env gives raw ones."""

    def __init__(self, evaluator, normaliser):
        self.evaluator, self.normaliser = evaluator, normaliser

    def evaluate(self, act_fn, q_fn=None):
        def act(obs):
            return act_fn(self.normaliser.apply(obs))

        def q(obs, actions):
            return q_fn(self.normaliser.apply(obs), actions)
        return self.evaluator.evaluate(act, None if q_fn is None else q)

    @property
    def last_observations(self):
        """The last evaluation's raw observations (the env's, for pictures)."""
        return self.evaluator.last_observations

    def close(self):
        self.evaluator.close()


def prepare(enabled, dataset, evaluator=None):
    """For a run: None (enabled False, or None and config/train.yaml's off) or the normaliser of `dataset`, whose
    observations it then normalises in place; returns (evaluator, normaliser), the evaluator wrapped to match."""
    config = load_normaliser_config()
    if not (config.enabled if enabled is None else enabled):
        return evaluator, None
    normaliser = ObsNormaliser.from_observations(dataset.observations, config.std_floor)
    dataset.observations = normaliser.apply(dataset.observations)
    dataset.next_observations = normaliser.apply(dataset.next_observations)
    print('observations normalised: mean %.4g..%.4g, std %.4g..%.4g (floor %g)'
          % (normaliser.mean.min(), normaliser.mean.max(), normaliser.std.min(), normaliser.std.max(),
             config.std_floor), flush=True)
    return (None if evaluator is None else NormalisedEvaluator(evaluator, normaliser)), normaliser


def check_same(normaliser, folder, config, model):
    """A CVAE reused with --vae-from must have seen the observations this run trains on: the same normaliser
    (or none on both sides). `config` and `model` are the checkpoint `folder`'s config.yaml and model.pt."""
    theirs = bool(config.get(KEY))
    same = theirs == (normaliser is not None)
    if same and theirs:
        stored = ObsNormaliser.from_model(model, normaliser.size, folder)
        same = np.array_equal(stored.mean, normaliser.mean) and np.array_equal(stored.std, normaliser.std)
    if not same:
        raise ValueError('--vae-from %s: its CVAE saw %s observations, this run trains on %s ones'
                         % (folder, 'normalised' if theirs else 'raw', 'normalised' if normaliser else 'raw')
                         + (' (with other mean/std)' if theirs and normaliser is not None else ''))
