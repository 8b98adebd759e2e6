"""The inference node's safety core without ROS: checks, switch, stop, clipping, episode returns."""
import math

import numpy as np
import pytest

from plas_ros import deploy
from plas_ros.data.episodes import EpisodeReturns
from plas_ros.env import layout

NOW = 1000.0


class LinearPolicy:
    """A deterministic stand-in with the load_policy interface: action = scale * obs[:2] + offset."""

    def __init__(self, scale=1.0, offset=0.0, obs_dim=layout.OBS_DIM):
        self.obs_dim, self.act_dim = obs_dim, layout.ACT_DIM
        self.action_low = np.full(2, layout.ACTION_LOW, np.float32)
        self.action_high = np.full(2, layout.ACTION_HIGH, np.float32)
        self.scale, self.offset = scale, offset
        self.calls = 0

    def act(self, obs):
        self.calls += 1
        assert obs.shape == (self.obs_dim,) and obs.dtype == np.float32
        return (self.scale * obs[:2] + self.offset).astype(np.float32)


def make_core(policy=None, enabled=True, low=None, high=None, max_age=0.25):
    policy = policy or LinearPolicy()
    low, high = deploy.resolve_action_bounds(policy.action_low, policy.action_high, policy.act_dim, low, high)
    gate = deploy.SafetyGate(policy.obs_dim, low, high, max_age, enabled=enabled)
    return deploy.InferenceCore(policy, gate)


def obs(first=0.1, second=-0.2):
    data = np.zeros(layout.OBS_DIM, np.float32)
    data[:2] = first, second
    return data.tolist()


def test_valid_observation_gets_the_policy_action():
    core = make_core()
    decision = core.decide(obs(0.3, -0.4), NOW - 0.01, NOW)
    assert decision.reason is None and not decision.clipped
    np.testing.assert_allclose(decision.action, [0.3, -0.4], rtol=1e-6)
    assert decision.action.dtype == np.float32


@pytest.mark.parametrize('data, reason', [
    (obs()[:-1], deploy.WRONG_SIZE),
    (obs() + [0.0], deploy.WRONG_SIZE),
    ([], deploy.WRONG_SIZE),
    (obs()[:5] + [math.nan] + obs()[6:], deploy.NOT_FINITE),
    (obs()[:87] + [math.inf, 0.0], deploy.NOT_FINITE),
])
def test_invalid_observation_gets_no_action_and_never_reaches_the_policy(data, reason):
    core = make_core()
    decision = core.decide(data, NOW, NOW)
    assert decision == (None, reason, False)
    assert core.policy.calls == 0


@pytest.mark.parametrize('stamp, reason', [
    (0.0, deploy.NO_STAMP),
    (NOW - 0.26, deploy.STALE),
    (NOW - 10.0, deploy.STALE),
    (NOW + 0.3, deploy.FUTURE),
])
def test_stamp_outside_the_age_limit_gets_no_action(stamp, reason):
    decision = make_core(max_age=0.25).decide(obs(), stamp, NOW)
    assert decision.action is None and decision.reason == reason


def test_stamp_just_within_the_age_limit_gets_an_action():
    assert make_core(max_age=0.25).decide(obs(), NOW - 0.24, NOW).action is not None


def test_disabled_gate_publishes_nothing_until_enabled():
    core = make_core(enabled=False)
    assert core.decide(obs(), NOW, NOW) == (None, deploy.DISABLED, False)
    core.gate.enable(True)
    assert core.decide(obs(), NOW, NOW).action is not None
    core.gate.enable(False)
    assert core.decide(obs(), NOW, NOW).reason == deploy.DISABLED


def test_estop_latches_over_the_enable_switch_until_reset():
    core = make_core()
    core.gate.estop()
    assert core.decide(obs(), NOW, NOW).reason == deploy.ESTOPPED
    core.gate.enable(True)  # enabling again does not release the stop
    assert core.decide(obs(), NOW, NOW).reason == deploy.ESTOPPED
    core.gate.reset_estop()
    assert core.decide(obs(), NOW, NOW).action is not None


def test_estop_during_the_forward_pass_suppresses_that_action():
    core = make_core()
    policy_act = core.policy.act

    def act_then_stop(o):
        core.gate.estop()  # as if the stop arrived on another thread while the network ran
        return policy_act(o)
    core.policy.act = act_then_stop
    assert core.decide(obs(), NOW, NOW) == (None, deploy.ESTOPPED, False)


def test_out_of_range_policy_action_is_clipped_to_the_policy_bounds():
    core = make_core(LinearPolicy(scale=10.0))
    decision = core.decide(obs(0.5, -0.5), NOW, NOW)
    np.testing.assert_array_equal(decision.action, [1.0, -1.0])
    assert decision.clipped


def test_tighter_configured_bounds_clip_per_dimension():
    core = make_core(low=[0.0, -0.25], high=0.5)
    decision = core.decide(obs(-0.9, 0.9), NOW, NOW)
    np.testing.assert_array_equal(decision.action, [0.0, 0.5])
    decision = core.decide(obs(0.9, -0.9), NOW, NOW)
    np.testing.assert_array_equal(decision.action, [0.5, -0.25])


@pytest.mark.parametrize('low, high, word', [
    (-2.0, None, 'action_low'),
    (None, [1.0, 1.5], 'action_high'),
    (0.5, 0.0, 'exceeds'),
    ([0.0, 0.0, 0.0], None, 'action_low'),
    (math.nan, None, 'action_low'),
])
def test_bounds_wider_than_the_policy_or_malformed_are_refused(low, high, word):
    with pytest.raises(ValueError, match=word):
        deploy.resolve_action_bounds([-1, -1], [1, 1], 2, low, high)


def test_policy_returning_nan_publishes_nothing():
    core = make_core(LinearPolicy(offset=math.nan))
    assert core.decide(obs(), NOW, NOW) == (None, deploy.POLICY_NOT_FINITE, False)


def test_policy_with_another_observation_size_is_refused():
    policy = LinearPolicy(obs_dim=10)
    gate = deploy.SafetyGate(layout.OBS_DIM, [-1, -1], [1, 1], 0.25, enabled=True)
    with pytest.raises(ValueError, match='10'):
        deploy.InferenceCore(policy, gate)


def test_episode_returns_sum_rewards_and_report_each_ending():
    returns = EpisodeReturns()
    assert returns.add(0, 0.05) == []
    assert returns.add(0, 0.1) == []
    [first] = returns.add(0, 0.0, terminal=True)
    assert first.episode == 0 and first.steps == 3 and first.outcome == 'terminal'
    assert first.ret == pytest.approx(0.15)
    returns.add(1, 0.02)
    [second] = returns.add(1, 0.03, timeout=True)
    assert (second.episode, second.steps, second.outcome) == (1, 2, 'timeout')
    assert second.ret == pytest.approx(0.05)
    assert returns.finished == [first, second]


def test_episode_whose_end_was_missed_is_closed_as_incomplete():
    returns = EpisodeReturns()
    returns.add(4, 0.5)
    returns.add(4, 0.25)
    [lost] = returns.add(5, 1.0)
    assert (lost.episode, lost.ret, lost.steps, lost.outcome) == (4, 0.75, 2, 'incomplete')
    [errored] = returns.add(5, 0.0, error=True)
    assert (errored.episode, errored.ret, errored.steps, errored.outcome) == (5, 1.0, 2, 'error')


def test_config_file_loads_and_rejects_bad_values(tmp_path):
    config = deploy.load_deploy_config()
    assert config.max_obs_age > 0 and config.threads >= 1 and config.warn_period > 0
    assert deploy.load_deploy_config(overrides={'max_obs_age': 0.05}).max_obs_age == 0.05
    bad = tmp_path / 'deploy.yaml'
    bad.write_text('inference:\n  max_obs_age: 0.1\n')
    with pytest.raises(ValueError, match='missing keys'):
        deploy.load_deploy_config(str(bad))
    with pytest.raises(ValueError, match='max_obs_age'):
        deploy.load_deploy_config(overrides={'max_obs_age': -1})
