"""Policy updates per second of every algorithm on the robot preset, in one process, one thread.

    python bench/baselines_throughput.py [--steps 600] [--rounds 3] [--threads 1] [--algos plas,bear]

Each algorithm trains on the same synthetic data (89-d observations, 2-d actions, 20000 transitions, as
bench/train_throughput.py) with config/train_robot.yaml and its own settings; the phase-1 CVAE of PLAS and
PLAS+P is skipped (vae_steps 0), so every figure is the rate of the `update` step. The algorithms alternate
round by round and the script prints the median rate of each and its ratio to PLAS's, measured under the same
load (a shared machine makes the absolute figures noisy).
"""
import argparse
import os
import statistics
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def dataset(n=20000, obs_dim=89, act_dim=2):
    import numpy as np
    from train_throughput import synthetic_data

    from plas_ros.data.loader import Dataset
    obs, actions, rewards, terminals, timeouts = synthetic_data(obs_dim, act_dim, n)
    ends = timeouts.astype(bool)
    return Dataset(obs, actions, rewards, np.roll(obs, -1, axis=0), terminals.astype(bool), ends, ends, ~ends,
                   -np.ones(act_dim, np.float32), np.ones(act_dim, np.float32))


def rate(algo, data, steps):
    from plas_ros.algos.config import fields_of, load_config
    from plas_ros.algos.trainer import Trainer
    options = {'vae_steps': 0} if 'vae_steps' in fields_of(algo) else {}
    cfg = load_config(os.path.join(ROOT, 'config', 'train_robot.yaml'), algo=algo, steps=steps, eval_every=0,
                      **options)
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(cfg, data, [0], [out], progress=False, tensorboard=False)
        return trainer.run()['rates']['policy']


def main(argv=None):
    from plas_ros.algos.config import ALGOS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=600)
    parser.add_argument('--rounds', type=int, default=3)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--algos', default=','.join(ALGOS))
    args = parser.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    algos = args.algos.split(',')
    data = dataset()
    rates = {algo: [] for algo in algos}
    for _ in range(args.rounds):
        for algo in algos:
            rates[algo].append(rate(algo, data, args.steps))
    medians = {algo: statistics.median(r) for algo, r in rates.items()}
    print('robot preset, %d thread(s), %d policy updates x %d rounds' % (args.threads, args.steps, args.rounds))
    print('| algorithm | policy upd/s (median) | rounds | vs PLAS |')
    print('|---|---|---|---|')
    for algo in algos:
        versus = '%.2fx' % (medians[algo] / medians['plas']) if 'plas' in medians else ''
        print('| %s | %.0f | %s | %s |' % (algo, medians[algo], ' '.join('%.0f' % r for r in rates[algo]), versus))
    return 0


if __name__ == '__main__':
    sys.exit(main())
