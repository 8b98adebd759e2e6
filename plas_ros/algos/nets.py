"""Shared building blocks: stacked MLPs, the twin critic, the CVAE, bounded heads, soft updates, the target.

Every network is *stacked*: it holds `members` independent copies whose weights live in one tensor of
shape (members, in, out), and runs them all with one batched matrix product (torch.baddbmm). Inputs are
(members, batch, features). A twin critic for S seeds is one stack of 2 S members; S seeds of an actor
are one stack of S members. This is what makes several seeds (and both Q's) cost little more than one.
"""
import copy
import math
from typing import List, Sequence

import torch
from torch import nn


def member_generators(seeds: Sequence[int], salt: int) -> List[torch.Generator]:
    """One torch generator per seed, so each seed's initial weights depend only on (seed, network)."""
    return [torch.Generator().manual_seed(int(seed) * 7919 + salt) for seed in seeds]


class StackedMLP(nn.Module):
    """`members` ReLU MLPs of identical shape, evaluated together; no activation on the output layer."""

    def __init__(self, members: int, sizes: Sequence[int]):
        super().__init__()
        self.members = members
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.empty(members, i, o)) for i, o in zip(sizes[:-1], sizes[1:])])
        self.biases = nn.ParameterList([nn.Parameter(torch.empty(members, 1, o)) for o in sizes[1:]])

    def reset_parameters(self, generators: Sequence[torch.Generator]):
        """PyTorch's nn.Linear default initialisation, drawn member by member from its own generator."""
        if len(generators) != self.members:
            raise ValueError('need one generator per member (%d), got %d' % (self.members, len(generators)))
        with torch.no_grad():
            for m, gen in enumerate(generators):
                for w, b in zip(self.weights, self.biases):
                    bound = 1.0 / math.sqrt(w.shape[1])
                    w[m].uniform_(-bound, bound, generator=gen)
                    b[m].uniform_(-bound, bound, generator=gen)

    def forward(self, x: torch.Tensor, detached: bool = False) -> torch.Tensor:
        """x (members, batch, in) -> (members, batch, out). `detached` blocks gradients to the weights
        (the actor's loss must move the actor only, not the critic it is evaluated by)."""
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            if detached:
                w, b = w.detach(), b.detach()
            x = torch.baddbmm(b, x, w)
            if i < last:
                x = torch.relu(x)
        return x


class TwinCritic(nn.Module):
    """Q1 and Q2 for each of S seeds as one stack of 2 S MLPs; returns (q1, q2), each (S, batch)."""

    def __init__(self, seeds: Sequence[int], obs_dim: int, act_dim: int, hidden: Sequence[int]):
        super().__init__()
        self.seeds = len(seeds)
        self.net = StackedMLP(2 * self.seeds, [obs_dim + act_dim] + list(hidden) + [1])
        self.net.reset_parameters(_twin_generators(seeds))

    def forward_sa(self, obs_action: torch.Tensor, detached: bool = False):
        """obs_action (S, batch, obs+act), already concatenated."""
        s, batch, width = obs_action.shape
        x = obs_action.unsqueeze(1).expand(s, 2, batch, width).reshape(2 * s, batch, width)
        q = self.net(x, detached=detached).view(s, 2, batch)
        return q[:, 0], q[:, 1]

    def forward(self, obs: torch.Tensor, action: torch.Tensor, detached: bool = False):
        return self.forward_sa(torch.cat([obs, action], dim=-1), detached=detached)


def _twin_generators(seeds):
    """Member order is (seed 0: Q1, Q2), (seed 1: Q1, Q2), ...; Q1 and Q2 start from different weights."""
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
        return self.center + self.half_range * torch.tanh(y)

    def clamp(self, action):
        return torch.maximum(torch.minimum(action, self.high), self.low)


class CVAE(nn.Module):
    """The behaviour model p(a|s) (BCQ / PLAS): encoder (s, a) -> N(mean, std), decoder (s, z) -> action.

    Latent size 2 x action size; log-std clamped to [-4, 15]; decoder output bounded by tanh to the
    dataset's action box; loss = MSE reconstruction + kl_weight x KL(N(mean, std) || N(0, I)), the KL
    averaged over elements (official implementation).
    """

    def __init__(self, seeds, obs_dim, act_dim, hidden, low, high):
        super().__init__()
        self.latent_dim = 2 * act_dim
        self.encoder = StackedMLP(len(seeds), [obs_dim + act_dim] + list(hidden) + [2 * self.latent_dim])
        self.decoder = StackedMLP(len(seeds), [obs_dim + self.latent_dim] + list(hidden) + [act_dim])
        self.encoder.reset_parameters(member_generators(seeds, salt=21))
        self.decoder.reset_parameters(member_generators(seeds, salt=22))
        self.bound = BoundedHead(low, high)

    def decode(self, obs, z=None, detached=False):
        if z is None:  # BCQ's sampling: a standard normal clipped to [-0.5, 0.5]
            z = torch.randn(obs.shape[:-1] + (self.latent_dim,)).clamp_(-0.5, 0.5)
        return self.bound(self.decoder(torch.cat([obs, z], dim=-1), detached=detached))

    def loss(self, obs_action, obs, action, kl_weight):
        """Per-seed loss summed over seeds (each seed's gradient is that of its own mean loss)."""
        stats = self.encoder(obs_action)
        mean, log_std = stats[..., :self.latent_dim], stats[..., self.latent_dim:].clamp(-4.0, 15.0)
        std = log_std.exp()
        z = mean + std * torch.randn_like(std)
        recon = self.decode(obs, z)
        recon_loss = (recon - action).pow(2).mean(dim=(1, 2))
        kl = -0.5 * (1 + 2 * log_std - mean.pow(2) - std.pow(2)).mean(dim=(1, 2))
        return (recon_loss + kl_weight * kl).sum(), recon_loss, kl


def soft_update(target: nn.Module, source: nn.Module, tau: float):
    """target <- tau * source + (1 - tau) * target, for all parameters in one fused call."""
    with torch.no_grad():
        torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)


def soft_clipped_double_q(q1: torch.Tensor, q2: torch.Tensor, lmbda: float) -> torch.Tensor:
    """lambda * min(Q1, Q2) + (1 - lambda) * max(Q1, Q2) (lambda = 1: TD3's clipped double Q)."""
    return lmbda * torch.minimum(q1, q2) + (1.0 - lmbda) * torch.maximum(q1, q2)


def td_target(reward, not_done, gamma, q1_next, q2_next, lmbda):
    """y = r + gamma * (1 - terminal) * soft_clipped_double_q(Q1', Q2')."""
    return reward + gamma * not_done * soft_clipped_double_q(q1_next, q2_next, lmbda)


def frozen_copy(module: nn.Module) -> nn.Module:
    """A target network: a copy that never receives gradients."""
    target = copy.deepcopy(module)
    for p in target.parameters():
        p.requires_grad_(False)
    return target


def make_adam(params, lr):
    """Adam with the fused CPU kernel (one call for all tensors); foreach on older torch."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, lr=lr, foreach=True)
