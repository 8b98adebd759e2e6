"""Offline TD3 (Fujimoto, van Hoof, Meger 2018): TD3 run unchanged on the fixed dataset, the paper's
unconstrained baseline; as the authors' TD3.py (sfujim/TD3).

Critics: twin Q, target y = r + gamma (1 - terminal) min(Q1', Q2') (config td3.lmbda: 1.0) at
(s', clamp(pi'(s') + clip(N(0, policy_noise), +-noise_clip))), noise as fractions of the action half-range.
Every `policy_delay`-th step: the actor on -Q1(s, pi(s)), then soft updates of actor and critic targets.
"""
import torch

from plas_ros.algos.base import Algorithm, Batch, critic_stats, descend
from plas_ros.algos.bc import DeterministicActor
from plas_ros.algos.nets import StackedNoise, td_target


class TD3(Algorithm):
    saved_modules = ('actor', 'critic')

    def __init__(self, cfg, obs_dim, act_dim, action_low, action_high, seeds=(0,)):
        super().__init__(cfg, obs_dim, act_dim, action_low, action_high, seeds)
        self.make_actor_critic(DeterministicActor(self.seeds, obs_dim, act_dim, cfg.actor_hidden, self.action_low,
                                                  self.action_high, salt=51))
        self.noise = StackedNoise(self.seeds, salt=53)
        self.step_count = 0
        self.last_actor_loss = torch.zeros(self.num_seeds)

    def update(self, batch: Batch, want_stats=False):
        cfg, bound = self.cfg, self.actor.bound
        with torch.no_grad():
            noise = self.noise.randn(batch.action.shape[1:]) * cfg.policy_noise
            noise = noise.clamp(-cfg.noise_clip, cfg.noise_clip) * bound.half_range
            next_action = bound.clamp(self.actor_target(batch.next_obs) + noise)
            q_next = self.critic_target(batch.next_obs, next_action)
            target = td_target(batch.reward, batch.not_done, cfg.gamma, q_next[:, 0], q_next[:, 1], cfg.lmbda)
        q = self.critic_step(batch, target)

        self.step_count += 1
        if self.step_count % cfg.policy_delay == 0:
            actor_loss = -self.critic.q1(batch.obs, self.actor(batch.obs), detached=True).mean(dim=1)
            descend(self.actor_optimizer, actor_loss.sum())
            self.soft_update()
            self.last_actor_loss = actor_loss.detach()
        if not want_stats:
            return {}
        stats = critic_stats(q, target)
        stats['loss/actor'] = self.last_actor_loss
        return stats

    @torch.no_grad()
    def act(self, obs):
        return self.actor(obs)
