"""Calibration figures of the cloth simulator: how long random actions and a scripted tactile-feedback
controller keep the edge, run through the authors' loop (grasp calibration at reset, the gripper-width
controller after every step, loss detected by that controller). Prints a table; no pass/fail.

    python bench/cloth_calibration.py [--episodes 100] [--seed 0]
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from plas_ros.env import layout  # noqa: E402
from plas_ros.env.config import load_env_config  # noqa: E402
from plas_ros.env.gripper_controller import GripperWidthController, calibrate_grasp  # noqa: E402
from plas_ros.sim.cloth import ClothSim  # noqa: E402

MEDIAN_WINDOW = 10
TARGET_CENTROID_ROW = 9.5   # covered rows centred here: the edge sits about 1.5 rows above the finger centre


class Rig:
    """What calibrate_grasp needs, over the simulator."""

    def __init__(self, sim):
        self.sim = sim

    def set_width(self, width_mm):
        self.sim.set_width(width_mm)

    def tactile_raw(self):
        return self.sim.tactile_raw()

    def move_tip(self, dz):
        self.sim.move_tip(0.0, dz)


def median_force(sim):
    return np.median([sim.wrench()[:3] for _ in range(MEDIAN_WINDOW)], axis=0)


def random_policy(rng):
    return lambda tactile, pose: rng.uniform(-1.0, 1.0, 2)


def tactile_policy(speed_action, config, gain=1.0):
    """Track the edge from the centroid row of the covered taxels; slide at a fixed speed.

    Feed-forward: the edge's tilt across the 6 columns (covered rows per column) predicts how far it
    rises over the next step.
    """
    taxel_m = config.taxel_mm / 1000.0
    drag_guess = 0.3  # the cloth follows part of a vertical move
    dy = layout.action_to_step([speed_action, 0.0])[0]
    columns_m = (np.arange(layout.TACTILE_COLS) - (layout.TACTILE_COLS - 1) / 2.0) * taxel_m

    def act(tactile, pose):
        covered = tactile > 100
        if covered.sum() < 3:
            return np.array([speed_action, 0.0])
        centroid = np.nonzero(covered)[0].mean()
        # Edge height per column: more covered rows = higher edge; its slope along the slide.
        slope = np.polyfit(columns_m, covered.sum(axis=0) * taxel_m, 1)[0]
        # The edge is about two centroid shifts away; a lower edge means larger row numbers: move down.
        dz = -gain * 2.0 * (centroid - TARGET_CENTROID_ROW) * taxel_m / (1.0 - drag_guess) + slope * dy
        return np.array([speed_action, np.clip(dz / layout.MAX_STEP_M, -1.0, 1.0)])
    return act


def run_episode(sim, env_config, policy, seed):
    sim.reset(seed)
    try:
        calibration = calibrate_grasp(Rig(sim), env_config.calibration)
    except RuntimeError:
        return 0, 0.0, 'calibration failed', 0
    controller = GripperWidthController(env_config.gripper, calibration.width_mm)
    tactile = sim.tactile_raw()
    ret = 0.0
    physical_loss = None
    for step in range(env_config.max_steps):
        dy, dz = layout.action_to_step(policy(tactile, sim.tip_pose()))
        sim.move_tip(dy, dz)
        if physical_loss is None and not sim.edge_held:
            physical_loss = step + 1
        force = median_force(sim)
        tactile = sim.tactile_raw()
        decision = controller.update(tactile, force)
        sim.set_width(decision.width_mm)
        if decision.edge_lost:
            return step + 1, ret, sim.lost_reason, physical_loss
        ret += dy
    return env_config.max_steps, ret, sim.lost_reason, physical_loss


def summarise(name, results, max_steps):
    lengths = np.array([r[0] for r in results])
    returns = np.array([r[1] for r in results])
    physical = [r[3] for r in results if r[3] is not None]
    reasons = {}
    for r in results:
        reasons[r[2]] = reasons.get(r[2], 0) + 1
    print('%-28s steps mean %5.1f median %4.0f p90 %4.0f | full 70: %3.0f%% | return mean %.2f m | '
          'cloth actually lost at step %s | %s'
          % (name, lengths.mean(), np.median(lengths), np.percentile(lengths, 90),
             100.0 * np.mean(lengths >= max_steps), returns.mean(),
             '%.1f (mean)' % np.mean(physical) if physical else '-', reasons))


def run_gym_env(policy_name, episodes, seed):
    """The environment engineer's gym env and behaviour policies (plas_ros.env), same seeds."""
    from plas_ros.collect.policies import make_policy
    from plas_ros.sim.gym_env import make_env
    env = make_env(seed=seed)
    policy = make_policy(policy_name, seed=seed)
    results = []
    for i in range(episodes):
        policy.start_episode(i)
        obs, info = env.reset(seed=seed * 100000 + i)
        ret, steps, done = 0.0, 0, False
        while not done:
            obs, reward, terminal, timeout, info = env.step(policy.act(obs))
            ret += reward
            steps += 1
            done = terminal or timeout
        results.append((steps, ret, env.sim.lost_reason, None))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--episodes', type=int, default=100)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    env_config = load_env_config()
    sim = ClothSim(seed=args.seed)
    rng = np.random.default_rng(args.seed)
    seeds = [args.seed * 100000 + i for i in range(args.episodes)]
    summarise('random', [run_episode(sim, env_config, random_policy(rng), s) for s in seeds],
              env_config.max_steps)
    for speed in (-1.0, -0.5, 0.0, 0.5, 1.0):
        policy = tactile_policy(speed, sim.config)
        summarise('tactile, a0=%+.1f (%.0f mm)' % (speed, layout.action_to_step([speed, 0])[0] * 1000),
                  [run_episode(sim, env_config, policy, s) for s in seeds], env_config.max_steps)
    for name in ('random', 'expert'):
        summarise('gym env, policies.%s' % name, run_gym_env(name, args.episodes, args.seed), env_config.max_steps)


if __name__ == '__main__':
    main()
