"""Checkpoint round trips and load_policy's refusals (wrong dims, bad input, a file crafted to run code)."""
import os

import numpy as np
import pytest
import torch
import yaml

from plas_ros.algos.checkpoint import save_checkpoint
from plas_ros.algos.config import ALGOS, load_config
from plas_ros.algos.registry import build_algorithm
from plas_ros.policy import load_policy

LOW = np.array([-1.0, 0.0], np.float32)
HIGH = np.array([1.0, 2.0], np.float32)


def trained(algo, tmp_path, seeds=(5,), index=0):
    cfg = load_config(None, algo=algo, actor_hidden=[8, 8], critic_hidden=[8, 8], vae_hidden=[8, 8],
                      bcq_act_samples=6)
    algorithm = build_algorithm(cfg, 4, 2, LOW, HIGH, seeds=list(seeds))
    directory = str(tmp_path / ('%s_%d' % (algo, index)))
    save_checkpoint(directory, algorithm, index, datasets=['a.h5'])
    return algorithm, directory


@pytest.mark.parametrize('algo', ALGOS)
def test_round_trip_gives_identical_actions(algo, tmp_path):
    algorithm, directory = trained(algo, tmp_path, seeds=(5, 6), index=1)
    policy = load_policy(directory)
    obs = np.random.default_rng(0).normal(size=(7, 4)).astype(np.float32)
    expected = algorithm.act(torch.from_numpy(obs)[None].expand(2, -1, -1))[1].numpy()
    np.testing.assert_allclose(policy.act(obs), expected, atol=1e-6)
    single = policy.act(obs[0])
    assert single.shape == (2,) and single.dtype == np.float32
    np.testing.assert_allclose(single, expected[0], atol=1e-6)
    assert (policy.obs_dim, policy.act_dim) == (4, 2)
    np.testing.assert_array_equal(policy.action_low, LOW)
    config = yaml.safe_load(open(os.path.join(directory, 'config.yaml')))
    assert config['algo'] == algo and config['seed'] == 6 and config['train']['actor_hidden'] == [8, 8]


def test_model_file_holds_only_plain_data(tmp_path):
    _, directory = trained('plas', tmp_path)
    model = torch.load(os.path.join(directory, 'model.pt'), weights_only=True)
    assert set(model['modules']) == {'actor', 'critic', 'cvae'}
    assert all(isinstance(t, torch.Tensor) for sd in model['modules'].values() for t in sd.values())


def test_bad_observations_raise_value_error(tmp_path):
    _, directory = trained('plas', tmp_path)
    policy = load_policy(directory)
    for bad, words in ((np.zeros(5), 'shape'), (np.zeros((2, 3)), 'shape'), (np.zeros((1, 1, 4)), 'shape'),
                       (np.array([0, np.nan, 0, 0]), 'non-finite'), (np.array([0, 0, np.inf, 0]), 'non-finite'),
                       (['a', 'b', 'c', 'd'], 'not numeric')):
        with pytest.raises(ValueError, match=words):
            policy.act(bad)


def test_dimension_mismatch_is_refused(tmp_path):
    _, directory = trained('td3', tmp_path)
    with pytest.raises(ValueError, match='obs_dim is 4 but 89 was expected'):
        load_policy(directory, obs_dim=89)
    # A config that claims other dimensions than the weights have: refused, not silently reshaped.
    path = os.path.join(directory, 'config.yaml')
    config = yaml.safe_load(open(path))
    config['obs_dim'] = 6
    yaml.safe_dump(config, open(path, 'w'))
    with pytest.raises(ValueError, match='does not fit'):
        load_policy(directory)


class _Exploit:
    """Unpickling this object would run a shell command (the classic pickle attack)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, ('touch %s' % self.marker,))


def test_checkpoint_crafted_to_execute_code_is_refused(tmp_path):
    _, directory = trained('plas', tmp_path)
    marker = tmp_path / 'pwned'
    torch.save({'format': 'plas_ros-policy', 'version': 1, 'modules': _Exploit(marker)},
               os.path.join(directory, 'model.pt'))
    with pytest.raises(ValueError, match='refused'):
        load_policy(directory)
    assert not marker.exists()
    # The same file *would* run the command without weights_only: the test really holds an exploit.
    torch.load(os.path.join(directory, 'model.pt'), weights_only=False)
    assert marker.exists()


def test_yaml_config_with_python_tags_is_refused(tmp_path):
    _, directory = trained('plas', tmp_path)
    marker = tmp_path / 'pwned_yaml'
    with open(os.path.join(directory, 'config.yaml'), 'w') as f:
        f.write('format: !!python/object/apply:os.system ["touch %s"]\n' % marker)
    with pytest.raises(ValueError, match='cannot read'):
        load_policy(directory)
    assert not marker.exists()


def test_nan_weights_and_missing_files_are_refused(tmp_path):
    _, directory = trained('bc', tmp_path)
    path = os.path.join(directory, 'model.pt')
    model = torch.load(path, weights_only=True)
    model['modules']['actor']['net.biases.0'][0, 0, 0] = float('nan')
    torch.save(model, path)
    with pytest.raises(ValueError, match='NaN'):
        load_policy(directory)
    os.remove(path)
    with pytest.raises(ValueError, match='cannot read the weights'):
        load_policy(directory)
    with pytest.raises(ValueError, match='cannot read the checkpoint configuration'):
        load_policy(str(tmp_path / 'nowhere'))
