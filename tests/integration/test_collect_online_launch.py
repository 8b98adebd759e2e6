"""`roslaunch plas_ros collect.launch policy:=online_td3 transitions:=N` ends by itself once complete episodes
hold N transitions, leaves a valid file, and the behaviour node's learner, fed from /cloth/transition, leaves
a checkpoint (next to the file) that load_policy loads and that learned from what was recorded."""
import os
import subprocess
import sys

import pytest
import yaml

from plas_ros.config import load_yaml
from plas_ros.data import cli
from plas_ros.data.episodes import episode_slices
from plas_ros.policy import load_policy
from tests.helpers.common import free_port
from tests.helpers.ros import digest

pytestmark = pytest.mark.needs('launch/collect.launch', 'launch/drivers.launch', 'plas_ros/data/__main__.py',
                               *('scripts/' + s for s in ('sim_world', 'wsg_node', 'dsa_node', 'arm_node',
                                                          'env_node', 'behaviour_node', 'recorder_node')))

TRANSITIONS = 120


def test_online_td3_collection_through_ros_ends_after_the_transitions_and_leaves_a_checkpoint(roslaunch, tmp_path):
    output = str(tmp_path / 'online.h5')
    small = tmp_path / 'online.yaml'  # learn from the 40th transition on, in batches of 16
    small.write_text(yaml.safe_dump({'online_td3': dict(load_yaml('collect.yaml')['online_td3'], warmup_steps=40,
                                                        batch_size=16, checkpoint_every=50)}))
    launch = roslaunch('collect.launch', policy='online_td3', transitions=TRANSITIONS, output=output, seed=2,
                       config=str(small), sim_wsg_port=free_port(), sim_arm_port=free_port(),
                       sim_dsa_link=str(tmp_path / 'dsa'))
    launch.wait(timeout=240)
    assert os.path.exists(output), digest(launch.output)
    validate = subprocess.run([sys.executable, '-m', 'plas_ros.data', 'validate', output],
                              capture_output=True, text=True, timeout=60)
    assert validate.returncode == 0, validate.stdout + validate.stderr

    arrays, attrs = cli.validate(output)
    rows = len(arrays['rewards'])
    episodes = episode_slices(arrays['terminals'], arrays['timeouts'])
    last = episodes[-1].stop - episodes[-1].start
    # it ended with the first complete episode that brought the file to TRANSITIONS
    assert rows - last < TRANSITIONS <= rows, (rows, last, digest(launch.output))
    assert arrays['terminals'][-1] or arrays['timeouts'][-1]
    assert attrs['policy'] == 'online_td3'

    checkpoint = str(tmp_path / 'online_online_td3')  # the default: next to the file
    policy = load_policy(checkpoint)
    assert policy.algo == 'td3' and policy.act(arrays['observations'][0]).shape == (2,)
    progress = yaml.safe_load(open(os.path.join(checkpoint, 'config.yaml')))['progress']
    # saved at shutdown, from every recorded transition (and perhaps a few of the episode under way then)
    assert rows <= progress['transitions'] < rows + 70, (progress, rows, digest(launch.output))
    assert progress['updates'] == progress['transitions'] - 40 + 1, progress
