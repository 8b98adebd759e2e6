"""BCQ (Fujimoto, Meger, Precup 2019), continuous version, as in the authors' code.

A CVAE proposes actions (pre-trained in phase 1 like PLAS's, then trained on with the policy as BCQ does);
a perturbation actor xi(s, a) adds phi * half_range * tanh(...) within the bounds; the target takes, per
next state, the best of `bcq_target_samples` perturbed decoded candidates under the soft clipped double Q.
Acting picks the best of `bcq_act_samples` candidates under Q1. To make acting deterministic, the latent
samples used at act time are fixed (a buffer drawn once from the clipped normal and saved with the model).
"""
import torch
from torch import nn

from plas_ros.algos.base import Algorithm, Batch
from plas_ros.algos.nets import (
    BoundedHead,
    SoftUpdater,
    StackedMLP,
    TwinCritic,
    frozen_copy,
    make_adam,
    member_generators,
    soft_clipped_double_q,
    twin_critic_loss,
)


class PerturbationActor(nn.Module):
    def __init__(self, seeds, obs_dim, act_dim, hidden, phi, low, high):
        super().__init__()
        self.phi = float(phi)
        self.net = StackedMLP(len(seeds), (obs_dim, act_dim), hidden, act_dim)
        self.net.reset_parameters(member_generators(seeds, salt=61))
        self.bound = BoundedHead(low, high)

    def forward(self, obs, action):
        residual = torch.tanh(self.net(obs, action)) * (self.phi * self.bound.half_range)
        return self.bound.clamp(action + residual)


class BCQ(Algorithm):
    saved_modules = ('actor', 'critic', 'cvae', 'act_latents')

    def __init__(self, cfg, obs_dim, act_dim, action_low, action_high, seeds=(0,)):
        super().__init__(cfg, obs_dim, act_dim, action_low, action_high, seeds)
        self.make_cvae()
        self.actor = PerturbationActor(self.seeds, obs_dim, act_dim, cfg.actor_hidden, cfg.bcq_phi,
                                       self.action_low, self.action_high)
        self.critic = TwinCritic(self.seeds, obs_dim, act_dim, cfg.critic_hidden)
        self.actor_target = frozen_copy(self.actor)
        self.critic_target = frozen_copy(self.critic)
        self.actor_optimizer = make_adam(self.actor.parameters(), cfg.actor_lr)
        self.critic_optimizer = make_adam(self.critic.parameters(), cfg.critic_lr)
        self.soft_update = SoftUpdater([(self.critic_target, self.critic), (self.actor_target, self.actor)], cfg.tau)
        gen = torch.Generator().manual_seed(self.seeds[0])
        latents = torch.randn(cfg.bcq_act_samples, self.cvae.latent_dim, generator=gen).clamp_(-0.5, 0.5)
        self.act_latents = _Latents(latents)

    def freeze_cvae(self):
        """BCQ keeps training its CVAE alongside the policy (the authors' algorithm): nothing to freeze."""

    def _repeat(self, obs, times):
        """(S, B, D) -> (S, B * times, D), each state repeated `times` times consecutively."""
        s, b, d = obs.shape
        return obs.unsqueeze(2).expand(s, b, times, d).reshape(s, b * times, d)

    def update(self, batch: Batch, want_stats=False):
        cfg = self.cfg
        vae_stats = self.vae_update(batch, want_stats)
        with torch.no_grad():
            n = cfg.bcq_target_samples
            next_obs = self._repeat(batch.next_obs, n)
            next_action = self.actor_target(next_obs, self.cvae.decode(next_obs))
            q_next = self.critic_target(next_obs, next_action)
            s, b = batch.reward.shape
            best = soft_clipped_double_q(q_next[:, 0], q_next[:, 1], cfg.lmbda).view(s, b, n).amax(dim=2)
            target = batch.reward + cfg.gamma * batch.not_done * best
        q = self.critic(batch.obs, batch.action)
        critic_loss = twin_critic_loss(q, target)
        self.critic_optimizer.zero_grad()
        critic_loss.backward()
        self.critic_optimizer.step()

        with torch.no_grad():
            sampled = self.cvae.decode(batch.obs)
        actor_q = self.critic.q1(batch.obs, self.actor(batch.obs, sampled), detached=True)
        actor_loss = -actor_q.mean(dim=1)
        self.actor_optimizer.zero_grad()
        actor_loss.sum().backward()
        self.actor_optimizer.step()

        self.soft_update()
        if not want_stats:
            return {}
        with torch.no_grad():
            vae_stats.update({'loss/critic': (q - target.unsqueeze(1)).pow(2).mean(2).sum(1),
                              'loss/actor': actor_loss.detach(), 'q/data_q1': q[:, 0].mean(1),
                              'q/target': target.mean(1)})
            return vae_stats

    @torch.no_grad()
    def act(self, obs):
        latents = self.act_latents.value
        n = latents.shape[0]
        s, b, _ = obs.shape
        obs_rep = self._repeat(obs, n)
        z = latents.expand(s, b, n, latents.shape[1]).reshape(s, b * n, latents.shape[1])
        candidates = self.actor(obs_rep, self.cvae.decode(obs_rep, z))
        q1 = self.critic.q1(obs_rep, candidates).view(s, b, n)
        best = q1.argmax(dim=2)
        candidates = candidates.view(s, b, n, -1)
        return torch.gather(candidates, 2, best[..., None, None].expand(s, b, 1, candidates.shape[-1])).squeeze(2)


class _Latents(nn.Module):
    """Holds the fixed act-time latent samples as a buffer, so they are saved in the state dict."""

    def __init__(self, latents):
        super().__init__()
        self.register_buffer('value', latents)
