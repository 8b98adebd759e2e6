"""Offline TD3 (Fujimoto et al. 2018) run unchanged on the fixed dataset: the paper's unconstrained baseline.

Target policy smoothing (noise and clip as fractions of the action half-range), clipped double Q with the
config's lambda (1.0 is TD3's min), delayed actor and target updates every `td3_policy_delay` steps.
"""
import torch

from plas_ros.algos.base import Algorithm, Batch
from plas_ros.algos.bc import DeterministicActor
from plas_ros.algos.nets import SoftUpdater, TwinCritic, frozen_copy, make_adam, td_target, twin_critic_loss


class TD3(Algorithm):
    saved_modules = ('actor', 'critic')

    def __init__(self, cfg, obs_dim, act_dim, action_low, action_high, seeds=(0,)):
        super().__init__(cfg, obs_dim, act_dim, action_low, action_high, seeds)
        self.actor = DeterministicActor(self.seeds, obs_dim, act_dim, cfg.actor_hidden, self.action_low,
                                        self.action_high, salt=51)
        self.critic = TwinCritic(self.seeds, obs_dim, act_dim, cfg.critic_hidden)
        self.actor_target = frozen_copy(self.actor)
        self.critic_target = frozen_copy(self.critic)
        self.actor_optimizer = make_adam(self.actor.parameters(), cfg.actor_lr)
        self.critic_optimizer = make_adam(self.critic.parameters(), cfg.critic_lr)
        self.soft_update = SoftUpdater([(self.critic_target, self.critic), (self.actor_target, self.actor)], cfg.tau)
        self.step_count = 0
        self.last_actor_loss = torch.zeros(self.num_seeds)

    def update(self, batch: Batch, want_stats=False):
        cfg, bound = self.cfg, self.actor.bound
        with torch.no_grad():
            noise = torch.randn_like(batch.action) * cfg.td3_policy_noise
            noise = noise.clamp(-cfg.td3_noise_clip, cfg.td3_noise_clip) * bound.half_range
            next_action = bound.clamp(self.actor_target(batch.next_obs) + noise)
            q_next = self.critic_target(batch.next_obs, next_action)
            target = td_target(batch.reward, batch.not_done, cfg.gamma, q_next[:, 0], q_next[:, 1], cfg.lmbda)
        q = self.critic(batch.obs, batch.action)
        critic_loss = twin_critic_loss(q, target)
        self.critic_optimizer.zero_grad()
        critic_loss.backward()
        self.critic_optimizer.step()

        self.step_count += 1
        if self.step_count % cfg.td3_policy_delay == 0:
            actor_q = self.critic.q1(batch.obs, self.actor(batch.obs), detached=True)
            actor_loss = -actor_q.mean(dim=1)
            self.actor_optimizer.zero_grad()
            actor_loss.sum().backward()
            self.actor_optimizer.step()
            self.soft_update()
            self.last_actor_loss = actor_loss.detach()
        if not want_stats:
            return {}
        with torch.no_grad():
            return {'loss/critic': (q - target.unsqueeze(1)).pow(2).mean(2).sum(1), 'loss/actor': self.last_actor_loss,
                    'q/data_q1': q[:, 0].mean(1), 'q/target': target.mean(1)}

    @torch.no_grad()
    def act(self, obs):
        return self.actor(obs)
