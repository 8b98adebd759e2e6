"""`roslaunch plas_ros collect.launch episodes:=3 output:=X.h5` ends by itself and leaves a file that validates."""
import os
import subprocess
import sys

import numpy as np
import pytest

from plas_ros.env import layout
from tests.helpers.common import free_port
from tests.helpers.ros import digest

pytestmark = pytest.mark.needs('launch/collect.launch', 'launch/drivers.launch', 'plas_ros/data/__main__.py',
                               *('scripts/' + s for s in ('sim_world', 'wsg_node', 'dsa_node', 'arm_node',
                                                          'env_node', 'behaviour_node', 'recorder_node')))


def test_collect_launch_records_three_episodes_and_exits(roslaunch, tmp_path):
    output = str(tmp_path / 'collected.h5')
    launch = roslaunch('collect.launch', episodes=3, output=output, seed=3, sim_wsg_port=free_port(),
                       sim_arm_port=free_port(), sim_dsa_link=str(tmp_path / 'dsa'))
    launch.wait(timeout=120)
    assert os.path.exists(output), digest(launch.output)

    validate = subprocess.run([sys.executable, '-m', 'plas_ros.data', 'validate', output],
                              capture_output=True, text=True, timeout=60)
    assert validate.returncode == 0, validate.stdout + validate.stderr

    import h5py
    with h5py.File(output, 'r') as f:
        observations = f['observations'][:]
        ends = f['terminals'][:] | f['timeouts'][:]
        episode_ids = f['infos/episode_ids'][:]
        assert f.attrs['source'] == 'sim'
        assert not f['infos/errors'][:].any()
    assert observations.shape[1] == layout.OBS_DIM
    assert len(np.unique(episode_ids)) == 3 and ends.sum() == 3 and ends[-1]
