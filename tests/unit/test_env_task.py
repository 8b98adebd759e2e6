"""Task semantics: observation assembly, action validation, reward, terminal versus timeout, config loading."""
import dataclasses

import numpy as np
import pytest

from plas_ros.env import layout
from plas_ros.env.config import env_config_from_dict, load_env_config
from plas_ros.env.gripper_controller import GraspCalibrationError
from plas_ros.env.task import (
    ClothSlideTask,
    EpisodeOverError,
    InvalidActionError,
    Robot,
    SensorError,
    SensorReading,
    validate_action,
)

CONFIG = load_env_config()

GOOD_GRASP = np.zeros(84, dtype=np.uint16)
GOOD_GRASP[:40] = 2000      # calibrates at once; in contact, coverage 48%: the controller holds
NOTHING = np.zeros(84, dtype=np.uint16)


class ScriptedRobot(Robot):
    """Returns `tactile` for every read (a callable of the call count or a fixed array); logs every command."""

    def __init__(self, tactile=GOOD_GRASP, force=(1.0, -2.0, 3.0)):
        self.tactile = tactile
        self.force = np.array(force)
        self.pose = np.array([0.5, 0.0, 0.3, 5.0])
        self.width = None
        self.commands = []
        self.reads = 0
        self.fail_read = False

    def move_tip(self, dy, dz):
        self.pose[1:3] += (dy, dz)
        self.commands.append(('move', dy, dz))

    def set_width(self, width_mm):
        self.width = width_mm
        self.commands.append(('width', width_mm))

    def move_to_start(self):
        self.commands.append(('start',))

    def read(self):
        if self.fail_read:
            raise SensorError('dsa frame stale')
        self.reads += 1
        tactile = self.tactile(self.reads) if callable(self.tactile) else self.tactile
        return SensorReading(self.force, tactile, self.pose.copy())


def started_task(robot=None, config=CONFIG):
    task = ClothSlideTask(config, robot or ScriptedRobot())
    task.reset()
    return task


def test_reading_becomes_the_scaled_observation():
    reading = SensorReading([-10.0, 5.0, 20.0], np.arange(84, dtype=np.uint16), [0.5, 0.1, 0.25, -15.0])
    obs = reading.observation()
    assert obs.dtype == np.float32 and obs.shape == (layout.OBS_DIM,)
    assert np.allclose(obs[layout.FORCE], [1.0, 0.5, 2.0])
    assert np.allclose(obs[layout.TACTILE], np.arange(84) / 3895.0)
    assert obs[layout.TIP_Z] == pytest.approx(0.25) and obs[layout.PITCH] == pytest.approx(-0.5)


@pytest.mark.parametrize('force, tactile, pose, what', [
    ([0, 0], GOOD_GRASP, [0, 0, 0, 0], 'force reading has 2'),
    ([0, np.nan, 0], GOOD_GRASP, [0, 0, 0, 0], 'force reading holds NaN'),
    ([0, 0, 0], GOOD_GRASP[:80], [0, 0, 0, 0], 'tactile frame has 80'),
    ([0, 0, 0], GOOD_GRASP, [0, 0, np.inf, 0], 'tip pose reading holds NaN/inf'),
])
def test_malformed_readings_are_sensor_errors(force, tactile, pose, what):
    with pytest.raises(SensorError, match=what):
        SensorReading(force, tactile, pose)


@pytest.mark.parametrize('action, what', [
    ([0.0], 'has 1 values'),
    ([0.0, 0.0, 0.0], 'has 3 values'),
    ([np.nan, 0.0], 'NaN'),
    ([0.0, np.inf], 'NaN'),
    ([1.5, 0.0], 'outside'),
    ([0.0, -1.01], 'outside'),
    (['a', 'b'], 'not a vector'),
    (None, 'missing'),
])
def test_invalid_actions_are_rejected(action, what):
    with pytest.raises(InvalidActionError, match=what):
        validate_action(action)


def test_valid_action_is_float32_and_tolerates_float32_rounding():
    a = validate_action([1.0000001, -1.0])
    assert a.dtype == np.float32 and a.tolist() == [1.0, -1.0]


def test_invalid_action_leaves_robot_and_episode_untouched():
    robot = ScriptedRobot()
    task = started_task(robot)
    before = list(robot.commands)
    with pytest.raises(InvalidActionError):
        task.step([np.nan, 0.0])
    assert robot.commands == before and task.steps == 0 and not task.done
    assert task.step([0.0, 0.0]).step == 0


def test_reset_calibrates_and_observes():
    robot = ScriptedRobot()
    task = ClothSlideTask(CONFIG, robot)
    obs, reading = task.reset()
    assert robot.commands[:3] == [('width', 4.0), ('start',), ('width', 4.0)]  # open, move, calibrate
    assert task.controller.width_mm == 4.0 and np.array_equal(obs, reading.observation())


def test_reset_fails_clearly_when_the_grasp_cannot_be_calibrated():
    task = ClothSlideTask(CONFIG, ScriptedRobot(tactile=NOTHING))
    with pytest.raises(GraspCalibrationError):
        task.reset()
    with pytest.raises(EpisodeOverError):
        task.step([0.0, 0.0])


def test_reward_is_the_horizontal_step_while_held():
    robot = ScriptedRobot()
    task = started_task(robot)
    result = task.step([0.5, -0.5])
    assert result.reward == pytest.approx(0.075)
    assert robot.commands[-1] == ('move', pytest.approx(0.075), pytest.approx(-0.05))
    assert not result.terminal and not result.timeout and result.gripper.adjustment == 0
    assert np.array_equal(result.observation, result.reading.observation())


def test_episode_times_out_at_the_step_limit_without_a_terminal():
    task = started_task()
    results = [task.step([-1.0, 0.0]) for _ in range(CONFIG.max_steps)]
    assert [r.timeout for r in results] == [False] * (CONFIG.max_steps - 1) + [True]
    assert not any(r.terminal for r in results)
    assert task.done
    with pytest.raises(EpisodeOverError):
        task.step([0.0, 0.0])


def test_losing_the_edge_is_terminal_with_zero_reward():
    # good reads during calibration and the first observation, nothing afterwards
    robot = ScriptedRobot(tactile=lambda n: GOOD_GRASP if n <= 2 else NOTHING, force=(0, 0, 0))
    task = started_task(robot)
    results = []
    while not task.done:
        results.append(task.step([1.0, 0.0]))
    # narrowing from 4.0 mm in 0.35 mm steps to 0.5 mm takes 10 steps, then the edge is lost
    assert [r.gripper.adjustment for r in results[:10]] == [-1] * 10
    assert results[-1].terminal and not results[-1].timeout and results[-1].reward == 0.0
    assert len(results) == 11 and all(r.reward == pytest.approx(0.1) for r in results[:-1])
    assert robot.width == CONFIG.gripper.width_min_mm


def test_width_change_is_commanded_and_observed_after():
    robot = ScriptedRobot(tactile=lambda n: GOOD_GRASP if n <= 2 else NOTHING, force=(0, 0, 0))
    task = started_task(robot)
    reads = robot.reads
    result = task.step([0.0, 0.0])
    assert robot.commands[-1] == ('width', pytest.approx(4.0 - 0.35))
    assert robot.reads == reads + 2  # one read for the controller, a fresh one after the width change
    assert result.gripper.width_mm == pytest.approx(3.65)


def test_terminal_on_the_last_step_is_not_a_timeout():
    config = dataclasses.replace(CONFIG, max_steps=11)
    robot = ScriptedRobot(tactile=lambda n: GOOD_GRASP if n <= 2 else NOTHING, force=(0, 0, 0))
    task = started_task(robot, config)
    results = [task.step([0.0, 0.0]) for _ in range(11)]
    assert results[-1].terminal and not results[-1].timeout


def test_sensor_fault_mid_step_ends_the_episode():
    robot = ScriptedRobot()
    task = started_task(robot)
    robot.fail_read = True
    with pytest.raises(SensorError):
        task.step([0.0, 0.0])
    assert task.done


def test_config_round_trips_and_rejects_unknown_keys(tmp_path):
    assert env_config_from_dict(CONFIG.to_dict()) == CONFIG
    bad = tmp_path / 'env.yaml'
    bad.write_text(open(load_env_config.__globals__['DEFAULT_PATH']).read().replace('width_step_mm', 'width_stp'))
    with pytest.raises(ValueError, match="missing keys \\['width_step_mm'\\], unknown keys \\['width_stp'\\]"):
        load_env_config(str(bad))


def test_config_overrides():
    config = load_env_config(overrides={'episode': {'max_steps': 5}, 'gripper': {'width_min_mm': 1.0}})
    assert config.max_steps == 5 and config.gripper.width_min_mm == 1.0
