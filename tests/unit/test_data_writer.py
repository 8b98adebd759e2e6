"""The crash-safe replay writer on real HDF5 files, read back through the project's loader."""
import json
import os

import h5py
import numpy as np
import pytest

from plas_ros.data import schema
from plas_ros.data.episodes import Step
from plas_ros.data.loader import load_datasets, read_file
from plas_ros.data.schema import episode_arrays
from plas_ros.data.writer import BackgroundCommitter, EpisodeWriter, OutputError, ReplayWriter, write_hdf5_atomically
from plas_ros.env import layout
from plas_ros.env.layout import DATASET_FORMAT as CLOTH
from tests.helpers.data import make_steps


def record(path, episodes, **kwargs):
    replay = ReplayWriter(path, CLOTH, source='sim', policy='random', config_text='a: 1\n', **kwargs)
    writer = EpisodeWriter(replay)
    summaries = []
    for steps in episodes:
        for step in steps:
            result = writer.add(step)
            if result is not None:
                summaries.append(result)
    return replay, writer, summaries


def test_round_trip_through_the_loader_keeps_every_value_and_attribute(tmp_path):
    path = tmp_path / 'a.h5'
    episodes = [make_steps(0, 4, 'terminal'), make_steps(1, 3, 'timeout')]
    _, _, summaries = record(path, episodes)
    assert [s.outcome for s in summaries] == ['terminal', 'timeout']
    arrays, attrs = read_file(path)
    steps = episodes[0] + episodes[1]
    np.testing.assert_allclose(arrays['observations'], [s.observation for s in steps], rtol=1e-6)
    np.testing.assert_allclose(arrays['actions'], [s.action for s in steps], rtol=1e-6)
    np.testing.assert_allclose(arrays['next_observations'], [s.next_observation for s in steps], rtol=1e-6)
    np.testing.assert_array_equal(arrays['terminals'], [0, 0, 0, 1, 0, 0, 0])
    np.testing.assert_array_equal(arrays['timeouts'], [0, 0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(arrays['infos/episode_ids'], [0, 0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(arrays['infos/tactile_raw'][5], steps[5].tactile_raw)
    np.testing.assert_allclose(arrays['infos/tip_pose'][2], steps[2].tip_pose, rtol=1e-6)
    for name, (shape, dtype) in schema.RECORDER_INFOS.items():
        assert arrays['infos/' + name].shape == (7,) + shape and arrays['infos/' + name].dtype == dtype, name
    assert attrs['schema_version'] == schema.SCHEMA_VERSION and attrs['source'] == 'sim'
    assert attrs['policy'] == 'random' and attrs['config'] == 'a: 1\n'
    assert json.loads(attrs['obs_layout'])[1] == list(layout.OBS_LAYOUT[1])
    data = load_datasets([path], obs_dim=layout.OBS_DIM, act_dim=layout.ACT_DIM)
    assert data.num_episodes == 2 and data.size == 7


def test_error_episode_is_kept_as_a_flagged_truncation_without_the_unfinished_step(tmp_path):
    steps = make_steps(0, 4, 'error')
    steps[-1] = steps[-1]._replace(next_observation=[])  # what the env node sends: nothing made up
    replay, writer, summaries = record(tmp_path / 'a.h5', [steps, make_steps(1, 2, 'timeout')])
    arrays, _ = read_file(replay.path)
    assert summaries[0].outcome == 'error' and summaries[0].steps == 3
    np.testing.assert_array_equal(arrays['infos/errors'], [1, 1, 1, 0, 0])
    np.testing.assert_array_equal(arrays['timeouts'], [0, 0, 1, 0, 1])
    assert not arrays['terminals'].any()


def test_error_on_the_first_step_records_nothing_and_is_counted(tmp_path):
    steps = make_steps(0, 1, 'error')
    steps[0] = steps[0]._replace(next_observation=[])
    replay, writer, summaries = record(tmp_path / 'a.h5', [steps])
    assert summaries == [] and writer.counts.empty_errors == 1 and replay.episodes == 0


def test_missing_raw_extras_are_marked_unknown_not_made_up(tmp_path):
    replay, _, _ = record(tmp_path / 'a.h5', [make_steps(0, 2, 'timeout', raw=False)])
    arrays, _ = read_file(replay.path)
    assert not arrays['infos/raw_known'].any()
    assert np.isnan(arrays['infos/force_raw']).all() and np.isnan(arrays['infos/tip_pose']).all()


def test_steps_reordered_duplicates_malformed_and_gaps_counted(tmp_path):
    steps = make_steps(0, 6, 'timeout')
    bad = steps[1]._replace(step=7, observation=[np.nan] * layout.OBS_DIM)
    arrival = [steps[0], steps[2], steps[1], steps[2], bad, steps[5]]  # 3 and 4 never arrive
    replay, writer, summaries = record(tmp_path / 'a.h5', [arrival])
    arrays, _ = read_file(replay.path)
    np.testing.assert_array_equal(arrays['infos/steps'], [0, 1, 2, 5])
    c = writer.counts
    assert (c.received, c.out_of_order, c.duplicates, c.malformed, c.missing) == (6, 1, 1, 1, 2)
    assert summaries[0].missing_steps == 2
    writer.add(steps[3])
    assert writer.counts.late == 1 and replay.transitions == 4


def test_an_episode_whose_end_never_arrives_is_abandoned_when_a_later_one_completes(tmp_path):
    lost = make_steps(0, 3, 'timeout')[:2]
    replay, writer, summaries = record(tmp_path / 'a.h5', [lost, make_steps(1, 2, 'terminal')])
    assert [s.episode for s in summaries] == [1]
    assert writer.counts.abandoned_steps == 2


def test_append_continues_episode_ids_and_joins_policies(tmp_path):
    path = tmp_path / 'a.h5'
    record(path, [make_steps(0, 3, 'timeout')])
    replay = ReplayWriter(path, CLOTH, source='sim', policy='expert')
    writer = EpisodeWriter(replay)
    for step in make_steps(0, 2, 'terminal', seed=9):
        writer.add(step)
    arrays, attrs = read_file(path)
    np.testing.assert_array_equal(arrays['infos/episode_ids'], [0, 0, 0, 1, 1])
    assert attrs['policy'] == 'random + expert' and len(arrays['rewards']) == 5


@pytest.mark.parametrize('change, key', [
    (dict(source='real'), 'source'),
    (dict(obs_dim=5, obs_layout=()), 'observations'),
    (dict(action_low=-0.5), 'action_low'),
])
def test_append_to_an_incompatible_file_names_the_key(tmp_path, change, key):
    path = tmp_path / 'a.h5'
    record(path, [make_steps(0, 2, 'timeout')])
    fmt_change = {k: v for k, v in change.items() if k in CLOTH._fields}
    kwargs = dict(source='sim')
    kwargs.update({k: v for k, v in change.items() if k not in fmt_change})
    with pytest.raises(OutputError, match=r'a\.h5\[%s\]' % key):
        ReplayWriter(path, CLOTH._replace(**fmt_change), **kwargs)


def test_append_to_a_foreign_d4rl_file_is_refused_clearly(tmp_path):
    path = tmp_path / 'd4rl.h5'
    with h5py.File(path, 'w') as f:
        for key in schema.REQUIRED_KEYS:
            f[key] = np.zeros((3, 2) if key in ('observations', 'actions') else 3, np.float32)
    with pytest.raises(OutputError, match='not a recorder file'):
        ReplayWriter(path, CLOTH._replace(obs_dim=2, obs_layout=()))


def test_unwritable_path_full_disk_and_existing_file_reported_before_any_data(tmp_path):
    blocker = tmp_path / 'plain_file'
    blocker.write_text('x')
    with pytest.raises(OutputError, match='cannot create the folder'):
        ReplayWriter(blocker / 'sub' / 'a.h5', CLOTH)
    with pytest.raises(OutputError, match='MB free'):
        ReplayWriter(tmp_path / 'b.h5', CLOTH, min_free_bytes=10 ** 18)
    with pytest.raises(OutputError, match='is a directory'):
        ReplayWriter(tmp_path, CLOTH)
    record(tmp_path / 'c.h5', [make_steps(0, 2, 'timeout')])
    with pytest.raises(OutputError, match='exists'):
        ReplayWriter(tmp_path / 'c.h5', CLOTH, append=False)
    assert not (tmp_path / 'b.h5').exists()


def test_invalid_episode_is_refused_and_the_file_is_unchanged(tmp_path):
    replay, _, _ = record(tmp_path / 'a.h5', [make_steps(0, 2, 'timeout')])
    before = (tmp_path / 'a.h5').read_bytes()
    arrays = episode_arrays(make_steps(1, 2, 'timeout'))
    arrays['actions'][0] = [3.0, 0.0]
    with pytest.raises(ValueError, match=r'\[actions\]: row 0'):
        replay.write_episode(arrays)
    no_end = episode_arrays(make_steps(1, 2, None))
    with pytest.raises(ValueError, match='last row'):
        replay.write_episode(no_end)
    assert (tmp_path / 'a.h5').read_bytes() == before and replay.episodes == 1


def test_failed_atomic_write_leaves_the_target_and_no_temporary(tmp_path):
    path = tmp_path / 'a.h5'
    record(path, [make_steps(0, 2, 'timeout')])
    before = path.read_bytes()
    with pytest.raises(TypeError):
        write_hdf5_atomically(path, {'observations': np.zeros((2, 3)), 'bad': object()}, {})
    assert path.read_bytes() == before and os.listdir(tmp_path) == ['a.h5']


def test_background_committer_commits_everything_submitted_before_close(tmp_path):
    replay = ReplayWriter(tmp_path / 'a.h5', CLOTH)
    committed = []
    committer = BackgroundCommitter(replay, on_committed=committed.extend)
    writer = EpisodeWriter(replay, sink=committer.submit)
    for episode in range(5):
        for step in make_steps(episode, 3, 'timeout'):
            writer.add(step)
    assert committer.close()
    assert [s.index for s in committed] == [0, 1, 2, 3, 4]
    arrays, _ = read_file(replay.path)
    assert len(arrays['rewards']) == 15 and replay.committed_episodes == 5


def test_step_namedtuple_defaults_mean_unknown():
    step = Step(0, 0, [0.0], [0.0], 0.0, [0.0])
    assert not (step.terminal or step.timeout or step.error) and np.isnan(step.timestamp)


def test_the_seed_behaviours_and_behaviour_config_are_stored_and_carried_by_appends(tmp_path):
    path = tmp_path / 'a.h5'
    replay = ReplayWriter(path, CLOTH, policy='schedule', seed=4, behaviour_config='schedule: []\n')
    replay.write_episode(episode_arrays(make_steps(0, 3, 'timeout')), 0, behaviour='expert+noise0.2')
    replay.write_episode(episode_arrays(make_steps(1, 2, 'terminal')), 1, behaviour='random')
    replay.close()  # one writer per file: the session ends before the next appends
    again = ReplayWriter(path, CLOTH, policy='expert', seed=9, behaviour_config='expert: {}\n')
    again.write_episode(episode_arrays(make_steps(2, 2, 'timeout')), 2)  # no behaviour named: the file's policy
    _, attrs = read_file(path)
    assert attrs[schema.ATTR_SEED] == '4 + 9' and attrs[schema.ATTR_POLICY] == 'schedule + expert'
    assert attrs[schema.ATTR_BEHAVIOUR_CONFIG] == 'schedule: []\n\n# --- appended session ---\nexpert: {}\n'
    with h5py.File(path, 'r') as f:
        assert f[schema.EPISODE_BEHAVIOUR_KEY].asstr()[:].tolist() == ['expert+noise0.2', 'random', 'expert']
    assert load_datasets([path], obs_dim=layout.OBS_DIM, act_dim=layout.ACT_DIM).num_episodes == 3


def test_a_file_written_before_behaviours_were_stored_gets_empty_ones(tmp_path):
    path = tmp_path / 'old.h5'
    ReplayWriter(path, CLOTH).write_episode(episode_arrays(make_steps(0, 2, 'timeout')), 0)
    with h5py.File(path, 'a') as f:
        del f[schema.EPISODE_BEHAVIOUR_KEY]
    ReplayWriter(path, CLOTH, policy='p').write_episode(episode_arrays(make_steps(1, 2, 'timeout')), 1)
    with h5py.File(path, 'r') as f:
        assert f[schema.EPISODE_BEHAVIOUR_KEY].asstr()[:].tolist() == ['', 'p']
