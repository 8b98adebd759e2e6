"""Online TD3 collection in process (what `make reproduce`'s replay buffer would cost): steps per second with
the learner's updates, the collected episodes' return per window of transitions, and the greedy return of
the final actor (its checkpoint, loaded with plas_ros.policy.load_policy) against random and the expert.

    python bench/online_td3.py [--transitions 7000] [--window 1000] [--seed 0] [--eval-episodes 20]
"""
import argparse
import os
import tempfile
import time

import numpy as np

from plas_ros.collect import collect
from plas_ros.collect.policies import load_collect_config, make_policy
from plas_ros.env.evaluation import Evaluator
from plas_ros.policy import load_policy
from plas_ros.sim.gym_env import make_env


def windows(summaries, size):
    """(transitions so far, episodes, mean return) per window of `size` collected transitions."""
    rows, returns, total, edge = [], [], 0, size
    for s in summaries:
        returns.append(s.ret)
        total += s.steps
        if total >= edge:
            rows.append((total, len(returns), float(np.mean(returns))))
            returns, edge = [], edge + size
    if returns:
        rows.append((total, len(returns), float(np.mean(returns))))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--transitions', type=int, default=7000)
    parser.add_argument('--window', type=int, default=1000)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--eval-episodes', type=int, default=20)
    parser.add_argument('--updates-per-step', type=int, help='override config/collect.yaml (0: learner off)')
    args = parser.parse_args()
    config = load_collect_config()
    if args.updates_per_step is not None:
        import dataclasses
        config = dataclasses.replace(config, online_td3=dataclasses.replace(
            config.online_td3, updates_per_step=args.updates_per_step))
    with tempfile.TemporaryDirectory() as tmp:
        output, checkpoint = os.path.join(tmp, 'online.h5'), os.path.join(tmp, 'checkpoint')
        policy = make_policy('online_td3', config=config, seed=args.seed, checkpoint_out=checkpoint)
        start = time.perf_counter()
        summaries = collect(output, policy, transitions=args.transitions, seed=args.seed, progress=False)
        seconds = time.perf_counter() - start
        steps = sum(s.steps for s in summaries)
        print('online_td3: %d transitions, %d episodes, %d updates in %.1f s: %.0f steps/s (with updates)'
              % (steps, len(summaries), policy.learner.updates, seconds, steps / seconds))
        print('%12s %9s %12s' % ('transitions', 'episodes', 'mean return'))
        for total, episodes, mean in windows(summaries, args.window):
            print('%12d %9d %12.3f' % (total, episodes, mean))
        evaluator = Evaluator(lambda: make_env(seed=1000), args.eval_episodes, gamma=0.99, seed=1000)
        greedy = evaluator.evaluate(load_policy(checkpoint).act)['return_mean']
        random = evaluator.evaluate(make_policy('random', seed=1).act)['return_mean']
        expert = evaluator.evaluate(make_policy('expert', config=config).act)['return_mean']
        print('greedy return over %d episodes: final actor %.3f, random %.3f, expert %.3f'
              % (args.eval_episodes, greedy, random, expert))


if __name__ == '__main__':
    main()
