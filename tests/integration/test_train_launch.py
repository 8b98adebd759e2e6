"""train_offline.launch: an argument left empty is the preset's value (config:=config/train_mujoco.yaml evaluates
every 5000 steps, not the robot preset's 150), from the launch file through the node to the trainer."""
import os

import pytest
import yaml

from tests.helpers.ros import digest
from tests.helpers.tree import REPO_ROOT

LAUNCH = os.path.join(REPO_ROOT, 'launch', 'train_offline.launch')
DATASET = os.path.join(REPO_ROOT, 'data', 'cloth_sim_small.h5')


def launch_params(**args):
    """The train_offline node's private parameters as roslaunch sets them for `key:=value` arguments."""
    import roslaunch.config
    import roslaunch.xmlloader
    config = roslaunch.config.ROSLaunchConfig()
    argv = ['roslaunch'] + ['%s:=%s' % kv for kv in sorted(args.items())]
    roslaunch.xmlloader.XmlLoader().load(LAUNCH, config, argv=argv, verbose=False)
    prefix = '/train_offline/'
    return {name[len(prefix):]: p.value for name, p in config.params.items() if name.startswith(prefix)}


def resolved_config(**args):
    """(trainer argv, the TrainConfig the trainer resolves from it) for these launch arguments."""
    from plas_ros import train
    from plas_ros.algos.config import load_config
    from plas_ros.nodes.train_node import resolve_params, trainer_argv
    argv = trainer_argv(resolve_params(launch_params(**args)))
    options = train.build_parser().parse_args(argv)
    return argv, load_config(options.config, algo=options.algo, **train.overrides(options))


@pytest.mark.parametrize('args, eval_every, eval_episodes, steps', [
    ({'config': 'config/train_mujoco.yaml'}, 5000, 5, 500000),          # the bug: was 150
    ({}, 150, 5, 2400),                                                   # the default robot preset
    ({'config': 'config/train_mujoco.yaml', 'eval_every': '7', 'eval_episodes': '2', 'steps': '30'}, 7, 2, 30),
    ({'config': 'config/train_mujoco.yaml', 'steps': '0'}, 5000, 5, 500000),  # 0 steps: the preset's, as before
])
def test_empty_launch_arguments_are_the_presets_values(args, eval_every, eval_episodes, steps):
    argv, cfg = resolved_config(**args)
    assert (cfg.eval_every, cfg.eval_episodes, cfg.steps) == (eval_every, eval_episodes, steps), argv
    assert cfg.algo == 'plas' and '--eval-env' in argv
    if 'eval_every' not in args:
        assert '--eval-every' not in argv and '--eval-episodes' not in argv


def test_eval_false_passes_no_evaluation_options():
    argv, cfg = resolved_config(config='config/train_mujoco.yaml', eval='false', algo='bc', seed='3')
    assert '--eval-env' not in argv and cfg.algo == 'bc' and argv[argv.index('--seed') + 1] == '3'


def test_launch_arguments_set_the_algorithms_settings_and_the_run_options(tmp_path):
    argv, cfg = resolved_config(algo='td3', actor_lr='1e-3', critic_hidden='32,16', gamma='0.9', tau='0.01',
                                batch_size='64', device='cpu', save_every='7', out=str(tmp_path), resume='true')
    assert (cfg.actor_lr, cfg.critic_hidden, cfg.gamma, cfg.tau, cfg.batch_size) == (1e-3, [32, 16], 0.9, 0.01, 64)
    assert cfg.critic_lr == 3e-4 and cfg.actor_hidden == [64, 64]  # left empty: the robot preset's
    for option in (['--set', 'actor_lr=1e-3'], ['--set', 'critic_hidden=32,16'], ['--device', 'cpu'],
                   ['--save-every', '7'], ['--resume', str(tmp_path)]):
        assert any(argv[i:i + 2] == option for i in range(len(argv))), (option, argv)
    argv, _ = resolved_config()
    assert '--set' not in argv and '--device' not in argv and '--resume' not in argv and '--vae-from' not in argv
    from plas_ros.config import ConfigError
    with pytest.raises(ConfigError, match=r'lmbda: must lie in \[0.0, 1.0\]'):
        resolved_config(lmbda='2')
    with pytest.raises(ValueError, match="td3 has no setting 'phi'"):
        resolved_config(algo='td3', phi='0.1')


def test_obs_normalise_launch_argument_reaches_the_trainer():
    from plas_ros import train
    argv, _ = resolved_config(obs_normalise='true')
    assert train.build_parser().parse_args(argv).obs_normalise is True
    for args in ({}, {'obs_normalise': 'false'}):  # empty: config/train.yaml normaliser.enabled decides (off)
        argv, _ = resolved_config(**args)
        assert '--obs-normalise' not in argv and train.build_parser().parse_args(argv).obs_normalise is None


def test_train_offline_launch_trains_with_the_presets_eval_every(roslaunch, tmp_path):
    out = str(tmp_path / 'run')
    launch = roslaunch('train_offline.launch', config='config/train_mujoco.yaml', dataset=DATASET, out=out,
                       steps=2, vae_steps=2, eval_episodes=1)
    launch.wait(timeout=300)
    assert launch.proc.returncode == 0, digest(launch.output)
    with open(os.path.join(out, 'config.yaml')) as f:
        train = yaml.safe_load(f)['train']
    assert (train['eval_every'], train['eval_episodes'], train['steps'], train['vae_steps']) == (5000, 1, 2, 2)
    assert (train['batch_size'], train['vae_hidden']) == (100, [750, 750]), 'not the MuJoCo preset'
    assert '--eval-every' not in launch.output, digest(launch.output)
