"""Behaviour cloning: a deterministic policy a = bounded(MLP(s)) regressed onto the dataset's actions (MSE).

Plain behaviour cloning, the baseline of the PLAS paper's figure 3(c): no critic, no behaviour model; the
shared settings of config/train.yaml (actor_hidden, actor_lr, batch_size, steps) and nothing else.
"""
import torch
from torch import nn

from plas_ros.algos.base import Algorithm, Batch, descend
from plas_ros.algos.nets import BoundedHead, StackedMLP, make_adam, member_generators


class DeterministicActor(nn.Module):
    """a = center + half_range * tanh(MLP(s)): always inside the action bounds."""

    def __init__(self, seeds, obs_dim, act_dim, hidden, low, high, salt=41):
        super().__init__()
        self.net = StackedMLP(len(seeds), (obs_dim,), hidden, act_dim)
        self.net.reset_parameters(member_generators(seeds, salt=salt))
        self.bound = BoundedHead(low, high)

    def forward(self, obs):
        return self.bound(self.net(obs))


class BC(Algorithm):
    saved_modules = ('actor',)

    def __init__(self, cfg, obs_dim, act_dim, action_low, action_high, seeds=(0,)):
        super().__init__(cfg, obs_dim, act_dim, action_low, action_high, seeds)
        self.actor = DeterministicActor(self.seeds, obs_dim, act_dim, cfg.actor_hidden, self.action_low,
                                        self.action_high)
        self.actor_optimizer = make_adam(self.actor.parameters(), cfg.actor_lr)

    def update(self, batch: Batch, want_stats=False):
        per_seed = (self.actor(batch.obs) - batch.action).pow(2).mean(dim=(1, 2))
        descend(self.actor_optimizer, per_seed.sum())
        return {'loss/actor': per_seed.detach()} if want_stats else {}

    @torch.no_grad()
    def act(self, obs):
        return self.actor(obs)

    def q_value(self, obs, action):
        raise NotImplementedError('behaviour cloning has no critic')
