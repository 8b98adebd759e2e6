"""Offline TD3 (Fujimoto et al. 2018) run unchanged on the fixed dataset: the paper's unconstrained baseline.

Target policy smoothing (noise and clip as fractions of the action half-range), clipped double Q with the
config's lambda (1.0 is TD3's min), delayed actor and target updates every `td3_policy_delay` steps.
"""
import torch

from plas_ros.algos.base import Algorithm, Batch
from plas_ros.algos.bc import DeterministicActor
from plas_ros.algos.nets import TwinCritic, frozen_copy, make_adam, soft_update, td_target


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
        self.step_count = 0
        self.last_actor_loss = torch.zeros(self.num_seeds)

    def update(self, batch: Batch, want_stats=False):
        cfg, bound = self.cfg, self.actor.bound
        with torch.no_grad():
            noise = torch.randn_like(batch.action) * cfg.td3_policy_noise
            noise = noise.clamp(-cfg.td3_noise_clip, cfg.td3_noise_clip) * bound.half_range
            next_action = bound.clamp(self.actor_target(batch.next_obs) + noise)
            q1_next, q2_next = self.critic_target(batch.next_obs, next_action)
            target = td_target(batch.reward, batch.not_done, cfg.gamma, q1_next, q2_next, cfg.lmbda)
        q1, q2 = self.critic.forward_sa(batch.obs_action)
        critic_loss = ((q1 - target).pow(2).mean(dim=1) + (q2 - target).pow(2).mean(dim=1)).sum()
        self.critic_optimizer.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_optimizer.step()

        self.step_count += 1
        if self.step_count % cfg.td3_policy_delay == 0:
            actor_q = self.critic(batch.obs, self.actor(batch.obs), detached=True)[0]
            actor_loss = -actor_q.mean(dim=1)
            self.actor_optimizer.zero_grad(set_to_none=True)
            actor_loss.sum().backward()
            self.actor_optimizer.step()
            soft_update(self.critic_target, self.critic, cfg.tau)
            soft_update(self.actor_target, self.actor, cfg.tau)
            self.last_actor_loss = actor_loss.detach()
        if not want_stats:
            return {}
        with torch.no_grad():
            return {'loss/critic': (q1 - target).pow(2).mean(1) + (q2 - target).pow(2).mean(1),
                    'loss/actor': self.last_actor_loss, 'q/data_q1': q1.mean(1), 'q/target': target.mean(1)}

    @torch.no_grad()
    def act(self, obs):
        return self.actor(obs)
