"""BCQ (Fujimoto, Meger, Precup 2019), continuous version, as the authors' continuous_BCQ/BCQ.py (sfujim/BCQ).

Every step, on one batch: the CVAE (from scratch, no pre-training phase) takes one step on MSE + 0.5 KL;
the critics take one step towards y = r + gamma (1 - terminal) max over `target_samples` candidates of
lambda min(Q1', Q2') + (1 - lambda) max(Q1', Q2'), the candidates being the target perturbation actor applied
to actions decoded for s' (latents N(0, 1) clipped to [-0.5, 0.5]); the perturbation actor
xi(s, a) = clamp(a + phi * half_range * tanh(MLP(s, a))) takes one step on -Q1(s, xi(s, decoded a)); actor and
critic targets are soft-updated. Acting: the best under Q1 of `act_samples` candidates, decoded afresh at
each call (as the authors' select_action, so acting is stochastic).
"""
import torch
from torch import nn

from plas_ros.algos.base import Algorithm, Batch, critic_stats, descend
from plas_ros.algos.nets import (
    BoundedHead,
    StackedMLP,
    best_under_q1,
    member_generators,
    sampled_td_target,
)


class PerturbationActor(nn.Module):
    def __init__(self, seeds, obs_dim, act_dim, hidden, phi, low, high):
        super().__init__()
        self.phi = float(phi)
        self.net = StackedMLP(len(seeds), (obs_dim, act_dim), hidden, act_dim)
        self.net.reset_parameters(member_generators(seeds, salt=61))
        self.bound = BoundedHead(low, high)

    def forward(self, obs, action, repeats=1):
        """xi(s, a) for actions (S, B * repeats, A), `repeats` per state of obs (S, B, D) in a row."""
        residual = torch.tanh(self.net(obs, action, repeats=repeats)) * (self.phi * self.bound.half_range)
        return self.bound.clamp(action + residual)


class BCQ(Algorithm):
    saved_modules = ('actor', 'critic', 'cvae')

    def __init__(self, cfg, obs_dim, act_dim, action_low, action_high, seeds=(0,)):
        super().__init__(cfg, obs_dim, act_dim, action_low, action_high, seeds)
        self.make_cvae()
        self.make_actor_critic(PerturbationActor(self.seeds, obs_dim, act_dim, cfg.actor_hidden, cfg.phi,
                                                 self.action_low, self.action_high))

    def update(self, batch: Batch, want_stats=False):
        cfg = self.cfg
        stats = self.vae_update(batch, want_stats)
        with torch.no_grad():
            n = cfg.target_samples  # per next state, as repeat_interleave(next_state, 10) in BCQ.py
            next_obs = batch.next_obs
            next_action = self.actor_target(next_obs, self.cvae.decode(next_obs, repeats=n), repeats=n)
            target = sampled_td_target(batch.reward, batch.not_done, cfg.gamma,
                                       self.critic_target(next_obs, next_action, repeats=n), cfg.lmbda, n)
        q = self.critic_step(batch, target)

        with torch.no_grad():
            sampled = self.cvae.decode(batch.obs)
        actor_loss = -self.critic.q1(batch.obs, self.actor(batch.obs, sampled), detached=True).mean(dim=1)
        descend(self.actor_optimizer, actor_loss.sum())

        self.soft_update()
        if want_stats:
            stats.update(critic_stats(q, target))
            stats['loss/actor'] = actor_loss.detach()
        return stats

    @torch.no_grad()
    def act(self, obs):
        n = self.cfg.act_samples
        return best_under_q1(self.critic, obs, self.actor(obs, self.cvae.decode(obs, repeats=n), repeats=n), n)
