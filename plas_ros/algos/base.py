"""What every algorithm offers the trainer, the checkpoint writer and the deployed policy."""
import re
from typing import Dict, NamedTuple, Optional, Sequence

import torch
from torch import nn

from plas_ros.algos.config import TrainConfig
from plas_ros.algos.nets import CVAE, SoftUpdater, TwinCritic, frozen_copy, make_adam, twin_critic_loss

# A parameter of a StackedMLP: its first dimension counts members (seeds, or seeds x 2 for twin critics).
_STACKED = re.compile(r'(^|\.)(input_weights|weights|biases)\.\d+$')


class Batch(NamedTuple):
    """Tensors of shape (S seeds, batch, ...)."""

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    not_done: torch.Tensor
    next_obs: torch.Tensor


def descend(optimizer, loss: torch.Tensor):
    """One optimiser step on `loss` (per-seed losses summed: each seed's gradient is its own)."""
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


def critic_stats(q: torch.Tensor, target: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Per-seed scalars of a twin-critic step: the loss, the mean Q1 of the data and the mean target."""
    with torch.no_grad():
        return {'loss/critic': (q - target.unsqueeze(1)).pow(2).mean(2).sum(1), 'q/data_q1': q[:, 0].mean(1),
                'q/target': target.mean(1)}


class Algorithm(nn.Module):
    """Base class: S seeds trained together; subclasses implement `update` and `act`."""

    # Modules written to the checkpoint (attribute names); targets and optimisers are not needed to act.
    saved_modules = ()

    def __init__(self, cfg: TrainConfig, obs_dim: int, act_dim: int, action_low, action_high,
                 seeds: Sequence[int] = (0,)):
        super().__init__()
        self.cfg, self.obs_dim, self.act_dim = cfg, obs_dim, act_dim
        self.seeds = [int(s) for s in seeds]
        self.num_seeds = len(self.seeds)
        self.action_low = torch.as_tensor(action_low, dtype=torch.float32).reshape(act_dim)
        self.action_high = torch.as_tensor(action_high, dtype=torch.float32).reshape(act_dim)
        self.cvae: Optional[CVAE] = None
        self.vae_optimizer = None

    def make_actor_critic(self, actor: nn.Module):
        """`actor`, a twin critic, their frozen targets, Adam for both (the config's learning rates) and the soft
        target update (its tau): what every actor-critic algorithm here builds the same way."""
        cfg = self.cfg
        self.actor = actor
        self.critic = TwinCritic(self.seeds, self.obs_dim, self.act_dim, cfg.critic_hidden)
        self.actor_target = frozen_copy(self.actor)
        self.critic_target = frozen_copy(self.critic)
        self.actor_optimizer = make_adam(self.actor.parameters(), cfg.actor_lr)
        self.critic_optimizer = make_adam(self.critic.parameters(), cfg.critic_lr)
        self.soft_update = SoftUpdater([(self.critic_target, self.critic), (self.actor_target, self.actor)], cfg.tau)

    # -- phase 1: the behaviour model (for the algorithms that have one) --
    def make_cvae(self):
        cfg = self.cfg
        self.cvae = CVAE(self.seeds, self.obs_dim, self.act_dim, cfg.vae_hidden, self.action_low, self.action_high)
        self.vae_optimizer = make_adam(self.cvae.parameters(), cfg.vae_lr)

    def vae_update(self, batch: Batch, want_stats: bool = False) -> Dict[str, torch.Tensor]:
        """One step of the CVAE (phase 1 of PLAS; every step of BCQ and BEAR, on the policy's batch)."""
        loss, recon, kl = self.cvae.loss(batch.obs, batch.action, self.cfg.vae_kl_weight)
        descend(self.vae_optimizer, loss)
        return {'vae/reconstruction': recon.detach(), 'vae/kl': kl.detach()} if want_stats else {}

    def freeze_cvae(self):
        """End of phase 1: the decoder becomes a fixed map (gradients still flow through its input)."""
        for p in self.cvae.parameters():
            p.requires_grad_(False)
        self.vae_optimizer = None

    # -- phase 2 --
    def update(self, batch: Batch, want_stats: bool = False) -> Dict[str, torch.Tensor]:
        raise NotImplementedError

    def critic_step(self, batch: Batch, target: torch.Tensor) -> torch.Tensor:
        """One step of the twin critics on MSE(Q1, y) + MSE(Q2, y); returns Q(s, a), (S, 2, batch)."""
        q = self.critic(batch.obs, batch.action)
        descend(self.critic_optimizer, twin_critic_loss(q, target))
        return q

    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Deterministic actions: obs (S, batch, obs_dim) -> (S, batch, act_dim) inside the action bounds."""
        raise NotImplementedError

    def q_value(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Q1(s, a), (S, batch); the value the section-5.4 diagnostics compare with returns."""
        return self.critic.q1(obs, action)

    # -- checkpoints: one seed at a time --
    def seed_state(self, index: int) -> Dict[str, Dict[str, torch.Tensor]]:
        """State dicts of `saved_modules` for seed number `index` (stacked tensors sliced to that seed)."""
        states = {}
        for name in self.saved_modules:
            states[name] = {}
            for key, tensor in getattr(self, name).state_dict().items():
                if _STACKED.search(key):
                    per_seed = tensor.shape[0] // self.num_seeds
                    tensor = tensor[index * per_seed:(index + 1) * per_seed]
                states[name][key] = tensor.detach().clone().contiguous()
        return states

    @staticmethod
    def stack_seed_states(states: Sequence[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
        """The inverse of `seed_state` for one module: one-seed state dicts -> the state dict of a module that
        stacks those seeds (stacked tensors concatenated in seed order, the others taken from the first)."""
        return {key: torch.cat([s[key] for s in states]) if _STACKED.search(key) else tensor
                for key, tensor in states[0].items()}

    def load_seed_state(self, states: Dict[str, Dict[str, torch.Tensor]]):
        """Load a one-seed checkpoint into an algorithm built with one seed (strict: every key, every shape)."""
        missing = sorted(set(self.saved_modules) - set(states))
        if missing:
            raise ValueError('checkpoint lacks the modules %s' % ', '.join(missing))
        for name in self.saved_modules:
            try:
                getattr(self, name).load_state_dict(states[name], strict=True)
            except RuntimeError as exc:
                raise ValueError('checkpoint module %r does not fit the configuration: %s' % (name, exc)) from exc
