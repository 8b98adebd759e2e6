"""The cloth-sliding task as a gymnasium Env over the in-process cloth simulator (no ROS in the loop).

The step and reset logic is plas_ros.env.task.ClothSlideTask behind plas_ros.env.task.TaskEnv, the same
objects the ROS env node runs, here driving the simulator directly instead of the driver nodes:

    env = make_env(seed=0)
    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())

`make_env(render_mode="rgb_array")`: `env.render()` returns the last reading's tactile image beside a side view
of the tip and the cloth edge, (H, W, 3) uint8 (plas_ros.sim.render, config/render.yaml).

`info` holds the raw data behind the observation (tactile_raw (14, 6) uint16, force_raw (3,) N, tip_pose
(4,)), the gripper width (mm) and adjustment (-1/0/+1) and, for diagnostics only, the simulator's ground
truth `edge_held`.

The episode ends as a timeout after `max_steps` steps (default: config/env.yaml `max_steps`); give
`make_env(max_steps=N)`, or set `env.max_episode_steps = N` between episodes, to run longer (the evaluator's
Q diagnostics run past the limit, as the official PLAS code steps the env under its TimeLimit).
"""
import gymnasium as gym
import numpy as np

from plas_ros.config import lookup
from plas_ros.env import layout
from plas_ros.env.config import load_env_config
from plas_ros.env.task import ClothSlideTask, Robot, SensorReading, TaskEnv
from plas_ros.sim.cloth import ClothSim
from plas_ros.sim.render import FrameRenderer, render_fps

ENV_ID = 'PlasClothSlide-v0'


def load_wrench_window(path='robot.yaml'):
    """The arm driver's wrench median window, from config/robot.yaml."""
    return int(lookup(path, 'arm.wrench_median_window'))


class SimRobot(Robot):
    """The task's Robot over a ClothSim (which clips to its safety box), wrench median as the arm driver's."""

    def __init__(self, sim, wrench_window):
        self.sim = sim
        self.wrench_window = wrench_window

    def move_tip(self, dy, dz):
        self.sim.move_tip(dy, dz)

    def set_width(self, width_mm):
        self.sim.set_width(width_mm)

    def read(self):
        # The arm driver publishes the median of the last readings; at rest these are consecutive samples.
        wrenches = np.stack([np.asarray(self.sim.wrench(), dtype=np.float64) for _ in range(self.wrench_window)])
        force = np.median(wrenches, axis=0)[:3]
        return SensorReading(force, self.sim.tactile_raw(), self.sim.tip_pose())

    def move_to_start(self):
        """ClothSim.reset already put the tip at the fixture with the fingers open."""


def _observation_space():
    low = np.full(layout.OBS_DIM, -np.inf, dtype=np.float32)
    high = np.full(layout.OBS_DIM, np.inf, dtype=np.float32)
    low[layout.FORCE] = 0.0
    low[layout.TACTILE] = 0.0
    high[layout.TACTILE] = np.iinfo(np.uint16).max / layout.TACTILE_FULL_SCALE
    return gym.spaces.Box(low, high, dtype=np.float32)


class ClothSlideEnv(gym.Env):
    """Gymnasium Env of the cloth-sliding task over plas_ros.sim.cloth.ClothSim."""

    metadata = {'render_modes': ['rgb_array'], 'render_fps': render_fps()}

    def __init__(self, env_config=None, sim_config=None, seed=None, env_config_path=None, max_steps=None,
                 render_mode=None):
        if render_mode is not None and render_mode not in self.metadata['render_modes']:
            raise ValueError('render_mode %r is not supported (modes: %s)' % (
                render_mode, ', '.join(self.metadata['render_modes'])))
        self.render_mode = render_mode
        self._renderer = FrameRenderer() if render_mode else None
        self._last_tactile = None
        self.config = env_config or load_env_config(env_config_path)
        self.sim = ClothSim(config=sim_config, seed=seed)
        self.task = ClothSlideTask(self.config, SimRobot(self.sim, load_wrench_window()), max_steps=max_steps)
        self.task_env = TaskEnv(self.task)
        self.observation_space = _observation_space()
        self.action_space = gym.spaces.Box(layout.ACTION_LOW, layout.ACTION_HIGH, (layout.ACT_DIM,), np.float32)

    @property
    def max_episode_steps(self):
        """The step limit (a timeout ends the episode there); writable, it applies from the next step on."""
        return self.task.max_steps

    @max_episode_steps.setter
    def max_episode_steps(self, steps):
        if int(steps) < 1:
            raise ValueError('max_episode_steps must be >= 1, got %r' % steps)
        self.task.max_steps = int(steps)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        sim_seed = seed if seed is not None else int(self.np_random.integers(0, 2 ** 31 - 1))
        self.sim.reset(seed=sim_seed)
        observation, info = self.task_env.reset()
        self._seen(info)
        return observation, info

    def step(self, action):
        observation, reward, terminal, timeout, info = self.task_env.step(action)
        self._seen(info)
        return observation, reward, terminal, timeout, info

    def _seen(self, info):
        info['edge_held'] = self._edge_held()
        self._last_tactile = info.get('tactile_raw', self._last_tactile)

    def render(self):
        """rgb_array: (H, W, 3) uint8 of the last reading and the sim's state (draws nothing from the sim's random
        streams: rendering does not change an episode); None without a render_mode."""
        if self.render_mode is None:
            return None
        tactile = self._last_tactile
        if tactile is None:  # before the first reset: an empty finger
            tactile = np.zeros((layout.TACTILE_ROWS, layout.TACTILE_COLS), np.uint16)
        return self._renderer.frame(self.sim, tactile)

    def abort(self):
        self.task_env.abort()

    @property
    def calibration(self):
        return self.task_env.calibration

    @property
    def gripper_width(self):
        return self.task_env.gripper_width

    def _edge_held(self):
        """The simulator's ground truth, for diagnostics only."""
        return bool(getattr(self.sim, 'edge_held', True))


def make_env(**kwargs):
    """A ClothSlideEnv; kwargs as ClothSlideEnv (env_config, sim_config, seed, env_config_path, max_steps)."""
    return ClothSlideEnv(**kwargs)


if ENV_ID not in gym.registry:
    gym.register(ENV_ID, entry_point='plas_ros.sim.gym_env:ClothSlideEnv')
