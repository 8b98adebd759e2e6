"""Training throughput of plas_ros's PLAS under three Adam implementations, measured in the same run.

    python bench/adam_variants.py [--threads 1] [--repeats 5] [--scale 1.0]

Variants: `private`, plas_ros.algos.nets.FusedAdam (one bare call of the private op torch._fused_adam_, what
make_adam returns); `fused`, torch.optim.Adam(fused=True) (the same kernel, bit-identical results);
`foreach`, torch.optim.Adam(foreach=True).
Each repeat trains PLAS on the robot preset (config/train_robot.yaml, 89-d observations, 2-d actions, the
synthetic data of bench/train_throughput.py) once per variant, in a rotating order, in this one process; the
script prints the median gradient updates per second of each phase (CVAE, then actor/critic), each
variant's ratio to `fused` and the median of the per-round ratios (each round's runs follow one another, so
load changes between rounds cancel there). Then the optimiser alone (step and zero_grad over the CVAE's, the
critic's and the actor's parameters, the gradients put in place by the script), as microseconds per step.
Timings on a shared machine are noisy: compare the ratios, not the absolute figures.
"""
import argparse
import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'bench'))

import torch  # noqa: E402
from train_throughput import PRESETS, run_ours  # noqa: E402

from plas_ros.algos.nets import FusedAdam  # noqa: E402

VARIANTS = {
    'private': lambda params, lr: FusedAdam(params, lr),
    'fused': lambda params, lr: torch.optim.Adam(params, lr=lr, fused=True),
    'foreach': lambda params, lr: torch.optim.Adam(params, lr=lr, foreach=True),
}


def use_variant(name):
    """Point every algorithm module's make_adam at one variant."""
    from plas_ros.algos import base, bc, bcq, bear, nets, plas, td3
    for module in (base, bc, bcq, bear, nets, plas, td3):
        module.make_adam = VARIANTS[name]


def step_micro(name, repeats, steps):
    """Median microseconds per step + zero_grad over the robot preset's CVAE, critic and actor parameters."""
    from plas_ros.algos.config import load_config
    from plas_ros.algos.plas import PLAS
    preset, obs_dim, act_dim = PRESETS['robot'][:3]
    cfg = load_config(os.path.join(ROOT, preset), algo='plas')
    algo = PLAS(cfg, obs_dim, act_dim, -torch.ones(act_dim), torch.ones(act_dim))
    modules = {'cvae': algo.cvae, 'critic': algo.critic, 'actor': algo.actor}
    out = {}
    for label, module in modules.items():
        params = list(module.parameters())
        grads = [torch.randn_like(p) * 1e-3 for p in params]
        optimizer = VARIANTS[name](params, 1e-4)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(steps):
                for p, g in zip(params, grads):
                    p.grad = g
                optimizer.step()
                optimizer.zero_grad()
            times.append((time.perf_counter() - start) / steps * 1e6)
        out[label] = statistics.median(times)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=5, help='rounds; each trains once with every variant')
    parser.add_argument('--scale', type=float, default=1.0, help='multiplies the step counts')
    parser.add_argument('--variants', default='private,fused,foreach')
    args = parser.parse_args()
    names = args.variants.split(',')
    torch.set_num_threads(args.threads)
    preset, obs_dim, act_dim, n, vae_steps, policy_steps = PRESETS['robot']
    spec = {'preset': preset, 'obs_dim': obs_dim, 'act_dim': act_dim, 'n': n, 'threads': args.threads, 'clock': 'cpu',
            'vae_steps': max(1, int(vae_steps * args.scale)), 'policy_steps': max(1, int(policy_steps * args.scale))}
    print('torch %s; load average before: %.2f %.2f %.2f' % ((torch.__version__,) + os.getloadavg()))
    rates = {name: {'vae': [], 'policy': []} for name in names}
    for round_ in range(args.repeats):
        order = names[round_ % len(names):] + names[:round_ % len(names)]
        for name in order:
            use_variant(name)
            for phase, rate in run_ours(spec, [0]).items():
                rates[name][phase].append(rate)
    micro = {}
    for round_ in range(args.repeats):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            for label, us in step_micro(name, 3, 200).items():
                micro.setdefault(name, {}).setdefault(label, []).append(us)

    reference = 'fused' if 'fused' in names else names[0]
    print('\n[robot] %s, %d CVAE + %d policy steps, %d thread(s), %d rounds; medians, ratio to %s'
          % (preset, spec['vae_steps'], spec['policy_steps'], args.threads, args.repeats, reference))
    print('  %-8s %-8s %10s %8s %12s   %s' % ('phase', 'variant', 'upd/s', 'ratio', 'paired ratio', 'all rounds'))
    for phase in ('vae', 'policy'):
        ref = statistics.median(rates[reference][phase])
        for name in names:
            med = statistics.median(rates[name][phase])
            paired = statistics.median(r / q for r, q in zip(rates[name][phase], rates[reference][phase]))
            print('  %-8s %-8s %10.0f %7.3fx %11.3fx   %s' % (phase, name, med, med / ref, paired,
                                                             ' '.join('%.0f' % r for r in rates[name][phase])))
    print('\n  optimiser alone, median us per step + zero_grad (ratio of time to %s)' % reference)
    for label in ('cvae', 'critic', 'actor'):
        ref = statistics.median(micro[reference][label])
        print('  %-8s %s' % (label, '   '.join('%s %6.1f (%.2fx)' % (name, statistics.median(micro[name][label]),
                                                                     statistics.median(micro[name][label]) / ref)
                                             for name in names)))
    print('\nload average after: %.2f %.2f %.2f' % os.getloadavg())


if __name__ == '__main__':
    main()
