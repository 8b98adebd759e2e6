"""The D4RL-style HDF5 loader on real files written to tmp_path."""
import h5py
import numpy as np
import pytest

from plas_ros.data import schema
from plas_ros.data.loader import load_datasets, read_file


def write_file(path, n=10, obs_dim=3, act_dim=2, terminals=None, timeouts=None, next_obs=True, attrs=None,
               override=None, infos=True):
    rng = np.random.default_rng(n)
    arrays = {
        'observations': np.arange(n * obs_dim, dtype=np.float32).reshape(n, obs_dim),
        'actions': rng.uniform(-1, 1, (n, act_dim)).astype(np.float32),
        'rewards': rng.normal(size=n).astype(np.float32),
        'terminals': np.zeros(n, bool) if terminals is None else np.asarray(terminals, bool),
        'timeouts': np.zeros(n, bool) if timeouts is None else np.asarray(timeouts, bool),
    }
    if next_obs:
        arrays['next_observations'] = arrays['observations'] + 0.5
    arrays.update(override or {})
    with h5py.File(path, 'w') as f:
        for key, value in arrays.items():
            if value is not None:
                f[key] = value
        if infos:
            f['infos/steps'] = np.arange(n, dtype=np.int32)
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
    return arrays


def test_read_file_returns_arrays_infos_and_decoded_attrs(tmp_path):
    path = tmp_path / 'a.h5'
    write_file(path, attrs={'source': 'sim', 'action_low': -1.0})
    arrays, attrs = read_file(path)
    assert set(schema.REQUIRED_KEYS) <= set(arrays)
    assert 'infos/steps' in arrays and arrays['infos/steps'][-1] == 9
    assert attrs['source'] == 'sim'


def test_concatenation_bounds_from_attrs_and_union(tmp_path):
    write_file(tmp_path / 'a.h5', n=6, attrs={'action_low': [-1.0, -0.5], 'action_high': [1.0, 0.5]},
               override={'actions': np.full((6, 2), 0.25, np.float32)})
    write_file(tmp_path / 'b.h5', n=4)
    data = load_datasets([tmp_path / 'a.h5', tmp_path / 'b.h5'], obs_dim=3, act_dim=2)
    assert data.size == 10 and data.obs_dim == 3 and data.act_dim == 2
    np.testing.assert_allclose(data.action_low, [-1.0, -1.0])
    np.testing.assert_allclose(data.action_high, [1.0, 1.0])
    # The end of each file ends an episode even without a flag.
    assert data.episode_ends[5] and data.episode_ends[9] and data.num_episodes == 2


def test_next_observations_computed_without_crossing_episode_ends(tmp_path):
    timeouts = [0, 0, 1, 0, 0, 0]
    terminals = [0, 0, 0, 0, 1, 0]
    write_file(tmp_path / 'a.h5', n=6, timeouts=timeouts, terminals=terminals, next_obs=False)
    data = load_datasets([tmp_path / 'a.h5'])
    np.testing.assert_array_equal(data.next_observations[0], data.observations[1])
    np.testing.assert_array_equal(data.next_observations[3], data.observations[4])
    # Row 2 is a timeout: its next state is unknown, it must not be row 3 (the next episode) nor be sampled.
    assert not np.array_equal(data.next_observations[2], data.observations[3])
    assert list(data.has_next) == [True, True, False, True, True, False]
    assert 2 not in data.td_indices and 4 in data.td_indices
    assert [(s.start, s.stop) for s in data.episode_slices()] == [(0, 3), (3, 5), (5, 6)]


@pytest.mark.parametrize('override, key, words', [
    ({'rewards': None}, 'rewards', 'missing'),
    ({'rewards': np.zeros(9, np.float32)}, 'rewards', 'rows'),
    ({'observations': np.full((10, 3), np.nan, np.float32)}, 'observations', 'non-finite'),
    ({'actions': np.full((10, 2), 3.0, np.float32)}, 'actions', 'outside the action bounds'),
    ({'terminals': np.full(10, 2, np.int8)}, 'terminals', '0/1'),
    ({'actions': np.zeros(10, np.float32)}, 'actions', '2-d'),
])
def test_bad_files_name_file_key_and_problem(tmp_path, override, key, words):
    path = tmp_path / 'bad.h5'
    write_file(path, override=override)
    with pytest.raises(schema.DatasetError) as err:
        load_datasets([path])
    assert str(path) in str(err.value) and key in str(err.value) and words in str(err.value)


def test_dimension_mismatch_against_config_and_between_files(tmp_path):
    write_file(tmp_path / 'a.h5', obs_dim=3)
    write_file(tmp_path / 'b.h5', obs_dim=4)
    with pytest.raises(schema.DatasetError, match='observations.*expected 5'):
        load_datasets([tmp_path / 'a.h5'], obs_dim=5)
    with pytest.raises(schema.DatasetError, match=r'b\.h5.*expected 3'):
        load_datasets([tmp_path / 'a.h5', tmp_path / 'b.h5'])


def test_not_an_hdf5_file(tmp_path):
    path = tmp_path / 'junk.h5'
    path.write_bytes(b'not hdf5 at all')
    with pytest.raises(schema.DatasetError, match='junk.h5.*not a readable HDF5'):
        read_file(path)


def test_explicit_bounds_override_attributes(tmp_path):
    write_file(tmp_path / 'a.h5', override={'actions': np.full((10, 2), 1.5, np.float32)})
    data = load_datasets([tmp_path / 'a.h5'], action_low=-2.0, action_high=2.0)
    np.testing.assert_allclose(data.action_high, [2.0, 2.0])
