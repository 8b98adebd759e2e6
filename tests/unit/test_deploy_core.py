"""The inference node's safety core without ROS: checks, switch, stop, clipping, episode returns."""
import math

import numpy as np
import pytest

from plas_ros import deploy
from plas_ros.data.episodes import EpisodeReturns
from plas_ros.env import layout

NOW = 1000.0


PROBE = slice(layout.TACTILE.start, layout.TACTILE.start + 2)  # two taxels, in [0, 1], the stand-in's input


class LinearPolicy:
    """A deterministic stand-in with the load_policy interface: action = scale * (2 obs[PROBE] - 1) + offset."""

    def __init__(self, scale=1.0, offset=0.0, obs_dim=layout.OBS_DIM):
        self.obs_dim, self.act_dim = obs_dim, layout.ACT_DIM
        self.action_low = np.full(2, layout.ACTION_LOW, np.float32)
        self.action_high = np.full(2, layout.ACTION_HIGH, np.float32)
        self.scale, self.offset = scale, offset
        self.calls = 0

    def act(self, obs):
        self.calls += 1
        assert obs.shape == (self.obs_dim,) and obs.dtype == np.float32
        return (self.scale * (2.0 * obs[PROBE] - 1.0) + self.offset).astype(np.float32)


def make_core(policy=None, enabled=True, low=None, high=None, max_age=0.25):
    policy = policy or LinearPolicy()
    low, high = deploy.resolve_action_bounds(policy.action_low, policy.action_high, policy.act_dim, low, high)
    gate = deploy.SafetyGate(policy.obs_dim, low, high, max_age, enabled=enabled)
    return deploy.InferenceCore(policy, gate)


def obs(first=0.1, second=-0.2):
    """A plausible observation for which LinearPolicy() acts (first, second)."""
    data = np.full(layout.OBS_DIM, 0.5, np.float32)  # forces 5 N, taxels half scale, tip z 0.5 m, pitch 15 deg
    data[PROBE] = (first + 1.0) / 2.0, (second + 1.0) / 2.0
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
    assert decision == (None, reason, False, None)
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
    assert core.decide(obs(), NOW, NOW) == (None, deploy.DISABLED, False, None)
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
    assert core.decide(obs(), NOW, NOW) == (None, deploy.ESTOPPED, False, None)


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
    assert core.decide(obs(), NOW, NOW) == (None, deploy.POLICY_NOT_FINITE, False, None)


def test_policy_that_fails_publishes_nothing_and_says_why():
    policy = LinearPolicy()

    def broken(_obs):
        raise ValueError('the td3 network answered (1, 3) for 1 observations, not (1, 2) actions')
    policy.act = broken
    decision = make_core(policy).decide(obs(), NOW, NOW)
    assert decision.action is None and decision.reason == deploy.POLICY_FAILED and '(1, 3)' in decision.detail


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


# -- the envelope belongs to the robot -------------------------------------------------------------------------

def test_the_envelope_is_the_tasks_action_space():
    low, high = deploy.task_envelope()
    np.testing.assert_array_equal(low, np.full(layout.ACT_DIM, layout.ACTION_LOW))
    np.testing.assert_array_equal(high, np.full(layout.ACT_DIM, layout.ACTION_HIGH))


@pytest.mark.parametrize('low, high, words', [
    ([-20.0, -20.0], [20.0, 20.0], 'wider than the task'),
    ([-1.0, -1.0], [1.0, 1.5], 'wider than the task'),
    ([0.5, 0.5], [-0.5, 0.5], 'exceeds'),
    ([math.nan, -1.0], [1.0, 1.0], 'finite'),
    ([-1.0], [1.0], 'finite'),
])
def test_policy_bounds_wider_than_the_envelope_or_malformed_are_refused(low, high, words):
    with pytest.raises(ValueError, match=words):
        deploy.check_policy_bounds(low, high, deploy.task_envelope())


def test_narrower_policy_bounds_are_kept_and_a_gate_cannot_be_wider_than_the_envelope():
    low, high = deploy.check_policy_bounds([-0.5, 0.0], [0.25, 1.0], deploy.task_envelope())
    np.testing.assert_array_equal(low, [-0.5, 0.0])
    np.testing.assert_array_equal(high, [0.25, 1.0])
    with pytest.raises(ValueError, match='wider than the task'):
        deploy.SafetyGate(layout.OBS_DIM, [-3.0, -3.0], [3.0, 3.0], 0.25)


def test_an_action_outside_the_envelope_is_never_published():
    """The last look before publishing: even a gate whose clipping were broken cannot let such an action out."""
    core = make_core()
    core.gate.clip = lambda action: action * 20.0  # as if the bounds had been tampered with after the start
    assert core.decide(obs(0.5, 0.5), NOW, NOW) == (None, deploy.OUTSIDE_ENVELOPE, False, None)
    assert core.gate.publish_reason([0.5, 1.0]) is None
    for bad in ([1.0001, 0.0], [0.0, -13.3], [math.nan, 0.0], [0.0]):
        assert core.gate.publish_reason(bad) == deploy.OUTSIDE_ENVELOPE
    core.gate.estop()
    assert core.gate.publish_reason([0.0, 0.0]) == deploy.ESTOPPED


# -- plausibility of observations ------------------------------------------------------------------------------

def test_plausible_ranges_come_from_the_robot_config():
    from plas_ros.config import section
    arm, finger = section('robot.yaml', 'arm'), section('robot.yaml', 'finger')
    plausible = deploy.load_plausible_config()
    ranges = deploy.load_observation_ranges()
    by_name = {name.split('_')[0]: (low, high) for name, _, _, low, high in ranges.parts}
    assert by_name['tactile'] == (0.0, finger['full_scale'] / layout.TACTILE_FULL_SCALE)
    assert by_name['force'] == (0.0, pytest.approx(plausible.force_max_n / layout.FORCE_SCALE_N))
    assert by_name['tip'] == (pytest.approx(arm['safety_box_low'][2] - plausible.tip_margin_m),
                              pytest.approx(arm['safety_box_high'][2] + plausible.tip_margin_m))
    pitch = [(v + s * plausible.pitch_margin_deg) / layout.PITCH_SCALE_DEG
             for v, s in zip(arm['pitch_range_deg'], (-1, 1))]
    assert by_name['pitch'] == (pytest.approx(pitch[0]), pytest.approx(pitch[1]))
    assert ranges.obs_dim == layout.OBS_DIM


def absurd(index, value):
    data = np.asarray(obs(), np.float32)
    data[index] = value
    return data.tolist()


@pytest.mark.parametrize('index, value, part', [
    (layout.TACTILE.start + 7, 16.0, 'tactile'),         # a cell at 16x full scale
    (layout.TACTILE.start, -0.01, 'tactile'),
    (layout.FORCE.start + 2, 1e6, 'force'),               # far beyond the sensor's range
    (layout.FORCE.start, -0.5, 'force'),                  # |force| cannot be negative
    (layout.TIP_Z, 3.0, 'tip_z'),                         # outside the safety box
    (layout.TIP_Z, 0.0, 'tip_z'),
    (layout.PITCH, 1.5, 'pitch'),                         # 45 deg, beyond the arm's pitch range
    (layout.PITCH, -3e38, 'pitch'),
])
def test_finite_but_absurd_observations_get_no_action_and_the_part_is_named(index, value, part):
    core = make_core()
    decision = core.decide(absurd(index, value), NOW, NOW)
    assert decision.action is None and decision.reason == deploy.IMPLAUSIBLE
    assert decision.detail.startswith(part) and ('index %d' % index) in decision.detail
    assert ('%.6g' % np.float32(value)) in decision.detail
    assert core.policy.calls == 0


def test_the_edges_of_the_plausible_ranges_still_get_actions():
    ranges = deploy.load_observation_ranges()
    core = make_core()
    for _, start, stop, low, high in ranges.parts:
        for value in (low, high):
            data = np.asarray(obs(), np.float32)
            data[start:stop] = value
            assert core.decide(data.tolist(), NOW, NOW).action is not None, (start, value)


def test_an_implausibility_is_said_once_per_episode():
    once = deploy.EpisodeOnce()
    assert once.first(3, deploy.IMPLAUSIBLE)
    assert not once.first(3, deploy.IMPLAUSIBLE)
    assert not once.first(3, deploy.IMPLAUSIBLE)
    assert once.first(4, deploy.IMPLAUSIBLE)
    assert not once.first(4, deploy.IMPLAUSIBLE)


def test_plausible_section_is_validated(tmp_path):
    bad = tmp_path / 'deploy.yaml'
    bad.write_text('inference: {max_obs_age: 0.1, warn_period: 1.0, threads: 1}\n'
                   'plausible: {force_max_n: -1.0, tip_margin_m: 0.0, pitch_margin_deg: 0.0}\n')
    with pytest.raises(ValueError, match='force_max_n'):
        deploy.load_observation_ranges(str(bad))
    bad.write_text('inference: {max_obs_age: 0.1, warn_period: 1.0, threads: 1}\nplausible: {force_max_n: 1.0}\n')
    with pytest.raises(ValueError, match='missing keys'):
        deploy.load_observation_ranges(str(bad))
    bad.write_text('inference: {max_obs_age: 0.1, warn_period: 1.0, threads: 1}\n')  # no section: the default's
    assert deploy.load_observation_ranges(str(bad)).obs_dim == layout.OBS_DIM
