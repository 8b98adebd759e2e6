"""Command-line trainer: python -m plas_ros.train --dataset A.h5 [B.h5 ...] --algo plas --config PRESET --out DIR

Trains one seed (--seed N, checkpoint in DIR) or several at once in batched networks (--seeds 0,1,2,
checkpoints in DIR/seed_<n>); TensorBoard events go to <checkpoint>/tb. Ends with one summary line.
"""
import argparse
import sys

import torch

from plas_ros import normaliser
from plas_ros.algos.config import ALGOS, load_config
from plas_ros.algos.trainer import Trainer, seed_dirs, summary_line
from plas_ros.data.loader import load_datasets
from plas_ros.data.schema import DatasetError
from plas_ros.env.evaluation import Evaluator, load_env_factory


def parse_seeds(text):
    try:
        seeds = [int(s) for s in text.split(',') if s.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError('--seeds expects integers separated by commas, got %r' % text) from exc
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError('--seeds needs distinct integers, got %r' % text)
    return seeds


def build_parser():
    p = argparse.ArgumentParser(prog='python -m plas_ros.train', description=__doc__.splitlines()[0])
    p.add_argument('--dataset', nargs='+', required=True, help='HDF5 files (D4RL layout), concatenated')
    p.add_argument('--algo', choices=ALGOS, required=True)
    p.add_argument('--config', help='preset YAML (config/train_robot.yaml, config/train_mujoco.yaml); resolution: '
                   'config/train.yaml defaults < its <algo> section < the preset < its <algo> section < options')
    p.add_argument('--out', required=True, help='checkpoint directory')
    p.add_argument('--seed', type=int, default=None, help='one seed (default 0)')
    p.add_argument('--seeds', type=parse_seeds, default=None, help='several seeds trained together, e.g. 0,1,2')
    p.add_argument('--steps', type=int, help='policy updates (overrides the preset)')
    p.add_argument('--vae-steps', type=int, help='phase-1 CVAE updates of plas and plas_p (overrides the preset)')
    p.add_argument('--batch-size', type=int)
    p.add_argument('--log-every', type=int, help='steps between TensorBoard scalars')
    p.add_argument('--eval-env', help='MODULE:FACTORY returning a gymnasium env, e.g. plas_ros.sim.gym_env:make_env')
    p.add_argument('--eval-every', type=int, help='policy steps between evaluations')
    p.add_argument('--eval-episodes', type=int)
    p.add_argument('--threads', type=int, help='torch threads (default: torch decides)')
    p.add_argument('--obs-dim', type=int, help='expected observation size (checked against the files)')
    p.add_argument('--act-dim', type=int, help='expected action size (checked against the files)')
    p.add_argument('--no-progress', action='store_true', help='no tqdm bar')
    p.add_argument('--obs-normalise', action='store_true', default=None,
                   help='train on observations normalised by the dataset\'s mean and std, stored with the policy '
                   '(default: config/train.yaml normaliser.enabled)')
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.seed is not None and args.seeds is not None:
        sys.exit('error: give --seed or --seeds, not both')
    seeds = args.seeds or [0 if args.seed is None else args.seed]
    try:
        cfg = load_config(args.config, algo=args.algo, steps=args.steps, vae_steps=args.vae_steps,
                          batch_size=args.batch_size, log_every=args.log_every, eval_every=args.eval_every,
                          eval_episodes=args.eval_episodes, threads=args.threads)
        dataset = load_datasets(args.dataset, obs_dim=args.obs_dim, act_dim=args.act_dim)
        evaluator = None
        if args.eval_env:
            # gamma scores the critic against the returns; behaviour cloning has neither critic nor gamma.
            evaluator = Evaluator(load_env_factory(args.eval_env), episodes=max(cfg.eval_episodes, 1),
                                  gamma=getattr(cfg, 'gamma', None), seed=seeds[0])
        evaluator, obs_normaliser = normaliser.prepare(args.obs_normalise, dataset, evaluator)
    except (DatasetError, ValueError, OSError, ImportError) as exc:
        sys.exit('error: %s' % exc)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    print('training %s on %d transitions (%d episodes, obs %d, act %d) from %s, seeds %s'
          % (cfg.algo, dataset.size, dataset.num_episodes, dataset.obs_dim, dataset.act_dim,
             ', '.join(dataset.sources), ','.join(map(str, seeds))), flush=True)
    trainer = Trainer(cfg, dataset, seeds, seed_dirs(args.out, seeds, multi=args.seeds is not None),
                      evaluator=evaluator, progress=not args.no_progress)
    try:
        summary = trainer.run()
    finally:
        if evaluator is not None:
            evaluator.close()
    normaliser.store(obs_normaliser, summary['out_dirs'])
    print(summary_line(summary), flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
