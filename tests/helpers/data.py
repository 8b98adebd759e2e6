"""Deterministic episodes for the data tests (and the crash-test child process)."""
import numpy as np

from plas_ros.data.episodes import Step
from plas_ros.env import layout


def make_steps(episode, n=5, end='timeout', seed=None, raw=True, first_step=0):
    """`n` steps of episode `episode`; the last ends as `end` (terminal | timeout | error | None)."""
    rng = np.random.default_rng(episode if seed is None else seed)
    steps = []
    for k in range(first_step, first_step + n):
        last = k == first_step + n - 1
        obs = rng.random(layout.OBS_DIM).astype(np.float32)
        steps.append(Step(
            episode=episode, step=k, observation=obs, action=rng.uniform(-1, 1, layout.ACT_DIM),
            reward=float(rng.random()) * 0.1, next_observation=obs + 0.01,
            terminal=last and end == 'terminal', timeout=last and end == 'timeout', error=last and end == 'error',
            timestamp=100.0 + k, gripper_width=2.0 + 0.1 * k, gripper_adjustment=int(rng.integers(-1, 2)),
            tactile_raw=rng.integers(0, 3895, layout.TACTILE_CELLS) if raw else (),
            force_raw=rng.random(3) if raw else (), tip_pose=rng.random(4) if raw else ()))
    return steps
