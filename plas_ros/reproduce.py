"""Figure 3(c) of the PLAS paper reproduced in simulation: PLAS, PLAS+P, BC, offline TD3 and BCQ trained
on one cloth-sliding dataset shaped like the paper's, evaluated during training in the simulator.

    python -m plas_ros.reproduce --out out/reproduce            # the full run (minutes on 2 cores)
    python -m plas_ros.reproduce --out /tmp/r --quick            # a smoke run with tiny budgets

Writes into --out: dataset.h5, one checkpoint folder per algorithm and seed (with TensorBoard events),
figure_3c.png (mean and spread of the evaluation return against training step, expert and behaviour
levels as lines), results.md (the table) and results.json (every evaluation).
"""
import argparse
import dataclasses
import json
import os
import sys
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from plas_ros.algos.config import fields_of, load_config
from plas_ros.algos.trainer import Trainer, seed_dirs
from plas_ros.collect import collect
from plas_ros.collect.policies import load_collect_config, make_policy
from plas_ros.config import config_path, load_section
from plas_ros.data.loader import load_datasets
from plas_ros.env.evaluation import Evaluator
from plas_ros.sim.gym_env import make_env

LABELS = {'plas': 'PLAS', 'plas_p': 'PLAS+P', 'bc': 'BC', 'td3': 'Offline TD3', 'bcq': 'BCQ', 'bear': 'BEAR'}
LAST_EVALS = 5  # a 5-episode evaluation is noisy: the table also averages the last few
QUICK = {'behaviour_transitions': 600, 'expert_episodes': 2, 'seeds': [0, 1], 'steps': 60, 'vae_steps': 200,
         'eval_every': 30, 'eval_episodes': 2}


@dataclass
class Plan:
    """config/reproduce.yaml; the files it names are files of config/."""
    behaviour_transitions: int
    behaviour_config: str
    expert_episodes: int
    algos: List[str]
    seeds: List[int]
    train_config: str
    eval_seed: int
    # Budgets over the training preset's (absent: the preset's; --quick sets them).
    steps: Optional[int] = None
    vae_steps: Optional[int] = None
    eval_every: Optional[int] = None
    eval_episodes: Optional[int] = None


def load_plan(path, quick=False):
    """The plan as a dict (it goes into results.json), read strictly."""
    plan = dataclasses.asdict(load_section(Plan, os.path.abspath(path)))
    if quick:
        plan.update(QUICK)
    return plan


def build_dataset(path, plan, seed=0, progress=True):
    """The paper-shaped dataset: a mediocre behaviour's buffer, then a few expert episodes."""
    behaviour = load_collect_config(config_path(plan['behaviour_config']))
    collect(path, make_policy('schedule', config=behaviour, seed=seed), transitions=plan['behaviour_transitions'],
            seed=seed, policy_name='behaviour', progress=progress)
    collect(path, make_policy('expert', seed=seed + 1), episodes=plan['expert_episodes'],
            seed=seed + 1, policy_name='expert', progress=progress)


def expert_level(evaluator):
    expert = make_policy('expert', config=load_collect_config())
    return evaluator.evaluate(expert.act)['return_mean']


def train_one(algo, dataset, plan, out, evaluator, progress=True):
    vae_steps = plan['vae_steps'] if 'vae_steps' in fields_of(algo) else None  # only PLAS pre-trains its CVAE
    cfg = load_config(config_path(plan['train_config']), algo=algo, steps=plan['steps'], vae_steps=vae_steps,
                      eval_every=plan['eval_every'], eval_episodes=plan['eval_episodes'])
    seeds = list(plan['seeds'])
    trainer = Trainer(cfg, dataset, seeds, seed_dirs(os.path.join(out, algo), seeds, multi=True),
                      evaluator=evaluator, progress=progress)
    summary = trainer.run()
    return trainer.history, summary['rates']


def curves(history):
    """step -> per-seed mean evaluation returns, as sorted arrays (steps, returns[seed, step])."""
    steps = sorted({h['step'] for h in history})
    seeds = sorted({h['seed'] for h in history})
    table = {(h['seed'], h['step']): h['return_mean'] for h in history}
    return np.array(steps), np.array([[table[(s, t)] for t in steps] for s in seeds])


def plot(path, results, levels):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for algo, result in results.items():
        steps, returns = curves(result['history'])
        mean, std = returns.mean(axis=0), returns.std(axis=0)
        ax.plot(steps, mean, label=LABELS.get(algo, algo))
        ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
    styles = {'expert': ('k', '--'), 'dataset': ('tab:gray', ':')}
    for name, value in levels.items():
        color, style = styles[name]
        ax.axhline(value, color=color, linestyle=style, label='%s (%.2f)' % (name, value))
    ax.set_xlabel('training step (policy updates)')
    ax.set_ylabel('evaluation episode return')
    ax.set_title('Cloth sliding in simulation (mean and std over seeds)')
    ax.legend(loc='best', fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def table(results, levels, dataset):
    lines = ['Dataset: %d transitions in %d episodes (mean episode return %.2f); expert return %.2f.'
             % (dataset.size, dataset.num_episodes, levels['dataset'], levels['expert']), '',
             '| algorithm | final return (mean ± std over seeds) | mean of the last %d evaluations | '
             'best mean during training | Q MSE (final) | Q over-estimates (final) |' % LAST_EVALS,
             '|---|---|---|---|---|---|']
    for algo, result in results.items():
        steps, returns = curves(result['history'])
        final = returns[:, -1]
        last = [h for h in result['history'] if h['step'] == steps[-1]]
        mse = np.mean([h['q_mse'] for h in last]) if 'q_mse' in last[0] else float('nan')
        over = np.mean([h['q_overestimate_share'] for h in last]) if 'q_overestimate_share' in last[0] else np.nan
        q_text = ('%.3g' % mse, '%.0f%%' % (100 * over)) if np.isfinite(mse) else ('n/a', 'n/a')
        lines.append('| %s | %.2f ± %.2f | %.2f | %.2f | %s | %s |'
                     % (LABELS.get(algo, algo), final.mean(), final.std(), returns[:, -LAST_EVALS:].mean(),
                        returns.mean(axis=0).max(), q_text[0], q_text[1]))
    return '\n'.join(lines) + '\n'


def dataset_level(dataset_path):
    from plas_ros.data.loader import read_file
    arrays, _ = read_file(dataset_path)
    ids = arrays['infos/episode_ids']
    return float(np.mean([arrays['rewards'][ids == i].sum() for i in np.unique(ids)]))


def run(out, plan, progress=True):
    os.makedirs(out, exist_ok=True)
    dataset_path = os.path.join(out, 'dataset.h5')
    if not os.path.exists(dataset_path):
        build_dataset(dataset_path, plan, progress=progress)
    dataset = load_datasets([dataset_path])
    preset = load_config(config_path(plan['train_config']))
    evaluator = Evaluator(make_env, episodes=plan['eval_episodes'] or preset.eval_episodes, gamma=preset.gamma,
                          seed=plan['eval_seed'])
    levels = {'expert': expert_level(evaluator), 'dataset': dataset_level(dataset_path)}
    results = {}
    for algo in plan['algos']:
        history, rates = train_one(algo, dataset, plan, out, evaluator, progress)
        results[algo] = {'history': history, 'rates': rates}
        print('%s: final return %s' % (algo, ', '.join('%.2f' % h['return_mean'] for h in history
                                                        if h['step'] == max(x['step'] for x in history))),
              flush=True)
    evaluator.close()
    with open(os.path.join(out, 'results.json'), 'w') as f:
        json.dump({'levels': levels, 'plan': plan, 'results': results}, f, indent=1)
    return report(out, results, levels, dataset)


def report(out, results, levels, dataset):
    """Write figure_3c.png and results.md from the evaluation history; returns the table."""
    plot(os.path.join(out, 'figure_3c.png'), results, levels)
    text = table(results, levels, dataset)
    with open(os.path.join(out, 'results.md'), 'w') as f:
        f.write(text)
    return text


def rereport(out):
    """Redraw the figure and table of a finished run from its results.json."""
    with open(os.path.join(out, 'results.json')) as f:
        saved = json.load(f)
    return report(out, saved['results'], saved['levels'], load_datasets([os.path.join(out, 'dataset.h5')]))


def main(argv=None):
    parser = argparse.ArgumentParser(prog='python -m plas_ros.reproduce', description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', required=True)
    parser.add_argument('--plan', default=config_path('reproduce.yaml'))
    parser.add_argument('--quick', action='store_true', help='tiny budgets, for a smoke test')
    parser.add_argument('--no-progress', action='store_true')
    parser.add_argument('--report-only', action='store_true', help='redraw figure and table from results.json')
    args = parser.parse_args(argv)
    if args.report_only:
        print(rereport(args.out))
    else:
        print(run(args.out, load_plan(args.plan, args.quick), progress=not args.no_progress))
    return 0


if __name__ == '__main__':
    sys.exit(main())
