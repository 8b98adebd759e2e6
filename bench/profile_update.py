"""Where one gradient update's time goes: a torch.profiler breakdown of PLAS's update on the robot preset.

    python bench/profile_update.py [--seeds 1,3] [--phase policy|vae] [--algo plas] [--rounds 6] [--steps 30]

For each seed count it builds the algorithm on the synthetic data of bench/train_throughput.py, times the update
by CPU time (best of `--rounds` windows of `--steps` updates), then profiles `--rounds` windows and keeps each
operator's smallest time per update (the window least disturbed by other processes). It prints the time per
update, the operators per update, and the profiled time by kind: matrix products, the bias and broadcast copies,
elementwise operators, reductions, sampling, the optimiser and soft update, autograd's own bookkeeping, and the
rest (views, Python-side operators). A diagnostic for doc/training.md, not a benchmark: the speed claims and
their targets are bench/train_throughput.py's.
"""
import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'bench'))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402
from train_throughput import PRESETS, synthetic_data  # noqa: E402

from plas_ros.algos.config import load_config  # noqa: E402
from plas_ros.algos.registry import build_algorithm  # noqa: E402
from plas_ros.algos.trainer import TransitionSampler  # noqa: E402
from plas_ros.data.loader import Dataset  # noqa: E402

KINDS = (
    ('matrix products', ('aten::bmm', 'aten::baddbmm', 'aten::mm', 'aten::addmm')),
    ('copies (bias, broadcast)', ('aten::copy_', 'aten::clone', 'aten::_to_copy')),
    ('elementwise', ('aten::relu_', 'aten::clamp_min_', 'aten::relu', 'aten::clamp_min', 'aten::threshold_backward',
                     'aten::tanh', 'aten::tanh_backward', 'aten::mul', 'aten::div', 'aten::add', 'aten::sub',
                     'aten::addcmul', 'aten::lerp', 'aten::maximum', 'aten::minimum', 'aten::neg', 'aten::pow',
                     'aten::exp', 'aten::clamp', 'aten::mse_loss', 'aten::mse_loss_backward', 'aten::fill_')),
    ('reductions', ('aten::sum', 'aten::mean', 'aten::amax')),
    ('sampling', ('aten::index_select', 'aten::randint', 'aten::random_', 'aten::randn', 'aten::normal_')),
    ('optimiser, soft update', ('aten::_fused_adam_', 'aten::_foreach_add_', 'aten::_foreach_lerp_', 'aten::lerp_',
                                'aten::add_')),
)


def kind_of(name):
    for kind, names in KINDS:
        if name in names:
            return kind
    if name.startswith('autograd::') or 'Backward' in name or name.startswith('torch::autograd'):
        return 'autograd bookkeeping'
    return 'views, allocation, other'


def build(phase, algo_name, seeds):
    preset, obs_dim, act_dim, n = PRESETS['robot'][:4]
    obs, actions, rewards, terminals, timeouts = synthetic_data(obs_dim, act_dim, n)
    ends = timeouts.astype(bool)
    dataset = Dataset(obs, actions, rewards, np.roll(obs, -1, 0), terminals.astype(bool), ends, ends, ~ends,
                      -np.ones(act_dim, np.float32), np.ones(act_dim, np.float32))
    cfg = load_config(os.path.join(ROOT, preset), algo=algo_name)
    torch.manual_seed(0)
    algo = build_algorithm(cfg, obs_dim, act_dim, dataset.action_low, dataset.action_high, seeds)
    sampler = TransitionSampler(dataset, seeds, cfg.batch_size)
    if phase == 'vae':
        return lambda: algo.vae_update(sampler.state_actions())
    if cfg.needs_cvae:
        algo.freeze_cvae()
    return lambda: algo.update(sampler.transitions())


def cpu_time_per_update(step, rounds, steps):
    best = float('inf')
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(steps):
            step()
        best = min(best, (time.process_time() - start) / steps)
    return best * 1e6


def profile_kinds(step, rounds, steps):
    """({kind: us per update}, operators per update): each operator's least time over the rounds."""
    least, calls = {}, {}
    for _ in range(rounds):
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                step()
        for event in prof.key_averages():
            least[event.key] = min(least.get(event.key, float('inf')), event.self_cpu_time_total / steps)
            calls[event.key] = event.count / steps
    kinds = {}
    for name, us in least.items():
        kinds[kind_of(name)] = kinds.get(kind_of(name), 0.0) + us
    return kinds, sum(c for name, c in calls.items() if name.startswith('aten::'))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seeds', default='1,3', help='seed counts to profile, e.g. 1,3')
    parser.add_argument('--phase', choices=('policy', 'vae'), default='policy')
    parser.add_argument('--algo', default='plas')
    parser.add_argument('--rounds', type=int, default=6)
    parser.add_argument('--steps', type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)  # as the trainer does
    print('torch %s, 1 thread; load average %.2f %.2f %.2f' % ((torch.__version__,) + os.getloadavg()))
    columns = {}
    for count in (int(c) for c in args.seeds.split(',')):
        step = build(args.phase, args.algo, list(range(count)))
        for _ in range(20):
            step()
        total = cpu_time_per_update(step, args.rounds, args.steps)
        kinds, ops = profile_kinds(step, args.rounds, args.steps)
        columns['%d seed%s' % (count, 's' if count > 1 else '')] = (total, ops, kinds)
    names = [kind for kind, _ in KINDS] + ['autograd bookkeeping', 'views, allocation, other']
    print('\n%s %s update, robot preset (us per update; profiled, least of %d rounds)'
          % (args.algo, args.phase, args.rounds))
    print('  %-28s' % '' + ''.join('%12s' % label for label in columns))
    print('  %-28s' % 'CPU time (not profiled)' + ''.join('%12.0f' % c[0] for c in columns.values()))
    print('  %-28s' % 'aten operators' + ''.join('%12.0f' % c[1] for c in columns.values()))
    for name in names:
        print('  %-28s' % name + ''.join('%12.0f' % c[2].get(name, 0.0) for c in columns.values()))


if __name__ == '__main__':
    main()
