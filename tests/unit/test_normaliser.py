"""The optional observation normaliser: off by default, computed from the dataset by `--obs-normalise`, trained
and evaluated on, stored with the checkpoint and applied by load_policy (raw observations in, actions out)."""
import os

import h5py
import numpy as np
import pytest
import torch
import yaml

from plas_ros import normaliser, train
from plas_ros.policy import load_policy
from tests.helpers.deploy import write_tiny_dataset
from tests.helpers.tree import TRAIN_CONFIG


def run_training(tmp_path, *extra):
    dataset = write_tiny_dataset(str(tmp_path / 'tiny.h5'), rows=120)
    with h5py.File(dataset, 'a') as f:  # a feature far from [0, 1] and one that never changes
        f['observations'][:, 0] = f['observations'][:, 0] * 400.0 + 1000.0
        f['observations'][:, 1] = 0.25
    out = str(tmp_path / ('run' + ''.join(extra).replace('-', '_')))
    argv = ['--dataset', dataset, '--algo', 'td3', '--config', TRAIN_CONFIG, '--out', out, '--steps', '3',
            '--batch-size', '16', '--threads', '1', '--no-progress'] + list(extra)
    assert train.main(argv) == 0
    with h5py.File(dataset, 'r') as f:
        return out, f['observations'][()]


def test_normaliser_is_off_by_default(tmp_path):
    assert normaliser.load_normaliser_config().enabled is False
    out, observations = run_training(tmp_path)
    assert 'obs_normaliser' not in yaml.safe_load(open(os.path.join(out, 'config.yaml')))
    assert 'obs_normaliser' not in torch.load(os.path.join(out, 'model.pt'), weights_only=True)
    assert load_policy(out).act(observations[:5]).shape == (5, 2)


def test_obs_normalise_trains_on_normalised_observations_and_stores_them(tmp_path, capsys):
    out, observations = run_training(tmp_path, '--obs-normalise')
    assert 'observations normalised' in capsys.readouterr().out
    config = yaml.safe_load(open(os.path.join(out, 'config.yaml')))
    assert config['obs_normaliser'] is True
    stored = torch.load(os.path.join(out, 'model.pt'), weights_only=True)['obs_normaliser']
    floor = normaliser.load_normaliser_config().std_floor
    np.testing.assert_allclose(stored['mean'].numpy(), observations.astype(np.float64).mean(0), rtol=1e-5)
    np.testing.assert_allclose(stored['std'].numpy(), np.maximum(observations.astype(np.float64).std(0), floor),
                               rtol=1e-5)
    assert float(stored['std'][1]) == pytest.approx(floor)  # the constant feature: the floor, not zero
    policy = load_policy(out)
    norm = normaliser.ObsNormaliser(stored['mean'].numpy(), stored['std'].numpy())
    expected = policy._algorithm.act(torch.from_numpy(norm.apply(observations[:50]))[None])[0].numpy()
    np.testing.assert_allclose(policy.act(observations[:50]), expected, atol=1e-6)  # raw observations in


class RecordingEvaluator:
    """Calls the policy on one raw observation, as an environment would, and records what it saw."""

    def __init__(self):
        self.closed = False

    def evaluate(self, act_fn, q_fn=None):
        seen = {'act': act_fn(np.array([3.0, 5.0], np.float32))}
        if q_fn is not None:
            seen['q'] = q_fn(np.array([[3.0, 5.0]], np.float32), np.zeros((1, 1), np.float32))
        return seen

    def close(self):
        self.closed = True


def test_evaluation_sees_the_observations_training_saw():
    norm = normaliser.ObsNormaliser([1.0, 1.0], [2.0, 0.5])
    wrapped = normaliser.NormalisedEvaluator(RecordingEvaluator(), norm)
    seen = wrapped.evaluate(lambda obs: obs, lambda obs, actions: obs)
    np.testing.assert_allclose(seen['act'], [1.0, 8.0])
    np.testing.assert_allclose(seen['q'], [[1.0, 8.0]])
    wrapped.close()
    assert wrapped.evaluator.closed


def test_resume_and_vae_from_refuse_a_normaliser_change(tmp_path, capsys):
    dataset = write_tiny_dataset(str(tmp_path / 'tiny.h5'), rows=120)
    common = ['--dataset', dataset, '--config', TRAIN_CONFIG, '--batch-size', '16', '--threads', '1',
              '--no-progress', '--vae-steps', '4', '--steps', '4']
    raw = str(tmp_path / 'raw')
    assert train.main(common + ['--algo', 'plas', '--out', raw, '--save-every', '2']) == 0
    with pytest.raises(SystemExit, match='raw observations, this one would on normalised'):
        train.main(common + ['--algo', 'plas', '--resume', raw, '--obs-normalise'])
    with pytest.raises(SystemExit, match='its CVAE saw raw observations, this run trains on normalised'):
        train.main(common + ['--algo', 'plas_p', '--out', str(tmp_path / 'p'), '--vae-from', raw, '--obs-normalise'])
    normalised = str(tmp_path / 'normalised')
    assert train.main(common + ['--algo', 'plas', '--out', normalised, '--obs-normalise']) == 0
    reused = str(tmp_path / 'reused')
    assert train.main(common + ['--algo', 'plas_p', '--out', reused, '--vae-from', normalised, '--obs-normalise']) == 0
    assert yaml.safe_load(open(os.path.join(reused, 'config.yaml')))['obs_normaliser'] is True
