"""train_offline node: runs the offline trainer (plas_ros.train) from ROS parameters, then exits.

The node adds nothing to training itself; it exists so that `roslaunch plas_ros train_offline.launch`
trains with rosparam-style arguments, logs to /rosout and ends the launch when training is done. Its
parameters and their defaults are config/train.yaml `node` (a budget left empty is the preset's): README.md,
section train_offline. Training: doc/training.md.
"""
import shlex
import sys

import rospy

from plas_ros.algos.config import ALGOS, defaults, fields_of
from plas_ros.config import ConfigError, caller_path, config_path, job_seed, overlay, package_file, section
from plas_ros.nodes.lifecycle import init_node
from plas_ros.nodes.params import node_params

SIM_EVAL_ENV = 'plas_ros.sim.gym_env:make_env'
CONFIG_FILE = 'train.yaml'
# Node parameters that are not passed as `--set KEY=VALUE` although the configuration has such a field.
OWN_OPTIONS = ('algo', 'steps', 'vae_steps', 'eval_every', 'eval_episodes')


def resolve_params(given=None):
    """The node's parameters: config/train.yaml `node` with `given` over it (as plas_ros.config.overlay: an
    empty string is the YAML value)."""
    path = config_path(CONFIG_FILE)
    return overlay(section(path, 'node'), given or {}, path, 'node')


def trainer_argv(params):
    """Translate the node's parameters into `python -m plas_ros.train` arguments; a budget that is null (or a
    step count of 0) is left to the preset."""
    datasets = [caller_path(path) for path in shlex.split(str(params['dataset']))]
    if not datasets:
        raise ValueError('~dataset is empty: give one or more HDF5 files, separated by spaces')
    if not params['out']:
        raise ValueError('~out is empty: give the checkpoint folder')
    algo = params['algo'] if params['algo'] is not None else defaults()['algo']
    argv = ['--dataset'] + datasets + ['--algo', str(algo)]
    if params['config']:
        argv += ['--config', package_file(str(params['config']))]
    argv += ['--out', caller_path(str(params['out'])), '--seed', str(job_seed('train_offline', params['seed']))]
    for name, option in (('steps', '--steps'), ('vae_steps', '--vae-steps')):
        if params[name] is not None and int(params[name]) > 0:  # 0: the preset's, as before empty meant it
            argv += [option, str(int(params[name]))]
    if params['obs_normalise']:
        argv.append('--obs-normalise')
    if params['eval']:
        argv += ['--eval-env', SIM_EVAL_ENV]
        for name, option in (('eval_every', '--eval-every'), ('eval_episodes', '--eval-episodes')):
            if params[name] is not None:
                argv += [option, str(int(params[name]))]
    return argv + run_options(params) + settings(params)


def run_options(params):
    """--device, --save-every, --resume (the run in ~out), --vae-from: those given."""
    argv = []
    if params['device']:
        argv += ['--device', str(params['device'])]
    if params['save_every'] is not None:
        argv += ['--save-every', str(int(params['save_every']))]
    if params['resume']:
        argv += ['--resume', str(params['out'])]
    if params['vae_from']:
        argv += ['--vae-from', str(params['vae_from'])]
    return argv


def settings(params):
    """`--set KEY=VALUE` for each setting of the algorithm given (not null); lists as 400,300."""
    fields = {name for algo in ALGOS for name in fields_of(algo)} - set(OWN_OPTIONS)
    argv = []
    for name in sorted(n for n in params if n in fields and params[n] is not None):
        value = params[name]
        text = ','.join(str(v) for v in value) if isinstance(value, (list, tuple)) else str(value)
        argv += ['--set', '%s=%s' % (name, text)]
    return argv


def main():
    init_node('train_offline')
    params = node_params(CONFIG_FILE, 'node')
    from plas_ros import train  # torch is heavy: import after the node is up so roslaunch sees it start
    try:
        argv = trainer_argv(params)
    except (ConfigError, ValueError) as error:
        rospy.logfatal('training cannot start: %s', error)
        sys.exit(1)
    rospy.loginfo('training: python -m plas_ros.train %s', ' '.join(shlex.quote(a) for a in argv))
    try:
        code = train.main(argv)
    except (ValueError, OSError) as error:  # bad dataset or config: say so clearly, fail the launch
        rospy.logfatal('training failed: %s', error)
        sys.exit(1)
    rospy.loginfo('training finished; checkpoint in %s', params['out'])
    sys.exit(code or 0)
