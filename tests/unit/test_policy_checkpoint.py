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


# -- the observation normaliser --------------------------------------------------------------------------------

def normalised(algo, tmp_path):
    from plas_ros import normaliser
    algorithm, directory = trained(algo, tmp_path)
    norm = normaliser.ObsNormaliser([0.5, -1.0, 2.0, 0.0], [2.0, 0.25, 1.0, 1e-3])
    save_checkpoint(directory, algorithm, 0, datasets=['a.h5'], obs_normaliser=norm.tensors())
    return algorithm, directory, norm


def test_normaliser_is_stored_as_plain_tensors_and_applied_on_load(tmp_path):
    algorithm, directory, norm = normalised('td3', tmp_path)
    model = torch.load(os.path.join(directory, 'model.pt'), weights_only=True)
    assert torch.equal(model['obs_normaliser']['std'], torch.tensor(norm.std))
    assert yaml.safe_load(open(os.path.join(directory, 'config.yaml')))['obs_normaliser'] is True
    expected = algorithm.act(torch.from_numpy(norm.apply(OBS))[None])[0].numpy()
    np.testing.assert_allclose(load_policy(directory).act(OBS), expected, atol=1e-6)  # raw observations in


def test_normaliser_that_disagrees_with_the_config_is_refused(tmp_path):
    _, directory, _ = normalised('bc', tmp_path)
    model_path, config_path = os.path.join(directory, 'model.pt'), os.path.join(directory, 'config.yaml')
    config = yaml.safe_load(open(config_path))
    yaml.safe_dump(dict(config, obs_normaliser=False), open(config_path, 'w'))
    with pytest.raises(ValueError, match='holds a normaliser but config.yaml'):
        load_policy(directory)
    yaml.safe_dump(config, open(config_path, 'w'))
    model = torch.load(model_path, weights_only=True)
    for bad, words in (({'mean': torch.zeros(4), 'std': torch.zeros(4)}, 'std must be > 0'),
                       ({'mean': torch.zeros(3), 'std': torch.ones(3)}, 'normaliser has 3 values'),
                       ({'mean': torch.full((4,), float('nan')), 'std': torch.ones(4)}, 'finite'),
                       (None, 'no mean and std')):
        torch.save(dict(model, obs_normaliser=bad), model_path)
        with pytest.raises(ValueError, match=words):
            load_policy(directory)


# -- TorchScript export ----------------------------------------------------------------------------------------

DETERMINISTIC = tuple(a for a in ALGOS if a not in SAMPLING)
EXPORT_ATOL = 1e-6  # doc/deploy.md, "Exported policies": measured equal bit for bit; this allows a reordered sum


@pytest.mark.parametrize('algo', DETERMINISTIC)
@pytest.mark.parametrize('with_normaliser', [False, True])
def test_exported_torchscript_gives_the_checkpoints_actions(algo, with_normaliser, tmp_path):
    from plas_ros.policy import export_torchscript
    directory = normalised(algo, tmp_path)[1] if with_normaliser else trained(algo, tmp_path)[1]
    exported = export_torchscript(directory, str(tmp_path / 'policy.pt'))
    checkpoint, script = load_policy(directory), load_policy(exported, obs_dim=4, act_dim=2)
    assert script._algorithm is None and isinstance(script._network, torch.jit.ScriptModule)
    observations = np.random.default_rng(1).normal(0.0, 3.0, (1000, 4)).astype(np.float32)
    np.testing.assert_allclose(script.act(observations), checkpoint.act(observations), rtol=0, atol=EXPORT_ATOL)
    for o in observations[:20]:  # one at a time, as the node calls it
        np.testing.assert_allclose(script.act(o), checkpoint.act(o), rtol=0, atol=EXPORT_ATOL)
    np.testing.assert_array_equal(script.action_low, LOW)
    assert script.algo == algo and script.config['obs_normaliser'] is with_normaliser


@pytest.mark.parametrize('algo', SAMPLING)
def test_sampling_policies_are_not_exported(algo, tmp_path):
    from plas_ros.policy import export_torchscript
    _, directory = trained(algo, tmp_path)
    with pytest.raises(ValueError, match='acts by sampling'):
        export_torchscript(directory, str(tmp_path / 'policy.pt'))
    assert not (tmp_path / 'policy.pt').exists()


def test_export_command_line_and_bad_files(tmp_path, capsys):
    from plas_ros import policy as policy_module
    _, directory = trained('plas_p', tmp_path)
    out = str(tmp_path / 'policy.pt')
    assert policy_module.main(['export', directory, '-o', out]) == 0
    assert 'exported' in capsys.readouterr().out
    assert load_policy(out).algo == 'plas_p'
    with pytest.raises(ValueError, match='expected'):
        load_policy(out, obs_dim=89)
    junk = tmp_path / 'junk.pt'
    junk.write_bytes(b'not a zip file')
    with pytest.raises(ValueError, match='not a TorchScript policy file'):
        load_policy(str(junk))
    plain = torch.jit.script(torch.nn.Identity())
    torch.jit.save(plain, str(tmp_path / 'plain.pt'))
    with pytest.raises(ValueError, match='not a plas_ros TorchScript policy'):
        load_policy(str(tmp_path / 'plain.pt'))
    with pytest.raises(SystemExit, match='acts by sampling'):
        policy_module.main(['export', trained('bcq', tmp_path)[1], '-o', str(tmp_path / 'bcq.pt')])
