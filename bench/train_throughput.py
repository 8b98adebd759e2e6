"""Training throughput of plas_ros's PLAS against d3rlpy 2.8.1's PLAS, measured in the same run.

    ./bench/setup_bench_venv.sh              # once: .venv-bench with d3rlpy (never in the project's .venv)
    python bench/train_throughput.py [--threads 1] [--repeats 1] [--scale 1.0]

For each preset (robot: config/train_robot.yaml on 89-d observations and 2-d actions; MuJoCo:
config/train_mujoco.yaml on 17-d observations and 6-d actions, HalfCheetah's sizes), both libraries train PLAS
on the same synthetic data with the same hyperparameters, one after the other, and the script prints the
gradient updates per second of each phase (CVAE, then actor/critic) and the ratio ours / d3rlpy; then the
same with three seeds in one process (--seeds 0,1,2 in the trainer), as the cost relative to one seed.
d3rlpy runs in a child process of .venv-bench/bin/python (this same file, --peer). Timings on a shared
machine are noisy: compare the ratios, which are measured under the same load, not the absolute figures.
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_PYTHON = os.path.join(ROOT, '.venv-bench', 'bin', 'python')

# name -> (preset file, obs_dim, act_dim, transitions, CVAE steps, policy steps) at --scale 1.
PRESETS = {
    'robot': ('config/train_robot.yaml', 89, 2, 20000, 3000, 1500),
    'mujoco': ('config/train_mujoco.yaml', 17, 6, 100000, 600, 400),
}


def synthetic_data(obs_dim, act_dim, n, seed=0):
    """Identical arrays in both processes: random observations and actions, 100-step episodes (timeouts)."""
    import numpy as np
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, obs_dim)).astype(np.float32)
    actions = rng.uniform(-1, 1, (n, act_dim)).astype(np.float32)
    rewards = rng.normal(size=n).astype(np.float32)
    terminals = np.zeros(n, dtype=np.float32)
    timeouts = np.zeros(n, dtype=np.float32)
    timeouts[99::100] = 1.0
    return obs, actions, rewards, terminals, timeouts


# ---------------------------------------------------------------- d3rlpy (runs inside .venv-bench)
def run_d3rlpy(spec):
    import d3rlpy
    import torch
    torch.set_num_threads(spec['threads'])
    obs, actions, rewards, terminals, timeouts = synthetic_data(spec['obs_dim'], spec['act_dim'], spec['n'])
    dataset = d3rlpy.dataset.MDPDataset(obs, actions, rewards, terminals, timeouts)
    hp = spec['hp']
    config = d3rlpy.algos.PLASConfig(
        actor_learning_rate=hp['actor_lr'], critic_learning_rate=hp['critic_lr'],
        imitator_learning_rate=hp['vae_lr'], batch_size=hp['batch_size'], gamma=hp['gamma'], tau=hp['tau'],
        lam=hp['lmbda'], n_critics=2, warmup_steps=spec['vae_steps'], beta=hp['vae_kl_weight'],
        actor_encoder_factory=d3rlpy.models.VectorEncoderFactory(hidden_units=hp['actor_hidden']),
        critic_encoder_factory=d3rlpy.models.VectorEncoderFactory(hidden_units=hp['critic_hidden']),
        imitator_encoder_factory=d3rlpy.models.VectorEncoderFactory(hidden_units=hp['vae_hidden']))
    algo = config.create(device='cpu:0')
    marks = {}

    def callback(_algo, _epoch, total_step):
        if total_step == spec['vae_steps']:
            marks['vae_end'] = time.perf_counter()

    total = spec['vae_steps'] + spec['policy_steps']
    start = time.perf_counter()
    algo.fit(dataset, n_steps=total, n_steps_per_epoch=total, experiment_name='bench', with_timestamp=False,
             logger_adapter=d3rlpy.logging.NoopAdapterFactory(), show_progress=False, save_interval=10 ** 9,
             callback=callback)
    end = time.perf_counter()
    return {'vae': spec['vae_steps'] / (marks['vae_end'] - start),
            'policy': spec['policy_steps'] / (end - marks['vae_end'])}


# ---------------------------------------------------------------- plas_ros (runs in the project's .venv)
def run_ours(spec, seeds):
    import tempfile

    import numpy as np
    import torch

    from plas_ros.algos.config import load_config
    from plas_ros.algos.trainer import Trainer
    from plas_ros.data.loader import Dataset
    torch.set_num_threads(spec['threads'])
    obs, actions, rewards, terminals, timeouts = synthetic_data(spec['obs_dim'], spec['act_dim'], spec['n'])
    ends = timeouts.astype(bool)
    next_obs = np.roll(obs, -1, axis=0)
    dataset = Dataset(obs, actions, rewards, next_obs, terminals.astype(bool), ends, ends, ~ends,
                      -np.ones(spec['act_dim'], np.float32), np.ones(spec['act_dim'], np.float32))
    cfg = load_config(os.path.join(ROOT, spec['preset']), algo='plas', vae_steps=spec['vae_steps'],
                      steps=spec['policy_steps'], eval_every=0)
    with tempfile.TemporaryDirectory() as out:
        dirs = [os.path.join(out, str(s)) for s in seeds]
        trainer = Trainer(cfg, dataset, seeds, dirs, progress=False, tensorboard=False)
        return trainer.run()['rates']


def peer_main(spec_json):
    print(json.dumps(run_d3rlpy(json.loads(spec_json))))


def hyperparameters(preset):
    from plas_ros.algos.config import load_config
    cfg = load_config(os.path.join(ROOT, preset), algo='plas')
    keys = ('actor_lr', 'critic_lr', 'vae_lr', 'batch_size', 'gamma', 'tau', 'lmbda', 'vae_kl_weight',
            'actor_hidden', 'critic_hidden', 'vae_hidden')
    return {k: getattr(cfg, k) for k in keys}


def d3rlpy_rates(spec):
    if not os.path.exists(BENCH_PYTHON):
        sys.exit('no %s: run ./bench/setup_bench_venv.sh first' % BENCH_PYTHON)
    out = subprocess.run([BENCH_PYTHON, os.path.abspath(__file__), '--peer', json.dumps(spec)], cwd='/tmp',
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit('d3rlpy run failed:\n%s' % out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=1, help='alternate runs; the best rate of each is kept')
    parser.add_argument('--scale', type=float, default=1.0, help='multiplies the step counts')
    parser.add_argument('--presets', default='robot,mujoco')
    parser.add_argument('--peer', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        return peer_main(args.peer)
    sys.path.insert(0, ROOT)
    print('load average before: %.2f %.2f %.2f (2 cores, shared)' % os.getloadavg())
    for name in args.presets.split(','):
        preset, obs_dim, act_dim, n, vae_steps, policy_steps = PRESETS[name]
        spec = {'preset': preset, 'obs_dim': obs_dim, 'act_dim': act_dim, 'n': n, 'threads': args.threads,
                'vae_steps': max(1, int(vae_steps * args.scale)),
                'policy_steps': max(1, int(policy_steps * args.scale)),
                'hp': hyperparameters(preset)}
        best = {'d3rlpy': {}, 'ours': {}, 'ours x3 seeds': {}}
        for _ in range(args.repeats):
            for label, run, run_args in (('d3rlpy', d3rlpy_rates, (spec,)), ('ours', run_ours, (spec, [0])),
                                         ('ours x3 seeds', run_ours, (spec, [0, 1, 2]))):
                for phase, rate in run(*run_args).items():
                    best[label][phase] = max(rate, best[label].get(phase, 0.0))
        print('\n[%s] %s, obs %d, act %d, %d transitions, %d CVAE + %d policy steps, %d thread(s)'
              % (name, preset, obs_dim, act_dim, n, spec['vae_steps'], spec['policy_steps'], args.threads))
        print('  %-8s %14s %14s %8s %22s' % ('phase', 'd3rlpy upd/s', 'ours upd/s', 'ratio', '3 seeds: cost vs 1'))
        for phase in ('vae', 'policy'):
            d3, ours, three = best['d3rlpy'][phase], best['ours'][phase], best['ours x3 seeds'][phase]
            print('  %-8s %14.0f %14.0f %7.2fx %21.2fx' % (phase, d3, ours, ours / d3, ours / three))
    print('\nload average after: %.2f %.2f %.2f' % os.getloadavg())


if __name__ == '__main__':
    main()
