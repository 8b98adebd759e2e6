"""The envelope belongs to the robot: crafted checkpoints (bounds, buffers, weights, config; exported TorchScript
files and programs) and 10 000 random observations through the deployed core (plas_ros.deploy.build_core, what
the inference node runs), no ROS.

Property: no action outside the task's action space, ever; a checkpoint whose bounds are wider is refused at
load; an observation outside its plausible range never reaches the policy. The README's reliability figures
(crafted checkpoints tried, actions outside the envelope) are this test's.
"""
import math
import os

import numpy as np
import pytest
import torch
import yaml

from plas_ros import deploy
from plas_ros import policy as policy_module
from plas_ros.algos.checkpoint import save_checkpoint
from plas_ros.algos.config import ALGOS, fields_of, load_config
from plas_ros.algos.registry import build_algorithm
from plas_ros.env import layout
from plas_ros.policy import export_torchscript
from tests.helpers.deploy import plausible_observations

OBSERVATIONS = 10000
NOW = 1000.0
TASK_LOW, TASK_HIGH = np.full(2, layout.ACTION_LOW), np.full(2, layout.ACTION_HIGH)
NARROW = ([-0.5, 0.0], [0.25, 1.0])
WIDE = ([-20.0, -20.0], [20.0, 20.0])  # weights and config agree: a checkpoint trained on data of another task


def write_checkpoint(directory, algo, low=TASK_LOW, high=TASK_HIGH):
    sizes = dict(actor_hidden=[8, 8], critic_hidden=[8, 8], vae_hidden=[8, 8], act_samples=4)
    cfg = load_config(None, algo=algo, **{k: v for k, v in sizes.items() if k in fields_of(algo)})
    save_checkpoint(directory, build_algorithm(cfg, layout.OBS_DIM, layout.ACT_DIM, low, high, seeds=[1]), 0)
    return directory


def edit_config(directory, **changes):
    path = os.path.join(directory, 'config.yaml')
    config = yaml.safe_load(open(path))
    for key, value in changes.items():
        if key in config['train']:
            config['train'][key] = value
        else:
            config[key] = value
    yaml.safe_dump(config, open(path, 'w'))


def edit_weights(directory, change):
    """Apply change(name, tensor) -> tensor to every tensor of model.pt."""
    path = os.path.join(directory, 'model.pt')
    model = torch.load(path, weights_only=True)
    model['modules'] = {m: {k: change('%s.%s' % (m, k), t) for k, t in sd.items()}
                        for m, sd in model['modules'].items()}
    torch.save(model, path)


def scaled(factor, only=''):
    return lambda name, t: t * factor if only in name and t.is_floating_point() else t


def bound_buffers(center, half_range):
    def change(name, t):
        if name.endswith('bound.center'):
            return torch.full_like(t, center)
        if name.endswith('bound.half_range'):
            return torch.full_like(t, half_range)
        return t
    return change


# name -> how a sound checkpoint of the task (bounds [-1, 1]) is crafted. None: the sound checkpoint itself.
CRAFTS = {
    'sound': None,
    'wide bounds': lambda d: edit_config(d, action_low=[-20.0, -20.0], action_high=[20.0, 20.0]),
    'one bound wide': lambda d: edit_config(d, action_high=[1.0, 1.5]),
    'NaN bound': lambda d: edit_config(d, action_low=[float('nan'), -1.0]),
    'inverted bounds': lambda d: edit_config(d, action_low=[1.0, 1.0], action_high=[-1.0, -1.0]),
    'bounds of another length': lambda d: edit_config(d, action_low=[-1.0] * 3, action_high=[1.0] * 3),
    'bounds as text': lambda d: edit_config(d, action_low='wide', action_high='wider'),
    'narrow config over wide weights': lambda d: edit_config(d, action_low=NARROW[0], action_high=NARROW[1]),
    'act_dim 3': lambda d: edit_config(d, act_dim=3, action_low=[-1.0] * 3, action_high=[1.0] * 3),
    'obs_dim 6': lambda d: edit_config(d, obs_dim=6),
    'huge latent box and phi': lambda d: edit_config(d, max_latent_action=1e6, phi=100.0),
    'wide buffers': lambda d: edit_weights(d, bound_buffers(13.3, 50.0)),
    'NaN buffers': lambda d: edit_weights(d, bound_buffers(float('nan'), 1.0)),
    'weights x 1e6': lambda d: edit_weights(d, scaled(1e6)),
    'weights x 1e30 (inf and NaN inside)': lambda d: edit_weights(d, scaled(1e30)),
    'output biases 1e4': lambda d: edit_weights(d, scaled(1e4, only='biases.2')),
}


class ConstantProgram(torch.nn.Module):
    """A TorchScript program that ignores its input: whatever an exported file's code computes, the gate holds."""

    def __init__(self, value: float, width: int):
        super().__init__()
        self.value, self.width = value, width

    def forward(self, obs):
        return torch.full((obs.shape[0], self.width), self.value)


def write_program(path, value, low=TASK_LOW, high=TASK_HIGH, width=2):
    meta = {'format': policy_module.SCRIPT_FORMAT, 'version': 1, 'algo': 'td3', 'obs_dim': layout.OBS_DIM,
            'act_dim': layout.ACT_DIM, 'action_low': [float(v) for v in low], 'action_high': [float(v) for v in high]}
    torch.jit.save(torch.jit.script(ConstantProgram(value, width)), path,
                   _extra_files={policy_module.SCRIPT_META: yaml.safe_dump(meta)})
    return path


# name -> (file writer, whether build_core refuses it, the bounds its actions keep to) of crafted TorchScript files
PROGRAMS = {
    'program answering 13.3': (lambda p: write_program(p, 13.3), False),
    'program answering 13.3, wide metadata': (lambda p: write_program(p, 13.3, *WIDE), True),
    'program answering NaN': (lambda p: write_program(p, float('nan')), False),
    'program answering 3 values': (lambda p: write_program(p, 0.5, width=3), False),
}


def crafted(tmp_path):
    """(algo, craft, directory, the bounds a loaded policy must keep to) for every algorithm and craft, the
    genuinely narrow checkpoint (trained within narrower bounds: allowed, and its bounds used) and the genuinely
    wide one (refused)."""
    for algo in ALGOS:
        for name, craft in CRAFTS.items():
            directory = write_checkpoint(str(tmp_path / ('%s_%d' % (algo, len(os.listdir(str(tmp_path)))))), algo)
            if craft is not None:
                craft(directory)
            yield algo, name, directory, (TASK_LOW, TASK_HIGH)
        directory = write_checkpoint(str(tmp_path / ('%s_narrow' % algo)), algo, *NARROW)
        yield algo, 'narrow bounds', directory, NARROW
        directory = write_checkpoint(str(tmp_path / ('%s_wide' % algo)), algo, *WIDE)
        yield algo, 'trained within wide bounds', directory, WIDE
        if algo not in policy_module.SAMPLING_ALGOS:
            yield algo, 'exported', export_torchscript(write_checkpoint(str(tmp_path / (
                '%s_export' % algo)), algo), str(tmp_path / ('%s.pt' % algo))), (TASK_LOW, TASK_HIGH)
            yield algo, 'exported within wide bounds', export_torchscript(directory, str(
                tmp_path / ('%s_wide.pt' % algo))), WIDE
    for name, (write, _) in PROGRAMS.items():
        yield 'torchscript', name, write(str(tmp_path / ('program_%d.pt' % len(os.listdir(str(tmp_path)))))), (
            TASK_LOW, TASK_HIGH)


def random_observations(rng, count):
    """Plausible ones (uniform and at the corners of the ranges) and absurd ones: values of every magnitude up
    to float32's largest, signs at random, taxels at 16x full scale, and a few NaN/inf."""
    plausible = plausible_observations(rng, count // 2)
    ranges = deploy.load_observation_ranges()
    corners = plausible[: count // 10].copy()
    at_low = rng.random(corners.shape) < 0.5
    corners[at_low] = np.broadcast_to(ranges.low + 1e-4, corners.shape)[at_low]
    corners[~at_low] = np.broadcast_to(ranges.high - 1e-4, corners.shape)[~at_low]
    absurd = plausible_observations(rng, count - len(plausible) - len(corners))
    rows, cols = np.arange(len(absurd)), rng.integers(0, layout.OBS_DIM, len(absurd))
    magnitudes = 10.0 ** rng.uniform(-45, 38.5, len(absurd)) * rng.choice([-1.0, 1.0], len(absurd))
    absurd[rows, cols] = np.where(magnitudes > 0, magnitudes + ranges.high[cols] + 1e-3,
                                  magnitudes + ranges.low[cols] - 1e-3).astype(np.float32)
    absurd[::50, layout.TACTILE] = 16.0
    absurd[1::97, 5], absurd[2::97, 60] = np.nan, np.inf
    return np.concatenate([plausible, corners, absurd])


@pytest.fixture(scope='module')
def observations():
    return random_observations(np.random.default_rng(15), OBSERVATIONS)


def test_no_crafted_checkpoint_makes_an_action_outside_the_envelope(tmp_path, observations):
    config = deploy.load_deploy_config()
    ranges = deploy.load_observation_ranges()
    implausible = ~np.all((observations >= ranges.low) & (observations <= ranges.high), axis=1)
    assert 0.3 * len(observations) < implausible.sum() < 0.6 * len(observations)
    refused, tried, actions, outside, absurd_answered = [], 0, 0, 0, 0
    for algo, name, directory, (low, high) in crafted(tmp_path):
        tried += 1
        try:
            core = deploy.build_core(directory, config, enabled=True, ranges=ranges)
        except ValueError as error:
            refused.append((algo, name))
            assert directory in str(error) or 'policy' in str(error), error
            continue
        torch.manual_seed(0)
        with torch.inference_mode():
            decisions = [core.decide(o, NOW, NOW) for o in observations]
        got = np.array([d.action is not None for d in decisions])
        acted = np.array([d.action for d in decisions if d.action is not None]).reshape(-1, 2)
        actions += len(acted)
        outside += int(np.sum(np.any((acted < TASK_LOW) | (acted > TASK_HIGH), axis=1)))
        assert np.all(acted >= np.float32(low)) and np.all(acted <= np.float32(high)), (algo, name)
        absurd_answered += int(np.sum(got & implausible))
    print('crafted checkpoints tried: %d, refused: %d, actions: %d, outside the envelope: %d'
          % (tried, len(refused), actions, outside))
    assert outside == 0 and absurd_answered == 0
    refused_crafts = {name for _, name in refused}
    for name in ('trained within wide bounds', 'wide bounds', 'one bound wide', 'NaN bound', 'inverted bounds',
                 'bounds of another length', 'bounds as text', 'act_dim 3', 'obs_dim 6', 'wide buffers', 'NaN buffers',
                 'narrow config over wide weights'):
        assert [a for a, n in refused if n == name] == list(ALGOS), name
    assert 'sound' not in refused_crafts and 'narrow bounds' not in refused_crafts
    deterministic = [a for a in ALGOS if a not in policy_module.SAMPLING_ALGOS]
    assert [a for a, n in refused if n == 'exported within wide bounds'] == deterministic
    assert 'exported' not in refused_crafts
    assert {n for a, n in refused if a == 'torchscript'} == {n for n, (_, no) in PROGRAMS.items() if no}
    assert actions > len(ALGOS) * 4 * 0.4 * len(observations)  # the accepted ones did act on the plausible half


def test_wide_bounds_are_refused_with_a_clear_error(tmp_path):
    directory = write_checkpoint(str(tmp_path / 'wide'), 'plas', *WIDE)
    with pytest.raises(ValueError, match=r'wider than the task.s action space') as error:
        deploy.build_core(directory, deploy.load_deploy_config())
    assert directory in str(error.value) and '20.0' in str(error.value)
    edited = write_checkpoint(str(tmp_path / 'edited'), 'plas')  # bounds widened in config.yaml only
    edit_config(edited, action_low=WIDE[0], action_high=WIDE[1])
    with pytest.raises(ValueError, match='disagrees with the action bounds of config.yaml'):
        deploy.build_core(edited, deploy.load_deploy_config())


def test_narrow_bounds_are_used(tmp_path, observations):
    directory = write_checkpoint(str(tmp_path / 'narrow'), 'td3', *NARROW)
    core = deploy.build_core(directory, deploy.load_deploy_config(), enabled=True)
    np.testing.assert_array_equal(core.gate.action_low, NARROW[0])
    np.testing.assert_array_equal(core.gate.action_high, NARROW[1])
    with pytest.raises(ValueError, match='wider than the policy'):
        deploy.build_core(directory, deploy.load_deploy_config(), bounds=(-1.0, None))
    assert math.isclose(core.gate.envelope_low[0], layout.ACTION_LOW)
