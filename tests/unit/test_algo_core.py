"""Unit tests of the shared pieces and of each algorithm's contract: target formula, bounds, phases, seeds."""
import numpy as np
import pytest
import torch

from plas_ros.algos.config import ALGOS, load_config
from plas_ros.algos.nets import FusedAdam, StackedMLP, soft_clipped_double_q, td_target, twin_critic_loss
from plas_ros.algos.registry import build_algorithm
from plas_ros.algos.trainer import Trainer, TransitionSampler
from plas_ros.data.loader import Dataset

LOW = np.array([-0.5, 0.0, -2.0], np.float32)
HIGH = np.array([0.5, 3.0, -1.0], np.float32)


def small_cfg(algo, **kw):
    values = dict(algo=algo, actor_hidden=[16, 16], critic_hidden=[16, 16], vae_hidden=[16, 16], batch_size=32,
                  vae_steps=20, steps=20, log_every=10, bcq_act_samples=8, bcq_target_samples=4)
    values.update(kw)
    return load_config(None, **values)


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
    sampler = TransitionSampler(trainer.dataset, 1, 32)
    for _ in range(5):
        algorithm.update(sampler.transitions())
    assert not changed(cvae1, algorithm.cvae)
    assert changed(actor0, algorithm.actor) and changed(critic0, algorithm.critic)


def test_soft_target_update_moves_targets_by_tau():
    algorithm = build_algorithm(small_cfg('plas', tau=0.1), 5, 3, LOW, HIGH)
    algorithm.freeze_cvae()
    target0, critic0 = snapshot(algorithm.critic_target), snapshot(algorithm.critic)
    algorithm.update(TransitionSampler(random_dataset(), 1, 32).transitions())
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


@pytest.mark.parametrize('algo', ['bc', 'plas', 'plas_p'])
def test_a_seed_trains_the_same_alone_or_with_others(algo, tmp_path):
    """Seed 1 trained with seed 0 in one process ends with the weights of seed 1 trained alone (CPU, one
    thread): its batches and initial weights depend on seed 1 only.

    BC: bit for bit. PLAS and PLAS+P from their initial CVAE (vae_steps 0) within 1e-6 (a different batch
    moves weights by ~lr = 1e-4 a step): torch's fused CPU Adam rounds the elements of a SIMD-vector tail
    differently, and seed 1's latent head bias (6 values) lies in a tail alone but not stacked. The CVAE's
    reparameterisation noise, like TD3's target noise and BCQ's decoder samples, is drawn inside the
    algorithms from torch's global generator, not by the sampler, hence not tested here.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runs = {}
        for seeds in ([0, 1], [1]):
            dirs = [str(tmp_path / ('%d_of_%d' % (s, len(seeds)))) for s in seeds]
            trainer = Trainer(small_cfg(algo, vae_steps=0, steps=30), random_dataset(), seeds, dirs, progress=False,
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


def test_config_rejects_unknown_keys_and_bad_values(tmp_path):
    preset = tmp_path / 'p.yaml'
    preset.write_text('batch_sise: 10\n')
    with pytest.raises(ValueError, match='unknown keys batch_sise'):
        load_config(str(preset))
    with pytest.raises(ValueError, match='lmbda'):
        load_config(None, lmbda=1.5)
    with pytest.raises(ValueError, match='algo'):
        load_config(None, algo='cql')
    with pytest.raises(ValueError, match='steps must be an integer'):
        load_config(None, steps=2.5)
    with pytest.raises(ValueError, match='batch_size must be a number'):
        load_config(None, batch_size='many')
    assert load_config(None, steps='5e5').steps == 500000 and load_config(None, critic_lr='1e-3').critic_lr == 1e-3


def test_presets_hold_the_papers_values():
    robot = load_config('config/train_robot.yaml')
    assert (robot.actor_hidden, robot.batch_size, robot.lmbda, robot.vae_steps, robot.steps) == \
        ([64, 64], 256, 0.75, 15000, 2400)
    assert (robot.actor_lr, robot.critic_lr, robot.vae_lr, robot.max_latent_action) == (3e-4, 3e-4, 1e-4, 2.0)
    mujoco = load_config('config/train_mujoco.yaml')
    assert (mujoco.critic_hidden, mujoco.vae_hidden, mujoco.batch_size, mujoco.actor_lr, mujoco.critic_lr) == \
        ([400, 300], [750, 750], 100, 1e-4, 1e-3)
