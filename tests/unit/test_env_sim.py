"""The in-process gymnasium env over the cloth simulator, and the behaviour policies."""
import dataclasses

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from plas_ros.collect.policies import (
    POLICY_NAMES,
    ExpertPolicy,
    NoisyPolicy,
    RandomPolicy,
    SchedulePolicy,
    edge_row,
    load_collect_config,
    make_policy,
)
from plas_ros.env import layout
from plas_ros.env.config import load_env_config
from plas_ros.env.task import EpisodeOverError, InvalidActionError
from plas_ros.sim.gym_env import ENV_ID, make_env

COLLECT = load_collect_config()


def rollout(env, policy, seed):
    obs, info = env.reset(seed=seed)
    policy.start_episode(seed)
    observations, rewards, infos = [obs], [], [info]
    while True:
        obs, reward, terminated, truncated, info = env.step(policy.act(obs))
        observations.append(obs)
        rewards.append(reward)
        infos.append(info)
        if terminated or truncated:
            return np.array(observations), np.array(rewards), terminated, truncated, infos


def test_passes_gymnasium_check_env():
    env = make_env(seed=0)
    check_env(env, skip_render_check=True)
    assert env.observation_space.shape == (layout.OBS_DIM,) and env.action_space.shape == (layout.ACT_DIM,)


def test_registered_with_gymnasium():
    env = gym.make(ENV_ID)
    obs, _ = env.reset(seed=1)
    assert obs.shape == (layout.OBS_DIM,)
    env.close()


def test_same_seed_same_episode_and_different_seed_differs():
    policy_a, policy_b = make_policy('expert', noise=0.1, seed=4), make_policy('expert', noise=0.1, seed=4)
    obs_a, rewards_a, *_ = rollout(make_env(seed=0), policy_a, seed=11)
    obs_b, rewards_b, *_ = rollout(make_env(seed=99), policy_b, seed=11)
    assert np.array_equal(obs_a, obs_b) and np.array_equal(rewards_a, rewards_b)
    obs_c, *_ = rollout(make_env(seed=0), make_policy('expert', noise=0.1, seed=4), seed=12)
    assert not np.array_equal(obs_a[:3], obs_c[:3])


def test_step_info_holds_the_raw_data_behind_the_observation():
    env = make_env(seed=0)
    obs, info = env.reset(seed=3)
    assert info['calibration']['width_mm'] == info['gripper_width'] <= 4.0
    obs, reward, terminated, truncated, info = env.step(np.array([0.0, 0.0], np.float32))
    assert np.allclose(obs, layout.make_observation(info['force_raw'], info['tactile_raw'],
                                                  info['tip_pose'][2], info['tip_pose'][3]), rtol=1e-6)
    assert info['tactile_raw'].dtype == np.uint16 and info['tactile_raw'].shape == (14, 6)
    assert info['gripper_adjustment'] in (-1, 0, 1) and reward == pytest.approx(0.05)


def test_episode_ends_by_timeout_or_by_losing_the_edge():
    env = make_env(seed=0)
    _, rewards, terminated, truncated, infos = rollout(env, make_policy('expert'), seed=0)
    assert terminated != truncated
    if truncated:
        assert len(rewards) == load_env_config().max_steps and infos[-1]['edge_held']
    else:
        assert rewards[-1] == 0.0 and len(rewards) < load_env_config().max_steps
    with pytest.raises(EpisodeOverError):
        env.step(np.zeros(2, np.float32))


def test_short_step_limit_truncates():
    config = dataclasses.replace(load_env_config(), max_steps=3)
    env = make_env(env_config=config, seed=0)
    env.reset(seed=0)
    flags = [env.step(np.array([-1.0, 0.0], np.float32))[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]


def test_step_limit_override_runs_the_same_episode_further():
    """make_env(max_steps=N) and a writable max_episode_steps: the first steps are those of the limited episode."""
    action = np.array([-1.0, 0.0], np.float32)
    env = make_env(seed=0, max_steps=3)
    assert env.max_episode_steps == 3
    env.reset(seed=5)
    short = [env.step(action) for _ in range(3)]
    assert [s[2:4] for s in short] == [(False, False), (False, False), (False, True)]
    env.max_episode_steps = 6
    env.reset(seed=5)
    long = [env.step(action) for _ in range(6)]
    assert [s[3] for s in long] == [False] * 5 + [True]
    for a, b in zip(short, long):
        assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    with pytest.raises(EpisodeOverError):
        env.step(action)
    with pytest.raises(ValueError, match='max_episode_steps'):
        env.max_episode_steps = 0
    assert make_env(seed=0).max_episode_steps == load_env_config().max_steps


def test_evaluator_runs_the_cloth_env_past_its_limit_and_reports_the_limited_return():
    """The Q diagnostics' run goes on for L + W = 2 L steps (q_window 0); return and length stay the episode's."""
    from plas_ros.env.evaluation import Evaluator
    limit = load_env_config().max_steps
    evaluator = Evaluator(make_env, episodes=1, gamma=0.99, seed=0)
    seen = []

    def q_fn(obs, actions):
        seen.append(obs.shape)
        return np.zeros(len(obs))
    result = evaluator.evaluate(make_policy('expert').act, q_fn)
    assert evaluator.limit == limit and evaluator.env.max_episode_steps == 2 * limit
    _, rewards, terminated, truncated, _ = rollout(make_env(seed=0), make_policy('expert'), seed=0)
    assert truncated and len(rewards) == limit  # this episode reaches the limit: the run had to go past it
    assert result['return_mean'] == pytest.approx(rewards.sum()) and result['episode_length_mean'] == len(rewards)
    # Every state of the episode is scored, so even state L - 1 had its L rewards ahead: 2 L - 1 steps at least.
    assert seen == [(len(rewards), layout.OBS_DIM)] and result['q_scored_states'] == len(rewards)
    assert evaluator.evaluate(make_policy('expert').act)['return_mean'] == result['return_mean']


def test_invalid_action_raises_and_the_episode_continues():
    env = make_env(seed=0)
    env.reset(seed=0)
    pose = env.sim.tip_pose()
    with pytest.raises(InvalidActionError, match='NaN'):
        env.step(np.array([np.nan, 0.0], np.float32))
    assert np.array_equal(env.sim.tip_pose(), pose)
    env.step(np.zeros(2, np.float32))


def test_expert_beats_random():
    env = make_env(seed=0)
    seeds = range(5)
    expert = sum(rollout(env, make_policy('expert'), s)[1].sum() for s in seeds)
    random = sum(rollout(env, make_policy('random', seed=1), s)[1].sum() for s in seeds)
    assert expert > 3 * random


# ----------------------------------------------------------------------------------------------- policies

def test_edge_row_from_the_tactile_matrix():
    tactile = np.zeros((14, 6))
    assert edge_row(tactile, 40) is None
    tactile[7:, :] = 2000
    assert edge_row(tactile, 40) == pytest.approx(7.0)
    tactile[6, :3] = 2000
    assert edge_row(tactile, 40) == pytest.approx(6.5)


def test_expert_moves_up_when_the_edge_sits_high_and_slows_down():
    expert = ExpertPolicy(COLLECT.expert)
    centred, high = np.zeros((14, 6)), np.zeros((14, 6))
    centred[7:, :] = 2000
    high[3:, :] = 2000
    a_centred = expert.act(layout.make_observation([0, 0, 0], centred, 0.3, 0.0))
    a_high = expert.act(layout.make_observation([0, 0, 0], high, 0.3, 0.0))
    assert a_centred[1] == pytest.approx(0.0) and a_centred[0] == pytest.approx(2 * COLLECT.expert.speed_max - 1)
    assert a_high[1] > 0 and a_high[0] < a_centred[0]


def test_random_and_noisy_policies_are_seeded_and_in_range():
    obs = np.zeros(layout.OBS_DIM, np.float32)
    a = [RandomPolicy(seed=5).act(obs) for _ in range(2)]
    b = RandomPolicy(seed=5)
    assert np.array_equal(a[0], b.act(obs))
    noisy = NoisyPolicy(ExpertPolicy(COLLECT.expert), noise=5.0, seed=0)
    actions = np.array([noisy.act(obs) for _ in range(50)])
    assert actions.min() >= -1 and actions.max() <= 1 and actions.std() > 0.3


def test_schedule_mixes_members_per_episode_with_the_configured_weights():
    schedule = make_policy('schedule', seed=0)
    assert isinstance(schedule, SchedulePolicy)
    picks = []
    for episode in range(400):
        schedule.start_episode(episode)
        picks.append(schedule.members.index(schedule.current))
    shares = np.bincount(picks, minlength=len(schedule.members)) / 400.0
    assert np.allclose(shares, schedule.probabilities, atol=0.06)
    again = make_policy('schedule', seed=0)
    again.start_episode(0)
    assert again.members.index(again.current) == picks[0]


def test_policy_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match='unknown policy'):
        make_policy('greedy')
    with pytest.raises(ValueError, match='needs a checkpoint'):
        make_policy('checkpoint')
    bad = tmp_path / 'collect.yaml'
    bad.write_text('noise: 0.1\nexpert: {}\nschedule: []\n')
    with pytest.raises(ValueError, match='collect.yaml'):
        load_collect_config(str(bad))
    assert set(POLICY_NAMES) == {'random', 'expert', 'checkpoint', 'schedule', 'online_td3'}


def test_rgb_array_render_passes_the_checker_and_shows_the_reading():
    from plas_ros.hardware.tactile_image import TactileColouriser
    env = make_env(seed=0, render_mode='rgb_array')
    check_env(env)
    assert env.metadata['render_modes'] == ['rgb_array'] and env.metadata['render_fps'] > 0
    _, info = env.reset(seed=3)
    frame = env.render()
    tactile = TactileColouriser().image(info['tactile_raw'])
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    assert frame.shape[0] == tactile.shape[0] and frame.shape[1] > tactile.shape[1]
    np.testing.assert_array_equal(frame[:, :tactile.shape[1]], tactile)  # the tactile half is the last reading
    _, _, _, _, info = env.step(np.array([0.0, 0.5], np.float32))
    moved = env.render()
    np.testing.assert_array_equal(moved[:, :tactile.shape[1]], TactileColouriser().image(info['tactile_raw']))
    assert not np.array_equal(moved[:, tactile.shape[1]:], frame[:, tactile.shape[1]:])  # the tip went up 5 cm


def test_rendering_does_not_change_the_episode():
    plain, rendered = make_env(seed=0), make_env(seed=0, render_mode='rgb_array')
    plain.reset(seed=5)
    rendered.reset(seed=5)
    for _ in range(5):
        rendered.render()
        a = plain.step(np.array([0.2, 0.0], np.float32))
        b = rendered.step(np.array([0.2, 0.0], np.float32))
        assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    assert make_env(seed=0).render() is None
    with pytest.raises(ValueError, match="render_mode 'human' is not supported"):
        make_env(render_mode='human')
    made = gym.make(ENV_ID, render_mode='rgb_array')
    made.reset(seed=1)
    assert made.render().shape[2] == 3
    made.close()
