"""train_offline node: runs the offline trainer (plas_ros.train) from ROS parameters, then exits.

The node adds nothing to training itself; it exists so that `roslaunch plas_ros train_offline.launch`
trains with rosparam-style arguments, logs to /rosout and ends the launch when training is done.
Parameters: README.md, section train_offline. Training: doc/training.md.
"""
import shlex
import sys

import rospy

SIM_EVAL_ENV = 'plas_ros.sim.gym_env:make_env'


def trainer_argv(params):
    """Translate the node's parameters into `python -m plas_ros.train` arguments."""
    datasets = shlex.split(str(params['dataset']))
    if not datasets:
        raise ValueError('~dataset is empty: give one or more HDF5 files, separated by spaces')
    argv = ['--dataset'] + datasets
    argv += ['--algo', str(params['algo']), '--config', str(params['config']), '--out', str(params['out'])]
    argv += ['--seed', str(params['seed'])]
    if int(params.get('steps', 0)) > 0:
        argv += ['--steps', str(params['steps'])]
    if int(params.get('vae_steps', 0)) > 0:
        argv += ['--vae-steps', str(params['vae_steps'])]
    if params.get('eval', True):
        argv += ['--eval-env', SIM_EVAL_ENV, '--eval-every', str(params['eval_every']),
                 '--eval-episodes', str(params['eval_episodes'])]
    return argv


def main():
    rospy.init_node('train_offline')
    params = {name: rospy.get_param('~' + name, default) for name, default in (
        ('dataset', ''), ('algo', 'plas'), ('config', ''), ('out', ''), ('seed', 0), ('steps', 0),
        ('vae_steps', 0), ('eval', True), ('eval_every', 150), ('eval_episodes', 5))}
    from plas_ros import train  # torch is heavy: import after the node is up so roslaunch sees it start
    argv = trainer_argv(params)
    rospy.loginfo('training: python -m plas_ros.train %s', ' '.join(shlex.quote(a) for a in argv))
    try:
        code = train.main(argv)
    except (ValueError, OSError) as error:  # bad dataset or config: say so clearly, fail the launch
        rospy.logfatal('training failed: %s', error)
        sys.exit(1)
    rospy.loginfo('training finished; checkpoint in %s', params['out'])
    sys.exit(code or 0)
