"""The training loop shared by every algorithm: phase 1 (CVAE, when the algorithm has one), phase 2 (policy).

Speed: the dataset lives in two contiguous float32 tensors and a batch is one `index_select` per step
(all seeds at once); statistics are only computed and synchronised every `log_every` steps; all seeds are
one set of stacked networks (see nets.py).
"""
import os
import time
from typing import Dict, List, Sequence

import numpy as np
import torch

from plas_ros.algos.base import Batch
from plas_ros.algos.checkpoint import save_checkpoint
from plas_ros.algos.config import TrainConfig
from plas_ros.algos.registry import build_algorithm
from plas_ros.config import lookup
from plas_ros.data.plot import finger_shape, layout_parts, observation_frames, tactile_strip
from plas_ros.data.schema import ATTR_OBS_LAYOUT


class TransitionSampler:
    """Uniform minibatches (S seeds x batch) drawn by index from tensors held in memory.

    Every seed draws its rows from its own `torch.Generator`, seeded with that seed, so a seed's batches (and,
    with the per-seed initial weights of nets.py, its training) do not depend on which seeds train beside it:
    seed 1 trained with `--seeds 0,1` sees the batches of seed 1 trained alone. `seeds` is the list of seeds,
    or their number n for seeds 0..n-1. The S index draws fill one preallocated (S, batch) buffer and the rows
    of all seeds are still one `index_select`.
    """

    def __init__(self, dataset, seeds, batch_size):
        seeds = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
        if not seeds:
            raise ValueError('the sampler needs at least one seed')
        self.obs_dim, self.act_dim = dataset.obs_dim, dataset.act_dim
        self.num_seeds, self.batch_size = len(seeds), batch_size
        td = dataset.td_indices
        if len(td) == 0:
            raise ValueError('the dataset has no transition with a known next state')
        not_done = (~dataset.terminals).astype(np.float32)
        # Columns: obs | action | reward | not_done | next_obs.
        table = np.concatenate([dataset.observations, dataset.actions, dataset.rewards[:, None], not_done[:, None],
                                dataset.next_observations], axis=1)
        self.td_table = torch.from_numpy(np.ascontiguousarray(table[td], dtype=np.float32))
        self.sa_table = torch.from_numpy(np.ascontiguousarray(table[:, :self.obs_dim + self.act_dim], np.float32))
        self.generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        self._index = torch.empty(self.num_seeds, batch_size, dtype=torch.int64)
        self._index_rows = list(self._index.unbind(0))  # views: seed i's draws land in row i

    def _rows(self, table):
        for generator, index in zip(self.generators, self._index_rows):
            torch.randint(len(table), (self.batch_size,), generator=generator, out=index)
        return table.index_select(0, self._index.view(-1)).view(self.num_seeds, self.batch_size, table.shape[1])

    def transitions(self) -> Batch:
        rows = self._rows(self.td_table)
        d, a = self.obs_dim, self.act_dim
        return Batch(obs=rows[..., :d], action=rows[..., d:d + a], reward=rows[..., d + a],
                     not_done=rows[..., d + a + 1], next_obs=rows[..., d + a + 2:])

    def state_actions(self) -> Batch:
        rows = self._rows(self.sa_table)
        d = self.obs_dim
        return Batch(obs=rows[..., :d], action=rows[..., d:], reward=None, not_done=None, next_obs=None)


class Trainer:
    """Trains `cfg.algo` on `dataset` for every seed in `seeds` at once and writes one checkpoint per seed.

    `out_dirs[i]` receives seed i's checkpoint and TensorBoard events; `evaluator` (optional) is called every
    `cfg.eval_every` policy steps and at the end. `cvae_state` (the `cvae.state_dict()` of a run of the same
    seeds and CVAE sizes) replaces phase 1: the authors' option of one CVAE shared by PLAS and PLAS+P.
    """

    def __init__(self, cfg: TrainConfig, dataset, seeds: Sequence[int], out_dirs: Sequence[str],
                 evaluator=None, progress: bool = True, tensorboard: bool = True, cvae_state=None):
        if len(seeds) != len(out_dirs):
            raise ValueError('one output directory per seed is needed')
        self.cfg, self.dataset, self.seeds, self.out_dirs = cfg, dataset, list(seeds), list(out_dirs)
        self.evaluator, self.progress = evaluator, progress
        self.tactile_strips = int(lookup('train.yaml', 'evaluation.tactile_strips'))
        torch.manual_seed(self.seeds[0])
        # Saturated tanh heads produce denormal gradients, which are many times slower on CPUs: flush to zero.
        torch.set_flush_denormal(True)
        self.algorithm = build_algorithm(cfg, dataset.obs_dim, dataset.act_dim, dataset.action_low,
                                         dataset.action_high, self.seeds)
        self.sampler = TransitionSampler(dataset, self.seeds, cfg.batch_size)
        if cvae_state is not None:
            if not cfg.needs_cvae:
                raise ValueError('config: %s pre-trains no CVAE, so it cannot take a trained one' % cfg.algo)
            self.algorithm.cvae.load_state_dict(cvae_state)
        self.cvae_given = cvae_state is not None
        self.writers = [self._writer(d) for d in self.out_dirs] if tensorboard else []
        self.history: List[Dict] = []        # evaluation results (with 'seed' and 'step')
        self.last_stats: Dict[str, np.ndarray] = {}
        self.rates: Dict[str, float] = {}

    @staticmethod
    def _writer(directory):
        from torch.utils.tensorboard import SummaryWriter
        return SummaryWriter(os.path.join(directory, 'tb'))

    # -- logging --
    def _log(self, stats: Dict[str, torch.Tensor], step: int):
        if not stats:
            return
        names = sorted(stats)
        values = torch.stack([stats[n].float().reshape(len(self.seeds)) for n in names]).numpy()  # one sync
        self.last_stats = dict(zip(names, values))
        for writer, column in zip(self.writers, values.T):
            for name, value in zip(names, column):
                writer.add_scalar(name, float(value), step)

    def _bar(self, total, desc):
        if not self.progress or total == 0:
            return None
        from tqdm import tqdm
        return tqdm(total=total, desc=desc, unit='upd', dynamic_ncols=True, leave=False)

    def _run_phase(self, name, steps, sample, update, step_offset=0, after_log=None):
        log_every = self.cfg.log_every
        bar = self._bar(steps, '%s %s' % (self.cfg.algo, name))
        start = time.perf_counter()
        for step in range(1, steps + 1):
            want_stats = step % log_every == 0 or step == steps
            stats = update(sample(), want_stats)
            if want_stats:
                self._log(stats, step_offset + step)
                if bar is not None:
                    bar.update(step - bar.n)
                    bar.set_postfix({k.split('/')[-1]: '%.3g' % v[0] for k, v in list(self.last_stats.items())[:3]})
            if after_log is not None:
                after_log(step)
        elapsed = time.perf_counter() - start
        if bar is not None:
            bar.close()
        if steps:
            self.rates[name] = steps / max(elapsed, 1e-9)
        return elapsed

    # -- evaluation --
    def evaluate(self, step: int):
        algo = self.algorithm
        for index, seed in enumerate(self.seeds):
            q_fn = self._q_fn(index) if hasattr(algo, 'critic') else None  # behaviour cloning has no critic
            result = self.evaluator.evaluate(self._act_fn(index), q_fn)
            result.update(seed=seed, step=step)
            self.history.append(result)
            if self.writers:
                for name, value in result.items():
                    if name not in ('seed', 'step'):
                        self.writers[index].add_scalar('eval/' + name, value, step)
                self._log_tactile_strips(self.writers[index], step)

    def _log_tactile_strips(self, writer, step: int):
        """The first evaluation episodes' tactile frames as images (config/train.yaml
        evaluation.tactile_strips), where the dataset's layout names a tactile part."""
        layout = getattr(self.dataset, 'obs_layout', '')
        tactile = layout_parts({ATTR_OBS_LAYOUT: layout}, self.dataset.obs_dim).get('tactile')
        if tactile is None:
            return
        shape = finger_shape()
        for episode, observations in enumerate(self.evaluator.last_observations[:self.tactile_strips]):
            if len(observations):
                strip = tactile_strip(observation_frames(observations, tactile, shape))
                writer.add_image('eval/tactile_strip_%d' % episode, strip, step, dataformats='HWC')

    def _act_fn(self, index):
        def act(obs):
            obs = np.asarray(obs, np.float32)
            if obs.size != self.dataset.obs_dim:
                raise ValueError('the evaluation env gives observations of %d values, the dataset has %d'
                                 % (obs.size, self.dataset.obs_dim))
            obs_t = torch.as_tensor(obs).reshape(1, 1, -1).expand(len(self.seeds), 1, -1)
            return self.algorithm.act(obs_t)[index, 0].numpy()
        return act

    def _q_fn(self, index):
        def q(obs, actions):
            s = len(self.seeds)
            obs_t = torch.as_tensor(obs, dtype=torch.float32)[None].expand(s, -1, -1)
            act_t = torch.as_tensor(actions, dtype=torch.float32)[None].expand(s, -1, -1)
            with torch.no_grad():
                return self.algorithm.q_value(obs_t, act_t)[index].numpy()
        return q

    # -- the whole run --
    def run(self) -> Dict:
        cfg, algo = self.cfg, self.algorithm
        if cfg.needs_cvae:
            if not self.cvae_given:
                self._run_phase('vae', cfg.vae_steps, self.sampler.state_actions, algo.vae_update)
            algo.freeze_cvae()
        after = None
        if self.evaluator is not None and cfg.eval_every > 0:
            def after(step):
                if step % cfg.eval_every == 0:
                    self.evaluate(step)
        self._run_phase('policy', cfg.steps, self.sampler.transitions, algo.update, after_log=after)
        if self.evaluator is not None and (cfg.eval_every == 0 or cfg.steps % cfg.eval_every != 0):
            self.evaluate(cfg.steps)
        progress = {'vae_steps': cfg.vae_steps if cfg.needs_cvae and not self.cvae_given else 0,
                    'policy_steps': cfg.steps}
        for index, directory in enumerate(self.out_dirs):
            save_checkpoint(directory, algo, index, datasets=self.dataset.sources, progress=progress)
        for writer in self.writers:
            writer.close()
        return self.summary()

    def summary(self) -> Dict:
        final_eval = [h for h in self.history if h['step'] == self.cfg.steps]
        return {'algo': self.cfg.algo, 'seeds': self.seeds, 'rates': dict(self.rates),
                'last_stats': {k: v.tolist() for k, v in self.last_stats.items()},
                'final_return': [h['return_mean'] for h in final_eval], 'out_dirs': self.out_dirs}


def summary_line(summary: Dict) -> str:
    rates = ', '.join('%s %.0f upd/s' % (name, rate) for name, rate in summary['rates'].items())
    parts = ['done: %s seeds=%s' % (summary['algo'], ','.join(str(s) for s in summary['seeds'])), rates]
    for key in ('loss/critic', 'loss/actor', 'vae/reconstruction'):
        if key in summary['last_stats']:
            parts.append('%s=%s' % (key, '/'.join('%.4g' % v for v in summary['last_stats'][key])))
    if summary['final_return']:
        parts.append('eval return=%s' % '/'.join('%.3g' % r for r in summary['final_return']))
    parts.append('checkpoints: %s' % ' '.join(summary['out_dirs']))
    return '; '.join(p for p in parts if p)


def seed_dirs(out: str, seeds: Sequence[int], multi: bool) -> List[str]:
    """One seed: DIR itself; several: DIR/seed_<n>."""
    if not multi:
        return [out]
    return [os.path.join(out, 'seed_%d' % s) for s in seeds]
