"""Online TD3 collection in process: its replay buffer is exactly the written file, its TD3 has the authors'
settings, it learns the cloth task from its own collection, its checkpoints load as TD3 policies, and an
interrupted collection keeps its completed episodes and its last checkpoint."""
import dataclasses
import os
import signal
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
import yaml

from plas_ros.collect import collect
from plas_ros.collect.online_td3 import OnlineTD3Policy, ReplayBuffer
from plas_ros.collect.policies import default_checkpoint_out, load_collect_config, make_policy
from plas_ros.data import cli
from plas_ros.env.evaluation import Evaluator
from plas_ros.policy import load_policy
from plas_ros.sim.gym_env import make_env
from tests.helpers.common import wait_for
from tests.helpers.data import make_steps

COLLECT = load_collect_config()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def settings(**changes):
    return dataclasses.replace(COLLECT.online_td3, **changes)


def config(**changes):
    return dataclasses.replace(COLLECT, online_td3=settings(**changes))


def small_config_file(tmp_path, **changes):
    """A collection file with only an online_td3 section (the rest comes from config/collect.yaml)."""
    values = dict(dataclasses.asdict(settings(**changes)))
    values = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
    path = tmp_path / 'online.yaml'
    path.write_text(yaml.safe_dump({'online_td3': values}))
    return str(path)


def test_the_authors_td3_settings_with_the_robot_presets_networks():
    s = COLLECT.online_td3
    assert (s.policy_noise, s.noise_clip, s.policy_delay, s.tau, s.gamma) == (0.2, 0.5, 2, 0.005, 0.99)
    assert (s.actor_lr, s.critic_lr, s.batch_size) == (3e-4, 3e-4, 256)
    assert s.actor_hidden == s.critic_hidden == (64, 64)
    learner = OnlineTD3Policy(s, seed=0).learner
    assert learner.cfg.algo == 'td3' and learner.cfg.lmbda == 1.0  # the plain min(Q1', Q2')
    assert [tuple(w.shape) for w in learner.actor.net.weights] == [(1, 64, 64), (1, 64, 2)]


def test_the_buffer_takes_what_the_writer_writes():
    buffer = ReplayBuffer(89, 2)
    steps = make_steps(0, n=3, end='timeout') + make_steps(1, n=2, end='terminal') + make_steps(2, n=2, end='error')
    taken = [buffer.add(s) for s in steps]
    assert taken == [True] * 6 + [False]  # the error record has no next observation
    assert not buffer.add(steps[0])  # a step already held
    assert not buffer.add(steps[1]._replace(step=9, reward=float('nan')))
    columns = buffer.columns()
    assert len(buffer) == 6 and columns['not_done'].tolist() == [1, 1, 1, 1, 0, 1]  # a timeout bootstraps
    np.testing.assert_array_equal(columns['next_obs'][2], steps[2].next_observation)
    for _ in range(3000):  # it grows, never evicts
        assert buffer.add(steps[0]._replace(episode=3, step=_))
    assert len(buffer) == 3006
    batch = buffer.sample(32, np.random.default_rng(0))
    assert batch.obs.shape == (1, 32, 89) and batch.reward.shape == (1, 32) and batch.obs.dtype == torch.float32


def test_the_buffer_is_the_written_file_and_the_checkpoint_loads_as_td3(tmp_path):
    output, out = str(tmp_path / 'online.h5'), str(tmp_path / 'checkpoint')
    policy = make_policy('online_td3', config=config(warmup_steps=100, batch_size=32, checkpoint_every=100),
                         seed=3, checkpoint_out=out)
    summaries = collect(output, policy, transitions=300, seed=3, progress=False)
    with h5py.File(output, 'r') as f:
        rows = {name: f[name][:] for name in ('observations', 'actions', 'rewards', 'next_observations',
                                              'terminals')}
    columns = policy.buffer.columns()
    np.testing.assert_array_equal(columns['obs'], rows['observations'])
    np.testing.assert_array_equal(columns['action'], rows['actions'])
    np.testing.assert_array_equal(columns['reward'], rows['rewards'])
    np.testing.assert_array_equal(columns['next_obs'], rows['next_observations'])
    np.testing.assert_array_equal(columns['not_done'], 1.0 - rows['terminals'])
    assert len(policy.buffer) == sum(s.steps for s in summaries) >= 300
    assert policy.learner.updates == len(policy.buffer) - 100 + 1  # one per step once warmed up

    loaded = load_policy(out)
    assert loaded.algo == 'td3' and (loaded.obs_dim, loaded.act_dim) == (89, 2)
    obs = rows['observations'][:50]
    np.testing.assert_allclose(loaded.act(obs), np.stack([policy.greedy(o) for o in obs]), atol=1e-6)
    progress = yaml.safe_load(open(os.path.join(out, 'config.yaml')))['progress']
    assert progress['transitions'] == len(policy.buffer) and progress['updates'] == policy.learner.updates
    # ... and the expert-episode route: policy checkpoint from that folder.
    expert = make_policy('checkpoint', checkpoint=out, noise=0.0)
    assert expert.act(obs[0]).shape == (2,)


def test_online_td3_learns_the_task_from_its_own_collection(tmp_path):
    out = str(tmp_path / 'checkpoint')
    policy = make_policy('online_td3', seed=0, checkpoint_out=out)  # config/collect.yaml's settings
    evaluator = Evaluator(lambda: make_env(seed=0), 10, gamma=0.99, seed=5000)
    untrained = evaluator.evaluate(policy.greedy)['return_mean']
    random = evaluator.evaluate(make_policy('random', seed=1).act)['return_mean']
    summaries = collect(str(tmp_path / 'online.h5'), policy, transitions=3500, seed=0, progress=False)
    returns = [s.ret for s in summaries]
    learned = evaluator.evaluate(load_policy(out).act)['return_mean']
    # random 0.3 and the untrained actor 1.3 (the learner off: updates_per_step 0 leaves it so); the expert ~5
    # (a 70-step episode holds at most 7). Seeded: 3.6 here; not every seed learns (doc/env.md, online_td3).
    assert learned > 2.5 and learned > 2 * max(untrained, random), (learned, untrained, random)
    # the collected episodes improve too: the first ones are the random warm-up's (~0.3)
    assert np.mean(returns[-20:]) > max(1.0, 3 * np.mean(returns[:20])), (returns[:20], returns[-20:])


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM], ids=['SIGINT', 'SIGTERM'])
def test_an_interrupted_collection_keeps_its_episodes_and_its_last_checkpoint(tmp_path, signum):
    output, out = str(tmp_path / 'online.h5'), str(tmp_path / 'online_online_td3')
    small = small_config_file(tmp_path, warmup_steps=50, batch_size=32, checkpoint_every=100)
    proc = subprocess.Popen([sys.executable, '-m', 'plas_ros.collect', '--policy', 'online_td3', '--transitions',
                             '100000', '--output', output, '--config', small, '--no-progress', '--seed', '2'],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def enough():
            assert proc.poll() is None, proc.communicate()[0]
            if not os.path.exists(output):
                return False
            with h5py.File(output, 'r') as f:
                return len(f['rewards']) >= 250
        wait_for(enough, 120, interval=0.2, what='250 transitions in %s' % output)
        proc.send_signal(signum)
        text = proc.communicate(timeout=60)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and 'interrupted' in text, text
    assert out == default_checkpoint_out(output)
    arrays, _ = cli.validate(output)
    ends = int((arrays['terminals'] | arrays['timeouts']).sum())
    progress = yaml.safe_load(open(os.path.join(out, 'config.yaml')))['progress']
    # Every episode that had ended when the signal came is in the file (one may have ended while being
    # written); the checkpoint was saved after the signal, from every transition learned.
    assert progress['episode_ends'] - 1 <= ends <= progress['episode_ends']
    assert progress['transitions'] >= len(arrays['rewards']) >= 250 and progress['updates'] > 0
    assert load_policy(out).act(arrays['observations'][0]).shape == (2,)


def test_a_fault_that_ends_the_run_still_leaves_the_last_checkpoint(tmp_path, monkeypatch):
    from plas_ros.collect import collector

    class Failing:  # the world dies (a driver, a device) after 150 steps
        def __init__(self):
            self.env, self.steps = make_env(), 0

        def reset(self, seed=None):
            return self.env.reset(seed=seed)

        def step(self, action):
            self.steps += 1
            if self.steps > 150:
                raise OSError('device gone')
            return self.env.step(action)

    monkeypatch.setattr(collector, 'make_env', Failing)
    out = str(tmp_path / 'checkpoint')
    policy = make_policy('online_td3', config=config(warmup_steps=50, batch_size=16, checkpoint_every=0), seed=1,
                         checkpoint_out=out)
    with pytest.raises(OSError, match='device gone'):
        collect(str(tmp_path / 'online.h5'), policy, transitions=1000, progress=False)
    progress = yaml.safe_load(open(os.path.join(out, 'config.yaml')))['progress']
    assert progress['transitions'] == 150 and progress['updates'] == 101
    arrays, _ = cli.validate(str(tmp_path / 'online.h5'))
    assert 0 < len(arrays['rewards']) <= 150


def test_bad_settings_are_refused(tmp_path):
    from plas_ros.config import ConfigError
    with pytest.raises(ConfigError, match='online_td3.policy_delay'):
        load_collect_config(small_config_file(tmp_path, policy_delay=0))
    assert default_checkpoint_out('/a/b.h5') == '/a/b_online_td3' and default_checkpoint_out('x') == 'x_online_td3'
