"""Shared building blocks: stacked MLPs, the twin critic, the CVAE, bounded heads, soft updates, the target.

Every network is *stacked*: it holds `members` independent copies whose weights live in one tensor of
shape (members, in, out), and runs them all with one batched matrix product (torch.baddbmm). Inputs are
(members, batch, features). A twin critic for S seeds is one stack of 2 S members; S seeds of an actor
are one stack of S members. This is what makes several seeds (and both Q's) cost little more than one.
"""
import copy
import math
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn


def member_generators(seeds: Sequence[int], salt: int) -> List[torch.Generator]:
    """One torch generator per seed, so each seed's initial weights depend only on (seed, network)."""
    return [torch.Generator().manual_seed(int(seed) * 7919 + salt) for seed in seeds]


class StackedMLP(nn.Module):
    """`members` ReLU MLPs of identical shape, evaluated together; no activation on the output layer.

    `in_sizes` lists the parts of the input (e.g. (obs_dim, act_dim)): the first layer keeps one weight per
    part and sums their products instead of concatenating, so that no gradient is ever computed for a part
    that does not need one (the observation, when the actor's loss flows through a critic or decoder).
    """

    def __init__(self, members: int, in_sizes: Sequence[int], hidden: Sequence[int], out_size: int):
        super().__init__()
        self.members = members
        sizes = [sum(in_sizes)] + list(hidden) + [out_size]
        self.input_weights = nn.ParameterList([nn.Parameter(torch.empty(members, i, sizes[1])) for i in in_sizes])
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.empty(members, i, o)) for i, o in zip(sizes[1:-1], sizes[2:])])
        self.biases = nn.ParameterList([nn.Parameter(torch.empty(members, 1, o)) for o in sizes[1:]])
        # The forward pass's parameter order, kept once: a ParameterList's item access costs more than a layer's
        # product at this size. Parameters keep their identity through load_state_dict, .to() and deepcopy.
        self.ordered = (*self.input_weights, *self.weights, *self.biases)

    def reset_parameters(self, generators: Sequence[torch.Generator]):
        """PyTorch's nn.Linear default initialisation, drawn member by member from its own generator."""
        if len(generators) != self.members:
            raise ValueError('need one generator per member (%d), got %d' % (self.members, len(generators)))
        fan_ins = [sum(w.shape[1] for w in self.input_weights)] + [w.shape[1] for w in self.weights]
        with torch.no_grad():
            for m, gen in enumerate(generators):
                first = 1.0 / math.sqrt(fan_ins[0])
                for w in self.input_weights:
                    w[m].uniform_(-first, first, generator=gen)
                for w, fan_in in zip(self.weights, fan_ins[1:]):
                    w[m].uniform_(-1.0 / math.sqrt(fan_in), 1.0 / math.sqrt(fan_in), generator=gen)
                for b, fan_in in zip(self.biases, fan_ins):
                    b[m].uniform_(-1.0 / math.sqrt(fan_in), 1.0 / math.sqrt(fan_in), generator=gen)

    def forward(self, *inputs: torch.Tensor, detached: bool = False, members: Optional[slice] = None,
                repeats: int = 1):
        """inputs (members, batch, part) each -> (members, batch, out).

        `detached` blocks gradients to the weights (the actor's loss must move the actor only, not the
        critic or decoder it flows through); `members` runs a subset (e.g. every Q1 of a twin critic);
        `repeats` > 1: inputs[0] (the states) has one row for every `repeats` consecutive rows of the other
        inputs (several sampled actions per state), and its first-layer product is computed once per state.
        """
        params = self.ordered
        if detached:
            params = [p.detach() for p in params]
        if members is not None:
            params = [p[members] for p in params]
        n_in, n_hidden = len(self.input_weights), len(self.weights)
        input_weights, weights, biases = params[:n_in], params[n_in:n_in + n_hidden], params[n_in + n_hidden:]
        x = torch.baddbmm(biases[0], inputs[0], input_weights[0])
        if repeats > 1:
            m, rows, width = x.shape
            x = x.unsqueeze(2).expand(m, rows, repeats, width).reshape(m, rows * repeats, width)
        for part, w in zip(inputs[1:], input_weights[1:]):
            x = torch.baddbmm(x, part, w)
        for w, b in zip(weights, biases[1:]):
            # In place: x is this forward's own product, which neither baddbmm's backward nor anything else keeps.
            x = torch.baddbmm(b, x.relu_(), w)
        return x


class TwinCritic(nn.Module):
    """Q1 and Q2 for each of S seeds as one stack of 2 S MLPs (member order: seed 0 Q1, seed 0 Q2, seed 1 Q1...)."""

    def __init__(self, seeds: Sequence[int], obs_dim: int, act_dim: int, hidden: Sequence[int]):
        super().__init__()
        self.seeds = len(seeds)
        self.net = StackedMLP(2 * self.seeds, (obs_dim, act_dim), hidden, 1)
        self.net.reset_parameters(_twin_generators(seeds))

    def forward(self, obs: torch.Tensor, action: torch.Tensor, detached: bool = False, repeats: int = 1
                ) -> torch.Tensor:
        """Both Q's: (S, 2, batch), [:, 0] is Q1 and [:, 1] is Q2; `detached` for an actor's loss; `repeats`:
        `repeats` actions per state (rows of repeat_states(obs, repeats)), obs given once (S, batch / repeats)."""
        s, batch, _ = action.shape
        twice = (s, 2)
        q = self.net(obs.unsqueeze(1).expand(twice + obs.shape[-2:]).reshape(2 * s, obs.shape[1], -1),
                     action.unsqueeze(1).expand(twice + action.shape[-2:]).reshape(2 * s, batch, -1),
                     detached=detached, repeats=repeats)
        return q.view(s, 2, batch)

    def q1(self, obs: torch.Tensor, action: torch.Tensor, detached: bool = False, repeats: int = 1) -> torch.Tensor:
        """Q1 only, (S, batch); `detached` for the actor's loss (gradient to the action only)."""
        return self.net(obs, action, detached=detached, members=slice(0, None, 2), repeats=repeats).squeeze(-1)


def _twin_generators(seeds):
    """Q1 and Q2 start from different weights; each depends only on its seed."""
    q1 = member_generators(seeds, salt=11)
    q2 = member_generators(seeds, salt=12)
    return [gen for pair in zip(q1, q2) for gen in pair]


class BoundedHead(nn.Module):
    """Maps an MLP output into the box [low, high] with tanh: center + half_range * tanh(y)."""

    def __init__(self, low, high):
        super().__init__()
        low = torch.as_tensor(low, dtype=torch.float32)
        high = torch.as_tensor(high, dtype=torch.float32)
        self.register_buffer('center', (high + low) / 2)
        self.register_buffer('half_range', (high - low) / 2)
        self.register_buffer('low', low)
        self.register_buffer('high', high)

    def forward(self, y):
        return torch.addcmul(self.center, self.half_range, torch.tanh(y))

    def clamp(self, action):
        return torch.clamp(action, min=self.low, max=self.high)


class StackedNoise:
    """Standard normal noise for stacked seeds, each seed's drawn from its own generator, so that a seed's
    noise (and with it its result) does not depend on which other seeds train beside it."""

    def __init__(self, seeds: Sequence[int], salt: int):
        self.generators = member_generators(seeds, salt)

    def randn(self, per_seed_shape) -> torch.Tensor:
        shape = tuple(per_seed_shape)  # drawn on the generator's device (the trainer's --device)
        return torch.stack([torch.randn(shape, generator=g, device=g.device) for g in self.generators])


class CVAE(nn.Module):
    """The behaviour model p(a|s) (BCQ / PLAS): encoder (s, a) -> N(mean, std), decoder (s, z) -> action.

    Latent size 2 x action size; log-std clamped to [-4, 15]; decoder output bounded by tanh to the
    dataset's action box; loss = MSE reconstruction + kl_weight x KL(N(mean, std) || N(0, I)), the KL
    averaged over elements (official implementation).
    """

    def __init__(self, seeds, obs_dim, act_dim, hidden, low, high):
        super().__init__()
        self.latent_dim = 2 * act_dim
        self.noise = StackedNoise(seeds, salt=61)
        self.encoder = StackedMLP(len(seeds), (obs_dim, act_dim), hidden, 2 * self.latent_dim)
        self.decoder = StackedMLP(len(seeds), (obs_dim, self.latent_dim), hidden, act_dim)
        self.encoder.reset_parameters(member_generators(seeds, salt=21))
        self.decoder.reset_parameters(member_generators(seeds, salt=22))
        self.bound = BoundedHead(low, high)

    def decode(self, obs, z=None, detached=False, repeats=1):
        """Actions for obs (S, batch, obs_dim), `repeats` per state in a row; z None: fresh latents sampled as
        BCQ samples them."""
        return self.decode_with_raw(obs, z, detached, repeats)[0]

    def decode_with_raw(self, obs, z=None, detached=False, repeats=1):
        """(action, the decoder's output before the tanh bound); BEAR's MMD compares the latter."""
        if z is None:  # BCQ's sampling: a standard normal clipped to [-0.5, 0.5]
            z = self.noise.randn((obs.shape[1] * repeats, self.latent_dim)).clamp_(-0.5, 0.5)
        raw = self.decoder(obs, z, detached=detached, repeats=repeats)
        return self.bound(raw), raw

    def loss(self, obs, action, kl_weight):
        """Per-seed loss summed over seeds (each seed's gradient is that of its own mean loss)."""
        stats = self.encoder(obs, action)
        mean, log_std = stats[..., :self.latent_dim], stats[..., self.latent_dim:].clamp(-4.0, 15.0)
        std = log_std.exp()
        z = mean + std * self.noise.randn(std.shape[1:])
        recon = self.decode(obs, z)
        recon_loss = (recon - action).pow(2).mean(dim=(1, 2))
        kl = -0.5 * (1 + 2 * log_std - mean.pow(2) - std.pow(2)).mean(dim=(1, 2))
        return (recon_loss + kl_weight * kl).sum(), recon_loss, kl


class SoftUpdater:
    """target <- tau * source + (1 - tau) * target for several (target, source) module pairs, in one fused call."""

    def __init__(self, pairs, tau: float):
        self.targets = [p for target, _ in pairs for p in target.parameters()]
        self.sources = [p for _, source in pairs for p in source.parameters()]
        self.tau = tau

    def __call__(self):
        with torch.no_grad():
            torch._foreach_lerp_(self.targets, self.sources, self.tau)


def soft_clipped_double_q(q1: torch.Tensor, q2: torch.Tensor, lmbda: float) -> torch.Tensor:
    """lambda * min(Q1, Q2) + (1 - lambda) * max(Q1, Q2) (lambda = 1: TD3's clipped double Q)."""
    return torch.lerp(torch.maximum(q1, q2), torch.minimum(q1, q2), lmbda)


def td_target(reward, not_done, gamma, q1_next, q2_next, lmbda):
    """y = r + gamma * (1 - terminal) * soft_clipped_double_q(Q1', Q2')."""
    return torch.addcmul(reward, not_done, soft_clipped_double_q(q1_next, q2_next, lmbda), value=gamma)


def twin_critic_loss(q: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE(Q1, y) + MSE(Q2, y) per seed, summed over seeds; q (S, 2, batch), target (S, batch)."""
    return torch.nn.functional.mse_loss(q, target.unsqueeze(1).expand_as(q), reduction='sum') / q.shape[-1]


def repeat_states(obs: torch.Tensor, times: int) -> torch.Tensor:
    """(S, B, D) -> (S, B * times, D), each state repeated `times` times in a row (torch.repeat_interleave)."""
    s, b, d = obs.shape
    return obs.unsqueeze(2).expand(s, b, times, d).reshape(s, b * times, d)


def sampled_td_target(reward, not_done, gamma, q_next, lmbda, times):
    """BCQ's target over `times` sampled next actions per state: y = r + gamma (1 - terminal) max over the
    samples of the soft clipped double Q. q_next (S, 2, B * times), `times` rows per next state in a row."""
    s, b = reward.shape
    best = soft_clipped_double_q(q_next[:, 0], q_next[:, 1], lmbda).view(s, b, times).amax(dim=2)
    return torch.addcmul(reward, not_done, best, value=gamma)


def best_under_q1(critic: TwinCritic, obs: torch.Tensor, candidates: torch.Tensor, times: int) -> torch.Tensor:
    """Of `times` candidate actions per state of obs (S, B, D) (`times` rows per state in a row), the one of
    highest Q1: (S, B * times, A) -> (S, B, A). How BCQ and BEAR select an action."""
    s, rows, a = candidates.shape
    b = rows // times
    best = critic.q1(obs, candidates, repeats=times).view(s, b, times).argmax(dim=2)
    return torch.gather(candidates.view(s, b, times, a), 2, best[..., None, None].expand(s, b, 1, a)).squeeze(2)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A target network: a copy that never receives gradients."""
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


class FusedAdam:
    """Adam (defaults of torch.optim.Adam) as one fused kernel call per step, without torch.optim's per-step
    bookkeeping, which costs more than the kernel itself for networks this small.

    It runs the kernel torch.optim.Adam(fused=True) runs, with bit-identical results, and is kept because it
    is measurably faster here. bench/adam_variants.py (robot preset, one thread, 9 alternating rounds, torch
    2.13, a shared 2-core machine): CVAE phase 897 upd/s against 819 for torch.optim.Adam(fused=True) (ratio
    of medians 1.10x, median per-round ratio 1.16x) and 692 for foreach=True; policy phase (critic and actor
    optimisers) 502 against 433 (1.16x, per round 1.15x) and 341. Two earlier runs: 1.09x to 1.17x. The
    optimiser alone (step + zero_grad) takes 41 us against 90 us over the CVAE, 28 against 67 over the critic,
    20 against 58 over the actor; timed inside the CVAE training loop, 75 us against 224 us of a ~1.1 ms update.

    `state_dict()` has torch.optim.Adam(fused=True)'s layout (one parameter group; per-parameter `step`,
    `exp_avg`, `exp_avg_sq`, indexed in the order of the trainable parameters given), so either optimiser
    loads the other's state and continues bit-identically.
    """

    def __init__(self, params, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.betas, self.eps = float(lr), tuple(betas), float(eps)
        self.exp_avgs = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p) for p in self.params]
        # One tensor counts the steps of every parameter: one add_ per step, where a list of 0-d counters took
        # a loop of scalar adds. The kernel reads views of it, made at each step (not kept as attributes, so
        # that moving the optimiser's tensors to a device cannot separate them from it).
        self.step_count = torch.zeros(len(self.params), dtype=torch.float32)

    def zero_grad(self, set_to_none: bool = True):
        for p in self.params:
            p.grad = None

    def step(self):
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        self.step_count.add_(1.0)
        torch._fused_adam_(self.params, grads, self.exp_avgs, self.exp_avg_sqs, [], list(self.step_count.unbind(0)),
                           lr=self.lr, beta1=self.betas[0], beta2=self.betas[1], weight_decay=0.0, eps=self.eps,
                           amsgrad=False, maximize=False)

    def state_dict(self) -> Dict:
        """Copies of the moments and step counts (parameters not yet stepped have no entry, as in torch)."""
        moments = zip(self.step_count.unbind(0), self.exp_avgs, self.exp_avg_sqs)
        state = {i: {'step': step.clone(), 'exp_avg': avg.clone(), 'exp_avg_sq': avg_sq.clone()}
                 for i, (step, avg, avg_sq) in enumerate(moments) if step.item() > 0}
        group = {'lr': self.lr, 'betas': self.betas, 'eps': self.eps, 'weight_decay': 0, 'amsgrad': False,
                 'maximize': False, 'foreach': None, 'capturable': False, 'differentiable': False, 'fused': True,
                 'decoupled_weight_decay': False, 'params': list(range(len(self.params)))}
        return {'state': state, 'param_groups': [group]}

    def load_state_dict(self, state_dict: Dict):
        """Load a state_dict of this class or of torch.optim.Adam over the same parameters (copied in)."""
        groups = state_dict['param_groups']
        if len(groups) != 1 or len(groups[0]['params']) != len(self.params):
            raise ValueError('optimizer state has %s parameter group(s) of %s parameters, expected 1 of %d'
                             % (len(groups), [len(g['params']) for g in groups], len(self.params)))
        group = groups[0]
        unsupported = [k for k in ('weight_decay', 'amsgrad', 'maximize', 'decoupled_weight_decay') if group.get(k)]
        if unsupported:
            raise ValueError('optimizer state uses %s, which FusedAdam does not implement' % ', '.join(unsupported))
        entries = [state_dict['state'].get(index) for index in group['params']]  # None: never stepped
        for index, entry, p in zip(group['params'], entries, self.params):
            shapes = [] if entry is None else [tuple(entry[name].shape) for name in ('exp_avg', 'exp_avg_sq')]
            if any(shape != tuple(p.shape) for shape in shapes):
                raise ValueError('optimizer state of parameter %d has shapes %s, expected %s'
                                 % (index, shapes, tuple(p.shape)))
        for entry, step, avg, avg_sq in zip(entries, self.step_count.unbind(0), self.exp_avgs, self.exp_avg_sqs):
            if entry is None:
                for tensor in (step, avg, avg_sq):
                    tensor.zero_()
            else:
                step.fill_(float(entry['step']))
                avg.copy_(entry['exp_avg'])
                avg_sq.copy_(entry['exp_avg_sq'])
        self.lr, self.betas, self.eps = float(group['lr']), tuple(group['betas']), float(group['eps'])


_FUSED_ADAM_WORKS = []


def _fused_adam_works() -> bool:
    """Probe once whether this torch build runs the fused Adam kernel on CPU."""
    if not _FUSED_ADAM_WORKS:
        try:
            probe = torch.zeros(1, requires_grad=True)
            probe.grad = torch.ones(1)
            FusedAdam([probe], lr=1e-3).step()
            _FUSED_ADAM_WORKS.append(bool(torch.isfinite(probe).all()))
        except (AttributeError, RuntimeError, TypeError):
            _FUSED_ADAM_WORKS.append(False)
    return _FUSED_ADAM_WORKS[0]


def make_adam(params, lr):
    """FusedAdam where torch has the fused CPU kernel (torch >= 2.4), else torch.optim.Adam (foreach)."""
    params = list(params)
    if _fused_adam_works():
        return FusedAdam(params, lr)
    return torch.optim.Adam(params, lr=lr, foreach=True)
