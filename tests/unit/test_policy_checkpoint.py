"""Checkpoint round trips and load_policy's refusals (wrong dims, bad input, a file crafted to run code)."""
import os

import numpy as np
import pytest
import torch
import yaml

from plas_ros.algos.checkpoint import save_checkpoint
from plas_ros.algos.config import ALGOS, fields_of, load_config
from plas_ros.algos.registry import build_algorithm
from plas_ros.policy import load_policy

LOW = np.array([-1.0, 0.0], np.float32)
HIGH = np.array([1.0, 2.0], np.float32)


# BCQ and BEAR act as their authors' select_action: the best of fresh samples at each call.
SAMPLING = ('bcq', 'bear')


def trained(algo, tmp_path, seeds=(5,), index=0):
    sizes = dict(actor_hidden=[8, 8], critic_hidden=[8, 8], vae_hidden=[8, 8], act_samples=6)
    cfg = load_config(None, algo=algo, **{k: v for k, v in sizes.items() if k in fields_of(algo)})
    algorithm = build_algorithm(cfg, 4, 2, LOW, HIGH, seeds=list(seeds))
    directory = str(tmp_path / ('%s_%d' % (algo, index)))
    save_checkpoint(directory, algorithm, index, datasets=['a.h5'])
    return algorithm, directory


OBS = np.random.default_rng(0).normal(size=(7, 4)).astype(np.float32)


@pytest.mark.parametrize('algo', ALGOS)
def test_round_trip_gives_identical_weights_and_actions(algo, tmp_path):
    algorithm, directory = trained(algo, tmp_path, seeds=(5, 6), index=1)
    policy = load_policy(directory)
    loaded, saved = policy._algorithm.seed_state(0), algorithm.seed_state(1)
    assert set(loaded) == set(saved) == set(algorithm.saved_modules)
    assert all(torch.equal(loaded[m][k], saved[m][k]) for m in saved for k in saved[m])
    assert (policy.obs_dim, policy.act_dim) == (4, 2)
    np.testing.assert_array_equal(policy.action_low, LOW)
    config = yaml.safe_load(open(os.path.join(directory, 'config.yaml')))
    assert config['algo'] == algo and config['seed'] == 6 and config['train']['actor_hidden'] == [8, 8]
    assert config['version'] == 2 and set(config['train']) == set(fields_of(algo))
    if algo in SAMPLING:
        return  # the stacked algorithm draws its samples for both seeds: compared in the next test
    expected = algorithm.act(torch.from_numpy(OBS)[None].expand(2, -1, -1))[1].numpy()
    np.testing.assert_allclose(policy.act(OBS), expected, atol=1e-6)
    single = policy.act(OBS[0])
    assert single.shape == (2,) and single.dtype == np.float32
    np.testing.assert_allclose(single, expected[0], atol=1e-6)


@pytest.mark.parametrize('algo', SAMPLING)
def test_sampling_policies_round_trip_under_the_same_generator(algo, tmp_path):
    algorithm, directory = trained(algo, tmp_path, seeds=(6,))
    policy = load_policy(directory)
    torch.manual_seed(3)
    expected = algorithm.act(torch.from_numpy(OBS)[None])[0].numpy()
    torch.manual_seed(3)
    actions = policy.act(OBS)
    np.testing.assert_allclose(actions, expected, atol=1e-6)
    assert actions.dtype == np.float32 and ((actions >= LOW) & (actions <= HIGH)).all()
    assert not np.array_equal(policy.act(OBS), actions)  # fresh samples at each call


# The train section of a version 1 checkpoint: every algorithm's fields, some under their old names.
V1_TRAIN = {'actor_hidden': [8, 8], 'critic_hidden': [8, 8], 'vae_hidden': [8, 8], 'batch_size': 256,
            'actor_lr': 3e-4, 'critic_lr': 3e-4, 'vae_lr': 1e-4, 'vae_steps': 15000, 'steps': 2400, 'gamma': 0.99,
            'tau': 0.005, 'lmbda': 0.75, 'max_latent_action': 2.0, 'perturbation_phi': 0.05, 'vae_kl_weight': 0.5,
            'td3_policy_noise': 0.2, 'td3_noise_clip': 0.5, 'td3_policy_delay': 2, 'bcq_phi': 0.05,
            'bcq_target_samples': 10, 'bcq_act_samples': 6, 'log_every': 100, 'eval_every': 0, 'eval_episodes': 5,
            'threads': 0}


@pytest.mark.parametrize('algo', ['plas_p', 'td3', 'bcq', 'bc'])
def test_version_1_checkpoints_still_load(algo, tmp_path):
    algorithm, directory = trained(algo, tmp_path)
    path = os.path.join(directory, 'config.yaml')
    config = yaml.safe_load(open(path))
    config.update(version=1, train=dict(V1_TRAIN, algo=algo))
    yaml.safe_dump(config, open(path, 'w'))
    cfg = load_policy(directory)._algorithm.cfg.to_dict()
    assert set(cfg) == set(fields_of(algo)) and cfg['actor_hidden'] == [8, 8]
    renamed = {'plas_p': ('phi', 0.05), 'td3': ('policy_delay', 2), 'bcq': ('act_samples', 6), 'bc': ('steps', 2400)}
    assert cfg[renamed[algo][0]] == renamed[algo][1]
    if algo == 'td3':
        assert cfg['lmbda'] == 0.75  # what that run recorded, not today's default


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
