"""BEAR (Kumar, Fu, Tucker, Levine, NeurIPS 2019), as the authors' algos.py `BEAR` (aviralkumar2907/BEAR) with
the settings their README recommends (mode auto, laplacian kernel, sigma 10, 5 samples, version 0).

Every step, on one batch:
1. the behaviour CVAE (BCQ's, from scratch) takes one step on MSE + 0.5 KL;
2. the twin critics take one step towards y = r + gamma (1 - terminal) max over `target_samples` samples
   a' ~ pi'(s') of lambda min(Q1', Q2') + (1 - lambda) max(Q1', Q2');
3. the tanh-Gaussian actor takes one step on, per state, -min_i mean_j Q_i(s, a_j) + alpha MMD, with
   `mmd_samples` actions a_j of the policy (Gaussian noise clipped to [-0.5, 0.5]) and as many of the CVAE
   (latents clipped to [-0.5, 0.5]), the MMD taken between their values before the tanh; during the first
   `warmstart_steps` steps the loss is alpha MMD alone;
4. the Lagrange multiplier takes one Adam step up the gradient of alpha (MMD - epsilon) in log(alpha), which
   is then clamped to [log_alpha_min, log_alpha_max];
5. actor and critic targets are soft-updated.
Acting: the best under Q1 of `act_samples` samples of the policy, drawn afresh at each call (stochastic).

Departures from algos.py: none in the algorithm. The ensemble-variance term is absent (the README's
use_ensemble_variance=False makes it zero); the warm start counts steps (algos.py counts epochs of
eval_freq steps); all seeds are stacked as everywhere here. doc/training.md lists the settings and sources.
"""
import torch
from torch import nn

from plas_ros.algos.base import Algorithm, Batch, critic_stats, descend
from plas_ros.algos.nets import (
    BoundedHead,
    StackedMLP,
    StackedNoise,
    best_under_q1,
    make_adam,
    member_generators,
    sampled_td_target,
)


class TanhGaussianActor(nn.Module):
    """pi(a|s): u ~ N(mean(s), exp(log_std(s))), a = center + half_range * tanh(u) (algos.py RegularActor)."""

    def __init__(self, seeds, obs_dim, act_dim, hidden, low, high):
        super().__init__()
        self.act_dim = act_dim
        self.net = StackedMLP(len(seeds), (obs_dim,), hidden, 2 * act_dim)  # mean | log_std
        self.net.reset_parameters(member_generators(seeds, salt=71))
        self.noise = StackedNoise(seeds, salt=73)
        self.bound = BoundedHead(low, high)

    def forward(self, obs, samples=1, noise_clip=None):
        """(action, u), each (S, batch * samples, act_dim), `samples` per state of obs (S, batch, obs_dim) in a
        row; the network runs once per state. `noise_clip` clips the
        standard normal noise (the MMD's samples: 0.5, "this trick stabilizes learning"), None leaves it (the
        target's and the acting samples), as algos.py sample_multiple and forward."""
        out = self.net(obs)
        s, b, _ = out.shape
        mean, std = out[..., :self.act_dim].unsqueeze(2), out[..., self.act_dim:].exp().unsqueeze(2)
        noise = self.noise.randn((b, samples, self.act_dim))
        if noise_clip is not None:
            noise = noise.clamp_(-noise_clip, noise_clip)
        u = torch.addcmul(mean, std, noise).reshape(s, b * samples, self.act_dim)
        return self.bound(u), u


def mmd(x, y, kernel, sigma):
    """Sampled MMD between x and y (..., n, d) per leading index, as algos.py mmd_loss_laplacian/gaussian:
    k(a, b) = exp(-sum|a - b| / (2 sigma)) (laplacian) or exp(-sum (a - b)^2 / (2 sigma)) (gaussian),
    MMD = sqrt(E k(x, x') + E k(y, y') - 2 E k(x, y) + 1e-6)."""
    def mean_kernel(a, b):
        diff = a.unsqueeze(-2) - b.unsqueeze(-3)  # (..., n, n, d)
        distance = diff.abs().sum(-1) if kernel == 'laplacian' else diff.pow(2).sum(-1)
        return torch.exp(-distance / (2.0 * sigma)).mean(dim=(-2, -1))
    return (mean_kernel(x, x) + mean_kernel(y, y) - 2.0 * mean_kernel(x, y) + 1e-6).sqrt()


class BEAR(Algorithm):
    saved_modules = ('actor', 'critic', 'cvae')

    def __init__(self, cfg, obs_dim, act_dim, action_low, action_high, seeds=(0,)):
        super().__init__(cfg, obs_dim, act_dim, action_low, action_high, seeds)
        self.make_cvae()
        self.make_actor_critic(TanhGaussianActor(self.seeds, obs_dim, act_dim, cfg.actor_hidden, self.action_low,
                                                 self.action_high))
        # log(alpha), one per seed, drawn from N(0, 1) as algos.py draws it (torch.randn(())).
        start = [torch.randn((), generator=g) for g in member_generators(self.seeds, salt=72)]
        self.log_alpha = nn.Parameter(torch.stack(start))
        self.alpha_optimizer = make_adam([self.log_alpha], cfg.alpha_lr)
        self.step_count = 0

    def update(self, batch: Batch, want_stats=False):
        cfg = self.cfg
        s, b = batch.reward.shape
        stats = self.vae_update(batch, want_stats)
        with torch.no_grad():
            n = cfg.target_samples
            next_action, _ = self.actor_target(batch.next_obs, n)
            target = sampled_td_target(batch.reward, batch.not_done, cfg.gamma,
                                       self.critic_target(batch.next_obs, next_action, repeats=n), cfg.lmbda, n)
        q = self.critic_step(batch, target)

        m = cfg.mmd_samples
        with torch.no_grad():
            _, behaviour_raw = self.cvae.decode_with_raw(batch.obs, repeats=m)
        action, raw = self.actor(batch.obs, m, noise_clip=0.5)
        distance = mmd(behaviour_raw.view(s, b, m, -1), raw.view(s, b, m, -1), cfg.kernel, cfg.mmd_sigma)  # (S, B)
        q_all = self.critic(batch.obs, action, detached=True, repeats=m).view(s, 2, b, m)
        q_policy = q_all.mean(dim=3).amin(dim=1)  # mean over the samples, min over the two critics: (S, B)
        alpha = self.log_alpha.detach().exp()
        warm = self.step_count < cfg.warmstart_steps
        actor_loss = alpha * distance.mean(dim=1) - (0.0 if warm else q_policy.mean(dim=1))  # (S,)
        descend(self.actor_optimizer, actor_loss.sum())

        gap = distance.detach().mean(dim=1) - cfg.mmd_threshold
        descend(self.alpha_optimizer, -(self.log_alpha.exp() * gap).sum())  # ascent on alpha (MMD - epsilon)
        with torch.no_grad():
            self.log_alpha.clamp_(cfg.log_alpha_min, cfg.log_alpha_max)

        self.soft_update()
        self.step_count += 1
        if want_stats:
            stats.update(critic_stats(q, target))
            stats.update({'loss/actor': actor_loss.detach(), 'q/policy_q': q_policy.detach().mean(1),
                          'bear/mmd': distance.detach().mean(1), 'bear/alpha': self.log_alpha.detach().exp()})
        return stats

    @torch.no_grad()
    def act(self, obs):
        n = self.cfg.act_samples
        return best_under_q1(self.critic, obs, self.actor(obs, n)[0], n)
