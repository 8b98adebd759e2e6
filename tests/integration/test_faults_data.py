"""Fault injection on the data path: a recorded replay buffer damaged on disk (a copy cut short, a crash
mid-write, a wiped header, another file under an .h5 name) given to `python -m plas_ros.train`.

What the user must see: exit code != 0, one line naming the damaged file (not a traceback, not the good file
given beside it), no checkpoint written, and both files left byte for byte as they were (the trainer repairs
nothing and deletes nothing). The file is written by the recorder's own writer from in-process episodes.
"""
import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from plas_ros.collect.policies import make_policy
from plas_ros.data.episodes import Step
from plas_ros.data.schema import episode_arrays
from plas_ros.data.writer import ReplayWriter
from plas_ros.env.layout import DATASET_FORMAT as CLOTH
from plas_ros.sim.gym_env import make_env
from tests.helpers.tree import REPO_ROOT, TRAIN_CONFIG


def record_episodes(path, episodes=2, seed=0):
    """A replay buffer as the recorder writes it: expert episodes of the in-process env through ReplayWriter."""
    env = make_env(seed=seed)
    policy = make_policy('expert', seed=seed)
    writer = ReplayWriter(str(path), CLOTH, source='sim', policy='expert')
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        steps, done = [], False
        while not done:
            action = policy.act(obs)
            next_obs, reward, terminal, timeout, info = env.step(action)
            steps.append(Step(episode=episode, step=len(steps), observation=obs, action=action, reward=reward,
                              next_observation=next_obs, terminal=terminal, timeout=timeout,
                              timestamp=float(len(steps)),
                              gripper_width=info['gripper_width'], gripper_adjustment=info['gripper_adjustment'],
                              tactile_raw=np.asarray(info['tactile_raw']).reshape(-1), force_raw=info['force_raw'],
                              tip_pose=info['tip_pose']))
            obs, done = next_obs, terminal or timeout
        writer.write_episode(episode_arrays(steps))
    env.close()
    return str(path)


def truncate_half(data):
    return data[:len(data) // 2]


def truncate_tail(data):
    return data[:-64]  # the last bytes of the last dataset never reached the disk


def wipe_signature(data):
    return b'\0' * 8 + data[8:]


def not_hdf5(data):
    return b'plas_ros replay buffer? no: a text file saved under an .h5 name\n' * 40


def digest(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture(scope='module')
def recorded(tmp_path_factory):
    return record_episodes(tmp_path_factory.mktemp('faults_data') / 'recorded.h5')


def train(*datasets, out):
    cmd = [sys.executable, '-m', 'plas_ros.train', '--dataset'] + [str(d) for d in datasets]
    cmd += ['--algo', 'plas', '--config', TRAIN_CONFIG, '--out', str(out), '--steps', '2', '--vae-steps', '2',
            '--batch-size', '8', '--threads', '1', '--no-progress']
    return subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize('damage', [truncate_half, truncate_tail, wipe_signature, not_hdf5])
def test_damaged_replay_buffer_is_refused_by_the_trainer_naming_the_file(recorded, tmp_path, damage):
    good = tmp_path / 'session1.h5'
    damaged = tmp_path / 'session2.h5'
    with open(recorded, 'rb') as f:
        data = f.read()
    good.write_bytes(data)
    damaged.write_bytes(damage(data))
    before = {p: digest(p) for p in (good, damaged)}
    out = tmp_path / 'checkpoint'

    result = train(good, damaged, out=out)

    assert result.returncode != 0, result.stdout[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert 'Traceback' not in result.stderr, result.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith('error: %s' % damaged), result.stderr[-3000:]
    assert str(good) + ':' not in result.stderr and str(good) + '[' not in result.stderr
    assert not out.exists() or not os.listdir(out), 'a checkpoint was written from a damaged dataset'
    assert {p: digest(p) for p in (good, damaged)} == before, 'the trainer changed a dataset file'


def test_the_undamaged_recording_trains(recorded, tmp_path):
    """The control: the same recording, unharmed, trains (so the refusals above are about the damage)."""
    result = train(recorded, out=tmp_path / 'checkpoint')
    assert result.returncode == 0, result.stderr[-3000:]
    assert os.path.exists(os.path.join(tmp_path, 'checkpoint', 'model.pt'))
