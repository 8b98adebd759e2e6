"""Unit tests of the shared pieces and of each algorithm's contract: target formula, bounds, phases, seeds;
the configuration's resolution (each algorithm with its own section) and its errors."""
import copy

import numpy as np
import pytest
import torch
import yaml

from plas_ros.algos import config as algo_config
from plas_ros.algos.bear import mmd
from plas_ros.algos.config import ALGOS, ConfigError, fields_of, load_config
from plas_ros.algos.nets import (
    FusedAdam,
    StackedMLP,
    repeat_states,
    sampled_td_target,
    soft_clipped_double_q,
    td_target,
    twin_critic_loss,
)
from plas_ros.algos.registry import build_algorithm
from plas_ros.algos.trainer import Trainer, TransitionSampler
from plas_ros.data.loader import Dataset

LOW = np.array([-0.5, 0.0, -2.0], np.float32)
HIGH = np.array([0.5, 3.0, -1.0], np.float32)


def small_cfg(algo, **kw):
    """Small networks and budgets, for the fields `algo` takes; the algorithm's own settings otherwise."""
    values = dict(actor_hidden=[16, 16], critic_hidden=[16, 16], vae_hidden=[16, 16], batch_size=32, vae_steps=20,
                  steps=20, log_every=10, act_samples=8, target_samples=4, warmstart_steps=5)
    values = {k: v for k, v in values.items() if k in fields_of(algo)}
    values.update(kw)
    return load_config(None, algo=algo, **values)


def random_dataset(n=300, obs_dim=5, low=LOW, high=HIGH, seed=0):
    rng = np.random.default_rng(seed)
    ends = np.zeros(n, bool)
    ends[19::20] = True
    obs = rng.normal(size=(n, obs_dim)).astype(np.float32)
    return Dataset(observations=obs, actions=rng.uniform(low, high, (n, len(low))).astype(np.float32),
                   rewards=rng.normal(size=n).astype(np.float32), next_observations=np.roll(obs, -1, 0),
                   terminals=ends.copy(), timeouts=np.zeros(n, bool), episode_ends=ends, has_next=np.ones(n, bool),
                   action_low=low, action_high=high)


def test_soft_clipped_double_q_and_td_target_formula():
    q1, q2 = torch.tensor([1.0, 5.0]), torch.tensor([3.0, 2.0])
    lmbda = 0.75
    expected_soft = torch.tensor([0.75 * 1 + 0.25 * 3, 0.75 * 2 + 0.25 * 5])
    assert torch.allclose(soft_clipped_double_q(q1, q2, lmbda), expected_soft)
    assert torch.allclose(soft_clipped_double_q(q1, q2, 1.0), torch.minimum(q1, q2))
    reward, not_done = torch.tensor([0.5, -1.0]), torch.tensor([1.0, 0.0])  # the second transition is terminal
    y = td_target(reward, not_done, 0.99, q1, q2, lmbda)
    assert torch.allclose(y, torch.tensor([0.5 + 0.99 * 1.5, -1.0]))


def test_twin_critic_loss_is_sum_of_per_seed_mses():
    q = torch.randn(2, 2, 7)
    y = torch.randn(2, 7)
    expected = sum(torch.mean((q[s, i] - y[s]) ** 2) for s in range(2) for i in range(2))
    assert torch.allclose(twin_critic_loss(q, y), expected)


def test_fused_adam_matches_torch_adam():
    torch.manual_seed(0)
    a = torch.nn.Parameter(torch.randn(3, 4))
    b = torch.nn.Parameter(a.detach().clone())
    ours, reference = FusedAdam([a], lr=1e-2), torch.optim.Adam([b], lr=1e-2)
    for _ in range(5):
        grad = torch.randn(3, 4)
        a.grad, b.grad = grad.clone(), grad.clone()
        ours.step()
        reference.step()
    assert torch.allclose(a, b, atol=1e-6)


def _adam_run(optimizer, params, grads):
    for grad in grads:
        for p, g in zip(params, grad):
            p.grad = g.clone()
        optimizer.step()
        optimizer.zero_grad()
    return [p.detach().clone() for p in params]


@pytest.mark.parametrize('saver, loader', [('fused_adam', 'fused_adam'), ('fused_adam', 'torch'),
                                           ('torch', 'fused_adam')])
def test_adam_state_round_trip_continues_bit_identically(tmp_path, saver, loader):
    """5 steps, state saved through torch.save/torch.load into a fresh optimiser over copied weights, 5 more
    steps: bit-identical to 10 uninterrupted steps (also across FusedAdam and torch.optim.Adam(fused=True))."""
    make = {'fused_adam': lambda ps: FusedAdam(ps, lr=1e-2),
            'torch': lambda ps: torch.optim.Adam(ps, lr=1e-2, fused=True)}
    torch.manual_seed(0)
    start = [torch.randn(3, 4), torch.randn(4)]
    grads = [[torch.randn(3, 4), torch.randn(4)] for _ in range(10)]
    straight = [torch.nn.Parameter(t.clone()) for t in start]
    expected = _adam_run(make[saver](straight), straight, grads)

    first = [torch.nn.Parameter(t.clone()) for t in start]
    optimizer = make[saver](first)
    _adam_run(optimizer, first, grads[:5])
    torch.save(optimizer.state_dict(), str(tmp_path / 'optim.pt'))
    resumed = [torch.nn.Parameter(p.detach().clone()) for p in first]
    optimizer = make[loader](resumed)
    optimizer.load_state_dict(torch.load(str(tmp_path / 'optim.pt'), weights_only=True))
    result = _adam_run(optimizer, resumed, grads[5:])
    assert all(torch.equal(a, b) for a, b in zip(result, expected))


def test_fused_adam_keeps_counting_after_its_tensors_are_replaced():
    """A device move replaces every tensor attribute of the optimiser (plas_ros.algos.devices); the step counts
    must still advance (they are one tensor, not views kept beside it), bit-identical to torch.optim.Adam."""
    torch.manual_seed(0)
    start = [torch.randn(3, 4), torch.randn(4)]
    grads = [[torch.randn(3, 4), torch.randn(4)] for _ in range(6)]
    reference_params = [torch.nn.Parameter(t.clone()) for t in start]
    expected = _adam_run(torch.optim.Adam(reference_params, lr=1e-2, fused=True), reference_params, grads)
    params = [torch.nn.Parameter(t.clone()) for t in start]
    optimizer = FusedAdam(params, lr=1e-2)
    _adam_run(optimizer, params, grads[:3])
    for name, value in list(vars(optimizer).items()):
        if isinstance(value, torch.Tensor):
            setattr(optimizer, name, value.clone())
        elif name != 'params' and isinstance(value, list):
            setattr(optimizer, name, [t.clone() for t in value])
    result = _adam_run(optimizer, params, grads[3:])
    assert optimizer.state_dict()['state'][0]['step'].item() == 6
    assert all(torch.equal(a, b) for a, b in zip(result, expected))


def test_fused_adam_state_is_a_copy_and_refuses_other_parameters():
    p = torch.nn.Parameter(torch.zeros(2))
    optimizer = FusedAdam([p], lr=1e-2)
    assert optimizer.state_dict()['state'] == {}  # nothing stepped yet, as in torch.optim.Adam
    p.grad = torch.ones(2)
    optimizer.step()
    state = optimizer.state_dict()
    state['state'][0]['exp_avg'].fill_(5.0)
    assert optimizer.exp_avgs[0].tolist() != [5.0, 5.0]
    with pytest.raises(ValueError, match='shapes'):
        FusedAdam([torch.nn.Parameter(torch.zeros(3))], lr=1e-2).load_state_dict(state)
    with pytest.raises(ValueError, match='expected 1 of 2'):
        FusedAdam([p, torch.nn.Parameter(torch.zeros(1))], lr=1e-2).load_state_dict(state)
    state['param_groups'][0]['amsgrad'] = True
    with pytest.raises(ValueError, match='amsgrad'):
        FusedAdam([p], lr=1e-2).load_state_dict(state)


def test_stacked_members_are_independent():
    """A member's output and gradient depend only on its own weights and inputs (seeds do not mix)."""
    net = StackedMLP(2, (3, 2), [8], 1)
    net.reset_parameters([torch.Generator().manual_seed(s) for s in (1, 2)])
    x, a = torch.randn(2, 4, 3), torch.randn(2, 4, 2)
    grads = []
    for member1_input in (x[1], torch.randn(4, 3) * 100):
        net.zero_grad()
        out = net(torch.stack([x[0], member1_input]), a)
        out[0].sum().backward()
        grads.append((out[0].detach(), net.input_weights[0].grad.clone()))
    assert torch.equal(grads[0][0], grads[1][0]) and torch.equal(grads[0][1][0], grads[1][1][0])
    assert (grads[0][1][0] != 0).any() and (grads[0][1][1] == 0).all()


@pytest.mark.parametrize('algo', ALGOS)
def test_actions_always_within_dataset_bounds(algo):
    algorithm = build_algorithm(small_cfg(algo), 5, 3, LOW, HIGH, seeds=[0, 1])
    obs = torch.randn(2, 64, 5) * 1000.0  # extreme inputs saturate every tanh
    actions = algorithm.act(obs)
    assert actions.shape == (2, 64, 3)
    assert (actions >= torch.from_numpy(LOW)).all() and (actions <= torch.from_numpy(HIGH)).all()


@pytest.mark.parametrize('algo', ['plas', 'plas_p'])
def test_latent_actions_limited_by_max_latent_action(algo):
    algorithm = build_algorithm(small_cfg(algo, max_latent_action=1.5), 5, 3, LOW, HIGH)
    z = algorithm.actor(torch.randn(1, 64, 5) * 1000.0, algorithm.cvae.decode)[1]
    assert z.abs().max() <= 1.5 + 1e-6 and z.shape[-1] == 6  # latent size = 2 x action size


def snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def changed(before, module):
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


@pytest.mark.parametrize('algo', ['plas', 'plas_p'])
def test_two_phases_cvae_then_policy_with_frozen_decoder(algo, tmp_path):
    trainer = Trainer(small_cfg(algo, steps=0), random_dataset(), [0], [str(tmp_path)], progress=False,
                      tensorboard=False)
    algorithm = trainer.algorithm
    cvae0, actor0, critic0 = snapshot(algorithm.cvae), snapshot(algorithm.actor), snapshot(algorithm.critic)
    trainer.run()  # phase 1 only
    assert changed(cvae0, algorithm.cvae)
    assert not changed(actor0, algorithm.actor) and not changed(critic0, algorithm.critic)
    cvae1 = snapshot(algorithm.cvae)
    sampler = TransitionSampler(trainer.dataset, [0], 32)
    for _ in range(5):
        algorithm.update(sampler.transitions())
    assert not changed(cvae1, algorithm.cvae)
    assert changed(actor0, algorithm.actor) and changed(critic0, algorithm.critic)


def test_soft_target_update_moves_targets_by_tau():
    algorithm = build_algorithm(small_cfg('plas', tau=0.1), 5, 3, LOW, HIGH)
    algorithm.freeze_cvae()
    target0, critic0 = snapshot(algorithm.critic_target), snapshot(algorithm.critic)
    algorithm.update(TransitionSampler(random_dataset(), [0], 32).transitions())
    for t0, c0, t1, c1 in zip(target0, critic0, algorithm.critic_target.parameters(), algorithm.critic.parameters()):
        assert torch.allclose(t1, 0.9 * t0 + 0.1 * c1, atol=1e-6)
        assert not torch.equal(c0, c1)


def test_sampler_gives_each_seed_its_own_stream():
    """Seed i's rows come from a generator of seed i alone: the same whichever seeds are sampled beside it."""
    dataset = random_dataset()
    together, alone = TransitionSampler(dataset, [0, 1, 2], 32), TransitionSampler(dataset, [1], 32)
    for _ in range(3):
        a, b = together.transitions(), alone.transitions()
        assert a.obs.shape == (3, 32, 5) and a.action.shape == (3, 32, 3) and a.next_obs.shape == (3, 32, 5)
        for name in ('obs', 'action', 'reward', 'not_done', 'next_obs'):
            assert torch.equal(getattr(a, name)[1], getattr(b, name)[0])
        assert not torch.equal(a.obs[0], a.obs[1])  # different seeds, different batches
    fresh = TransitionSampler(dataset, [0, 1, 2], 32).state_actions()
    assert fresh.obs.shape == (3, 32, 5) and fresh.action.shape == (3, 32, 3)
    assert torch.equal(fresh.action[2], TransitionSampler(dataset, [2], 32).state_actions().action[0])


@pytest.mark.parametrize('algo', ALGOS)
def test_a_seed_trains_the_same_alone_or_with_others(algo, tmp_path):
    """Seed 1 trained with seed 0 in one process ends with the weights of seed 1 trained alone (CPU, one
    thread): its batches, initial weights and noise (CVAE reparameterisation, TD3's target noise, BCQ's and
    BEAR's samples: nets.StackedNoise) depend on seed 1 only.

    BC: bit for bit. The others within 1e-6 (a different batch moves weights by ~lr = 1e-4 a step): torch's
    fused CPU Adam rounds the elements of a SIMD-vector tail differently, and a seed's small bias vectors lie in
    a tail alone but not stacked.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runs = {}
        for seeds in ([0, 1], [1]):
            dirs = [str(tmp_path / ('%d_of_%d' % (s, len(seeds)))) for s in seeds]
            phase1 = {'vae_steps': 20} if 'vae_steps' in fields_of(algo) else {}
            trainer = Trainer(small_cfg(algo, steps=30, **phase1), random_dataset(), seeds, dirs, progress=False,
                              tensorboard=False)
            trainer.run()
            runs[len(seeds)] = trainer.algorithm.seed_state(seeds.index(1))
    finally:
        torch.set_num_threads(threads)
    together, alone = runs[2], runs[1]
    assert together.keys() == alone.keys()
    for module in alone:
        assert together[module].keys() == alone[module].keys()
        for name, tensor in alone[module].items():
            if algo == 'bc':
                assert torch.equal(together[module][name], tensor), (module, name)
            else:
                assert torch.allclose(together[module][name], tensor, rtol=0, atol=1e-6), (module, name)


@pytest.mark.parametrize('algo', ALGOS)
def test_every_algorithm_trains_finite_and_logs(algo, tmp_path):
    trainer = Trainer(small_cfg(algo), random_dataset(), [3, 4], [str(tmp_path / 'a'), str(tmp_path / 'b')],
                      progress=False, tensorboard=False)
    summary = trainer.run()
    assert summary['last_stats'] and all(np.isfinite(v).all() for v in summary['last_stats'].values())
    assert (tmp_path / 'a' / 'model.pt').exists() and (tmp_path / 'b' / 'config.yaml').exists()


def test_bcq_and_bear_train_their_cvae_with_the_critics_from_scratch(tmp_path):
    """No phase 1 (as the authors' BCQ.py and BEAR): the CVAE moves only in the policy's updates, every step."""
    for algo in ('bcq', 'bear'):
        cfg = small_cfg(algo, steps=0)
        assert not cfg.needs_cvae and 'vae_steps' not in cfg.to_dict()
        trainer = Trainer(cfg, random_dataset(), [0], [str(tmp_path / algo)], progress=False, tensorboard=False)
        algorithm = trainer.algorithm
        cvae0 = snapshot(algorithm.cvae)
        trainer.run()  # no policy step: nothing trains
        assert not changed(cvae0, algorithm.cvae)
        assert yaml.safe_load(open(tmp_path / algo / 'config.yaml'))['progress']['vae_steps'] == 0
        stats = algorithm.update(TransitionSampler(trainer.dataset, [0], 32).transitions(), want_stats=True)
        assert changed(cvae0, algorithm.cvae) and 'vae/reconstruction' in stats and 'loss/critic' in stats


@pytest.mark.parametrize('algo', ALGOS)
def test_stacked_seeds_do_not_mix(algo):
    """One update of seeds 0 and 1 together: seed 1's new weights do not depend on seed 0's batch."""
    algorithm = build_algorithm(small_cfg(algo), 5, 3, LOW, HIGH, seeds=[0, 1])
    if algorithm.cvae is not None and algo in ('plas', 'plas_p'):
        algorithm.freeze_cvae()
    batch = TransitionSampler(random_dataset(), [3, 4], 32).transitions()
    other = batch._replace(obs=torch.cat([batch.obs[:1] * 3 + 1, batch.obs[1:]]),
                           reward=torch.cat([batch.reward[:1] - 5, batch.reward[1:]]))
    results = []
    for b in (batch, other):
        copy_ = copy.deepcopy(algorithm)
        torch.manual_seed(0)  # the same noise for both runs
        for _ in range(3):
            copy_.update(b)
        results.append(copy_.seed_state(1))
    for name, state in results[0].items():
        for key, tensor in state.items():
            assert torch.allclose(tensor, results[1][name][key], atol=1e-6), (name, key)
    assert any(not torch.equal(a, b) for a, b in zip(snapshot(copy_), snapshot(algorithm)))


def test_states_given_once_for_several_actions_equal_the_repeated_states():
    """repeats=n: each state's first-layer product computed once, as if the states were repeated n times."""
    from plas_ros.algos.nets import CVAE, TwinCritic
    obs, actions = torch.randn(2, 4, 5), torch.randn(2, 12, 3)
    critic = TwinCritic([0, 1], 5, 3, [8, 8])
    assert torch.allclose(critic(obs, actions, repeats=3), critic(repeat_states(obs, 3), actions), atol=1e-6)
    assert torch.allclose(critic.q1(obs, actions, repeats=3), critic.q1(repeat_states(obs, 3), actions), atol=1e-6)
    cvae = CVAE([0, 1], 5, 3, [8], LOW, HIGH)
    z = torch.randn(2, 12, cvae.latent_dim)
    assert torch.allclose(cvae.decode(obs, z, repeats=3), cvae.decode(repeat_states(obs, 3), z), atol=1e-6)


def test_sampled_target_takes_the_best_sample_of_the_soft_clipped_double_q():
    obs = torch.arange(6.0).view(1, 2, 3)
    assert repeat_states(obs, 2)[0, :, 0].tolist() == [0.0, 0.0, 3.0, 3.0]
    q_next = torch.tensor([[[1.0, 4.0, 0.0, 2.0], [3.0, 2.0, 1.0, 1.0]]])  # (S=1, 2, B=2 x 2 samples)
    y = sampled_td_target(torch.tensor([[0.5, 1.0]]), torch.tensor([[1.0, 0.0]]), 0.9, q_next, 0.75, 2)
    # state 0: samples 0.75*1+0.25*3 = 1.5 and 0.75*2+0.25*4 = 2.5 -> 2.5; state 1 is terminal.
    assert torch.allclose(y, torch.tensor([[0.5 + 0.9 * 2.5, 1.0]]))


def _mean_kernel(kernel, p, q, sigma):
    power = 1 if kernel == 'laplacian' else 2
    return np.mean([np.exp(-abs(a - b) ** power / (2 * sigma)) for a in p for b in q])


def test_mmd_kernels_as_the_authors_write_them():
    """exp(-|a - b| / (2 sigma)) and exp(-(a - b)^2 / (2 sigma)), as algos.py (sigma not squared)."""
    xs, ys, sigma = [0.0, 1.0], [0.0, 3.0], 2.0
    x, y = torch.tensor(xs).view(1, 2, 1), torch.tensor(ys).view(1, 2, 1)
    for kernel in ('laplacian', 'gaussian'):
        expected = np.sqrt(_mean_kernel(kernel, xs, xs, sigma) + _mean_kernel(kernel, ys, ys, sigma)
                           - 2 * _mean_kernel(kernel, xs, ys, sigma) + 1e-6)
        assert mmd(x, y, kernel, sigma).item() == pytest.approx(expected, rel=1e-5)
    assert mmd(x, x, 'laplacian', sigma).item() == pytest.approx(1e-3, rel=1e-3)  # sqrt(1e-6)


def test_bear_lagrange_multiplier_rises_above_the_threshold_and_stays_clamped():
    cfg = small_cfg('bear', mmd_threshold=0.0, alpha_lr=0.5, log_alpha_max=1.0, warmstart_steps=100)
    algorithm = build_algorithm(cfg, 5, 3, LOW, HIGH, seeds=[0, 1])
    sampler = TransitionSampler(random_dataset(), [0, 1], 32)
    start = algorithm.log_alpha.detach().clone()
    algorithm.update(sampler.transitions())
    assert (algorithm.log_alpha > start).all()  # MMD > epsilon = 0: alpha goes up
    for _ in range(10):
        algorithm.update(sampler.transitions())
    assert torch.equal(algorithm.log_alpha.detach(), torch.full((2,), 1.0))  # clamped at log_alpha_max
    cfg = small_cfg('bear', mmd_threshold=100.0, alpha_lr=0.5, log_alpha_min=-2.0)
    algorithm = build_algorithm(cfg, 5, 3, LOW, HIGH, seeds=[0])
    sampler = TransitionSampler(random_dataset(), [0], 32)
    for _ in range(10):
        algorithm.update(sampler.transitions())
    assert algorithm.log_alpha.item() == -2.0  # MMD < epsilon: alpha goes down to its clamp


def test_bear_warm_start_trains_the_actor_on_the_mmd_alone():
    """During the warm start the actor's gradient does not depend on the critic."""
    cfg = small_cfg('bear', warmstart_steps=1)
    algorithm = build_algorithm(cfg, 5, 3, LOW, HIGH)
    batch = TransitionSampler(random_dataset(), [0], 32).transitions()
    actors = []
    for scale in (1.0, 10.0):
        copy_ = copy.deepcopy(algorithm)
        with torch.no_grad():  # a different critic (its last layer scaled)
            copy_.critic.net.weights[-1].mul_(scale)
            copy_.critic.net.biases[-1].mul_(scale)
        copy_.critic_step = lambda batch, target, c=copy_: c.critic(batch.obs, batch.action)  # critics fixed
        torch.manual_seed(0)
        copy_.update(batch)  # step 1: warm start
        actors.append({k: v.clone() for k, v in copy_.actor.state_dict().items()})
        torch.manual_seed(1)
        copy_.update(batch)  # step 2: with Q
        actors.append({k: v.clone() for k, v in copy_.actor.state_dict().items()})
    assert all(torch.allclose(a, b) for a, b in zip(actors[0].values(), actors[2].values()))
    assert any(not torch.allclose(a, b) for a, b in zip(actors[1].values(), actors[3].values()))


def test_config_rejects_unknown_keys_and_bad_values(tmp_path):
    preset = tmp_path / 'p.yaml'
    preset.write_text('batch_sise: 10\n')
    with pytest.raises(ConfigError, match="batch_sise: unknown key 'batch_sise'"):
        load_config(str(preset))
    with pytest.raises(ConfigError, match=r'overrides: lmbda: must lie in \[0.0, 1.0\]'):
        load_config(None, lmbda=1.5)
    with pytest.raises(ConfigError, match="unknown algorithm 'cql'"):
        load_config(None, algo='cql')
    with pytest.raises(ConfigError, match='steps: must be an integer'):
        load_config(None, steps=2.5)
    with pytest.raises(ConfigError, match='batch_size: must be a number'):
        load_config(None, batch_size='many')
    with pytest.raises(ConfigError, match="kernel: must be one of laplacian, gaussian, got 'rbf'"):
        load_config(None, algo='bear', kernel='rbf')
    assert load_config(None, steps='5e5').steps == 500000 and load_config(None, critic_lr='1e-3').critic_lr == 1e-3


def test_a_hyperparameter_the_algorithm_does_not_take_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match='overrides: vae_steps: td3 does not take vae_steps'):
        load_config(None, algo='td3', vae_steps=100)
    with pytest.raises(ConfigError, match='bc does not take critic_lr'):
        load_config(None, algo='bc', critic_lr=1e-3)
    with pytest.raises(ConfigError, match='plas does not take phi'):
        load_config(None, algo='plas', phi=0.1)
    preset = tmp_path / 'p.yaml'
    preset.write_text('td3:\n  max_latent_action: 1.0\n')
    with pytest.raises(ConfigError, match='p.yaml: td3.max_latent_action: td3 does not take max_latent_action'):
        load_config(str(preset), algo='plas')  # checked whichever algorithm runs
    preset.write_text('bcqq:\n  phi: 0.1\n')
    with pytest.raises(ConfigError, match="p.yaml: bcqq: unknown section 'bcqq'"):
        load_config(str(preset))
    preset.write_text('bear: 3\n')
    with pytest.raises(ConfigError, match='p.yaml: bear: section missing or not a mapping'):
        load_config(str(preset))


def test_train_yaml_is_checked_section_by_section(tmp_path, monkeypatch):
    good = yaml.safe_load(open(algo_config.config_path('train.yaml')))

    def check(change, words):
        raw = copy.deepcopy(good)
        change(raw)
        path = tmp_path / 'train.yaml'
        path.write_text(yaml.safe_dump(raw))
        monkeypatch.setattr(algo_config, 'config_path', lambda name: str(path))
        with pytest.raises(ConfigError, match=words):
            load_config(None)
    check(lambda raw: raw['bcq'].update(max_latent_action=1.0), 'train.yaml: bcq.max_latent_action: bcq does not take')
    check(lambda raw: raw['bear'].pop('mmd_sigma'), 'bear.mmd_sigma: no default for mmd_sigma of bear')
    check(lambda raw: raw.update(cql={}), "train.yaml: cql: unknown section 'cql'")
    check(lambda raw: raw['defaults'].update(bcq_phi=0.1), "defaults.bcq_phi: unknown key 'bcq_phi'")
    check(lambda raw: raw.pop('td3'), 'train.yaml: td3: section missing')


def test_resolution_order_defaults_section_preset_preset_section_overrides(tmp_path):
    preset = tmp_path / 'p.yaml'
    preset.write_text('actor_lr: 5.0e-4\nbatch_size: 64\nvae_steps: 7\nbcq:\n  actor_lr: 2.0e-3\n  phi: 0.1\n')
    # defaults < the algorithm's own section: bcq's authors' 1e-3 over the shared 3e-4 (critic_lr) ...
    bcq = load_config(str(preset), algo='bcq')
    assert bcq.critic_lr == 1e-3 and bcq.vae_lr == 1e-3
    # ... < the preset's top-level keys (for every algorithm that takes them; td3 skips vae_steps) ...
    td3 = load_config(str(preset), algo='td3')
    assert (td3.actor_lr, td3.batch_size, td3.critic_lr) == (5e-4, 64, 3e-4) and 'vae_steps' not in td3.to_dict()
    # ... < the preset's section of the algorithm ...
    assert (bcq.actor_lr, bcq.phi, bcq.batch_size) == (2e-3, 0.1, 64)
    # ... < the overrides.
    assert load_config(str(preset), algo='bcq', actor_lr=7e-3, batch_size=8).actor_lr == 7e-3
    assert load_config(str(preset), algo='plas').vae_steps == 7


def test_each_algorithm_runs_with_its_own_settings():
    """The robot preset: the experiment's sizes and budgets for all, each algorithm's own settings."""
    robot = {algo: load_config('config/train_robot.yaml', algo=algo) for algo in ALGOS}
    for cfg in robot.values():
        assert (cfg.actor_hidden, cfg.batch_size, cfg.steps, cfg.eval_every) == ([64, 64], 256, 2400, 150)
        assert set(cfg.to_dict()) == set(fields_of(cfg.algo))
    td3 = robot['td3']  # sfujim/TD3: plain min, noise 0.2 clipped at 0.5, delay 2, Adam 3e-4
    assert (td3.lmbda, td3.policy_noise, td3.noise_clip, td3.policy_delay) == (1.0, 0.2, 0.5, 2)
    assert (td3.actor_lr, td3.critic_lr) == (3e-4, 3e-4)
    bcq = robot['bcq']  # sfujim/BCQ: Adam 1e-3 everywhere, lambda 0.75, phi 0.05, 10 / 100 samples
    assert (bcq.actor_lr, bcq.critic_lr, bcq.vae_lr) == (1e-3, 1e-3, 1e-3)
    assert (bcq.lmbda, bcq.phi, bcq.target_samples, bcq.act_samples, bcq.needs_cvae) == (0.75, 0.05, 10, 100, False)
    bear = robot['bear']  # aviralkumar2907/BEAR, the README's settings; the warm start scaled to 2400 steps
    assert (bear.actor_lr, bear.critic_lr, bear.vae_lr, bear.alpha_lr, bear.lmbda) == (1e-3, 1e-3, 1e-3, 1e-3, 0.75)
    assert (bear.kernel, bear.mmd_sigma, bear.mmd_samples, bear.mmd_threshold) == ('laplacian', 10.0, 5, 0.05)
    assert (bear.target_samples, bear.act_samples, bear.log_alpha_min, bear.log_alpha_max) == (10, 10, -5.0, 10.0)
    assert bear.warmstart_steps == 48 and load_config(None, algo='bear').warmstart_steps == 20000
    assert set(robot['bc'].to_dict()) == {'algo', 'actor_hidden', 'actor_lr', 'batch_size', 'steps', 'log_every',
                                          'eval_every', 'eval_episodes', 'threads'}


def test_presets_hold_the_papers_values():
    robot = load_config('config/train_robot.yaml')
    assert (robot.actor_hidden, robot.batch_size, robot.lmbda, robot.vae_steps, robot.steps) == \
        ([64, 64], 256, 0.75, 15000, 2400)
    assert (robot.actor_lr, robot.critic_lr, robot.vae_lr, robot.max_latent_action) == (3e-4, 3e-4, 1e-4, 2.0)
    assert load_config('config/train_robot.yaml', algo='plas_p').to_dict() == dict(robot.to_dict(), algo='plas_p',
                                                                                   phi=0.05)
    mujoco = load_config('config/train_mujoco.yaml')
    assert (mujoco.critic_hidden, mujoco.vae_hidden, mujoco.batch_size, mujoco.actor_lr, mujoco.critic_lr) == \
        ([400, 300], [750, 750], 100, 1e-4, 1e-3)
    assert (mujoco.lmbda, mujoco.vae_steps) == (1.0, 500000)
    # PLAS's MuJoCo learning rates and lambda are PLAS's: BCQ keeps its own.
    bcq = load_config('config/train_mujoco.yaml', algo='bcq')
    assert (bcq.actor_lr, bcq.critic_lr, bcq.lmbda, bcq.vae_hidden, bcq.batch_size) == (1e-3, 1e-3, 0.75, [750, 750],
                                                                                        100)
