"""`python -m plas_ros.data`: info, validate, merge, export and plot replay-buffer files.

Every file is read through `plas_ros.data.loader.read_file` (the trainer's own reader), so a file this CLI
accepts is a file the trainer accepts. Exit status: 0 fine, 1 a bad file or output (the message names the
file, the key and the problem), 2 bad usage.
"""
import argparse
import io
import json
import os
import sys

import h5py
import numpy as np

from plas_ros.config import section
from plas_ros.data import schema
from plas_ros.data.durable import write_bytes_atomically
from plas_ros.data.episodes import ERROR, OPEN, TERMINAL, TIMEOUT, episode_slices
from plas_ros.data.loader import load_datasets, read_file
from plas_ros.data.plot import plot_episode
from plas_ros.data.schema import rows_outcome
from plas_ros.data.writer import (
    OutputError,
    check_output_path,
    episode_behaviours,
    remove_stale_temporaries,
    write_hdf5_atomically,
)

INFOS = schema.INFOS_GROUP + '/'
EPISODE_IDS = INFOS + 'episode_ids'
D3RLPY_KEYS = ('observations', 'actions', 'rewards', 'terminals', 'timeouts')
D3RLPY_SNIPPET = '''import numpy as np, d3rlpy
d = np.load("{path}")
dataset = d3rlpy.dataset.MDPDataset(d["observations"], d["actions"], d["rewards"], d["terminals"],
                                     d["timeouts"])'''


def _slices(arrays):
    return episode_slices(arrays['terminals'], arrays['timeouts'])


def summarize(path):
    """A dict describing one file: transitions, episodes by outcome, returns, success rate, attributes."""
    arrays, attrs = read_file(path)
    slices = _slices(arrays)
    outcomes = [rows_outcome(arrays, rows) for rows in slices]
    returns = np.array([float(np.sum(arrays['rewards'][rows])) for rows in slices])
    lengths = np.array([rows.stop - rows.start for rows in slices])
    counts = {name: outcomes.count(name) for name in (TIMEOUT, TERMINAL, ERROR, OPEN)}
    return {
        'file': str(path), 'transitions': int(len(arrays['rewards'])), 'episodes': len(slices),
        'obs_dim': int(arrays['observations'].shape[1]), 'act_dim': int(arrays['actions'].shape[1]),
        'outcomes': counts,
        # Success: the edge was held until the time limit without a fault (an error is never a success).
        'success_rate': counts['timeout'] / len(slices) if slices else 0.0,
        'return_mean': float(returns.mean()) if slices else 0.0,
        'return_min': float(returns.min()) if slices else 0.0,
        'return_max': float(returns.max()) if slices else 0.0,
        'length_mean': float(lengths.mean()) if slices else 0.0,
        'infos': sorted(key[len(INFOS):] for key in arrays if key.startswith(INFOS)),
        'attrs': {key: _jsonable(value) for key, value in attrs.items()},
    }


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


# -- validation --------------------------------------------------------------------------------------------
def validate(path, obs_dim=None, act_dim=None):
    """Raise DatasetError on the first problem; return (arrays, attrs).

    Every file: the loader's checks (keys, shapes, rows, finite values, 0/1 flags, actions within the
    declared bounds). Recorder files (with a schema_version attribute) also: version, next_observations,
    every infos/* column with its shape and dtype, one block of rows per episode id ending in exactly one
    terminal/timeout, error flags uniform within an episode, and an observation layout covering obs_dim.
    """
    if not os.path.isfile(str(path)):
        raise schema.DatasetError(path, None, 'no such file')
    arrays, attrs = read_file(path)
    schema.check_arrays(path, arrays, obs_dim, act_dim)
    if len(arrays['rewards']):
        load_datasets([path])  # the action-bounds check, exactly as training will do it
    if schema.ATTR_SCHEMA_VERSION in attrs:
        schema.validate_recorder_file(path, arrays, attrs)
    return arrays, attrs


# -- merge -------------------------------------------------------------------------------------------------
def _close_last_episode(arrays):
    """A file that ends without a flag ends with a truncation (as the loader reads it): flag it a timeout."""
    if len(arrays['rewards']) and not (arrays['terminals'][-1] or arrays['timeouts'][-1]):
        arrays['timeouts'] = np.array(arrays['timeouts'], bool)
        arrays['timeouts'][-1] = True
    return arrays


def merge(paths, out, force=False):
    """Concatenate validated files into `out` (written atomically); returns its summary."""
    if len(paths) < 2:
        raise ValueError('merge needs at least two input files')
    check_output_path(out, append=force)
    parts = [validate(path) for path in paths]
    dims = {(a['observations'].shape[1], a['actions'].shape[1]) for a, _ in parts}
    if len(dims) != 1:
        raise schema.DatasetError(out, 'observations', 'inputs differ in (obs_dim, act_dim): %s'
                                  % ', '.join('%s %s' % (p, (a['observations'].shape[1], a['actions'].shape[1]))
                                              for p, (a, _) in zip(paths, parts)))
    keys = set.intersection(*(set(a) for a, _ in parts)) | set(schema.REQUIRED_KEYS)
    dropped = sorted(set.union(*(set(a) for a, _ in parts)) - keys)
    if dropped:
        print('merge: not in every input, left out: %s' % ', '.join(dropped), file=sys.stderr)
    columns = {key: [] for key in keys if key != EPISODE_IDS}
    episode_ids, behaviours, next_id = [], [], 0
    for path, (arrays, _) in zip(paths, parts):
        arrays = _close_last_episode(dict(arrays))
        for key in columns:
            columns[key].append(arrays[key])
        slices = list(_slices(arrays))
        for rows in slices:
            episode_ids.append(np.full(rows.stop - rows.start, next_id, np.int64))
            next_id += 1
        behaviours += episode_behaviours(path, len(slices))
    merged = {key: np.concatenate(values) for key, values in columns.items()}
    merged[EPISODE_IDS] = np.concatenate(episode_ids)
    merged[schema.EPISODE_BEHAVIOUR_KEY] = np.array(behaviours, dtype=h5py.string_dtype())
    write_hdf5_atomically(out, merged, _merged_attrs(paths, [attrs for _, attrs in parts], merged))
    remove_stale_temporaries(out)
    return summarize(out)


def _merged_attrs(paths, attr_list, merged):
    act_dim = merged['actions'].shape[1]
    layouts = {str(a.get(schema.ATTR_OBS_LAYOUT, '')) for a in attr_list} - {''}
    if len(layouts) > 1:
        raise schema.DatasetError(paths[0], schema.ATTR_OBS_LAYOUT, 'inputs declare different observation '
                                  'layouts: %s' % ' vs '.join(sorted(layouts)))
    bounds = [load_datasets([p]) for p in paths]
    attrs = {
        schema.ATTR_SOURCE: _unique_join([a.get(schema.ATTR_SOURCE, '') for a in attr_list], '+'),
        schema.ATTR_POLICY: _unique_join([a.get(schema.ATTR_POLICY, '') for a in attr_list], ' + '),
        schema.ATTR_SEED: ' + '.join(str(a.get(schema.ATTR_SEED, '')) for a in attr_list),
        **{key: '\n'.join('# --- from %s ---\n%s' % (p, a.get(key, '')) for p, a in zip(paths, attr_list))
           for key in (schema.ATTR_CONFIG, schema.ATTR_BEHAVIOUR_CONFIG)},
        schema.ATTR_ACTION_LOW: np.min([b.action_low for b in bounds], axis=0).reshape(act_dim),
        schema.ATTR_ACTION_HIGH: np.max([b.action_high for b in bounds], axis=0).reshape(act_dim),
        schema.ATTR_OBS_LAYOUT: layouts.pop() if layouts else '',
    }
    recorder_keys = {INFOS + name for name in schema.RECORDER_INFOS} | {'next_observations'}
    if recorder_keys <= set(merged):  # every input was a recorder file: the merge is one too
        attrs[schema.ATTR_SCHEMA_VERSION] = schema.SCHEMA_VERSION
    return attrs


def _unique_join(values, separator):
    seen = []
    for value in values:
        for part in str(value).split(separator):
            part = part.strip()
            if part and part not in seen:
                seen.append(part)
    return separator.join(seen)


# -- export ------------------------------------------------------------------------------------------------
def _exportable(path, exclude_errors):
    arrays, attrs = validate(path)
    if not len(arrays['rewards']):
        raise schema.DatasetError(path, 'observations', 'file holds no transitions: nothing to export')
    arrays = _close_last_episode(dict(arrays))
    slices = _slices(arrays)
    if exclude_errors:
        slices = [rows for rows in slices if rows_outcome(arrays, rows) != ERROR]
    return arrays, attrs, slices


def export_d3rlpy(path, out, exclude_errors=False):
    """The file for d3rlpy; returns how to load it.

    `.npz`: the five arrays `d3rlpy.dataset.MDPDataset` takes. `.h5`: d3rlpy's own replay-buffer file (what
    `ReplayBuffer.dump` writes and `ReplayBuffer.load` reads), one episode per recorded episode.
    """
    arrays, _, slices = _exportable(path, exclude_errors)
    check_output_path(out, append=True)
    if str(out).endswith('.npz'):
        rows = np.concatenate([np.arange(s.start, s.stop) for s in slices]) if slices else np.zeros(0, int)
        data = {key: np.asarray(arrays[key])[rows] for key in D3RLPY_KEYS}
        data['terminals'] = data['terminals'].astype(np.float32)
        data['timeouts'] = data['timeouts'].astype(np.float32)
        _save_npz_atomically(out, data)
        return D3RLPY_SNIPPET.format(path=out)
    if not str(out).endswith('.h5'):
        raise ValueError('%s: a d3rlpy export is .npz (MDPDataset arrays) or .h5 (d3rlpy\'s replay-buffer file)'
                         % out)
    if not slices:
        raise schema.DatasetError(path, 'observations', 'no episode left to export (d3rlpy files need one)')
    write_hdf5_atomically(out, d3rlpy_buffer_arrays(arrays, slices), {})
    return D3RLPY_BUFFER_SNIPPET.format(path=out)


# d3rlpy 2.x's replay-buffer file (d3rlpy/dataset/io.py, DATASET_VERSION "2.1"): datasets `columns` (the
# episode fields), `num_episodes`, `version` and, per episode i, `<field>_<i>` for the fields of
# `Episode.serialize()`: observations (T, D), actions (T, A), rewards (T, 1), terminated (scalar bool).
D3RLPY_BUFFER_VERSION = '2.1'
D3RLPY_EPISODE_FIELDS = ('observations', 'actions', 'rewards', 'terminated')
D3RLPY_BUFFER_SNIPPET = '''import d3rlpy
with open("{path}", "rb") as f:
    dataset = d3rlpy.dataset.ReplayBuffer.load(f, d3rlpy.dataset.InfiniteBuffer())'''


def d3rlpy_buffer_arrays(arrays, slices):
    """The datasets of d3rlpy's file for the episodes at `slices`.

    A d3rlpy episode of T observations that did not terminate holds T - 1 transitions (the last observation
    only ends the last one). So that a time-limited or interrupted episode keeps all its transitions, its
    last next observation is appended as one more observation (with a repeat of the last action and a zero
    reward, which no transition reads); a terminated one keeps its T rows (d3rlpy's next state after a
    terminal is zeros). Without next_observations in the file the episode is written as d3rlpy would build it
    from the arrays (its last transition then has no next state and is left out).
    """
    obs = np.asarray(arrays['observations'], np.float32)
    next_obs = arrays.get('next_observations')
    data = {'columns': np.array(D3RLPY_EPISODE_FIELDS, dtype='S'), 'num_episodes': np.int64(len(slices)),
            'version': D3RLPY_BUFFER_VERSION}
    for i, rows in enumerate(slices):
        terminated = bool(arrays['terminals'][rows][-1])
        episode_obs = obs[rows]
        actions = np.asarray(arrays['actions'][rows], np.float32)
        rewards = np.asarray(arrays['rewards'][rows], np.float32).reshape(-1, 1)
        if not terminated and next_obs is not None:
            episode_obs = np.concatenate([episode_obs, np.asarray(next_obs[rows][-1:], np.float32)])
            actions = np.concatenate([actions, actions[-1:]])
            rewards = np.concatenate([rewards, np.zeros((1, 1), np.float32)])
        data.update({'observations_%d' % i: episode_obs, 'actions_%d' % i: actions, 'rewards_%d' % i: rewards,
                     'terminated_%d' % i: np.bool_(terminated)})
    return data


def _save_npz_atomically(out, data):
    buffer = io.BytesIO()
    np.savez(buffer, **data)
    write_bytes_atomically(out, buffer.getbuffer())


def _layout_segments(attrs, obs_dim):
    segments = schema.obs_layout_segments(attrs)
    return segments if segments and max(b for _, _, b in segments) == obs_dim else [('flat', 0, obs_dim)]


# robomimic's env_args: {"env_name", "type", "env_kwargs"}; type 2 is robomimic's EnvType.GYM_TYPE (the env is
# made with gym(nasium).make(env_name, **env_kwargs)); env_name is config/data.yaml export.robomimic.env_name.
ROBOMIMIC_GYM_TYPE = 2


def export_robomimic(path, out, exclude_errors=False):
    """A robomimic dataset: data/demo_<i>/{obs/<key>, next_obs/<key>, actions, rewards, dones} per episode and
    the train/valid filter keys mask/train, mask/valid (config/data.yaml export.robomimic).

    obs keys are the segments of the file's observation layout (else one 'flat' key); `dones` marks true
    MDP ends (terminals) so a timeout bootstraps; each demo's attributes give num_samples and the outcome.
    """
    arrays, attrs, slices = _exportable(path, exclude_errors)
    obs = np.asarray(arrays['observations'])
    next_obs = np.asarray(arrays.get('next_observations', obs))
    segments = _layout_segments(attrs, obs.shape[1])
    data, group_attrs = {}, {}
    for i, rows in enumerate(slices):
        demo = 'data/demo_%d' % i
        for name, a, b in segments:
            data['%s/obs/%s' % (demo, name)] = obs[rows, a:b]
            data['%s/next_obs/%s' % (demo, name)] = next_obs[rows, a:b]
        data[demo + '/actions'] = np.asarray(arrays['actions'][rows])
        data[demo + '/rewards'] = np.asarray(arrays['rewards'][rows])
        data[demo + '/dones'] = np.asarray(arrays['terminals'][rows]).astype(np.int64)
        data[demo + '/timeouts'] = np.asarray(arrays['timeouts'][rows]).astype(np.int64)
        group_attrs[demo] = {'num_samples': rows.stop - rows.start, 'outcome': rows_outcome(arrays, rows),
                             'source_rows': np.array([rows.start, rows.stop], np.int64)}
    train, valid = robomimic_split(['demo_%d' % i for i in range(len(slices))])
    data['mask/train'] = np.array(train, dtype='S')
    data['mask/valid'] = np.array(valid, dtype='S')
    env_args = {'env_name': str(section('data.yaml', 'export.robomimic')['env_name']), 'type': ROBOMIMIC_GYM_TYPE,
                'env_kwargs': {}}
    group_attrs['data'] = {'total': int(sum(s.stop - s.start for s in slices)), 'env_args': json.dumps(env_args),
                           'source_file': str(path), schema.ATTR_OBS_LAYOUT: attrs.get(
                               schema.ATTR_OBS_LAYOUT, schema.obs_layout_json([('flat', 0, obs.shape[1])]))}
    for key in (schema.ATTR_SOURCE, schema.ATTR_POLICY):
        group_attrs['data'][key] = str(_jsonable(attrs.get(key, '')))
    check_output_path(out, append=True)
    write_hdf5_atomically(out, data, {}, group_attrs=group_attrs)


def robomimic_split(demos):
    """(train, valid) demo names as robomimic's split_train_val does it: int(valid_ratio * n) demos drawn at
    random for validation (repeatably: config/data.yaml export.robomimic.split_seed), in name order."""
    cfg = section('data.yaml', 'export.robomimic')
    ratio = float(cfg['valid_ratio'])
    if not 0.0 <= ratio < 1.0:
        raise ValueError('config/data.yaml export.robomimic.valid_ratio must be in [0, 1), got %r' % ratio)
    valid_rows = set(np.random.default_rng(int(cfg['split_seed'])).permutation(len(demos))[:int(ratio * len(demos))])
    train = [d for i, d in enumerate(demos) if i not in valid_rows]
    valid = [d for i, d in enumerate(demos) if i in valid_rows]
    return train, valid


# -- command line ------------------------------------------------------------------------------------------
def _print_info(summary):
    print('%s' % summary['file'])
    print('  transitions %d, episodes %d (timeout %d, terminal %d, error %d%s)' % (
        summary['transitions'], summary['episodes'], summary['outcomes']['timeout'], summary['outcomes']['terminal'],
        summary['outcomes']['error'], ', unfinished %d' % summary['outcomes'][OPEN] if summary['outcomes'][OPEN]
        else ''))
    print('  success rate %.3f (episodes that held the edge to the time limit without a fault)'
          % summary['success_rate'])
    print('  return mean %.4f min %.4f max %.4f; mean length %.1f' % (
        summary['return_mean'], summary['return_min'], summary['return_max'], summary['length_mean']))
    print('  obs_dim %d, act_dim %d; infos: %s' % (summary['obs_dim'], summary['act_dim'],
                                                  ', '.join(summary['infos']) or '-'))
    for key, value in sorted(summary['attrs'].items()):
        text = str(value)
        if '\n' in text or len(text) > 100:
            text = '%d characters, first line: %s' % (len(text), text.splitlines()[0][:80] if text else '')
        print('  attr %s: %s' % (key, text))


def build_parser():
    parser = argparse.ArgumentParser(prog='python -m plas_ros.data', description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='command', required=True)
    info = sub.add_parser('info', help='episodes, transitions, returns, success rate, attributes')
    info.add_argument('files', nargs='+')
    info.add_argument('--json', action='store_true', help='one JSON object per file')
    check = sub.add_parser('validate', help='exit non-zero naming the file, key and problem of a bad file')
    check.add_argument('files', nargs='+')
    check.add_argument('--obs-dim', type=int)
    check.add_argument('--act-dim', type=int)
    join = sub.add_parser('merge', help='concatenate files into a new one')
    join.add_argument('files', nargs='+')
    join.add_argument('-o', '--output', required=True)
    join.add_argument('--force', action='store_true', help='replace an existing output file')
    export = sub.add_parser('export', help='export to d3rlpy (.npz/.h5) or a robomimic-style HDF5 file')
    export.add_argument('file')
    export.add_argument('--format', choices=('d3rlpy', 'robomimic'), required=True)
    export.add_argument('-o', '--output', required=True)
    export.add_argument('--exclude-errors', action='store_true', help='leave out episodes that ended on a fault')
    draw = sub.add_parser('plot', help='draw one episode (tactile strip, forces, tip, gripper, reward) as an image')
    draw.add_argument('file')
    draw.add_argument('--episode', type=int, default=0, help='0-based, in file order (-1: the last); default 0')
    draw.add_argument('-o', '--output', required=True, help='image file (.png, .svg, .pdf: by its name)')
    return parser


def run(args):
    if args.command == 'info':
        for path in args.files:
            summary = summarize(path)
            print(json.dumps(summary)) if args.json else _print_info(summary)
    elif args.command == 'validate':
        for path in args.files:
            arrays, _ = validate(path, args.obs_dim, args.act_dim)
            print('%s: valid (%d transitions, %d episodes)' % (path, len(arrays['rewards']),
                                                               len(_slices(arrays))))
    elif args.command == 'merge':
        summary = merge(args.files, args.output, args.force)
        print('%s: %d transitions, %d episodes from %d files' % (args.output, summary['transitions'],
                                                                 summary['episodes'], len(args.files)))
    elif args.command == 'export':
        if args.format == 'd3rlpy':
            print('wrote %s; load it with:\n%s' % (args.output, export_d3rlpy(args.file, args.output,
                                                                               args.exclude_errors)))
        else:
            export_robomimic(args.file, args.output, args.exclude_errors)
            print('wrote %s (robomimic dataset: one group per episode under data/, mask/train and mask/valid)'
                  % args.output)
    elif args.command == 'plot':
        drawn = plot_episode(args.file, args.episode, args.output)
        print('wrote %s: episode %d, %d steps, return %.4f, %s' % (args.output, drawn.index, drawn.steps,
                                                                  drawn.rewards.sum(), drawn.outcome))
    return 0


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (schema.DatasetError, OutputError, ValueError, OSError) as exc:
        print('error: %s' % exc, file=sys.stderr)
        return 1
