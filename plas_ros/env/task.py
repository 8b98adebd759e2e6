"""The cloth-sliding task: one step and one reset, shared by the in-process gym env and the ROS env node.

Both drive a `Robot` (below): the gym env over the cloth simulator, the ROS node over the driver nodes. The
task logic lives only here, so the two cannot drift apart:

    step:  validate action -> (dy, dz) -> robot.move_tip -> read sensors -> gripper-width controller
           -> command the new width (if it changed) -> read sensors again -> next observation
           reward = dy while the edge is held, 0 when it is lost; terminal = lost; timeout = step limit reached
    reset: open the fingers -> robot.move_to_start -> grasp calibration -> read sensors -> first observation
"""
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from plas_ros.data.schema import ACTION_TOLERANCE  # a float32 round trip of +-1 must still count as in range
from plas_ros.env import layout
from plas_ros.env.gripper_controller import GripperDecision, GripperWidthController, calibrate_grasp


class InvalidActionError(ValueError):
    """An action that must not be executed (wrong size, NaN/inf, out of [-1, 1]); the robot holds still."""


class SensorError(RuntimeError):
    """A sensor reading that is missing, stale or malformed: the episode ends as an error, never on zeros."""


class RobotError(RuntimeError):
    """A driver that failed or cannot be reached: the episode ends as an error."""


class EpisodeOverError(RuntimeError):
    """step() after the episode ended (terminal, timeout or error): reset first."""


@dataclass
class SensorReading:
    """Raw readings behind one observation."""
    force_n: np.ndarray      # (3,) end-effector force, N (median-filtered)
    tactile_raw: np.ndarray  # (14, 6) uint16 raw DSA cells
    tip_pose: np.ndarray     # (4,) x, y, z (m), pitch (deg)

    def __post_init__(self):
        self.force_n = _finite(self.force_n, 3, 'force')
        self.tip_pose = _finite(self.tip_pose, 4, 'tip pose')
        tactile = np.asarray(self.tactile_raw)
        if tactile.size != layout.TACTILE_CELLS:
            raise SensorError('tactile frame has %d cells, expected %d' % (tactile.size, layout.TACTILE_CELLS))
        if not np.all(np.isfinite(tactile.astype(np.float64))) or np.any(tactile < 0):
            raise SensorError('tactile frame holds negative or non-finite values')
        self.tactile_raw = tactile.reshape(layout.TACTILE_ROWS, layout.TACTILE_COLS).astype(np.uint16)

    def observation(self):
        return layout.make_observation(self.force_n, self.tactile_raw, self.tip_pose[2], self.tip_pose[3])


def _finite(value, size, what):
    vec = np.asarray(value, dtype=np.float64).reshape(-1)
    if vec.size != size:
        raise SensorError('%s reading has %d values, expected %d' % (what, vec.size, size))
    if not np.all(np.isfinite(vec)):
        raise SensorError('%s reading holds NaN/inf: %s' % (what, vec.tolist()))
    return vec


def validate_action(action):
    """The action as a (2,) float32 array in [-1, 1]; InvalidActionError (saying why) otherwise."""
    if action is None:
        raise InvalidActionError('action is missing (None)')
    try:
        a = np.asarray(action, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as e:
        raise InvalidActionError('action %r is not a vector of numbers: %s' % (action, e)) from None
    if a.size != layout.ACT_DIM:
        raise InvalidActionError('action has %d values, expected %d' % (a.size, layout.ACT_DIM))
    if not np.all(np.isfinite(a)):
        raise InvalidActionError('action %s holds NaN/inf' % a.tolist())
    if np.any(a < layout.ACTION_LOW - ACTION_TOLERANCE) or np.any(a > layout.ACTION_HIGH + ACTION_TOLERANCE):
        raise InvalidActionError('action %s outside [%g, %g]' % (a.tolist(), layout.ACTION_LOW, layout.ACTION_HIGH))
    return np.clip(a, layout.ACTION_LOW, layout.ACTION_HIGH).astype(np.float32)


class Robot:
    """What the task needs from the robot, simulated or real. Methods block until done; errors raise."""

    def move_tip(self, dy, dz):
        """Relative tip step in metres (the implementation clips to its safety box)."""
        raise NotImplementedError

    def set_width(self, width_mm):
        """Command the finger opening (mm) and wait until the fingers are there."""
        raise NotImplementedError

    def read(self):
        """A fresh SensorReading taken after the last motion; SensorError if none can be had."""
        raise NotImplementedError

    def move_to_start(self):
        """Scripted waypoints to the fixture, fingers open."""
        raise NotImplementedError


class StepResult(NamedTuple):
    observation: np.ndarray   # the next observation (89,)
    reward: float
    terminal: bool            # edge lost
    timeout: bool             # step limit reached without losing the edge
    action: np.ndarray        # the validated action
    gripper: GripperDecision  # width after the controller, adjustment, edge_lost
    reading: SensorReading    # raw data behind `observation`
    step: int                 # index of this step in the episode (0-based)


class _CalibrationRig:
    """Adapts a Robot to the rig calibrate_grasp drives."""

    def __init__(self, robot):
        self.robot = robot

    def set_width(self, width_mm):
        self.robot.set_width(width_mm)

    def tactile_raw(self):
        return self.robot.read().tactile_raw

    def move_tip(self, dz_m):
        self.robot.move_tip(0.0, dz_m)


class ClothSlideTask:
    """Episode state (step count, gripper width, done) over a Robot; the only place the task rules live.

    `max_steps` (default: config.max_steps) is the step limit that ends an episode as a timeout; the
    attribute may be changed between episodes (the evaluator runs past the limit for its Q diagnostics).
    """

    def __init__(self, config, robot, log=None, max_steps=None):
        self.config = config
        self.robot = robot
        self.max_steps = config.max_steps if max_steps is None else int(max_steps)
        if self.max_steps < 1:
            raise ValueError('max_steps must be >= 1, got %r' % max_steps)
        self.log = log or (lambda message: None)
        self.controller = None
        self.steps = 0
        self.done = True
        self.reading = None
        self.calibration = None

    def reset(self):
        """Move to the start, calibrate the grasp; returns (observation, reading). GraspCalibrationError on failure."""
        self.done = True
        self.robot.set_width(self.config.calibration.start_width_mm)  # let go of the cloth before moving away
        self.robot.move_to_start()
        self.calibration = calibrate_grasp(_CalibrationRig(self.robot), self.config.calibration, self.log)
        self.controller = GripperWidthController(self.config.gripper, self.calibration.width_mm)
        self.reading = self.robot.read()
        self.steps = 0
        self.done = False
        return self.reading.observation(), self.reading

    @property
    def observation(self):
        return self.reading.observation()

    def step(self, action):
        """Execute one validated action -> StepResult. InvalidActionError leaves the robot and the state untouched."""
        if self.done:
            raise EpisodeOverError('the episode is over after %d steps: reset first' % self.steps)
        action = validate_action(action)
        dy, dz = layout.action_to_step(action)
        try:
            self.robot.move_tip(dy, dz)
            reading = self.robot.read()
            decision = self.controller.update(reading.tactile_raw, reading.force_n)
            if decision.adjustment != 0:
                self.robot.set_width(decision.width_mm)
                reading = self.robot.read()
        except Exception:
            self.done = True  # a fault mid-step: the episode cannot continue from an unknown state
            raise
        index = self.steps
        self.steps += 1
        terminal = bool(decision.edge_lost)
        timeout = not terminal and self.steps >= self.max_steps
        self.done = terminal or timeout
        self.reading = reading
        reward = 0.0 if terminal else float(dy)
        return StepResult(reading.observation(), reward, terminal, timeout, action, decision, reading, index)

    def abort(self):
        """End the episode after an external fault (e.g. stale sensor while waiting for an action)."""
        self.done = True


class TaskEnv:
    """The task behind the gymnasium calls, over any Robot: what the episode runner drives.

    `info` holds the raw data behind each observation (tactile_raw (14, 6) uint16, force_raw (3,) N,
    tip_pose (4,)), the gripper width (mm) and adjustment (-1/0/+1); `reset`'s also the grasp calibration.
    """

    def __init__(self, task: ClothSlideTask):
        self.task = task

    def reset(self, seed=None):
        """`seed` belongs to whoever owns the world's randomness (the simulator); the task has none."""
        observation, reading = self.task.reset()
        info = _info(reading, self.task.controller.width_mm, 0)
        info['calibration'] = self.task.calibration._asdict()
        return observation, info

    def step(self, action):
        result = self.task.step(action)
        info = _info(result.reading, result.gripper.width_mm, result.gripper.adjustment)
        info['step'] = result.step
        return result.observation, result.reward, result.terminal, result.timeout, info

    def abort(self):
        self.task.abort()

    @property
    def calibration(self):
        return self.task.calibration

    @property
    def gripper_width(self):
        """The width the controller last commanded (NaN before the first reset)."""
        return self.task.controller.width_mm if self.task.controller is not None else float('nan')


def _info(reading, width_mm, adjustment):
    return {'tactile_raw': reading.tactile_raw.copy(), 'force_raw': reading.force_n.astype(np.float32),
            'tip_pose': reading.tip_pose.astype(np.float32), 'gripper_width': float(width_mm),
            'gripper_adjustment': int(adjustment)}
