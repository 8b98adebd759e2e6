"""PLAS and PLAS+P (Zhou, Bajracharya, Held, CoRL 2020), top to bottom.

Phase 1 (base class): the CVAE learns p(a|s), then is frozen.
Phase 2 (`update`): a deterministic latent policy z = max_latent * tanh(MLP(s)) is decoded by the frozen
decoder into an action; PLAS+P adds a residual phi * half_range * tanh(MLP(s, a)) and clamps to the bounds.
Critics: twin Q with the soft clipped double-Q target at (s', decoder(s', pi'(s'))); actor loss -Q1(s, pi(s));
soft target updates of actor and critics every step.
"""
import torch
from torch import nn

from plas_ros.algos.base import Algorithm, Batch, critic_stats, descend
from plas_ros.algos.nets import (
    BoundedHead,
    StackedMLP,
    member_generators,
    td_target,
)


class LatentActor(nn.Module):
    """z = max_latent_action * tanh(MLP(s)); with `phi` > 0 also the perturbation head of PLAS+P."""

    def __init__(self, seeds, obs_dim, act_dim, latent_dim, hidden, max_latent_action, phi, low, high):
        super().__init__()
        self.max_latent_action = float(max_latent_action)
        self.phi = float(phi)
        self.latent = StackedMLP(len(seeds), (obs_dim,), hidden, latent_dim)
        self.latent.reset_parameters(member_generators(seeds, salt=31))
        self.bound = BoundedHead(low, high)
        self.perturbation = None
        if self.phi > 0:
            self.perturbation = StackedMLP(len(seeds), (obs_dim, act_dim), hidden, act_dim)
            self.perturbation.reset_parameters(member_generators(seeds, salt=32))

    def forward(self, obs, decoder):
        """(action, latent) for obs (S, batch, obs_dim); `decoder(obs, z)` maps latents to actions."""
        z = torch.tanh(self.latent(obs)) * self.max_latent_action
        action = decoder(obs, z)
        if self.perturbation is not None:
            residual = torch.tanh(self.perturbation(obs, action)) * (self.phi * self.bound.half_range)
            action = self.bound.clamp(action + residual)
        return action, z


class PLAS(Algorithm):
    saved_modules = ('actor', 'critic', 'cvae')
    perturbed = False

    def __init__(self, cfg, obs_dim, act_dim, action_low, action_high, seeds=(0,)):
        super().__init__(cfg, obs_dim, act_dim, action_low, action_high, seeds)
        self.make_cvae()
        phi = cfg.phi if self.perturbed else 0.0
        self.make_actor_critic(LatentActor(self.seeds, obs_dim, act_dim, self.cvae.latent_dim, cfg.actor_hidden,
                                           cfg.max_latent_action, phi, self.action_low, self.action_high))

    def _decode(self, obs, z):
        return self.cvae.decode(obs, z)

    def update(self, batch: Batch, want_stats=False):
        cfg = self.cfg
        with torch.no_grad():
            next_action, _ = self.actor_target(batch.next_obs, self._decode)
            q_next = self.critic_target(batch.next_obs, next_action)
            target = td_target(batch.reward, batch.not_done, cfg.gamma, q_next[:, 0], q_next[:, 1], cfg.lmbda)
        q = self.critic_step(batch, target)

        action, z = self.actor(batch.obs, self._decode)
        actor_q = self.critic.q1(batch.obs, action, detached=True)
        descend(self.actor_optimizer, -actor_q.sum() / actor_q.shape[1])  # per-seed mean, summed over seeds

        self.soft_update()
        if not want_stats:
            return {}
        stats = critic_stats(q, target)
        with torch.no_grad():
            stats.update({'loss/actor': -actor_q.mean(1), 'q/policy_q1': actor_q.mean(1),
                          'latent/norm': z.norm(dim=-1).mean(1), 'latent/abs_max': z.abs().amax(dim=(1, 2))})
        return stats

    @torch.no_grad()
    def act(self, obs):
        return self.actor(obs, self._decode)[0]


class PLASP(PLAS):
    """PLAS with the perturbation layer (out-of-distribution generalisation within +-phi)."""

    perturbed = True
