"""Steps per second of the in-process gym env, against its peer in the same run: the bare cloth simulator
doing the same motions and sensor reads without the task core.

    python bench/env_steps.py [--steps 3000]
"""
import argparse
import time

import numpy as np

from plas_ros.collect.policies import make_policy
from plas_ros.sim.gym_env import make_env


def env_rate(steps):
    env, policy = make_env(seed=0), make_policy('expert', noise=0.1, seed=0)
    obs, _ = env.reset(seed=0)
    done, episode, start = 0, 0, time.perf_counter()
    while done < steps:
        obs, _, terminated, truncated, _ = env.step(policy.act(obs))
        done += 1
        if terminated or truncated:
            episode += 1
            obs, _ = env.reset(seed=episode)
    return done / (time.perf_counter() - start), episode


def bare_sim_rate(steps, sim, wrench_window):
    """The same per-step work on the simulator alone: one move, the median of the wrench, one tactile frame."""
    sim.reset(seed=0)
    start = time.perf_counter()
    for i in range(steps):
        if i % 60 == 0:
            sim.reset(seed=i)
        sim.move_tip(0.05, 0.0)
        np.median([sim.wrench() for _ in range(wrench_window)], axis=0)
        sim.tactile_raw()
    return steps / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--steps', type=int, default=3000)
    args = parser.parse_args()
    env = make_env(seed=0)
    rate, episodes = env_rate(args.steps)
    bare = bare_sim_rate(args.steps, env.sim, env.task.robot.wrench_window)
    print('gym env (expert+noise 0.1, resets incl.): %.0f steps/s over %d episodes' % (rate, episodes))
    print('bare ClothSim, same motions and reads:    %.0f steps/s' % bare)
    print('ratio env / bare sim: %.2f' % (rate / bare))


if __name__ == '__main__':
    main()
