"""Crash-safe HDF5 replay writer: only complete episodes ever reach the file.

Design (why a SIGKILL at any moment leaves a valid file holding every committed episode):

* The episode in progress lives in memory only (`EpisodeWriter`); it reaches the writer when a transition
  with terminal, timeout or error arrives.
* `ReplayWriter.commit()` never modifies the target file. It writes the whole dataset to a new file next
  to it (`.<name>.tmp-<pid>`), fsyncs it, renames it over the target with `os.replace` (atomic on POSIX)
  and fsyncs the directory. A reader therefore sees either the old complete file or the new complete file,
  never a half-written one; a kill mid-commit leaves at most a stray temporary file, removed by the next
  writer. HDF5 itself is not crash-safe when modified in place (a kill during a metadata flush can leave
  an unopenable file), which is why there is no in-place append.
* The price is that a commit rewrites the file: O(file size). `bench/recorder_throughput.py` and
  `doc/data.md` give the figures; a commit runs in a background thread (`BackgroundCommitter`) so the
  recorder never stops listening while one is under way.

Every row written passes `schema.check_arrays`; appending checks the existing file's schema, dimensions,
layout, source and action bounds and says clearly what does not match.
"""
import glob
import math
import os
import shutil
import tempfile
import threading
from typing import Dict, List, Optional

import h5py
import numpy as np

from plas_ros.data import schema
from plas_ros.data.episodes import EpisodeSummary, Step, outcome
from plas_ros.data.loader import read_file
from plas_ros.data.schema import episode_arrays

DEFAULT_MIN_FREE_BYTES = 100 * 1024 * 1024
TMP_PREFIX = '.%s.tmp-'


class OutputError(RuntimeError):
    """The output path cannot take the dataset (unwritable, disk full, incompatible file)."""


class _Columns:
    """Append-only growable arrays; rows [:n] never change once appended, so views of them stay valid."""

    def __init__(self, specs):
        self.specs = specs
        self.n = 0
        self._data = {key: np.empty((16,) + shape, dtype) for key, (shape, dtype) in specs.items()}

    def append(self, arrays, rows):
        if self.n + rows > len(self._data['rewards']):
            capacity = max(2 * len(self._data['rewards']), self.n + rows)
            for key, old in self._data.items():
                new = np.empty((capacity,) + old.shape[1:], old.dtype)
                new[:self.n] = old[:self.n]
                self._data[key] = new
        for key, column in self._data.items():
            column[self.n:self.n + rows] = arrays[key]
        self.n += rows

    def views(self, n=None):
        n = self.n if n is None else n
        return {key: column[:n] for key, column in self._data.items()}


def check_output_path(path, append=True, min_free_bytes=DEFAULT_MIN_FREE_BYTES):
    """Raise OutputError unless `path` can take a dataset: before collection starts, not after an hour.

    Creates missing parent folders, probes that the folder accepts a new file (a commit writes one next
    to the target) and that the disk has `min_free_bytes` plus room for a second copy of an existing file.
    """
    path = os.path.abspath(str(path))
    folder = os.path.dirname(path)
    if os.path.isdir(path):
        raise OutputError('%s: is a directory, expected an HDF5 file path' % path)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise OutputError('%s: cannot create the folder %s (%s)' % (path, folder, exc)) from exc
    exists = os.path.exists(path)
    if exists and not append:
        raise OutputError('%s: exists; append to it or choose a new output path' % path)
    if exists and not os.access(path, os.W_OK):
        raise OutputError('%s: exists and is read-only' % path)
    try:
        fd, probe = tempfile.mkstemp(prefix='.plas_probe_', dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        raise OutputError('%s: the folder %s is not writable (%s)' % (path, folder, exc)) from exc
    existing = os.path.getsize(path) if exists else 0
    free = shutil.disk_usage(folder).free
    needed = min_free_bytes + 2 * existing
    if free < needed:
        raise OutputError('%s: only %.1f MB free on the disk of %s, need at least %.1f MB'
                          % (path, free / 1e6, folder, needed / 1e6))
    return path


def remove_stale_temporaries(path):
    """Remove temporary files of earlier commits that were killed (their process is gone)."""
    folder, name = os.path.split(os.path.abspath(str(path)))
    for tmp in glob.glob(os.path.join(folder, TMP_PREFIX % name + '*')):
        pid = tmp.rsplit('-', 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _process_alive(int(pid)):
            try:
                os.remove(tmp)
            except OSError:
                pass


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_path(path, directory=False):
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_hdf5_atomically(path, arrays, attrs, fsync=True, group_attrs=None):
    """Write `arrays` (key -> array, 'infos/x' keys make groups) and `attrs` to `path` atomically.

    `group_attrs` maps a group path to its attributes (the groups are created by the array keys).
    """
    path = os.path.abspath(str(path))
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, TMP_PREFIX % name + str(os.getpid()))
    try:
        with h5py.File(tmp, 'w') as f:
            for key, value in attrs.items():
                f.attrs[key] = value
            for key, value in arrays.items():
                # Chunk checksums: a flipped bit in the data fails loudly on read instead of training silently.
                # (HDF5 allows no filter on variable-length strings.)
                f.create_dataset(key, data=value, fletcher32=len(value) > 0 and value.dtype.kind != 'O')
            for group, values in (group_attrs or {}).items():
                for key, value in values.items():
                    f.require_group(group).attrs[key] = value
        if fsync:
            _fsync_path(tmp)
        os.replace(tmp, path)
        if fsync:
            _fsync_path(folder, directory=True)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _bounds(value, act_dim):
    return np.broadcast_to(np.asarray(value, dtype=np.float32).reshape(-1), (act_dim,)).astype(np.float32)


class ReplayWriter:
    """The dataset file: committed episodes on disk plus complete episodes waiting for the next commit.

    Thread-safe: `add_episode` (recorder thread) and `commit` (committer thread) may run concurrently.
    """

    def __init__(self, path, fmt: schema.DatasetFormat, source='sim', policy='', config_text='', append=True,
                 min_free_bytes=DEFAULT_MIN_FREE_BYTES, fsync=True, seed=None, behaviour_config=''):
        self.path = check_output_path(path, append, min_free_bytes)
        remove_stale_temporaries(self.path)
        self.obs_dim, self.act_dim = int(fmt.obs_dim), int(fmt.act_dim)
        self.fsync = fsync
        self.min_free_bytes = min_free_bytes
        self._lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self._columns = _Columns(schema.column_specs(self.obs_dim, self.act_dim))
        self._pending: List[EpisodeSummary] = []
        self._behaviours: List[str] = []  # metadata/behaviour: one per episode of the file
        self.session_policy = str(policy)  # an episode's behaviour when none is named
        self.episodes = 0
        self.committed_episodes = 0
        self.committed_transitions = 0
        obs_layout = schema.obs_layout_json(fmt.obs_layout) if fmt.obs_layout else ''
        self.attrs = {
            schema.ATTR_SCHEMA_VERSION: schema.SCHEMA_VERSION, schema.ATTR_OBS_LAYOUT: obs_layout,
            schema.ATTR_SOURCE: str(source), schema.ATTR_POLICY: str(policy), schema.ATTR_CONFIG: str(config_text),
            schema.ATTR_BEHAVIOUR_CONFIG: str(behaviour_config), schema.ATTR_SEED: '' if seed is None else str(seed),
            schema.ATTR_ACTION_LOW: _bounds(fmt.action_low, self.act_dim),
            schema.ATTR_ACTION_HIGH: _bounds(fmt.action_high, self.act_dim),
        }
        if not (self.attrs[schema.ATTR_ACTION_LOW] < self.attrs[schema.ATTR_ACTION_HIGH]).all():
            raise ValueError('action bounds: low %s must lie below high %s'
                             % (self.attrs[schema.ATTR_ACTION_LOW], self.attrs[schema.ATTR_ACTION_HIGH]))
        if os.path.exists(self.path):
            self._load_existing()

    # -- appending to an existing file -------------------------------------------------------------------
    def _load_existing(self):
        arrays, attrs = read_file(self.path)
        self._check_compatible(arrays, attrs)
        n = len(arrays['observations'])
        self._columns.append({key: arrays[key] for key in self._columns.specs}, n)
        ids = arrays['%s/episode_ids' % schema.INFOS_GROUP]
        self.episodes = self.committed_episodes = int(ids.max()) + 1 if n else 0
        self.committed_transitions = n
        self.attrs[schema.ATTR_POLICY] = _joined(attrs.get(schema.ATTR_POLICY, ''), self.attrs[schema.ATTR_POLICY],
                                                 ' + ')
        for key in (schema.ATTR_CONFIG, schema.ATTR_BEHAVIOUR_CONFIG):
            self.attrs[key] = _joined(attrs.get(key, ''), self.attrs[key], '\n# --- appended session ---\n')
        self.attrs[schema.ATTR_SEED] = _joined(attrs.get(schema.ATTR_SEED, ''), self.attrs[schema.ATTR_SEED], ' + ')
        self._behaviours = episode_behaviours(self.path, self.episodes)

    def _check_compatible(self, arrays, attrs):
        def fail(key, problem):
            raise OutputError('cannot append to %s[%s]: %s' % (self.path, key, problem))
        version = attrs.get(schema.ATTR_SCHEMA_VERSION)
        if version is None:
            fail(schema.ATTR_SCHEMA_VERSION, 'not a recorder file (no schema_version); write a new file and merge')
        if int(version) != schema.SCHEMA_VERSION:
            fail(schema.ATTR_SCHEMA_VERSION, 'schema version %s, this writer writes %d' % (version,
                                                                                        schema.SCHEMA_VERSION))
        for key, (shape, _dtype) in self._columns.specs.items():
            if key not in arrays:
                fail(key, 'missing (the file was not written by the recorder); write a new file and merge')
            if arrays[key].shape[1:] != shape:
                fail(key, 'rows of shape %s, this session writes %s' % (arrays[key].shape[1:], shape))
        for key in (schema.ATTR_OBS_LAYOUT, schema.ATTR_SOURCE):
            if str(attrs.get(key, '')) != str(self.attrs[key]):
                fail(key, 'file has %r, this session %r' % (attrs.get(key), self.attrs[key]))
        for key in (schema.ATTR_ACTION_LOW, schema.ATTR_ACTION_HIGH):
            if not np.allclose(_bounds(attrs.get(key, np.nan), self.act_dim), self.attrs[key]):
                fail(key, 'file has %s, this session %s' % (attrs.get(key), self.attrs[key].tolist()))

    # -- adding and committing -----------------------------------------------------------------------------
    @property
    def transitions(self):
        return self._columns.n

    def add_episode(self, arrays, source_episode=-1, missing_steps=0, behaviour='') -> EpisodeSummary:
        """Validate one complete episode (key -> rows, see `episode_arrays`) and queue it for the next commit;
        `behaviour` names what acted in it (a schedule's member; empty: this session's policy)."""
        rows = len(arrays['rewards'])
        where = '%s (episode %s being added)' % (self.path, source_episode)
        schema.check_arrays(where, arrays, self.obs_dim, self.act_dim)
        if rows == 0:
            raise ValueError('%s: an episode needs at least one transition' % where)
        ends = np.asarray(arrays['terminals'], bool) | np.asarray(arrays['timeouts'], bool)
        if not ends[-1] or ends[:-1].any():
            raise ValueError('%s: exactly the last row must be a terminal or timeout' % where)
        self._check_actions(where, arrays['actions'])
        with self._lock:
            index = self.episodes
            arrays = dict(arrays)
            arrays['%s/episode_ids' % schema.INFOS_GROUP] = np.full(rows, index, np.int64)
            self._columns.append(arrays, rows)
            self._behaviours.append(str(behaviour or self.session_policy))
            self.episodes += 1
            errors = np.asarray(arrays['%s/errors' % schema.INFOS_GROUP], bool)
            how = outcome(bool(arrays['terminals'][-1]), bool(arrays['timeouts'][-1]), bool(errors.any()))
            summary = EpisodeSummary(int(source_episode), rows, float(np.sum(arrays['rewards'])), how, index,
                                     int(missing_steps))
            self._pending.append(summary)
        return summary

    def _check_actions(self, where, actions):
        low, high = self.attrs[schema.ATTR_ACTION_LOW], self.attrs[schema.ATTR_ACTION_HIGH]
        outside = (actions < low - schema.ACTION_TOLERANCE) | (actions > high + schema.ACTION_TOLERANCE)
        if outside.any():
            row = int(np.argwhere(outside)[0][0])
            raise ValueError('%s[actions]: row %d %s outside the bounds [%s, %s]'
                             % (where, row, actions[row].tolist(), low.tolist(), high.tolist()))

    def commit(self) -> List[EpisodeSummary]:
        """Make every added episode durable; returns the episodes this call committed (oldest first).

        On failure (disk full, I/O error) the file on disk is unchanged and the episodes stay queued.
        """
        with self._commit_lock:
            with self._lock:
                pending = list(self._pending)
                if not pending and os.path.exists(self.path):
                    return []
                arrays = self._columns.views()
                arrays[schema.EPISODE_BEHAVIOUR_KEY] = np.array(self._behaviours, dtype=h5py.string_dtype())
                attrs = dict(self.attrs)
            self._check_room(arrays)
            write_hdf5_atomically(self.path, arrays, attrs, fsync=self.fsync)
            with self._lock:
                del self._pending[:len(pending)]
                self.committed_transitions = len(arrays['rewards'])
                self.committed_episodes = pending[-1].index + 1 if pending else self.committed_episodes
            return pending

    def write_episode(self, arrays, source_episode=-1, missing_steps=0, behaviour='') -> EpisodeSummary:
        summary = self.add_episode(arrays, source_episode, missing_steps, behaviour)
        self.commit()
        return summary

    def _check_room(self, arrays):
        size = sum(a.nbytes for a in arrays.values()) + 64 * 1024
        free = shutil.disk_usage(os.path.dirname(self.path)).free
        if free < size + self.min_free_bytes // 4:
            raise OutputError('%s: disk full: %.1f MB free, a commit needs %.1f MB; the file on disk is unchanged'
                              % (self.path, free / 1e6, size / 1e6))

    @property
    def pending_episodes(self):
        with self._lock:
            return len(self._pending)


def episode_behaviours(path, episodes) -> List[str]:
    """metadata/behaviour of a file, one string per episode ('' for the episodes of a file written before it was
    recorded)."""
    with h5py.File(str(path), 'r') as f:
        stored = f[schema.EPISODE_BEHAVIOUR_KEY].asstr()[:].tolist() if schema.EPISODE_BEHAVIOUR_KEY in f else []
    return (list(stored) + [''] * episodes)[:episodes]


def _joined(old, new, separator):
    old, new = str(old), str(new)
    if not old or old == new:
        return new or old
    if not new or new in old.split(separator):
        return old
    return old + separator + new


# -- assembling episodes from transitions ------------------------------------------------------------------
class StepCounts:
    """What the assembler did with the transitions it received (for the recorder's log)."""

    def __init__(self):
        self.received = self.malformed = self.duplicates = self.out_of_order = 0
        self.late = self.abandoned_steps = self.missing = self.empty_errors = 0

    def as_dict(self):
        return dict(self.__dict__)


class _OpenEpisode:
    def __init__(self, first_arrival):
        self.steps: Dict[int, Step] = {}
        self.first_arrival = first_arrival
        self.last_arrival = first_arrival


class EpisodeWriter:
    """Collects transitions per episode id and hands each ended episode to a ReplayWriter (or committer).

    `sink(arrays, source_episode, missing_steps)` receives each complete episode; by default
    `replay.write_episode` (synchronous commit). Steps are ordered by their step number; duplicates, late
    steps of a finished episode and malformed steps are dropped and counted; gaps are counted as missing.
    An open episode that receives nothing while a later-started episode completes is abandoned (its end
    never arrived).
    """

    def __init__(self, replay: ReplayWriter, sink=None, log=None):
        self.replay = replay
        self.sink = sink or replay.write_episode
        self.log = log or (lambda message: None)
        self.counts = StepCounts()
        self._open: Dict[int, _OpenEpisode] = {}
        self._finished = set()
        self._arrivals = 0

    def malformed_reason(self, step: Step) -> Optional[str]:
        checks = (('observation', self.replay.obs_dim), ('action', self.replay.act_dim),
                  ('next_observation', self.replay.obs_dim))
        for name, dim in checks:
            value = np.asarray(getattr(step, name), dtype=np.float64).reshape(-1)
            if value.size != dim:
                return '%s has %d values, expected %d' % (name, value.size, dim)
            if not np.isfinite(value).all():
                return '%s holds NaN/inf' % name
        if not math.isfinite(float(step.reward)):
            return 'reward is %s' % step.reward
        return None

    def add(self, step: Step):
        """Take one transition; returns the sink's result when it ended an episode, else None."""
        self.counts.received += 1
        self._arrivals += 1
        if step.episode in self._finished:
            self.counts.late += 1
            self.log('dropped a late transition of finished episode %d (step %d)' % (step.episode, step.step))
            return None
        reason = self.malformed_reason(step)
        if reason is not None and not step.error:
            self.counts.malformed += 1
            self.log('dropped a malformed transition (episode %d step %d): %s' % (step.episode, step.step, reason))
            return None
        episode = self._open.setdefault(step.episode, _OpenEpisode(self._arrivals))
        episode.last_arrival = self._arrivals
        if step.step in episode.steps:
            self.counts.duplicates += 1
            self.log('dropped a duplicate of episode %d step %d' % (step.episode, step.step))
            return None
        if episode.steps and step.step < max(episode.steps):
            self.counts.out_of_order += 1
        if reason is None:  # an error transition usually has no next observation: it ends the episode unrecorded
            episode.steps[step.step] = step
        if step.terminal or step.timeout or step.error:
            return self._finish(step.episode, error=step.error, message=step.error_message)
        return None

    def _finish(self, episode_id, error, message=''):
        episode = self._open.pop(episode_id)
        self._finished.add(episode_id)
        self._abandon_older_than(episode.first_arrival)
        steps = [episode.steps[k] for k in sorted(episode.steps)]
        expected = (max(episode.steps) + 1) if episode.steps else 0
        missing = expected - len(steps)
        self.counts.missing += missing
        if missing:
            self.log('episode %d: %d step(s) never arrived' % (episode_id, missing))
        if error:
            self.log('episode %d ended on a fault: %s' % (episode_id, message or 'no message'))
        if not steps:
            self.counts.empty_errors += 1
            self.log('episode %d ended on a fault before its first complete transition: nothing to record'
                     % episode_id)
            return None
        return self.sink(episode_arrays(steps, error=error), episode_id, missing)

    def _abandon_older_than(self, arrival):
        for episode_id in [e for e, ep in self._open.items() if ep.last_arrival < arrival]:
            lost = len(self._open.pop(episode_id).steps)
            self._finished.add(episode_id)
            self.counts.abandoned_steps += lost
            self.log('episode %d abandoned after %d step(s): its final transition never arrived' % (episode_id, lost))

    def discard_open(self):
        """Drop the episodes in progress (at shutdown); returns how many transitions were discarded."""
        lost = sum(len(ep.steps) for ep in self._open.values())
        self._open.clear()
        return lost


class BackgroundCommitter:
    """Commits in a background thread so the caller never waits for the disk.

    `submit(arrays, source_episode, missing_steps)` queues an episode (a valid EpisodeWriter sink);
    `on_committed(summaries)` runs in the committer thread after each durable commit; `on_error(exc)`
    when a commit fails (the episodes stay queued and the next commit retries them).
    """

    def __init__(self, replay: ReplayWriter, on_committed=None, on_error=None, retry_period=1.0):
        self.replay = replay
        self.on_committed = on_committed or (lambda summaries: None)
        self.on_error = on_error or (lambda exc: None)
        self.retry_period = retry_period
        self._wake = threading.Event()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name='replay-committer', daemon=True)
        self._thread.start()

    def submit(self, arrays, source_episode=-1, missing_steps=0, behaviour=''):
        summary = self.replay.add_episode(arrays, source_episode, missing_steps, behaviour)
        self._wake.set()
        return summary

    def _run(self):
        while True:
            self._wake.wait(self.retry_period if self.replay.pending_episodes else None)
            self._wake.clear()
            closing = self._closing
            self._commit_once()
            if closing:
                return

    def _commit_once(self):
        try:
            committed = self.replay.commit()
        except (OSError, RuntimeError, ValueError) as exc:
            self.on_error(exc)
            return
        if committed:
            self.on_committed(committed)

    def close(self, timeout=30.0):
        """Commit whatever is queued, then stop the thread; returns True when it finished in time."""
        self._closing = True
        self._wake.set()
        if threading.current_thread() is self._thread:  # closed from on_committed: the loop ends by itself
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()
