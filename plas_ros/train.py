"""Command-line trainer: python -m plas_ros.train --dataset A.h5 [B.h5 ...] --algo plas --config PRESET --out DIR

Trains one seed (--seed N, checkpoint in DIR) or several at once in batched networks (--seeds 0,1,2,
checkpoints in DIR/seed_<n>); TensorBoard events go to <checkpoint>/tb; DIR/run.json records the run.
`--set KEY=VALUE` changes a setting of the algorithm, `--save-every N` saves the full training state that
`--resume DIR` continues, `--vae-from DIR` reuses a trained CVAE. Ends with one summary line.
"""
import argparse
import os
import sys

import torch
import yaml

from plas_ros import normaliser
from plas_ros.algos.base import Algorithm
from plas_ros.algos.config import ALGOS, CVAE_ALGOS, fields_of, list_fields, load_config
from plas_ros.algos.devices import resolve_device
from plas_ros.algos.run_record import RunRecord, dataset_records, file_sha256
from plas_ros.algos.train_state import load_state, state_path
from plas_ros.algos.trainer import Trainer, seed_dirs, summary_line
from plas_ros.config import ConfigError, lookup
from plas_ros.data.loader import load_datasets
from plas_ros.data.schema import DatasetError
from plas_ros.env.evaluation import Evaluator, load_env_factory
from plas_ros.policy import read_checkpoint_config, read_model

CONFIG_FILE = 'train.yaml'
# The options that set one field of the configuration each (--set sets any other).
FIELD_OPTIONS = ('steps', 'vae_steps', 'batch_size', 'log_every', 'eval_every', 'eval_episodes', 'threads')


def parse_seeds(text):
    try:
        seeds = [int(s) for s in text.split(',') if s.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError('--seeds expects integers separated by commas, got %r' % text) from exc
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError('--seeds needs distinct integers, got %r' % text)
    return seeds


def parse_setting(text):
    key, sep, value = text.partition('=')
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError('--set expects KEY=VALUE (e.g. actor_lr=3e-4, actor_hidden=400,300), '
                                         'got %r' % text)
    return key.strip(), value.strip()


def build_parser():
    p = argparse.ArgumentParser(prog='python -m plas_ros.train', description=__doc__.splitlines()[0])
    p.add_argument('--dataset', nargs='+', required=True, help='HDF5 files (D4RL layout), concatenated')
    p.add_argument('--algo', choices=ALGOS, required=True)
    p.add_argument('--config', help='preset YAML (config/train_robot.yaml, config/train_mujoco.yaml); resolution: '
                   'config/train.yaml defaults < its <algo> section < the preset < its <algo> section < options')
    p.add_argument('--out', help='checkpoint directory (default with --resume: the resumed one)')
    p.add_argument('--seed', type=int, default=None, help='one seed (default 0)')
    p.add_argument('--seeds', type=parse_seeds, default=None, help='several seeds trained together, e.g. 0,1,2')
    p.add_argument('--steps', type=int, help='policy updates (overrides the preset)')
    p.add_argument('--vae-steps', type=int, help='phase-1 CVAE updates of plas and plas_p (overrides the preset)')
    p.add_argument('--batch-size', type=int)
    p.add_argument('--log-every', type=int, help='steps between TensorBoard scalars')
    p.add_argument('--set', dest='settings', metavar='KEY=VALUE', type=parse_setting, action='append', default=[],
                   help='a setting of the algorithm over the preset, e.g. --set actor_lr=1e-3 --set '
                   'critic_hidden=400,300 (keys: its fields, config/algos; ranges: config/train.yaml ranges)')
    p.add_argument('--eval-env', help='MODULE:FACTORY returning a gymnasium env, e.g. plas_ros.sim.gym_env:make_env')
    p.add_argument('--eval-every', type=int, help='policy steps between evaluations')
    p.add_argument('--eval-episodes', type=int)
    p.add_argument('--threads', type=int, help='torch threads (default: torch decides)')
    p.add_argument('--device', help='cpu, cuda, cuda:N or auto (default: config/train.yaml run.device)')
    p.add_argument('--save-every', type=int, help='updates between full training states in DIR/train_state.pt '
                   '(default: config/train.yaml run.save_every; 0: none)')
    p.add_argument('--resume', metavar='DIR', help='continue the run whose training state is in DIR (give the '
                   'same dataset, algorithm, preset and settings)')
    p.add_argument('--vae-from', metavar='DIR', help='a plas/plas_p checkpoint (or multi-seed run) whose CVAE '
                   'this plas/plas_p run uses instead of training one (phase 1 skipped)')
    p.add_argument('--obs-dim', type=int, help='expected observation size (checked against the files)')
    p.add_argument('--act-dim', type=int, help='expected action size (checked against the files)')
    p.add_argument('--no-progress', action='store_true', help='no tqdm bar')
    p.add_argument('--obs-normalise', action='store_true', default=None,
                   help='train on observations normalised by the dataset\'s mean and std, stored with the policy '
                   '(default: config/train.yaml normaliser.enabled)')
    return p


def overrides(args):
    """The configuration fields the command line sets: the options of FIELD_OPTIONS and each --set (a key
    the algorithm does not take, or one given twice: ValueError naming the valid keys)."""
    given = {name: getattr(args, name) for name in FIELD_OPTIONS if getattr(args, name) is not None}
    valid = [k for k in fields_of(args.algo) if k != 'algo']
    for key, value in args.settings:
        if key not in valid:
            raise ValueError('--set %s: %s has no setting %r; valid keys: %s' % (key, args.algo, key, ', '.join(valid)))
        if key in given:
            raise ValueError('--set %s: %s is given twice' % (key, key))
        given[key] = setting_value(key, value, args.algo)
    return given


def setting_value(key, text, algo):
    """'400,300' or '[400, 300]' for a list field; YAML's reading of a scalar ('3e-4' stays a string, which the
    configuration converts to the field's number type)."""
    if key in list_fields(algo):
        return [part.strip() for part in text.strip('[]').split(',') if part.strip()]
    try:
        return yaml.safe_load(text) if text else text
    except yaml.YAMLError:
        return text


def output_dir(args) -> str:
    if args.resume and args.out and os.path.abspath(args.out) != os.path.abspath(args.resume):
        raise ValueError('--resume %s with --out %s: a run resumes in its own folder' % (args.resume, args.out))
    out = args.resume or args.out
    if not out:
        raise ValueError('give --out DIR (or --resume DIR)')
    return out


def cvae_from(directory, cfg, dataset, seeds, obs_normaliser=None):
    """(the stacked CVAE state for `seeds`, its record for run.json) from the checkpoint DIR (one CVAE for
    every seed) or the multi-seed run DIR (DIR/seed_<n> for seed n); each must have seen observations
    normalised as this run's (`obs_normaliser`, None: raw)."""
    if cfg.algo not in CVAE_ALGOS:
        raise ValueError('--vae-from: %s trains no separate CVAE (only %s take one)'
                         % (cfg.algo, ', '.join(CVAE_ALGOS)))
    single = os.path.isfile(os.path.join(directory, 'config.yaml'))
    folders = [directory] * len(seeds) if single else [os.path.join(directory, 'seed_%d' % s) for s in seeds]
    states, sources = [], []
    for folder in folders:
        config = read_checkpoint_config(folder)
        check_cvae_fits(folder, config, cfg, dataset)
        model = read_model(folder)
        normaliser.check_same(obs_normaliser, folder, config, model)
        modules = model['modules']
        if 'cvae' not in modules:
            raise ValueError('--vae-from %s: its weights hold no CVAE' % folder)
        states.append(modules['cvae'])
        sources.append({'checkpoint': os.path.abspath(folder), 'seed': config.get('seed'), 'algo': config['algo'],
                        'model_sha256': file_sha256(os.path.join(folder, 'model.pt')),
                        'datasets': config.get('datasets', [])})
    return Algorithm.stack_seed_states(states), {'dir': os.path.abspath(directory), 'checkpoints': sources}


def check_cvae_fits(folder, config, cfg, dataset):
    problems = []
    if config['algo'] not in CVAE_ALGOS:
        problems.append('it is a %s checkpoint (a CVAE comes from %s)' % (config['algo'], ', '.join(CVAE_ALGOS)))
    for name, ours in (('obs_dim', dataset.obs_dim), ('act_dim', dataset.act_dim)):
        if int(config[name]) != int(ours):
            problems.append('its %s is %s, the dataset\'s %d' % (name, config[name], ours))
    hidden = config.get('train', {}).get('vae_hidden')
    if hidden is not None and [int(h) for h in hidden] != list(cfg.vae_hidden):
        problems.append('its vae_hidden is %s, this run\'s %s' % (hidden, cfg.vae_hidden))
    for name, ours in (('action_low', dataset.action_low), ('action_high', dataset.action_high)):
        if [float(v) for v in config[name]] != [float(v) for v in ours]:
            problems.append('its %s is %s, the dataset\'s %s' % (name, config[name], [float(v) for v in ours]))
    if problems:
        raise ValueError('--vae-from %s: the CVAE does not fit this run: %s' % (folder, '; '.join(problems)))


def prepare(args, seeds, out):
    """Everything checked before anything is written: (trainer, evaluator, run record)."""
    cfg = load_config(args.config, overrides_label='command line', algo=args.algo, **overrides(args))
    device = resolve_device(args.device or lookup(CONFIG_FILE, 'run.device'))
    save_every = args.save_every if args.save_every is not None else int(lookup(CONFIG_FILE, 'run.save_every'))
    if save_every < 0:
        raise ValueError('--save-every must be >= 0, got %d' % save_every)
    dataset = load_datasets(args.dataset, obs_dim=args.obs_dim, act_dim=args.act_dim)
    datasets = dataset_records(args.dataset)
    resume = load_state(out) if args.resume else None
    if resume is not None and args.vae_from:
        raise ValueError('--vae-from with --resume: the training state already holds the CVAE')
    evaluator = None
    if args.eval_env:
        # gamma scores the critic against the returns; behaviour cloning has neither critic nor gamma.
        evaluator = Evaluator(load_env_factory(args.eval_env), episodes=max(cfg.eval_episodes, 1),
                              gamma=getattr(cfg, 'gamma', None), seed=seeds[0])
    evaluator, obs_normaliser = normaliser.prepare(args.obs_normalise, dataset, evaluator)
    cvae_state, vae_from = (cvae_from(args.vae_from, cfg, dataset, seeds, obs_normaliser) if args.vae_from
                            else (None, None))
    if resume is not None:
        vae_from = resume.get('extra', {}).get('vae_from')
    out_dirs = seed_dirs(out, seeds, multi=args.seeds is not None)
    record = RunRecord(out, command={'argv': [sys.executable, '-m', 'plas_ros.train'] + list(args.argv),
                                     'cwd': os.getcwd()},
                       config=cfg.to_dict(), preset=os.path.abspath(args.config) if args.config else None,
                       datasets=datasets, seeds=seeds, device=str(device), checkpoints=out_dirs,
                       save_every=save_every, train_state=state_path(out) if save_every else None,
                       vae_from=vae_from, obs_normaliser=obs_normaliser is not None, resumes=[], progress=None,
                       evaluation=[], summary=None)
    trainer = Trainer(cfg, dataset, seeds, out_dirs, evaluator=evaluator, progress=not args.no_progress,
                      cvae_state=cvae_state, device=device, save_every=save_every, state_dir=out, resume=resume,
                      datasets=datasets, record=record, state_extra={'vae_from': vae_from},
                      obs_normaliser=None if obs_normaliser is None else obs_normaliser.tensors())
    if resume is not None:
        record.load_previous()
        record.data['resumes'].append({'phase': resume['phase'], 'step': int(resume['step'])})
    return trainer, evaluator, record


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    if args.seed is not None and args.seeds is not None:
        sys.exit('error: give --seed or --seeds, not both')
    seeds = args.seeds or [0 if args.seed is None else args.seed]
    try:
        out = output_dir(args)
        trainer, evaluator, record = prepare(args, seeds, out)
    except (DatasetError, ConfigError, ValueError, OSError, ImportError) as exc:
        sys.exit('error: %s' % exc)
    cfg, dataset = trainer.cfg, trainer.dataset
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    print('run record: %s' % record.write(), flush=True)
    where = ('resuming from %s at %s step %d' % (state_path(out), trainer.phase, trainer.step)
             if args.resume else 'training')
    print('%s %s on %d transitions (%d episodes, obs %d, act %d) from %s, seeds %s, device %s'
          % (where, cfg.algo, dataset.size, dataset.num_episodes, dataset.obs_dim, dataset.act_dim,
             ', '.join(dataset.sources), ','.join(map(str, seeds)), trainer.device), flush=True)
    try:
        summary = trainer.run()
    except BaseException as exc:  # the record says how the run ended, then the error goes on
        status = 'interrupted' if isinstance(exc, KeyboardInterrupt) else 'failed'
        record.update(status=status, error='%s: %s' % (type(exc).__name__, exc))
        raise
    finally:
        if evaluator is not None:
            evaluator.close()
    print(summary_line(summary), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
