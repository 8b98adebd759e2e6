"""The HDF5 replay-buffer schema shared by the recorder (writer) and the trainer (loader).

Files follow D4RL's flat layout so that any D4RL-style file trains, and a recorded file is a D4RL file:

    observations (N, obs_dim) float32      actions (N, act_dim) float32
    rewards (N,) float32                   terminals (N,) bool     timeouts (N,) bool
    next_observations (N, obs_dim) float32 (optional in foreign files; always written by the recorder)
    infos/<name> (N, ...)                  per-transition extras (optional)
    metadata/<name>                        free-form (optional)

File attributes (all optional for foreign files): schema_version, obs_layout, source, policy, config,
action_low, action_high (the action bounds; [-1, 1] when absent).
"""
import numpy as np

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

ATTR_SCHEMA_VERSION = 'schema_version'
ATTR_OBS_LAYOUT = 'obs_layout'
ATTR_SOURCE = 'source'
ATTR_POLICY = 'policy'
ATTR_CONFIG = 'config'
ATTR_ACTION_LOW = 'action_low'
ATTR_ACTION_HIGH = 'action_high'
DEFAULT_ACTION_BOUNDS = (-1.0, 1.0)


class DatasetError(ValueError):
    """A dataset file that cannot be used; the message names the file, the key and the problem."""

    def __init__(self, path, key, problem):
        self.path, self.key, self.problem = str(path), key, problem
        where = '%s[%s]' % (self.path, key) if key else self.path
        super().__init__('%s: %s' % (where, problem))


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
