"""Load D4RL-style HDF5 files (the schema of `plas_ros.data.schema`) into one in-memory `Dataset`.

Several files are concatenated; any observation and action size works. Every problem raises
`DatasetError` naming the file, the key and the problem, before anything is returned.

Episode boundaries come from `terminals | timeouts` (the last row of each file also ends an episode).
When a file has no `next_observations`, they are computed as the following row inside the same episode;
the final row of a non-terminal episode then has no known next state and is left out of TD sampling
(`Dataset.td_indices`), as D4RL's `qlearning_dataset` does.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import h5py
import numpy as np

from plas_ros.data import schema
from plas_ros.data.episodes import episode_ends, slices_of


@dataclass
class Dataset:
    """Concatenated transitions; row i is (observations[i], actions[i], rewards[i], next_observations[i])."""

    observations: np.ndarray        # (N, obs_dim) float32
    actions: np.ndarray             # (N, act_dim) float32
    rewards: np.ndarray             # (N,) float32
    next_observations: np.ndarray   # (N, obs_dim) float32 (a placeholder where has_next is False)
    terminals: np.ndarray           # (N,) bool, true environment ends (no bootstrap)
    timeouts: np.ndarray            # (N,) bool, time-limit ends (bootstrap)
    episode_ends: np.ndarray        # (N,) bool, last row of an episode (terminal, timeout or end of file)
    has_next: np.ndarray            # (N,) bool, the next state is known (or not needed: terminal)
    action_low: np.ndarray          # (act_dim,) float32
    action_high: np.ndarray         # (act_dim,) float32
    sources: List[str] = field(default_factory=list)
    obs_layout: str = ''            # the files' obs_layout attribute (JSON segments), '' unless all files agree

    @property
    def size(self) -> int:
        return len(self.observations)

    @property
    def obs_dim(self) -> int:
        return self.observations.shape[1]

    @property
    def act_dim(self) -> int:
        return self.actions.shape[1]

    @property
    def td_indices(self) -> np.ndarray:
        """Rows usable for temporal-difference learning (their next state is known or irrelevant)."""
        return np.flatnonzero(self.has_next)

    @property
    def num_episodes(self) -> int:
        return int(self.episode_ends.sum())

    def episode_slices(self) -> List[slice]:
        return slices_of(self.episode_ends)


def _decode_attr(value):
    if isinstance(value, bytes):
        return value.decode('utf-8', 'replace')
    if isinstance(value, np.ndarray) and value.dtype.kind in 'SO':
        return [v.decode('utf-8', 'replace') if isinstance(v, bytes) else v for v in value.tolist()]
    return value


def _read_dataset(path, handle, key):
    node = handle.get(key)
    if not isinstance(node, h5py.Dataset):
        raise schema.DatasetError(path, key, 'expected an HDF5 dataset, found %s' % type(node).__name__)
    try:
        return node[()]
    except OSError as exc:  # e.g. a chunk whose checksum no longer matches: the file is damaged
        raise schema.DatasetError(path, key, 'unreadable data, the file is damaged (%s)' % exc) from exc


def read_file(path) -> Tuple[Dict[str, np.ndarray], Dict[str, object]]:
    """Read and validate one HDF5 file: (arrays, attrs).

    `arrays` holds the required keys, `next_observations` when present and every `infos/<name>` dataset
    (under the key 'infos/<name>'); `attrs` holds the file attributes (bytes decoded to str).
    """
    try:
        handle = h5py.File(str(path), 'r')
    except (OSError, ValueError) as exc:
        raise schema.DatasetError(path, None, 'not a readable HDF5 file (%s)' % exc) from exc
    with handle:
        arrays = {}
        for key in schema.REQUIRED_KEYS:
            if key not in handle:
                raise schema.DatasetError(path, key, 'missing required key')
            arrays[key] = _read_dataset(path, handle, key)
        for key in schema.OPTIONAL_KEYS:
            if key in handle:
                arrays[key] = _read_dataset(path, handle, key)
        infos = handle.get(schema.INFOS_GROUP)
        if isinstance(infos, h5py.Group):
            for name, node in infos.items():
                if isinstance(node, h5py.Dataset):
                    key = '%s/%s' % (schema.INFOS_GROUP, name)
                    arrays[key] = _read_dataset(path, handle, key)
        attrs = {name: _decode_attr(value) for name, value in handle.attrs.items()}
    _check_numeric(path, arrays)
    schema.check_arrays(path, arrays)
    _check_flags(path, arrays)
    return arrays, attrs


def _check_numeric(path, arrays):
    for key in schema.REQUIRED_KEYS + schema.OPTIONAL_KEYS:
        if key in arrays and arrays[key].dtype.kind not in 'biuf':
            raise schema.DatasetError(path, key, 'expected numbers, got dtype %s' % arrays[key].dtype)


def _check_flags(path, arrays):
    for key in ('terminals', 'timeouts'):
        values = np.asarray(arrays[key])
        if values.dtype != np.bool_ and not np.isin(values, (0, 1)).all():
            raise schema.DatasetError(path, key, 'flags must be 0/1 or boolean')


def file_action_bounds(path, attrs, act_dim) -> Tuple[np.ndarray, np.ndarray]:
    """The action bounds declared by a file's attributes (scalar or per-dimension), else [-1, 1]."""
    default_low, default_high = schema.DEFAULT_ACTION_BOUNDS
    low = attrs.get(schema.ATTR_ACTION_LOW, default_low)
    high = attrs.get(schema.ATTR_ACTION_HIGH, default_high)
    return _broadcast_bounds(path, low, high, act_dim)


def _broadcast_bounds(path, low, high, act_dim):
    try:
        low = np.broadcast_to(np.asarray(low, dtype=np.float64).reshape(-1), (act_dim,)).astype(np.float32)
        high = np.broadcast_to(np.asarray(high, dtype=np.float64).reshape(-1), (act_dim,)).astype(np.float32)
    except (ValueError, TypeError) as exc:
        raise schema.DatasetError(path, schema.ATTR_ACTION_LOW, 'action bounds do not fit %d action dims (%s)'
                                  % (act_dim, exc)) from exc
    if not (np.isfinite(low).all() and np.isfinite(high).all() and (low < high).all()):
        raise schema.DatasetError(path, schema.ATTR_ACTION_LOW, 'invalid action bounds low=%s high=%s'
                                  % (low.tolist(), high.tolist()))
    return low, high


def _check_actions_in_bounds(path, actions, low, high):
    below = actions < low - schema.ACTION_TOLERANCE
    above = actions > high + schema.ACTION_TOLERANCE
    outside = below | above
    if outside.any():
        row, col = (int(i) for i in np.argwhere(outside)[0])
        raise schema.DatasetError(
            path, 'actions', '%d values outside the action bounds [%s, %s], first at row %d dim %d (%g); '
            'declare the bounds in the file attributes %s/%s or pass them explicitly'
            % (int(outside.sum()), low.tolist(), high.tolist(), row, col, float(actions[row, col]),
               schema.ATTR_ACTION_LOW, schema.ATTR_ACTION_HIGH))


def _episode_fields(arrays):
    """(next_observations, episode_ends, has_next) for one file."""
    obs = np.asarray(arrays['observations'], dtype=np.float32)
    terminals = np.asarray(arrays['terminals']).astype(bool)
    ends = episode_ends(terminals, arrays['timeouts'])
    if 'next_observations' in arrays:
        return np.asarray(arrays['next_observations'], dtype=np.float32), ends, np.ones(len(obs), dtype=bool)
    next_obs = obs.copy()
    next_obs[:-1] = obs[1:]
    next_obs[ends] = obs[ends]  # placeholder: never crosses into the next episode
    has_next = ~ends | terminals
    return next_obs, ends, has_next


def load_datasets(paths, obs_dim: Optional[int] = None, act_dim: Optional[int] = None,
                  action_low=None, action_high=None) -> Dataset:
    """Read, validate and concatenate the files in `paths` into one Dataset.

    All files must share the observation and action sizes (checked against `obs_dim` / `act_dim` when
    given). Action bounds: `action_low`/`action_high` when given, else each file's attributes (else
    [-1, 1]); the dataset's bounds are the union over files, and every action must lie within its file's bounds.
    """
    paths = [str(p) for p in paths]
    if not paths:
        raise ValueError('no dataset files given')
    parts, layouts = [], set()
    for path in paths:
        arrays, attrs = read_file(path)
        layouts.add(str(attrs.get(schema.ATTR_OBS_LAYOUT, '')))
        if len(arrays['observations']) == 0:
            raise schema.DatasetError(path, 'observations', 'file holds no transitions')
        schema.check_arrays(path, arrays, obs_dim=obs_dim, act_dim=act_dim)
        obs_dim = arrays['observations'].shape[1]
        act_dim = arrays['actions'].shape[1]
        if action_low is not None or action_high is not None:
            default_low, default_high = schema.DEFAULT_ACTION_BOUNDS
            low, high = _broadcast_bounds(path, default_low if action_low is None else action_low,
                                          default_high if action_high is None else action_high, act_dim)
        else:
            low, high = file_action_bounds(path, attrs, act_dim)
        actions = np.asarray(arrays['actions'], dtype=np.float32)
        _check_actions_in_bounds(path, actions, low, high)
        next_obs, ends, has_next = _episode_fields(arrays)
        parts.append(dict(observations=np.asarray(arrays['observations'], dtype=np.float32), actions=actions,
                          rewards=np.asarray(arrays['rewards'], dtype=np.float32), next_observations=next_obs,
                          terminals=np.asarray(arrays['terminals']).astype(bool),
                          timeouts=np.asarray(arrays['timeouts']).astype(bool), episode_ends=ends,
                          has_next=has_next, low=low, high=high))
    merged = {key: np.concatenate([p[key] for p in parts]) for key in parts[0] if key not in ('low', 'high')}
    return Dataset(action_low=np.min([p['low'] for p in parts], axis=0),
                   action_high=np.max([p['high'] for p in parts], axis=0), sources=paths,
                   obs_layout=layouts.pop() if len(layouts) == 1 else '', **merged)
