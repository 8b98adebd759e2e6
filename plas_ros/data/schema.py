"""The HDF5 replay-buffer schema shared by the recorder (writer) and the trainer (loader).

Files follow D4RL's flat layout so that any D4RL-style file trains, and a recorded file is a D4RL file:

    observations (N, obs_dim) float32      actions (N, act_dim) float32
    rewards (N,) float32                   terminals (N,) bool     timeouts (N,) bool
    next_observations (N, obs_dim) float32 (optional in foreign files; always written by the recorder)
    infos/<name> (N, ...)                  per-transition extras (optional)
    metadata/<name>                        free-form (optional); the recorder writes metadata/behaviour,
                                           the behaviour of each episode (E,) strings

File attributes (all optional for foreign files): schema_version, obs_layout, source, policy, config,
behaviour_config, seed, action_low, action_high (the action bounds; [-1, 1] when absent).
"""
import json
from typing import Any, Dict, List, NamedTuple, Tuple

import numpy as np

from plas_ros.data import episodes

SCHEMA_VERSION = 1

REQUIRED_KEYS = ('observations', 'actions', 'rewards', 'terminals', 'timeouts')
OPTIONAL_KEYS = ('next_observations',)
INFOS_GROUP = 'infos'
METADATA_GROUP = 'metadata'

# Extras the recorder writes under infos/ (name -> (per-row shape, dtype)); foreign files may hold others.
RECORDER_INFOS = {
    'episode_ids': ((), np.int64),
    'steps': ((), np.int32),
    'timestamps': ((), np.float64),
    'gripper_width': ((), np.float32),
    'gripper_adjustment': ((), np.int8),
    'tactile_raw': ((84,), np.uint16),
    'force_raw': ((3,), np.float32),
    'tip_pose': ((4,), np.float32),
    'errors': ((), np.bool_),         # true on every row of an episode that ended on a fault
    'raw_known': ((), np.bool_),      # false: the publisher sent no raw extras (tactile 0, force/pose NaN)
}

# Raw extras a producer may leave out, with the value stored when it does (infos/raw_known is then false).
RAW_EXTRAS = {'tactile_raw': 0, 'force_raw': np.nan, 'tip_pose': np.nan}

# Slack of every check of actions against their bounds: float32 round-off of recorded or published values.
ACTION_TOLERANCE = 1e-5

ATTR_SCHEMA_VERSION = 'schema_version'
ATTR_OBS_LAYOUT = 'obs_layout'
ATTR_SOURCE = 'source'
ATTR_POLICY = 'policy'
ATTR_CONFIG = 'config'
ATTR_BEHAVIOUR_CONFIG = 'behaviour_config'   # the behaviour policies' (or the deployment's) YAML text
ATTR_SEED = 'seed'                           # the session's seed (appended sessions joined with ' + ')
EPISODE_BEHAVIOUR_KEY = METADATA_GROUP + '/behaviour'  # (E,) the behaviour of each episode (a schedule's member)
ATTR_ACTION_LOW = 'action_low'
ATTR_ACTION_HIGH = 'action_high'
DEFAULT_ACTION_BOUNDS = (-1.0, 1.0)


class DatasetFormat(NamedTuple):
    """What a writer needs to know of the task whose data it writes (the task layer gives it)."""

    obs_dim: int
    act_dim: int
    action_low: Any = DEFAULT_ACTION_BOUNDS[0]
    action_high: Any = DEFAULT_ACTION_BOUNDS[1]
    obs_layout: Tuple = ()   # (name, start, stop) segments of the observation; () when unknown


class DatasetError(ValueError):
    """A dataset file that cannot be used; the message names the file, the key and the problem."""

    def __init__(self, path, key, problem):
        self.path, self.key, self.problem = str(path), key, problem
        where = '%s[%s]' % (self.path, key) if key else self.path
        super().__init__('%s: %s' % (where, problem))


def column_specs(obs_dim, act_dim):
    """key -> (per-row shape, dtype) of every column a recorder file holds."""
    specs = {
        'observations': ((obs_dim,), np.float32), 'actions': ((act_dim,), np.float32),
        'rewards': ((), np.float32), 'terminals': ((), np.bool_), 'timeouts': ((), np.bool_),
        'next_observations': ((obs_dim,), np.float32),
    }
    for name, spec in RECORDER_INFOS.items():
        specs['%s/%s' % (INFOS_GROUP, name)] = spec
    return specs


def rows_outcome(arrays, rows) -> str:
    """The outcome of the episode at `rows` of a file's arrays (key -> column)."""
    errors = arrays.get(INFOS_GROUP + '/errors')
    error = errors is not None and bool(np.asarray(errors[rows], bool).any())
    return episodes.outcome(bool(arrays['terminals'][rows][-1]), bool(arrays['timeouts'][rows][-1]), error)


def _raw(value, size, dtype):
    """A raw sensor extra, or None when the producer left it empty or gave the wrong size."""
    arr = np.asarray(value, dtype=np.float64).reshape(-1)
    if arr.size != size or not np.isfinite(arr).all():
        return None
    return arr.astype(dtype)


def episode_arrays(steps: List[episodes.Step], error=False) -> Dict[str, np.ndarray]:
    """The file rows (column_specs keys) of one episode from its steps, in order.

    `error`: the episode ended on a fault. An error end is a truncation, not an MDP end: the last row is
    flagged as a timeout (bootstrap from it) and `infos/errors` is true on every row of the episode.
    Raw extras a producer did not send (a foreign publisher) are stored as unknown: tactile 0, force and
    pose NaN, `infos/raw_known` false.
    """
    n = len(steps)
    infos = INFOS_GROUP + '/'
    out = {
        'observations': np.array([s.observation for s in steps], np.float32).reshape(n, -1),
        'actions': np.array([s.action for s in steps], np.float32).reshape(n, -1),
        'rewards': np.array([s.reward for s in steps], np.float32),
        'terminals': np.array([bool(s.terminal) for s in steps]),
        'timeouts': np.array([bool(s.timeout) for s in steps]),
        'next_observations': np.array([s.next_observation for s in steps], np.float32).reshape(n, -1),
        infos + 'steps': np.array([s.step for s in steps], np.int32),
        infos + 'timestamps': np.array([s.timestamp for s in steps], np.float64),
        infos + 'gripper_width': np.array([s.gripper_width for s in steps], np.float32),
        infos + 'gripper_adjustment': np.array([s.gripper_adjustment for s in steps], np.int8),
        infos + 'errors': np.full(n, bool(error)),
    }
    if error and not out['terminals'][-1]:
        out['timeouts'][-1] = True
    raw_known = np.ones(n, bool)
    for name, unknown in RAW_EXTRAS.items():
        shape, dtype = RECORDER_INFOS[name]
        column = np.full((n,) + shape, unknown, dtype)
        for i, s in enumerate(steps):
            value = _raw(getattr(s, name), int(np.prod(shape)), dtype)
            if value is None:
                raw_known[i] = False
            else:
                column[i] = value
        out[infos + name] = column
    out[infos + 'raw_known'] = raw_known
    return out


def check_arrays(path, arrays, obs_dim=None, act_dim=None):
    """Validate the core arrays of one file (a dict key -> numpy array); raise DatasetError.

    Checks: required keys present, 2-d observations and actions, one row per transition in every key,
    finite values, and the dimensions against `obs_dim` / `act_dim` when given.
    """
    for key in REQUIRED_KEYS:
        if key not in arrays:
            raise DatasetError(path, key, 'missing required key')
    n = len(arrays['observations'])
    for key in ('observations', 'actions', 'next_observations'):
        if key in arrays and np.ndim(arrays[key]) != 2:
            raise DatasetError(path, key, 'expected a 2-d array (N, dim), got shape %s'
                               % (np.shape(arrays[key]),))
    for key in ('rewards', 'terminals', 'timeouts'):
        if np.ndim(arrays[key]) != 1:
            raise DatasetError(path, key, 'expected a 1-d array (N,), got shape %s' % (np.shape(arrays[key]),))
    for key, value in arrays.items():
        if len(value) != n:
            raise DatasetError(path, key, 'has %d rows but observations has %d' % (len(value), n))
    expected = {'observations': obs_dim, 'next_observations': obs_dim, 'actions': act_dim}
    for key, dim in expected.items():
        if dim is not None and key in arrays and arrays[key].shape[1] != dim:
            raise DatasetError(path, key, 'dimension %d, expected %d' % (arrays[key].shape[1], dim))
    if 'next_observations' in arrays and arrays['next_observations'].shape[1] != arrays['observations'].shape[1]:
        raise DatasetError(path, 'next_observations', 'dimension differs from observations')
    for key in ('observations', 'actions', 'rewards', 'next_observations'):
        if key in arrays:
            bad = ~np.isfinite(np.asarray(arrays[key], dtype=np.float64))
            if bad.any():
                row = int(np.argwhere(bad)[0][0])
                raise DatasetError(path, key, '%d non-finite values (NaN/inf), first at row %d'
                                   % (int(bad.sum()), row))
    return n


def obs_layout_json(segments):
    """The `obs_layout` attribute: a JSON list of [name, start, stop] segments."""
    return json.dumps([list(item) for item in segments])


def obs_layout_segments(attrs):
    """The [(name, start, stop)] of a file's `obs_layout` attribute (obs_layout_json's inverse); [] when it is
    absent or not such a list (validate_recorder_file reports that case)."""
    try:
        return [(str(name), int(start), int(stop))
                for name, start, stop in json.loads(attrs.get(ATTR_OBS_LAYOUT, '') or '[]')]
    except (ValueError, TypeError):
        return []


def validate_recorder_file(path, arrays, attrs):
    """The checks a recorder file (one with a schema_version attribute) passes beyond `check_arrays`.

    Version, next_observations, every infos/* column with its shape and dtype, one block of rows per
    episode id ending in exactly one terminal/timeout, error flags uniform within an episode, and an
    observation layout covering the observation size. Raises DatasetError.
    """
    version = attrs[ATTR_SCHEMA_VERSION]
    if not isinstance(version, (int, np.integer)) or not 1 <= int(version) <= SCHEMA_VERSION:
        raise DatasetError(path, ATTR_SCHEMA_VERSION, 'unknown schema version %r (this code reads up to %d)'
                           % (version, SCHEMA_VERSION))
    if 'next_observations' not in arrays:
        raise DatasetError(path, 'next_observations', 'missing (the recorder always writes it)')
    n = len(arrays['rewards'])
    for name, (shape, dtype) in RECORDER_INFOS.items():
        key = '%s/%s' % (INFOS_GROUP, name)
        if key not in arrays:
            raise DatasetError(path, key, 'missing (the recorder always writes it)')
        if arrays[key].shape != (n,) + shape or arrays[key].dtype != np.dtype(dtype):
            raise DatasetError(path, key, 'shape %s dtype %s, expected %s %s' % (
                arrays[key].shape, arrays[key].dtype, (n,) + shape, np.dtype(dtype)))
    _validate_episodes(path, arrays)
    _validate_layout(path, attrs, arrays['observations'].shape[1])


def _validate_episodes(path, arrays):
    ids_key, errors_key = INFOS_GROUP + '/episode_ids', INFOS_GROUP + '/errors'
    ids = arrays[ids_key]
    ends = np.asarray(arrays['terminals'], bool) | np.asarray(arrays['timeouts'], bool)
    if len(ids) and not ends[-1]:
        raise DatasetError(path, 'timeouts', 'the last row ends no episode (neither terminal nor timeout)')
    for index, rows in enumerate(episodes.episode_slices(arrays['terminals'], arrays['timeouts'])):
        block = ids[rows]
        if (block != index).any():
            row = rows.start + int(np.flatnonzero(block != index)[0])
            raise DatasetError(path, ids_key, 'row %d has episode id %d, expected %d (episodes must be '
                               'consecutive blocks numbered from 0)' % (row, ids[row], index))
        errors = arrays[errors_key][rows]
        if errors.any() and not errors.all():
            raise DatasetError(path, errors_key, 'episode %d is flagged as an error on some rows only' % index)


def _validate_layout(path, attrs, obs_dim):
    text = attrs.get(ATTR_OBS_LAYOUT, '')
    if not text:
        return
    try:
        stop = max(int(item[2]) for item in json.loads(text))
    except (ValueError, TypeError, IndexError) as exc:
        raise DatasetError(path, ATTR_OBS_LAYOUT, 'not a JSON list of [name, start, stop] (%s)' % exc) from exc
    if stop != obs_dim:
        raise DatasetError(path, ATTR_OBS_LAYOUT, 'covers %d values, observations have %d' % (stop, obs_dim))
