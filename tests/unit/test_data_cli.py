"""`python -m plas_ros.data`: info, validate (clear errors on bad files), merge and both exports."""
import json
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest

from plas_ros.data import cli
from plas_ros.data.loader import load_datasets, read_file
from plas_ros.data.writer import EpisodeWriter, ReplayWriter
from plas_ros.env.layout import DATASET_FORMAT as CLOTH
from tests.helpers.data import make_steps
from tests.helpers.tree import REPO_ROOT


def recorded(path, ends=('timeout', 'terminal', 'error'), policy='random', length=4, seed=0):
    writer = EpisodeWriter(ReplayWriter(path, CLOTH, policy=policy, config_text='seed: %d\n' % seed, seed=seed,
                                        behaviour_config='%s: {}\n' % policy))
    for i, end in enumerate(ends):
        for step in make_steps(i, length, end, seed=seed * 100 + i):
            writer.add(step)
    return str(path)


def run(capsys, *argv):
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_info_counts_outcomes_returns_and_success(tmp_path, capsys):
    path = recorded(tmp_path / 'a.h5', ends=('timeout', 'timeout', 'terminal', 'error'))
    code, out, _ = run(capsys, 'info', '--json', path)
    summary = json.loads(out)
    assert code == 0 and summary['episodes'] == 4 and summary['transitions'] == 16
    assert summary['outcomes'] == {'timeout': 2, 'terminal': 1, 'error': 1, 'open': 0}
    assert summary['success_rate'] == pytest.approx(0.5)
    rewards = read_file(path)[0]['rewards']
    assert summary['return_max'] == pytest.approx(max(rewards[i:i + 4].sum() for i in range(0, 16, 4)), rel=1e-5)
    assert summary['attrs']['policy'] == 'random'
    code, out, _ = run(capsys, 'info', path)
    assert 'success rate 0.500' in out and 'attr source: sim' in out


def test_validate_accepts_a_recorded_file(tmp_path, capsys):
    path = recorded(tmp_path / 'a.h5')
    code, out, _ = run(capsys, 'validate', path, '--obs-dim', 89, '--act-dim', 2)
    assert code == 0 and 'valid (12 transitions, 3 episodes)' in out


def _damage(path, key, value=None, delete=False, attr=False):
    with h5py.File(path, 'r+') as f:
        if attr:
            f.attrs[key] = value
        elif delete:
            del f[key]
        else:
            data = f[key][()]
            data[value[0]] = value[1]
            f[key][...] = data


@pytest.mark.parametrize('damage, expected', [
    (dict(key='rewards', delete=True), r'\[rewards\]: missing required key'),
    (dict(key='observations', value=(2, np.nan)), r'\[observations\]: \d+ non-finite values .* row 2'),
    (dict(key='actions', value=(1, 5.0)), r'\[actions\]: .* outside the action bounds'),
    (dict(key='infos/tactile_raw', delete=True), r'\[infos/tactile_raw\]: missing'),
    (dict(key='infos/episode_ids', value=(1, 7)), r'\[infos/episode_ids\]: row 1 has episode id 7'),
    (dict(key='infos/errors', value=(9, False)), r'\[infos/errors\]: episode 2 .* some rows only'),
    (dict(key='timeouts', value=(11, False)), r'\[timeouts\]: the last row ends no episode'),
    (dict(key='schema_version', value=99, attr=True), r'\[schema_version\]: unknown schema version'),
    (dict(key='obs_layout', value='[["x", 0, 5]]', attr=True), r'\[obs_layout\]: covers 5 values'),
])
def test_validate_names_file_key_and_problem(tmp_path, capsys, damage, expected):
    path = recorded(tmp_path / 'bad.h5')
    _damage(path, **damage)
    code, _, err = run(capsys, 'validate', path)
    assert code == 1
    assert 'bad.h5' in err
    assert len(err.strip().splitlines()) == 1

    assert re.search(expected, err), err


def test_validate_reports_corrupted_truncated_and_missing_files(tmp_path, capsys):
    path = recorded(tmp_path / 'a.h5')
    data = open(path, 'rb').read()
    (tmp_path / 'truncated.h5').write_bytes(data[:len(data) // 2])
    (tmp_path / 'garbage.h5').write_bytes(b'not hdf5' * 100)
    for name in ('truncated.h5', 'garbage.h5'):
        code, _, err = run(capsys, 'validate', tmp_path / name)
        assert code == 1 and name in err and 'not a readable HDF5 file' in err
    code, _, err = run(capsys, 'validate', tmp_path / 'nothing.h5')
    assert code == 1 and 'nothing.h5: no such file' in err


def test_validate_foreign_d4rl_file_without_recorder_extras(tmp_path, capsys):
    path = tmp_path / 'd4rl.h5'
    with h5py.File(path, 'w') as f:
        f['observations'] = np.zeros((4, 3), np.float32)
        f['actions'] = np.zeros((4, 2), np.float32)
        f['rewards'] = np.ones(4, np.float32)
        f['terminals'] = np.array([0, 1, 0, 0], bool)
        f['timeouts'] = np.zeros(4, bool)
    code, out, _ = run(capsys, 'validate', path)
    assert code == 0 and '2 episodes' in out
    code, out, _ = run(capsys, 'info', '--json', path)
    assert json.loads(out)['outcomes']['open'] == 1


def test_merge_renumbers_episodes_and_joins_provenance(tmp_path, capsys):
    a = recorded(tmp_path / 'a.h5', policy='random', seed=1)
    b = recorded(tmp_path / 'b.h5', ends=('timeout', 'terminal'), policy='expert', seed=2)
    out = tmp_path / 'm.h5'
    code, text, _ = run(capsys, 'merge', a, b, '-o', out)
    assert code == 0 and '20 transitions, 5 episodes' in text
    arrays, attrs = cli.validate(out)
    np.testing.assert_array_equal(np.unique(arrays['infos/episode_ids']), np.arange(5))
    np.testing.assert_array_equal(arrays['observations'][12:], read_file(b)[0]['observations'])
    assert attrs['policy'] == 'random + expert' and attrs['schema_version'] == 1
    assert 'seed: 1' in attrs['config'] and 'seed: 2' in attrs['config']
    assert attrs['seed'] == '1 + 2' and 'random: {}' in attrs['behaviour_config']
    assert 'expert: {}' in attrs['behaviour_config']
    with h5py.File(str(out), 'r') as f:
        assert f['metadata/behaviour'].asstr()[:].tolist() == ['random'] * 3 + ['expert'] * 2
    code, _, err = run(capsys, 'merge', a, b, '-o', out)
    assert code == 1 and 'exists' in err
    assert run(capsys, 'merge', a, b, '-o', out, '--force')[0] == 0


def test_merge_refuses_different_dimensions(tmp_path, capsys):
    a = recorded(tmp_path / 'a.h5')
    other = tmp_path / 'small.h5'
    with h5py.File(other, 'w') as f:
        for key, shape in (('observations', (2, 3)), ('actions', (2, 2)), ('rewards', 2), ('terminals', 2),
                           ('timeouts', 2)):
            f[key] = np.zeros(shape, np.float32)
    code, _, err = run(capsys, 'merge', a, other, '-o', tmp_path / 'm.h5')
    assert code == 1 and 'differ in (obs_dim, act_dim)' in err and not (tmp_path / 'm.h5').exists()


def test_export_d3rlpy_npz_arrays_rebuild_every_episode(tmp_path, capsys):
    path = recorded(tmp_path / 'a.h5', ends=('timeout', 'terminal', 'error'))
    out = tmp_path / 'd.npz'
    code, text, _ = run(capsys, 'export', path, '--format', 'd3rlpy', '-o', out)
    assert code == 0 and 'MDPDataset' in text
    data = np.load(out)
    assert set(data.files) == set(cli.D3RLPY_KEYS)
    ends = (data['terminals'] > 0) | (data['timeouts'] > 0)
    assert ends.sum() == 3 and ends[-1] and data['terminals'].dtype == np.float32
    np.testing.assert_array_equal(data['observations'], read_file(path)[0]['observations'])
    code, _, _ = run(capsys, 'export', path, '--format', 'd3rlpy', '--exclude-errors', '-o', tmp_path / 'e.npz')
    assert code == 0 and len(np.load(tmp_path / 'e.npz')['rewards']) == 8


def test_export_d3rlpy_h5_is_d3rlpys_replay_buffer_file(tmp_path, capsys):
    """d3rlpy 2.x's own layout (d3rlpy/dataset/io.py, version 2.1): every transition kept, per episode."""
    path = recorded(tmp_path / 'a.h5', ends=('timeout', 'terminal', 'error'))
    out = tmp_path / 'd.h5'
    code, text, _ = run(capsys, 'export', path, '--format', 'd3rlpy', '-o', out)
    assert code == 0 and 'ReplayBuffer.load' in text
    arrays = read_file(path)[0]
    with h5py.File(out, 'r') as f:
        assert [c.decode() for c in f['columns'][()]] == ['observations', 'actions', 'rewards', 'terminated']
        assert f['num_episodes'][()] == 3 and f['version'][()] in (b'2.1', '2.1')
        timeout, terminal = slice(0, 4), slice(4, 8)
        # Not terminated: one more observation, the last next observation, so all 4 transitions are kept.
        np.testing.assert_array_equal(f['observations_0'][()][:4], arrays['observations'][timeout])
        np.testing.assert_array_equal(f['observations_0'][()][4], arrays['next_observations'][3])
        assert f['actions_0'].shape == (5, 2) and f['rewards_0'].shape == (5, 1) and not f['terminated_0'][()]
        np.testing.assert_array_equal(f['rewards_0'][()][:4, 0], arrays['rewards'][timeout])
        # Terminated: its 4 rows as they are.
        np.testing.assert_array_equal(f['observations_1'][()], arrays['observations'][terminal])
        assert f['terminated_1'][()] and f['rewards_1'].shape == (4, 1)
        assert not f['terminated_2'][()] and f['observations_2'].shape == (5, 89)  # a fault bootstraps
    code, _, err = run(capsys, 'export', path, '--format', 'd3rlpy', '-o', tmp_path / 'd.hdf')
    assert code == 1 and '.npz' in err and '.h5' in err


def test_export_d3rlpy_loads_in_d3rlpy_when_installed(tmp_path):
    d3rlpy = pytest.importorskip('d3rlpy', reason='d3rlpy is an optional third-party peer, never installed in the '
                                 "project's .venv (bench/setup_bench_venv.sh puts it in .venv-bench; doc/data.md)")
    path = recorded(tmp_path / 'a.h5')
    cli.export_d3rlpy(path, tmp_path / 'd.npz')
    data = np.load(tmp_path / 'd.npz')
    dataset = d3rlpy.dataset.MDPDataset(data['observations'], data['actions'], data['rewards'], data['terminals'],
                                        data['timeouts'])
    assert len(dataset.episodes) == 3
    cli.export_d3rlpy(path, tmp_path / 'd.h5')
    with open(tmp_path / 'd.h5', 'rb') as f:
        buffer = d3rlpy.dataset.ReplayBuffer.load(f, d3rlpy.dataset.InfiniteBuffer())
    assert len(buffer.episodes) == 3 and buffer.transition_count == 4 + 4 + 4


def test_export_robomimic_one_group_per_episode_with_train_valid_masks(tmp_path, capsys):
    path = recorded(tmp_path / 'a.h5', ends=('timeout', 'terminal'))
    out = tmp_path / 'r.hdf5'
    assert run(capsys, 'export', path, '--format', 'robomimic', '-o', out)[0] == 0
    arrays = read_file(path)[0]
    with h5py.File(out, 'r') as f:
        assert sorted(f['data']) == ['demo_0', 'demo_1'] and f['data'].attrs['total'] == 8
        demo = f['data/demo_1']
        assert demo.attrs['num_samples'] == 4 and demo.attrs['outcome'] == 'terminal'
        np.testing.assert_array_equal(demo['dones'][()], [0, 0, 0, 1])
        np.testing.assert_array_equal(demo['obs/tactile_raw_over_3895'][()], arrays['observations'][4:, 3:87])
        np.testing.assert_array_equal(demo['next_obs/pitch_deg_over_30'][()], arrays['next_observations'][4:, 88:])
        np.testing.assert_array_equal(demo['actions'][()], arrays['actions'][4:])
        assert f['data'].attrs['policy'] == 'random'
        env_args = json.loads(f['data'].attrs['env_args'])
        assert env_args['type'] == cli.ROBOMIMIC_GYM_TYPE and env_args['env_kwargs'] == {}
        assert [d.decode() for d in f['mask/train'][()]] + [d.decode() for d in f['mask/valid'][()]] == \
            ['demo_0', 'demo_1']  # int(0.1 * 2) = 0 validation demos, as robomimic's split counts them
    import gymnasium as gym

    import plas_ros.sim.gym_env  # noqa: F401 (registers the env)
    assert gym.spec(env_args['env_name']).entry_point == 'plas_ros.sim.gym_env:ClothSlideEnv'


def test_robomimic_split_is_repeatable_and_partitions_the_demos():
    demos = ['demo_%d' % i for i in range(25)]
    train, valid = cli.robomimic_split(demos)
    assert len(valid) == 2 and sorted(train + valid) == sorted(demos) and not set(train) & set(valid)
    assert cli.robomimic_split(demos) == (train, valid)


def test_module_entry_point_exit_codes(tmp_path):
    path = recorded(tmp_path / 'a.h5')
    ok = subprocess.run([sys.executable, '-m', 'plas_ros.data', 'validate', path], cwd=REPO_ROOT, capture_output=True,
                        text=True)
    bad = subprocess.run([sys.executable, '-m', 'plas_ros.data', 'validate', str(tmp_path / 'x.h5')], cwd=REPO_ROOT,
                         capture_output=True, text=True)
    usage = subprocess.run([sys.executable, '-m', 'plas_ros.data'], cwd=REPO_ROOT, capture_output=True, text=True)
    assert (ok.returncode, bad.returncode, usage.returncode) == (0, 1, 2), (ok.stderr, bad.stderr)
    assert 'x.h5: no such file' in bad.stderr


def test_recorded_file_trains_through_the_loader(tmp_path):
    path = recorded(tmp_path / 'a.h5', ends=('timeout',) * 3)
    data = load_datasets([path], obs_dim=89, act_dim=2)
    assert data.num_episodes == 3 and data.td_indices.size == 12
