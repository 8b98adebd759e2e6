"""Crash-safe HDF5 replay writer: only complete episodes ever reach the file.

Design (why a SIGKILL at any moment leaves a valid file holding every committed episode):

* The episode in progress lives in memory only (`EpisodeWriter`); it reaches the writer when a transition
  with terminal, timeout or error arrives.
* `ReplayWriter.commit()` never modifies the target file. It builds the whole dataset as an HDF5 image in
  memory and writes it with plain writes to a new file next to it (`.<name>.tmp-<pid>`), fsyncs it, renames
  it over the target with `os.replace` (atomic on POSIX) and fsyncs the directory (`durable.py`). A reader
  therefore sees either the old complete file or the new complete file, never a half-written one; a kill
  mid-commit leaves at most a stray temporary file, removed by the next writer. HDF5 itself is not
  crash-safe when modified in place (a kill during a metadata flush can leave an unopenable file), which is
  why there is no in-place append; and it never writes to the disk itself, so a full disk is an exception
  of a plain write (the episodes stay queued and are retried), never a crash inside HDF5's close.
* One writer per file: a ReplayWriter holds an exclusive lock on its output (`durable.OutputLock`) from
  construction to `close()` (or its process's end); a second writer is refused, naming the first.
* The price is that a commit rewrites the file: O(file size). `bench/recorder_throughput.py` and
  `doc/data.md` give the figures; a commit runs in a background thread (`BackgroundCommitter`) so the
  recorder never stops listening while one is under way.

Every row written passes `schema.check_arrays`; appending checks the existing file's schema, dimensions,
layout, source and action bounds and says clearly what does not match.
"""
import itertools
import logging
import math
import os
import tempfile
import threading
import time
from typing import Dict, List, NamedTuple, Optional

import h5py
import numpy as np

from plas_ros.data import schema
from plas_ros.data.durable import (
    OutputError,
    OutputLock,
    describe_write_error,
    free_bytes,
    remove_stale_temporaries,
    write_bytes_atomically,
)
from plas_ros.data.episodes import EpisodeSummary, Step, outcome
from plas_ros.data.loader import read_file
from plas_ros.data.schema import episode_arrays

DEFAULT_MIN_FREE_BYTES = 100 * 1024 * 1024


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


def output_folder(path):
    """`path` made absolute, refused when it is a folder, with its parent folders created."""
    path = os.path.abspath(str(path))
    folder = os.path.dirname(path)
    if os.path.isdir(path):
        raise OutputError('%s: is a directory, expected an HDF5 file path' % path)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise OutputError('%s: cannot create the folder %s (%s)' % (path, folder, exc)) from exc
    return path


def check_output_path(path, append=True, min_free_bytes=DEFAULT_MIN_FREE_BYTES):
    """Raise OutputError unless `path` can take a dataset: before collection starts, not after an hour.

    Creates missing parent folders, probes that the folder accepts a new file (a commit writes one next
    to the target) and that the disk has `min_free_bytes` plus room for a second copy of an existing file.
    """
    path = output_folder(path)
    folder = os.path.dirname(path)
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
    free = free_bytes(path)
    needed = min_free_bytes + 2 * existing
    if free < needed:
        raise OutputError('%s: only %.1f MB free on the disk of %s, need at least %.1f MB'
                          % (path, free / 1e6, folder, needed / 1e6))
    return path


IMAGE_BLOCK_BYTES = 8 * 1024 * 1024
_IMAGE_NAMES = itertools.count()  # the core driver wants a name, unique among the process's open files


def hdf5_image(arrays, attrs, group_attrs=None):
    """The bytes of an HDF5 file holding `arrays` ('infos/x' keys make groups) and `attrs`, built in memory.

    `group_attrs` maps a group path to its attributes (the groups are created by the array keys). HDF5's
    core driver without a backing store keeps the file in C memory, so HDF5 never meets a full disk (that is
    `durable.write_bytes_atomically`'s business), and no Python code runs inside HDF5 (a Ctrl-C or SIGTERM
    arrives after it returns, never swallowed by a callback as with a Python file object).
    """
    # The image grows in blocks: one for a small file; for a large one, 8 MB steps (allocating its whole size
    # at once cost 0.1 s of page faults at 100 MB, growing costs nothing measurable).
    size = sum(np.asarray(value).nbytes for value in arrays.values()) + 256 * 1024
    name = 'plas_ros-image-%d-%d' % (os.getpid(), next(_IMAGE_NAMES))
    f = h5py.File(name, 'w', driver='core', backing_store=False, block_size=min(size, IMAGE_BLOCK_BYTES))
    try:
        for key, value in attrs.items():
            f.attrs[key] = value
        for key, value in arrays.items():
            # Chunk checksums: a flipped bit in the data fails loudly on read instead of training silently.
            f.create_dataset(key, data=value, fletcher32=_checksummable(value))
        for group, values in (group_attrs or {}).items():
            for key, value in values.items():
                f.require_group(group).attrs[key] = value
        f.flush()
        return f.id.get_file_image()
    finally:
        f.close()


def write_hdf5_atomically(path, arrays, attrs, fsync=True, group_attrs=None):
    """Write `arrays` and `attrs` (see `hdf5_image`) to `path` atomically; OSError leaves `path` untouched."""
    write_bytes_atomically(path, hdf5_image(arrays, attrs, group_attrs), fsync=fsync)


class CloseReport(NamedTuple):
    """What `ReplayWriter.close` could not put into the output file."""
    lost_episodes: int       # in no file (their count was logged)
    lost_transitions: int
    fallback: str            # the file in the fallback folder holding the episodes the output could not take


def _checksummable(value) -> bool:
    """Chunked numeric data (what fletcher32 protects); scalars and strings are stored whole."""
    array = np.asarray(value)
    return array.ndim > 0 and len(array) > 0 and array.dtype.kind in 'biuf'


def _bounds(value, act_dim):
    return np.broadcast_to(np.asarray(value, dtype=np.float32).reshape(-1), (act_dim,)).astype(np.float32)


class ReplayWriter:
    """The dataset file: committed episodes on disk plus complete episodes waiting for the next commit.

    Thread-safe: `add_episode` (recorder thread) and `commit` (committer thread) may run concurrently.
    """

    def __init__(self, path, fmt: schema.DatasetFormat, source='sim', policy='', config_text='', append=True,
                 min_free_bytes=DEFAULT_MIN_FREE_BYTES, fsync=True, holder='', log=None, seed=None,
                 behaviour_config=''):
        """`holder` names this writer in its lock (a refused second writer reports it); `log(level, text)`
        hears of failed commits, once per streak of failures (see `try_commit`) and of episodes lost at `close`.
        `min_free_bytes` 0: commits do not check the free space first (a full disk is still met safely at the
        write)."""
        self.obs_dim, self.act_dim = int(fmt.obs_dim), int(fmt.act_dim)
        self.fsync = fsync
        self.min_free_bytes = min_free_bytes
        self.log = log or (lambda level, text: None)
        self._lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self._columns = _Columns(schema.column_specs(self.obs_dim, self.act_dim))
        self._pending: List[EpisodeSummary] = []
        self._behaviours: List[str] = []  # metadata/behaviour: one per episode of the file
        self.session_policy = str(policy)  # an episode's behaviour when none is named
        self.episodes = 0
        self.committed_episodes = 0
        self.committed_transitions = 0
        self.failed_commits = 0  # consecutive failed commits (0: the last one succeeded)
        self.last_error = ''
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
        self.path = output_folder(path)
        self.owner = OutputLock(self.path, holder)  # one writer per file: taken before anything reads the file
        try:
            check_output_path(self.path, append, min_free_bytes)
            remove_stale_temporaries(self.path)
            if os.path.exists(self.path):
                self._load_existing()
        except BaseException:
            self.owner.release()
            raise

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

        On failure (OutputError: disk full, I/O error) the file on disk is unchanged and the episodes stay
        queued. The file is built in memory and written with plain writes (`durable`), so a full disk is an
        exception here, never a crash inside HDF5.
        """
        with self._commit_lock:
            with self._lock:
                pending = list(self._pending)
                if not pending and os.path.exists(self.path):
                    return []
                arrays = self._columns.views()
                arrays[schema.EPISODE_BEHAVIOUR_KEY] = np.array(self._behaviours, dtype=h5py.string_dtype())
                attrs = dict(self.attrs)
            image = hdf5_image(arrays, attrs)
            self._check_room(len(image))
            try:
                write_bytes_atomically(self.path, image, fsync=self.fsync)
            except OSError as exc:
                raise OutputError('%s: commit failed, %s; the file on disk is unchanged'
                                  % (self.path, describe_write_error(exc, len(image), self.path))) from exc
            with self._lock:
                del self._pending[:len(pending)]
                self.committed_transitions = len(arrays['rewards'])
                self.committed_episodes = pending[-1].index + 1 if pending else self.committed_episodes
            return pending

    def try_commit(self) -> List[EpisodeSummary]:
        """`commit()` that reports a failure instead of raising it; returns the committed episodes ([] when it
        failed). The first failure of a streak is logged (ERROR, with the episodes kept in memory), and so is
        the commit that ends the streak; the retries in between stay quiet."""
        try:
            committed = self.commit()
        except (OSError, RuntimeError, ValueError) as exc:  # OutputError is a RuntimeError
            self.failed_commits += 1
            self.last_error = str(exc).replace(self.path + ': ', '', 1)  # the reason, for the report at close
            if self.failed_commits == 1:
                self.log(logging.ERROR, '%s; %d episode(s) kept in memory and retried until a commit succeeds'
                         ' (reported once)' % (exc, self.pending_episodes))
            return []
        if self.failed_commits:
            self.log(logging.WARNING, '%s: commit succeeded after %d failed attempt(s); the file holds %d episodes'
                     % (self.path, self.failed_commits, self.committed_episodes))
            self.failed_commits = 0
        return committed

    def write_episode(self, arrays, source_episode=-1, missing_steps=0, behaviour='') -> EpisodeSummary:
        summary = self.add_episode(arrays, source_episode, missing_steps, behaviour)
        self.commit()
        return summary

    def _check_room(self, size):
        if not self.min_free_bytes:
            return
        free = free_bytes(self.path)
        if free < size + self.min_free_bytes // 4:
            raise OutputError('%s: disk full: %.1f MB free, a commit needs %.1f MB and keeps %.1f MB free; the file'
                              ' on disk is unchanged' % (self.path, free / 1e6, size / 1e6,
                                                         self.min_free_bytes / 4e6))

    def close(self, fallback_dir='') -> CloseReport:
        """Commit what is pending, then give up the file (its lock). Episodes that still cannot be written go
        to a file of their own in `fallback_dir` when one is given, else they are reported lost (logged)."""
        try:
            if self.pending_episodes:
                self.try_commit()
            return self._account_for_pending(fallback_dir)
        finally:
            self.owner.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _account_for_pending(self, fallback_dir):
        with self._lock:
            pending = list(self._pending)
            first_row = self.committed_transitions
            rows = {key: column[first_row:] for key, column in self._columns.views().items()}
        if not pending:
            return CloseReport(0, 0, '')
        transitions = sum(s.steps for s in pending)
        saved = self._save_elsewhere(fallback_dir, rows) if fallback_dir else ''
        if saved:
            self.log(logging.WARNING, '%s: the %d episode(s) (%d transitions) it could not take (%s) are in %s; '
                     'join them with python -m plas_ros.data merge' % (self.path, len(pending), transitions,
                                                                       self.last_error, saved))
            return CloseReport(0, 0, saved)
        self.log(logging.ERROR, '%s: %d episode(s) (%d transitions) lost: the last commit failed (%s) and %s'
                 % (self.path, len(pending), transitions, self.last_error,
                    'the fallback folder failed too' if fallback_dir else 'no fallback folder is configured'))
        return CloseReport(len(pending), transitions, '')

    def _save_elsewhere(self, folder, rows):
        """The pending episodes as a recorder file of their own in `folder`; its path, or '' when that fails."""
        ids = '%s/episode_ids' % schema.INFOS_GROUP
        rows[ids] = rows[ids] - rows[ids][0]  # a file's episodes count from 0
        stem = os.path.splitext(os.path.basename(self.path))[0]
        target = os.path.join(os.path.abspath(folder), '%s.unsaved-%s-%d.h5'
                              % (stem, time.strftime('%Y%m%dT%H%M%SZ', time.gmtime()), os.getpid()))
        try:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            write_hdf5_atomically(target, rows, self.attrs, fsync=self.fsync)
        except OSError as exc:
            self.log(logging.ERROR, '%s: cannot save the pending episodes in the fallback folder: %s'
                     % (target, describe_write_error(exc, sum(a.nbytes for a in rows.values()), target)))
            return ''
        return target

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
    `on_committed(summaries)` runs in the committer thread after each durable commit. A failed commit (a full
    disk) keeps the episodes queued, is reported through the writer's log once per streak
    (`ReplayWriter.try_commit`) and is retried every `retry_period` seconds and at every new episode.
    """

    def __init__(self, replay: ReplayWriter, on_committed=None, retry_period=1.0):
        self.replay = replay
        self.on_committed = on_committed or (lambda summaries: None)
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
            committed = self.replay.try_commit()
            if committed:
                self.on_committed(committed)
            if closing:
                return

    def close(self, timeout=30.0):
        """Commit whatever is queued, then stop the thread; returns True when it finished in time."""
        self._closing = True
        self._wake.set()
        if threading.current_thread() is self._thread:  # closed from on_committed: the loop ends by itself
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()
