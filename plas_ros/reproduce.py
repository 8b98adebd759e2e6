"""Figure 3(c) of the PLAS paper reproduced in simulation: PLAS, PLAS+P, BC, offline TD3 and BCQ trained
on one cloth-sliding dataset shaped like the paper's, evaluated during training in the simulator.

    python -m plas_ros.reproduce --out out/reproduce            # the full run (minutes on 2 cores)
    python -m plas_ros.reproduce --out /tmp/r --quick            # a smoke run with tiny budgets

Writes into --out: dataset.h5, one checkpoint folder per algorithm and seed (with TensorBoard events),
figure_3c.png (mean and spread of the evaluation return against training step, expert and behaviour
levels as lines), results.md (the table) and results.json (every evaluation).
"""
import argparse
import concurrent.futures
import dataclasses
import json
import multiprocessing
import os
import sys
import time
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
    behaviour_policy: str
    behaviour_transitions: int
    behaviour_config: str
    expert: str
    expert_episodes: int
    algos: List[str]
    seeds: List[int]
    share_cvae: List[str]
    train_config: str
    eval_seed: int
    jobs: int
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


def build_dataset(path, plan, out, seed=0, progress=True):
    """The paper's dataset: the replay buffer of an online RL run (plan `behaviour_policy`, online_td3),
    then a few episodes of the expert."""
    behaviour = load_collect_config(config_path(plan['behaviour_config']))
    learner_out = os.path.join(out, plan['behaviour_policy']) if plan['behaviour_policy'] == 'online_td3' else None
    collect(path, make_policy(plan['behaviour_policy'], config=behaviour, seed=seed, checkpoint_out=learner_out),
            transitions=plan['behaviour_transitions'], seed=seed, policy_name=plan['behaviour_policy'],
            progress=progress)
    collect(path, expert_policy(plan, seed + 1), episodes=plan['expert_episodes'], seed=seed + 1,
            policy_name='expert', progress=progress)


def expert_policy(plan, seed=None):
    """The plan's expert: the scripted tactile-feedback controller (see config/reproduce.yaml for why)."""
    if plan['expert'] != 'scripted':
        raise ValueError('config/reproduce.yaml: expert %r is not known (scripted)' % plan['expert'])
    return make_policy('expert', config=load_collect_config(), seed=seed)


def expert_level(evaluator, plan):
    return evaluator.evaluate(expert_policy(plan).act)['return_mean']


def train_one(algo, dataset, plan, out, evaluator, progress=True, cvae_state=None):
    """Train `algo` for every seed of the plan at once; (history, rates, the trained CVAE's state or None)."""
    vae_steps = plan['vae_steps'] if 'vae_steps' in fields_of(algo) else None  # only PLAS pre-trains its CVAE
    cfg = load_config(config_path(plan['train_config']), algo=algo, steps=plan['steps'], vae_steps=vae_steps,
                      eval_every=plan['eval_every'], eval_episodes=plan['eval_episodes'])
    seeds = list(plan['seeds'])
    trainer = Trainer(cfg, dataset, seeds, seed_dirs(os.path.join(out, algo), seeds, multi=True),
                      evaluator=evaluator, progress=progress, cvae_state=cvae_state)
    summary = trainer.run()
    cvae = getattr(trainer.algorithm, 'cvae', None)
    return trainer.history, summary['rates'], (cvae.state_dict() if cvae is not None else None)


def job_groups(plan):
    """The algorithms in training jobs: those that share one CVAE per seed (plan `share_cvae`, the authors'
    option for PLAS and PLAS+P) train one after the other in one job, the first training the CVAE."""
    shared = [a for a in plan['share_cvae'] if a in plan['algos']]
    groups = [shared] if shared else []
    return groups + [[a] for a in plan['algos'] if a not in shared]


def train_group(group, dataset_path, plan, out, evaluator_args):
    """One job (a process of its own when the plan runs jobs in parallel): its algorithms' results."""
    import torch
    torch.set_num_threads(1)
    dataset = load_datasets([dataset_path])
    evaluator = Evaluator(make_env, **evaluator_args)
    results, cvae_state = {}, None
    for algo in group:
        started = time.perf_counter()
        history, rates, trained = train_one(algo, dataset, plan, out, evaluator, progress=False,
                                            cvae_state=cvae_state)
        cvae_state = cvae_state or trained
        results[algo] = {'history': history, 'rates': rates, 'seconds': time.perf_counter() - started,
                         'cvae': 'shared with %s' % group[0] if algo != group[0] else 'own'}
        final = [h['return_mean'] for h in history if h['step'] == max(x['step'] for x in history)]
        print('%s: final return %s (%.0f s)' % (algo, ', '.join('%.2f' % r for r in final),
                                                results[algo]['seconds']), flush=True)
    evaluator.close()
    return results


def train_all(dataset_path, plan, out, evaluator_args):
    """Every job, `plan['jobs']` at a time (one torch thread each)."""
    groups = job_groups(plan)
    if plan['jobs'] <= 1:
        parts = [train_group(g, dataset_path, plan, out, evaluator_args) for g in groups]
    else:
        context = multiprocessing.get_context('spawn')  # fresh interpreters: no torch state forked
        with concurrent.futures.ProcessPoolExecutor(plan['jobs'], mp_context=context) as pool:
            futures = [pool.submit(train_group, g, dataset_path, plan, out, evaluator_args) for g in groups]
            parts = [f.result() for f in futures]
    merged = {}
    for part in parts:
        merged.update(part)
    return {algo: merged[algo] for algo in plan['algos']}


def curves(history):
    """step -> per-seed mean evaluation returns, as sorted arrays (steps, returns[seed, step])."""
    steps = sorted({h['step'] for h in history})
    seeds = sorted({h['seed'] for h in history})
    table = {(h['seed'], h['step']): h['return_mean'] for h in history}
    return np.array(steps), np.array([[table[(s, t)] for t in steps] for s in seeds])


def plot(path, results, levels):
    """The paper's layout: one curve per algorithm (mean over seeds, the seeds' spread shaded), behaviour
    cloning and the expert as dashed lines (BC at its mean over the last evaluations)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for algo, result in results.items():
        if algo == 'bc':
            continue
        steps, returns = curves(result['history'])
        mean, std = returns.mean(axis=0), returns.std(axis=0)
        ax.plot(steps, mean, label=LABELS.get(algo, algo))
        ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
    lines = [('expert', levels['expert'], 'k'), ('dataset mean', levels['dataset'], 'tab:gray')]
    if 'bc' in results:
        lines.insert(1, ('BC', _late(results, 'bc'), 'tab:brown'))
    for name, value, color in lines:
        ax.axhline(value, color=color, linestyle='--' if name != 'dataset mean' else ':',
                   label='%s (%.2f)' % (name, value))
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


# The paper's claims about figure 3(c) (section 5.3), each decided from the evaluation history. A 5-episode
# evaluation is noisy (about +-0.5 in return), so "close" and "drops" use that margin, and every decision
# uses the mean over seeds of the last LAST_EVALS evaluations ("late"), not one evaluation.
NOISE = 0.5


def _late(results, algo):
    steps, returns = curves(results[algo]['history'])
    return float(returns[:, -LAST_EVALS:].mean())


def _fails(results, algo, levels):
    """Below the midpoint between the dataset's mean return and the expert's."""
    late, bar = _late(results, algo), (levels['dataset'] + levels['expert']) / 2
    return late < bar, '%s late %.2f vs midpoint %.2f' % (LABELS[algo], late, bar)


def _close(results, a, b):
    la, lb = _late(results, a), _late(results, b)
    return abs(la - lb) < NOISE, '%s %.2f vs %s %.2f (margin %.1f)' % (LABELS[a], la, LABELS[b], lb, NOISE)


def _rises_then_drops(results, algo):
    steps, returns = curves(results[algo]['history'])
    mean = returns.mean(axis=0)
    peak = int(np.argmax(mean))
    late = float(returns[:, -LAST_EVALS:].mean())
    holds = 0 < peak < len(mean) - 1 and mean[peak] - late > NOISE and mean[peak] - mean[0] > NOISE
    return holds, '%s first %.2f, peak %.2f at step %d, late %.2f' % (LABELS[algo], mean[0], mean[peak],
                                                                      steps[peak], late)


def _near_expert(results, algo, levels):
    late = _late(results, algo)
    return late > levels['expert'] - NOISE, '%s late %.2f vs expert %.2f (margin %.1f)' % (
        LABELS[algo], late, levels['expert'], NOISE)


def _best(results, algo):
    lates = {a: _late(results, a) for a in results}
    best = max(lates, key=lates.get)
    return best == algo, 'best late return: %s %.2f; %s' % (LABELS[best], lates[best], ', '.join(
        '%s %.2f' % (LABELS[a], v) for a, v in lates.items()))


def claims(results, levels):
    """[(claim, holds or None when an algorithm is missing, the numbers)] for the paper's figure 3(c)."""
    checks = [('BC fails', ('bc',), lambda: _fails(results, 'bc', levels)),
              ('offline TD3 fails', ('td3',), lambda: _fails(results, 'td3', levels)),
              ('BCQ is close to BC', ('bcq', 'bc'), lambda: _close(results, 'bcq', 'bc')),
              ('BEAR rises, then drops', ('bear',), lambda: _rises_then_drops(results, 'bear')),
              ('PLAS is near the expert', ('plas',), lambda: _near_expert(results, 'plas', levels)),
              ('PLAS is the best', ('plas',), lambda: _best(results, 'plas'))]
    out = []
    for claim, needs, check in checks:
        if all(a in results for a in needs):
            holds, numbers = check()
            out.append((claim, bool(holds), numbers))
        else:
            out.append((claim, None, 'not run: %s' % ', '.join(a for a in needs if a not in results)))
    return out


def claims_table(results, levels):
    lines = ['| claim of the paper (figure 3(c)) | here | numbers (late: mean of the last %d evaluations over seeds) |'
             % LAST_EVALS, '|---|---|---|']
    for claim, holds, numbers in claims(results, levels):
        lines.append('| %s | %s | %s |' % (claim, {True: 'holds', False: 'does not hold', None: 'n/a'}[holds],
                                          numbers))
    return '\n'.join(lines) + '\n'


def dataset_level(dataset_path):
    from plas_ros.data.loader import read_file
    arrays, _ = read_file(dataset_path)
    ids = arrays['infos/episode_ids']
    return float(np.mean([arrays['rewards'][ids == i].sum() for i in np.unique(ids)]))


def run(out, plan, progress=True):
    os.makedirs(out, exist_ok=True)
    timing, started = {}, time.perf_counter()
    dataset_path = os.path.join(out, 'dataset.h5')
    if not os.path.exists(dataset_path):
        build_dataset(dataset_path, plan, out, progress=progress)
    timing['dataset_s'] = time.perf_counter() - started
    dataset = load_datasets([dataset_path])
    preset = load_config(config_path(plan['train_config']))
    evaluator_args = dict(episodes=plan['eval_episodes'] or preset.eval_episodes, gamma=preset.gamma,
                          seed=plan['eval_seed'])
    evaluator = Evaluator(make_env, **evaluator_args)
    levels = {'expert': expert_level(evaluator, plan), 'dataset': dataset_level(dataset_path)}
    evaluator.close()
    mark = time.perf_counter()
    results = train_all(dataset_path, plan, out, evaluator_args)
    timing['training_s'] = time.perf_counter() - mark
    timing['total_s'] = time.perf_counter() - started
    with open(os.path.join(out, 'results.json'), 'w') as f:
        json.dump({'levels': levels, 'plan': plan, 'timing': timing, 'results': results}, f, indent=1)
    return report(out, results, levels, dataset) + '\nTime: %.1f min (dataset %.1f, training %.1f).\n' % (
        timing['total_s'] / 60, timing['dataset_s'] / 60, timing['training_s'] / 60)


def report(out, results, levels, dataset):
    """Write figure_3c.png and results.md from the evaluation history; returns the table."""
    plot(os.path.join(out, 'figure_3c.png'), results, levels)
    shared = ['%s uses the CVAE of %s (same seed: the authors\' option).' % (LABELS[a], LABELS[r['cvae'][12:]])
              for a, r in results.items() if r.get('cvae', 'own').startswith('shared with ')]
    text = table(results, levels, dataset) + ''.join('\n' + line + '\n' for line in shared) + '\n' + claims_table(
        results, levels)
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
