"""Training throughput of plas_ros's PLAS against d3rlpy 2.8.1's PLAS, measured in the same run; exits 1 when a
ratio misses its target (TARGETS, the one place they are set).

    ./bench/setup_bench_venv.sh              # once: .venv-bench with d3rlpy (never in the project's .venv)
    python bench/train_throughput.py [--repeats 1] [--scale 1.0] [--clock cpu|wall] [--threads 1] [--presets ...]

For each preset (robot: config/train_robot.yaml on 89-d observations and 2-d actions; MuJoCo:
config/train_mujoco.yaml on 17-d observations and 6-d actions, HalfCheetah's sizes), both libraries train PLAS
on the same synthetic data with the same hyperparameters, one after the other, and the script prints the
gradient updates per second of each phase (CVAE, then actor/critic), the ratio ours / d3rlpy, then the same
with three seeds in one process (--seeds 0,1,2 in the trainer): its cost against one seed, and its aggregate
throughput (3 x its rate) against d3rlpy's one seed. d3rlpy runs in a child process of .venv-bench/bin/python
(this same file, --peer). Each repeat runs d3rlpy, ours and ours x3 in a rotating order; the best rate of each
is kept.

Clock: `cpu` (default) times each phase by the process's CPU time (time.process_time; one thread each, so it is
the time the update itself took), which other processes on a shared machine do not inflate; `wall` by
time.perf_counter, the same on a quiet machine. The load average is printed before and after.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from unittest import mock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_PYTHON = os.path.join(ROOT, '.venv-bench', 'bin', 'python')

# name -> (preset file, obs_dim, act_dim, transitions, CVAE steps, policy steps) at --scale 1.
PRESETS = {
    'robot': ('config/train_robot.yaml', 89, 2, 20000, 3000, 1500),
    'mujoco': ('config/train_mujoco.yaml', 17, 6, 100000, 600, 400),
}

# (preset, row) -> the least ratio that passes. 'vae' / 'policy': our one seed's updates/s over d3rlpy's;
# 'vae x3' / 'policy x3': three seeds in one process, their aggregate updates/s (3 x the stacked rate) over
# d3rlpy's one seed.
TARGETS = {
    ('robot', 'vae'): 4.0, ('robot', 'policy'): 4.0,
    ('robot', 'vae x3'): 8.0, ('robot', 'policy x3'): 8.0,
    ('mujoco', 'vae'): 1.6, ('mujoco', 'policy'): 1.6,
}
CLOCKS = {'cpu': time.process_time, 'wall': time.perf_counter}


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
    clock = CLOCKS[spec['clock']]

    def callback(_algo, _epoch, total_step):  # called after each update
        if total_step == 1:
            marks['first'] = clock()  # fit's own set-up (replay buffer, networks) stays out of the CVAE's time
        if total_step == spec['vae_steps']:
            marks['vae_end'] = clock()

    total = spec['vae_steps'] + spec['policy_steps']
    algo.fit(dataset, n_steps=total, n_steps_per_epoch=total, experiment_name='bench', with_timestamp=False,
             logger_adapter=d3rlpy.logging.NoopAdapterFactory(), show_progress=False, save_interval=10 ** 9,
             callback=callback)
    end = clock()
    return {'vae': max(1, spec['vae_steps'] - 1) / max(marks['vae_end'] - marks['first'], 1e-9),
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
        with mock.patch.object(time, 'perf_counter', CLOCKS[spec['clock']]):  # the trainer times its phases by it
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


def best_rates(spec, repeats):
    """{label: {phase: best updates/s}} for d3rlpy, ours and ours with three seeds, run in a rotating order."""
    runs = [('d3rlpy', d3rlpy_rates, (spec,)), ('ours', run_ours, (spec, [0])),
            ('ours x3 seeds', run_ours, (spec, [0, 1, 2]))]
    best = {label: {} for label, _, _ in runs}
    for repeat in range(repeats):
        for label, run, run_args in runs[repeat % 3:] + runs[:repeat % 3]:
            for phase, rate in run(*run_args).items():
                best[label][phase] = max(rate, best[label].get(phase, 0.0))
    return best


def verdict(name, row, ratio):
    target = TARGETS.get((name, row))
    if target is None:
        return '', True
    passed = ratio >= target
    return '>= %.1fx %s' % (target, 'ok' if passed else 'FAIL'), passed


def print_table(name, best):
    """One row per phase; returns whether every ratio with a target reached it."""
    print('  %-8s %13s %11s %8s %-12s %11s %11s %-12s' % ('phase', 'd3rlpy upd/s', 'ours upd/s', 'ratio', 'target',
                                                          '3 seeds/1', 'x3 vs d3', 'target'))
    passed = True
    for phase in ('vae', 'policy'):
        d3, ours, three = best['d3rlpy'][phase], best['ours'][phase], best['ours x3 seeds'][phase]
        one_text, one_ok = verdict(name, phase, ours / d3)
        three_text, three_ok = verdict(name, phase + ' x3', 3 * three / d3)
        passed = passed and one_ok and three_ok
        print('  %-8s %13.0f %11.0f %7.2fx %-12s %10.2fx %10.2fx %-12s'
              % (phase, d3, ours, ours / d3, one_text, ours / three, 3 * three / d3, three_text))
    return passed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=1, help='rotating runs; the best rate of each is kept')
    parser.add_argument('--scale', type=float, default=1.0, help='multiplies the step counts')
    parser.add_argument('--presets', default='robot,mujoco')
    parser.add_argument('--clock', choices=sorted(CLOCKS), default='cpu',
                        help='cpu: process CPU time (robust on a shared machine); wall: elapsed time')
    parser.add_argument('--peer', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        return peer_main(args.peer)
    sys.path.insert(0, ROOT)
    started = time.perf_counter()
    print('load average before: %.2f %.2f %.2f (%d cores); clock: %s'
          % (os.getloadavg() + (os.cpu_count(), args.clock)))
    passed = True
    for name in args.presets.split(','):
        preset, obs_dim, act_dim, n, vae_steps, policy_steps = PRESETS[name]
        spec = {'preset': preset, 'obs_dim': obs_dim, 'act_dim': act_dim, 'n': n, 'threads': args.threads,
                'vae_steps': max(1, int(vae_steps * args.scale)), 'clock': args.clock,
                'policy_steps': max(1, int(policy_steps * args.scale)),
                'hp': hyperparameters(preset)}
        best = best_rates(spec, args.repeats)
        print('\n[%s] %s, obs %d, act %d, %d transitions, %d CVAE + %d policy steps, %d thread(s), best of %d'
              % (name, preset, obs_dim, act_dim, n, spec['vae_steps'], spec['policy_steps'], args.threads,
                 args.repeats))
        passed = print_table(name, best) and passed
    print('\nload average after: %.2f %.2f %.2f; %.0f s' % (os.getloadavg() + (time.perf_counter() - started,)))
    print('PASS: every ratio reached its target' if passed else 'FAIL: a ratio missed its target (see above)')
    return 0 if passed else 1


if __name__ == '__main__':
    sys.exit(main())
