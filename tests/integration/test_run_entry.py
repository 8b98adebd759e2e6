"""`rosrun plas_ros run JOB ARG:=VALUE ...` through a real master: a job that finishes exits 0 without error
banners or ERROR lines, a failed job exits non-zero, an unknown argument or a missing input is refused before
anything starts, relative paths land in the caller's folder, defaults write outside the repository, and the
recorded files store the job's seed, behaviours and config."""
import os
import shutil
import socket
import time

import h5py
import pytest

from plas_ros.config import config_path, job_seed
from plas_ros.data import schema
from tests.helpers.common import free_port
from tests.helpers.ros import ManagedProcess, digest
from tests.helpers.tree import REPO_ROOT

pytestmark = pytest.mark.needs('scripts/run', 'launch/collect.launch', 'launch/train_offline.launch',
                               'launch/deploy.launch', 'config/run.yaml')

DATASET = os.path.join(REPO_ROOT, 'data', 'cloth_sim_small.h5')
# Skipped when looking for files a run wrote into the repository: the environment and caches of the tests.
NOT_THE_RUNS = {'.git', '.venv', 'build', '__pycache__', '.pytest_cache', '.ruff_cache'}


def start_run(tmp_path, job, *args, cwd, env=None, **named):
    argv = ['rosrun', 'plas_ros', 'run', job] + list(args) + ['%s:=%s' % kv for kv in sorted(named.items())]
    return ManagedProcess(argv, str(tmp_path), '%s_%d' % (job, time.monotonic_ns()), env=env, cwd=cwd)


def finish(proc, timeout):
    try:
        code = proc.wait(timeout)
        return code, proc.output
    finally:
        proc.stop()


def sim_ports(tmp_path):
    return dict(sim_wsg_port=free_port(), sim_arm_port=free_port(), sim_dsa_link=str(tmp_path / 'dsa'))


def assert_clean(output):
    assert 'ERROR' not in output and 'has died' not in output, digest(output)


def files_written_since(start, root=REPO_ROOT):
    written = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in NOT_THE_RUNS]
        written += [os.path.join(folder, f) for f in files if os.path.getmtime(os.path.join(folder, f)) >= start]
    return written


def test_a_default_collect_ends_cleanly_and_writes_only_under_ros_home(ros_master, ros_home, tmp_path):
    default_output = os.path.join(ros_home, 'plas_ros', 'collected.h5')
    if os.path.exists(default_output):
        os.remove(default_output)
    start = time.time() - 1
    code, output = finish(start_run(tmp_path, 'collect', cwd=REPO_ROOT, episodes=2, **sim_ports(tmp_path)), 180)
    assert code == 0, digest(output)
    assert_clean(output)
    assert 'run: collect.launch: recorder finished' in output
    assert files_written_since(start) == []
    with h5py.File(default_output, 'r') as f:
        assert f.attrs[schema.ATTR_SEED] == str(job_seed('collect'))
        assert f.attrs[schema.ATTR_POLICY] == 'schedule'
        members = f[schema.EPISODE_BEHAVIOUR_KEY].asstr()[:].tolist()
        assert len(members) == 2 and all(m.startswith(('expert', 'random')) for m in members), members
        with open(config_path('collect.yaml')) as yaml_file:
            assert f.attrs[schema.ATTR_BEHAVIOUR_CONFIG] == yaml_file.read()
        with open(config_path('env.yaml')) as yaml_file:
            assert f.attrs[schema.ATTR_CONFIG] == yaml_file.read()


def test_training_takes_relative_paths_from_the_callers_folder(ros_master, tmp_path):
    (tmp_path / 'data').mkdir()
    shutil.copy(DATASET, str(tmp_path / 'data' / 'small.h5'))
    code, output = finish(start_run(tmp_path, 'train_offline', cwd=str(tmp_path), dataset='data/small.h5',
                                    out='run', steps=5, vae_steps=5, eval='false'), 240)
    assert code == 0, digest(output)
    assert_clean(output)
    assert os.path.isdir(str(tmp_path / 'run' / 'tb')), digest(output)
    assert '--seed %d' % job_seed('train_offline') in output


def test_plain_roslaunch_takes_relative_paths_from_pwd_too(ros_master, tmp_path):
    """roslaunch runs the node in ROS_HOME; the launch file passes $PWD (the shell's folder) to it."""
    (tmp_path / 'data').mkdir()
    shutil.copy(DATASET, str(tmp_path / 'data' / 'small.h5'))
    argv = ['roslaunch', 'plas_ros', 'train_offline.launch', 'dataset:=data/small.h5', 'out:=run', 'steps:=5',
            'vae_steps:=5', 'eval:=false']
    proc = ManagedProcess(argv, str(tmp_path), 'roslaunch_train', env=dict(os.environ, PWD=str(tmp_path)),
                          cwd=str(tmp_path))
    code, output = finish(proc, 240)
    assert code == 0 and os.path.isdir(str(tmp_path / 'run' / 'tb')), digest(output)


def test_a_failed_job_exits_with_its_status(ros_master, tmp_path):
    (tmp_path / 'broken.h5').write_bytes(b'not an HDF5 file')
    code, output = finish(start_run(tmp_path, 'train_offline', cwd=str(tmp_path), dataset='broken.h5',
                                    out='run', eval='false'), 240)
    assert code == 1, digest(output)
    assert 'run: train_offline.launch failed: train_offline exited with status 1' in output


def test_a_node_that_cannot_start_fails_the_run(ros_master, tmp_path):
    code, output = finish(start_run(tmp_path, 'collect', cwd=str(tmp_path), policy='checkpoint', episodes=1,
                                    output='x.h5', **sim_ports(tmp_path)), 180)
    assert code not in (0, None), digest(output)
    assert 'failed: behaviour_policy exited with status' in output, digest(output)


def test_a_deployment_records_with_its_own_seed(ros_master, checkpoint, tmp_path):
    code, output = finish(start_run(tmp_path, 'deploy', cwd=str(tmp_path), checkpoint=checkpoint, episodes=1,
                                    record='deployed.h5', **sim_ports(tmp_path)), 180)
    assert code == 0, digest(output)
    assert_clean(output)
    with h5py.File(str(tmp_path / 'deployed.h5'), 'r') as f:
        assert f.attrs[schema.ATTR_SEED] == str(job_seed('deploy')) != str(job_seed('collect'))
        assert f[schema.EPISODE_BEHAVIOUR_KEY].asstr()[:].tolist() == [checkpoint]


def nothing_listens(port):
    with socket.socket() as s:
        return s.connect_ex(('127.0.0.1', port)) != 0


@pytest.mark.parametrize('job, args, problem', [
    ('collect', {'episode': '2'}, "collect.launch has no argument 'episode'; did you mean 'episodes'?"),
    ('train_offline', {'dataset': 'missing.h5'}, 'dataset:=missing.h5: no such file or folder'),
    ('deploy', {'episodes': '2'}, 'deploy.launch needs checkpoint:=...'),
    ('colect', {}, "unknown job 'colect'; did you mean 'collect'?"),
])
def test_a_wrong_request_is_refused_before_anything_starts(tmp_path, job, args, problem):
    port = free_port()
    env = dict(os.environ, ROS_MASTER_URI='http://127.0.0.1:%d' % port, ROS_HOME=str(tmp_path / 'home'))
    code, output = finish(start_run(tmp_path, job, cwd=str(tmp_path), env=env, **args), 60)
    assert code == 2 and problem in output, output
    # (rospack keeps its cache in ROS_HOME; roslaunch would have made its log folder there)
    assert nothing_listens(port) and not os.path.exists(str(tmp_path / 'home' / 'log')), 'roslaunch started'
