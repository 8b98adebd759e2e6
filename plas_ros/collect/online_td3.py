"""Online TD3 as a behaviour policy: it learns from the transitions it collects while it collects them.

The PLAS paper's dataset is the replay buffer of an earlier online RL run; `policy online_td3` is that run.
TD3 is Fujimoto et al. 2018 with the authors' settings (sfujim/TD3): twin critics whose plain minimum is
the target, target policy smoothing (noise 0.2 clipped to 0.5), the actor and the targets updated every
second critic update, tau 0.005, gamma 0.99, Adam 3e-4; here with the robot preset's 64 x 64 networks and
fewer random warm-up steps (a replay buffer of ~7000 transitions, not 1e6). Every number comes from
config/collect.yaml `online_td3` (plas_ros.collect.policies.OnlineTD3Config).

The replay buffer is exactly what is recorded: the collector (or the behaviour node, from /cloth/transition)
hands the policy every recorded Step through `observe(step)`; error records (no next observation) are
dropped, as the writer drops them; a timeout bootstraps from its next observation, a terminal does not.

Read top to bottom: ReplayBuffer (the transitions), OnlineTD3 (the networks and one TD3 update; saved as a
checkpoint plas_ros.policy.load_policy loads as algo 'td3'), OnlineTD3Policy (warm-up, exploration, updates
between steps, periodic and final checkpoints).
"""
import dataclasses
import math
import threading

import numpy as np
import torch

from plas_ros.algos.base import Algorithm, Batch
from plas_ros.algos.bc import DeterministicActor
from plas_ros.algos.checkpoint import save_checkpoint
from plas_ros.algos.config import config_from_dict
from plas_ros.algos.nets import twin_critic_loss
from plas_ros.collect.policies import OnlineTD3Config, Policy
from plas_ros.env import layout


class ReplayBuffer:
    """Every transition it is given, in order, never evicted (a collection is thousands, not millions). `add`
    refuses what a recorder would not write: error records, malformed steps, a step already held."""

    def __init__(self, obs_dim, act_dim, capacity=1024):
        self.obs_dim, self.act_dim = int(obs_dim), int(act_dim)
        self.size = 0
        self._seen = set()  # (episode, step) held
        self._columns = {'obs': (self.obs_dim,), 'action': (self.act_dim,), 'reward': (), 'not_done': (),
                         'next_obs': (self.obs_dim,)}
        self._arrays = {name: np.zeros((capacity,) + shape, np.float32) for name, shape in self._columns.items()}

    def __len__(self):
        return self.size

    def add(self, step) -> bool:
        """Store one Step; False when refused."""
        if step.error or (step.episode, step.step) in self._seen:
            return False
        row = {'obs': np.asarray(step.observation, np.float32).reshape(-1),
               'action': np.asarray(step.action, np.float32).reshape(-1),
               'reward': np.float32(step.reward),
               'not_done': np.float32(0.0 if step.terminal else 1.0),  # a timeout is not the end of the MDP
               'next_obs': np.asarray(step.next_observation, np.float32).reshape(-1)}
        sizes = (row['obs'].size, row['action'].size, row['next_obs'].size)
        if sizes != (self.obs_dim, self.act_dim, self.obs_dim):
            return False
        if not all(np.isfinite(value).all() for value in row.values()):
            return False
        if self.size == len(self._arrays['obs']):
            self._arrays = {name: np.concatenate([a, np.zeros_like(a)]) for name, a in self._arrays.items()}
        for name, value in row.items():
            self._arrays[name][self.size] = value
        self.size += 1
        self._seen.add((step.episode, step.step))
        return True

    def columns(self):
        """The held transitions: {'obs', 'action', 'reward', 'not_done', 'next_obs'} arrays (views)."""
        return {name: a[:self.size] for name, a in self._arrays.items()}

    def sample(self, batch_size, rng) -> Batch:
        """`batch_size` transitions drawn uniformly (with replacement), as tensors of shape (1, batch, ...)."""
        index = rng.integers(0, self.size, size=batch_size)
        a = self._arrays
        return Batch(*(torch.from_numpy(a[name][index])[None] for name in ('obs', 'action', 'reward', 'not_done',
                                                                            'next_obs')))


def train_config(settings: OnlineTD3Config):
    """The TrainConfig an algo 'td3' checkpoint of this learner carries (load_policy rebuilds TD3 from it)."""
    return config_from_dict({
        'algo': 'td3', 'actor_hidden': list(settings.actor_hidden), 'critic_hidden': list(settings.critic_hidden),
        'batch_size': settings.batch_size, 'actor_lr': settings.actor_lr, 'critic_lr': settings.critic_lr,
        'gamma': settings.gamma, 'tau': settings.tau, 'lmbda': 1.0,  # 1.0: the plain min(Q1', Q2')
        'policy_noise': settings.policy_noise, 'noise_clip': settings.noise_clip,
        'policy_delay': settings.policy_delay, 'steps': 0, 'log_every': 1, 'eval_every': 0, 'eval_episodes': 0,
        'threads': 0}, source='online_td3')


class OnlineTD3(Algorithm):
    """Actor, twin critic, their targets and optimisers (one seed), built from plas_ros.algos' networks so
    that the saved actor and critic are those of an offline TD3 checkpoint."""

    saved_modules = ('actor', 'critic')

    def __init__(self, settings: OnlineTD3Config, obs_dim, act_dim, action_low, action_high, seed=0):
        super().__init__(train_config(settings), obs_dim, act_dim, action_low, action_high, seeds=[seed])
        self.settings = settings
        self.make_actor_critic(DeterministicActor(self.seeds, obs_dim, act_dim, settings.actor_hidden,
                                                  self.action_low, self.action_high, salt=51))
        self.noise = torch.Generator().manual_seed(int(seed) * 7919 + 61)  # the target smoothing noise
        self.updates = 0

    def update(self, batch: Batch, want_stats=False):
        s, bound = self.settings, self.actor.bound
        # The critics' target: r + gamma * (1 - terminal) * min(Q1', Q2') at the target actor's next action,
        # smoothed by clipped Gaussian noise.
        with torch.no_grad():
            noise = torch.randn(batch.action.shape, generator=self.noise) * s.policy_noise
            noise = noise.clamp(-s.noise_clip, s.noise_clip) * bound.half_range
            next_action = bound.clamp(self.actor_target(batch.next_obs) + noise)
            q_next = self.critic_target(batch.next_obs, next_action)
            target = batch.reward + s.gamma * batch.not_done * torch.min(q_next[:, 0], q_next[:, 1])
        # Both critics regress onto it.
        q = self.critic(batch.obs, batch.action)
        critic_loss = twin_critic_loss(q, target)
        self.critic_optimizer.zero_grad()
        critic_loss.backward()
        self.critic_optimizer.step()
        self.updates += 1
        # Every policy_delay updates: the actor climbs Q1 (the critic itself stays put), the targets follow.
        actor_loss = None
        if self.updates % s.policy_delay == 0:
            actor_loss = -self.critic.q1(batch.obs, self.actor(batch.obs), detached=True).mean()
            self.actor_optimizer.zero_grad()
            actor_loss.backward()
            self.actor_optimizer.step()
            self.soft_update()
        if not want_stats:
            return {}
        return {'loss/critic': float(critic_loss), 'q/target': float(target.mean()),
                'loss/actor': math.nan if actor_loss is None else float(actor_loss)}

    @torch.no_grad()
    def act(self, obs):
        return self.actor(obs)

    def save(self, directory, progress):
        """An algo 'td3' checkpoint (plas_ros.algos.checkpoint; files replaced atomically)."""
        self.cfg.steps = self.updates
        return save_checkpoint(directory, self, 0, progress=progress)


class OnlineTD3Policy(Policy):
    """The behaviour: uniform random actions for the first `warmup_steps`, then the actor's action plus
    Gaussian exploration noise (clipped to the action box); after each recorded transition, once the buffer
    holds warmup_steps (and a batch), `updates_per_step` TD3 updates. Checkpoints go to `checkpoint_out`
    every `checkpoint_every` transitions and at `close()`.

    `act` and `observe` may come from two threads (the behaviour node's two subscribers): they take turns.
    """

    name = 'online_td3'
    learns = True

    def __init__(self, settings: OnlineTD3Config, checkpoint_out=None, noise=None, seed=None):
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0] % (2 ** 31))
        if settings.threads > 0:
            torch.set_num_threads(settings.threads)  # this process's torch, as the trainer's `threads`
        self.settings = settings
        self.seed = int(seed)
        self.exploration_noise = settings.exploration_noise if noise is None else float(noise)
        self.checkpoint_out = checkpoint_out or None
        self.learner = OnlineTD3(settings, layout.OBS_DIM, layout.ACT_DIM, [layout.ACTION_LOW] * layout.ACT_DIM,
                                 [layout.ACTION_HIGH] * layout.ACT_DIM, seed=self.seed)
        self.low = self.learner.action_low.numpy()
        self.high = self.learner.action_high.numpy()
        self.buffer = ReplayBuffer(layout.OBS_DIM, layout.ACT_DIM)
        self.act_rng = np.random.default_rng([self.seed, 1])
        self.sample_rng = np.random.default_rng([self.seed, 2])
        self.actions = 0          # actions answered (the warm-up counts these)
        self.episodes = 0         # episode ends observed
        self.saved_at = None      # buffer size at the last checkpoint
        self.lock = threading.Lock()
        if self.exploration_noise != settings.exploration_noise:
            self.name = 'online_td3+noise%g' % self.exploration_noise

    def act(self, obs):
        with self.lock:
            self.actions += 1
            if self.actions <= self.settings.warmup_steps:
                return self.act_rng.uniform(self.low, self.high).astype(np.float32)
            obs = torch.as_tensor(np.asarray(obs, dtype=np.float32).reshape(1, 1, -1))
            action = self.learner.act(obs)[0, 0].numpy().astype(np.float64)
        half_range = (self.high - self.low) / 2.0
        action = action + self.act_rng.normal(0.0, self.exploration_noise, action.shape) * half_range
        return np.clip(action, self.low, self.high).astype(np.float32)

    def observe(self, step):
        with self.lock:
            self.episodes += int(step.ends_episode)
            if not self.buffer.add(step):
                return
            s = self.settings
            if len(self.buffer) >= max(s.warmup_steps, s.batch_size):
                for _ in range(s.updates_per_step):
                    self.learner.update(self.buffer.sample(s.batch_size, self.sample_rng))
            if s.checkpoint_every and len(self.buffer) % s.checkpoint_every == 0:
                self._save()

    def greedy(self, obs):
        """The actor's action without exploration (what the checkpoint will do)."""
        with self.lock:
            obs = torch.as_tensor(np.asarray(obs, dtype=np.float32).reshape(1, 1, -1))
            return self.learner.act(obs)[0, 0].numpy().astype(np.float32)

    def progress(self):
        return {'policy': 'online_td3', 'seed': self.seed, 'transitions': len(self.buffer),
                'updates': self.learner.updates, 'actions': self.actions, 'episode_ends': self.episodes,
                'exploration_noise': self.exploration_noise, 'online_td3': dataclasses.asdict(self.settings)}

    def _save(self):
        if self.checkpoint_out is not None:
            self.learner.save(self.checkpoint_out, self.progress())
            self.saved_at = len(self.buffer)

    def save(self):
        """Write the checkpoint now (a no-op without checkpoint_out); returns its folder or None."""
        with self.lock:
            self._save()
        return self.checkpoint_out

    def close(self):
        self.save()
