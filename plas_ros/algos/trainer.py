"""The training loop shared by every algorithm: phase 1 (CVAE, when the algorithm has one), phase 2 (policy).

Speed: the dataset lives in two contiguous float32 tensors and a batch is one `index_select` per step
(all seeds at once); statistics are only computed and synchronised every `log_every` steps; all seeds are
one set of stacked networks (see nets.py).

Resume: with `save_every` N the trainer writes the full training state (train_state.py) every N updates (counted
over both phases) and at the end; a Trainer given that state (`resume`) continues after its last update and
ends bit-identical (on CPU) to the run that was never stopped. TensorBoard: at each save the event files are
flushed and their sizes recorded; a resumed run cuts them back to those sizes and removes event files written
after the save, so that every logged step appears once.
"""
import os
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from plas_ros.algos import train_state
from plas_ros.algos.base import Batch
from plas_ros.algos.checkpoint import save_checkpoint
from plas_ros.algos.config import TrainConfig
from plas_ros.algos.devices import move_to_device
from plas_ros.algos.registry import build_algorithm
from plas_ros.algos.train_state import TrainStateError
from plas_ros.config import lookup
from plas_ros.data.plot import finger_shape, layout_parts, observation_frames, tactile_strip
from plas_ros.data.schema import ATTR_OBS_LAYOUT

# The phases in order; a training state names the one its last update belongs to ('done': all finished).
PHASES = ('vae', 'policy', 'done')
# Settings that may differ between a run and its resume (they change no number the run computes).
RESUME_MAY_CHANGE = ('threads',)


class TransitionSampler:
    """Uniform minibatches (S seeds x batch) drawn by index from tensors held in memory.

    Every seed draws its rows from its own `torch.Generator`, seeded with that seed, so a seed's batches (and,
    with the per-seed initial weights of nets.py, its training) do not depend on which seeds train beside it:
    seed 1 trained with `--seeds 0,1` sees the batches of seed 1 trained alone. `seeds` is the list of seeds,
    or their number n for seeds 0..n-1. The S index draws fill one preallocated (S, batch) buffer and the rows
    of all seeds are still one `index_select`.
    """

    def __init__(self, dataset, seeds, batch_size, device='cpu'):
        device = torch.device(device)
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
        self.td_table = torch.from_numpy(np.ascontiguousarray(table[td], dtype=np.float32)).to(device)
        self.sa_table = torch.from_numpy(np.ascontiguousarray(table[:, :self.obs_dim + self.act_dim],
                                                              np.float32)).to(device)
        self.generators = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]
        self._index = torch.empty(self.num_seeds, batch_size, dtype=torch.int64, device=device)
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
    `device`: where every tensor lives. `save_every` > 0: the training state goes to `state_dir` every that
    many updates and at the end; `resume` (train_state.load_state's dict) continues such a run, checked
    against this one first (TrainStateError). `datasets`: the files' {path, size, sha256} (default: computed
    from dataset.sources when a state is saved or resumed). `record` (run_record.RunRecord, optional) is
    updated at every save and at the end. Nothing is written before `run()`.
    """

    def __init__(self, cfg: TrainConfig, dataset, seeds: Sequence[int], out_dirs: Sequence[str],
                 evaluator=None, progress: bool = True, tensorboard: bool = True, cvae_state=None, device='cpu',
                 save_every: int = 0, state_dir: Optional[str] = None, resume: Optional[Dict] = None,
                 datasets: Optional[List[Dict]] = None, record=None, state_extra: Optional[Dict] = None,
                 obs_normaliser: Optional[Dict[str, torch.Tensor]] = None):
        if len(seeds) != len(out_dirs):
            raise ValueError('one output directory per seed is needed')
        if save_every < 0:
            raise ValueError('save_every must be >= 0, got %d' % save_every)
        self.cfg, self.dataset, self.seeds, self.out_dirs = cfg, dataset, list(seeds), list(out_dirs)
        self.evaluator, self.progress, self.tensorboard = evaluator, progress, tensorboard
        self.device = torch.device(device)
        self.save_every, self.state_dir = int(save_every), state_dir or self.out_dirs[0]
        self.datasets, self.record, self.state_extra = datasets, record, dict(state_extra or {})
        self.obs_normaliser = obs_normaliser  # stored with each checkpoint (the dataset is already normalised)
        self.tactile_strips = int(lookup('train.yaml', 'evaluation.tactile_strips'))
        torch.manual_seed(self.seeds[0])
        # Saturated tanh heads produce denormal gradients, which are many times slower on CPUs: flush to zero.
        torch.set_flush_denormal(True)
        self.algorithm = build_algorithm(cfg, dataset.obs_dim, dataset.act_dim, dataset.action_low,
                                         dataset.action_high, self.seeds)
        move_to_device(self.algorithm, self.device)
        self.sampler = TransitionSampler(dataset, self.seeds, cfg.batch_size, self.device)
        if cvae_state is not None:
            if not cfg.needs_cvae:
                raise ValueError('config: %s pre-trains no CVAE, so it cannot take a trained one' % cfg.algo)
            self.algorithm.cvae.load_state_dict(cvae_state)
        self.cvae_given = cvae_state is not None
        self.writers = []
        self.history: List[Dict] = []        # evaluation results (with 'seed' and 'step')
        self.last_stats: Dict[str, np.ndarray] = {}
        self.rates: Dict[str, float] = {}
        self.phase, self.step = self._first_phase(), 0  # the last finished update
        self.resumed_tensorboard = None
        if resume is not None:
            self._restore(resume)

    def _first_phase(self):
        return 'vae' if self.cfg.needs_cvae and not self.cvae_given else 'policy'

    @staticmethod
    def _writer(directory):
        from torch.utils.tensorboard import SummaryWriter
        return SummaryWriter(os.path.join(directory, 'tb'))

    # -- logging --
    def _log(self, stats: Dict[str, torch.Tensor], step: int):
        if not stats:
            return
        names = sorted(stats)
        values = torch.stack([stats[n].float().reshape(len(self.seeds)) for n in names]).cpu().numpy()  # one sync
        self.last_stats = dict(zip(names, values))
        for writer, column in zip(self.writers, values.T):
            for name, value in zip(names, column):
                writer.add_scalar(name, float(value), step)

    def _bar(self, total, done, desc):
        if not self.progress or total == 0:
            return None
        from tqdm import tqdm
        return tqdm(total=total, initial=done, desc=desc, unit='upd', dynamic_ncols=True, leave=False)

    def _run_phase(self, name, steps, sample, update, after_step):
        """Steps self.step + 1 .. `steps` of phase `name`; `after_step(step)` after each."""
        log_every, first = self.cfg.log_every, self.step + 1
        bar = self._bar(steps, self.step, '%s %s' % (self.cfg.algo, name))
        start = time.perf_counter()
        for step in range(first, steps + 1):
            want_stats = step % log_every == 0 or step == steps
            stats = update(sample(), want_stats)
            if want_stats:
                self._log(stats, step)
                if bar is not None:
                    bar.update(step - bar.n)
                    bar.set_postfix({k.split('/')[-1]: '%.3g' % v[0] for k, v in list(self.last_stats.items())[:3]})
            self.step = step
            after_step(step)
        elapsed = time.perf_counter() - start
        if bar is not None:
            bar.close()
        if steps >= first:
            self.rates[name] = (steps - first + 1) / max(elapsed, 1e-9)
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
            obs_t = torch.as_tensor(obs, device=self.device).reshape(1, 1, -1).expand(len(self.seeds), 1, -1)
            return self.algorithm.act(obs_t)[index, 0].cpu().numpy()
        return act

    def _q_fn(self, index):
        def q(obs, actions):
            s = len(self.seeds)
            obs_t = torch.as_tensor(obs, dtype=torch.float32, device=self.device)[None].expand(s, -1, -1)
            act_t = torch.as_tensor(actions, dtype=torch.float32, device=self.device)[None].expand(s, -1, -1)
            with torch.no_grad():
                return self.algorithm.q_value(obs_t, act_t)[index].cpu().numpy()
        return q

    # -- the whole run --
    def run(self) -> Dict:
        cfg, algo = self.cfg, self.algorithm
        self._open_writers()
        if self.phase == 'vae':
            self._run_phase('vae', cfg.vae_steps, self.sampler.state_actions, algo.vae_update,
                            lambda step: self._maybe_save(step))
            self.phase, self.step = 'policy', 0
        if cfg.needs_cvae and algo.vae_optimizer is not None:
            algo.freeze_cvae()
        if self.phase == 'policy':
            self._run_phase('policy', cfg.steps, self.sampler.transitions, algo.update, self._after_policy_step)
            if self.evaluator is not None and (cfg.eval_every == 0 or cfg.steps % cfg.eval_every != 0):
                self.evaluate(cfg.steps)
        for index, directory in enumerate(self.out_dirs):
            save_checkpoint(directory, algo, index, datasets=self.dataset.sources, progress=self.done_steps(),
                            obs_normaliser=self.obs_normaliser)
        self.phase, self.step = 'done', 0
        if self.save_every:
            self.save_state()
        for writer in self.writers:
            writer.close()
        summary = self.summary()
        if self.record is not None:
            self.record.update(status='finished', progress=self.progress_record(), evaluation=self.history,
                               summary=summary)
        return summary

    def _after_policy_step(self, step):
        if self.evaluator is not None and self.cfg.eval_every > 0 and step % self.cfg.eval_every == 0:
            self.evaluate(step)
        self._maybe_save(step)

    def _maybe_save(self, step):
        if self.save_every and self.updates_done() % self.save_every == 0:
            self.save_state()

    def _vae_budget(self) -> int:
        """The CVAE updates this run trains (0: none, or a CVAE given)."""
        return self.cfg.vae_steps if self._first_phase() == 'vae' else 0

    def updates_done(self) -> int:
        """Updates finished over both phases (the count `save_every` divides)."""
        if self.phase == 'vae':
            return self.step
        return self._vae_budget() + (self.step if self.phase == 'policy' else self.cfg.steps)

    def done_steps(self) -> Dict[str, int]:
        """The checkpoint's `progress`: the CVAE updates this run trained and the policy's."""
        return {'vae_steps': self._vae_budget(), 'policy_steps': self.cfg.steps}

    def progress_record(self) -> Dict:
        return {'phase': self.phase, 'step': self.step, 'updates_done': self.updates_done(),
                'updates_total': self._vae_budget() + self.cfg.steps}

    def summary(self) -> Dict:
        final_eval = [h for h in self.history if h['step'] == self.cfg.steps]
        return {'algo': self.cfg.algo, 'seeds': self.seeds, 'rates': dict(self.rates),
                'last_stats': {k: v.tolist() for k, v in self.last_stats.items()},
                'final_return': [h['return_mean'] for h in final_eval], 'out_dirs': self.out_dirs}

    # -- the training state --
    def dataset_records(self) -> List[Dict]:
        if self.datasets is None:
            from plas_ros.algos.run_record import dataset_records
            self.datasets = dataset_records(self.dataset.sources)
        return self.datasets

    def capture_state(self) -> Dict:
        """Everything a resumed run needs to continue bit-identically (see train_state.py)."""
        return {'algo': self.cfg.algo, 'seeds': list(self.seeds), 'config': self.cfg.to_dict(),
                'datasets': self.dataset_records(), 'device': str(self.device), 'phase': self.phase,
                'step': self.step, 'cvae_given': self.cvae_given,
                'modules': {k: v.detach().cpu().clone() for k, v in self.algorithm.state_dict().items()},
                'mutable': train_state.mutable_state(self.algorithm),
                'sampler': [g.get_state() for g in self.sampler.generators],
                'rng': train_state.global_rng_state(self.device), 'history': list(self.history),
                'last_stats': {k: torch.as_tensor(v) for k, v in self.last_stats.items()},
                'tensorboard': self._tensorboard_sizes(), 'extra': dict(self.state_extra),
                'obs_normalised': self.obs_normaliser is not None}

    def save_state(self) -> str:
        for writer in self.writers:
            writer.flush()  # the recorded sizes are those of complete events
        path = train_state.save_state(self.state_dir, self.capture_state())
        if self.record is not None:
            self.record.update(progress=self.progress_record(), evaluation=self.history)
        return path

    def _restore(self, state: Dict):
        try:
            self._check_resumable(state)
            self._load(state)
        except TrainStateError:
            raise
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:  # a damaged entry
            reason = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise TrainStateError('the training state does not fit this run or is damaged: %s' % reason) from None

    def _load(self, state: Dict):
        self.phase, self.step, self.cvae_given = state['phase'], int(state['step']), bool(state['cvae_given'])
        if self.cfg.needs_cvae and self.phase != 'vae':
            self.algorithm.freeze_cvae()  # the state was saved after phase 1: no CVAE optimiser any more
        try:
            self.algorithm.load_state_dict(state['modules'], strict=True)
        except RuntimeError as exc:
            raise TrainStateError('the networks of the training state do not fit: %s'
                                  % str(exc).splitlines()[0]) from None
        train_state.load_mutable_state(self.algorithm, state['mutable'])
        if len(state['sampler']) != len(self.sampler.generators):
            raise TrainStateError('the training state has %d batch generators, this run %d'
                                  % (len(state['sampler']), len(self.sampler.generators)))
        for generator, saved in zip(self.sampler.generators, state['sampler']):
            generator.set_state(saved)
        train_state.set_global_rng_state(state['rng'], self.device)
        self.history = [dict(h) for h in state['history']]
        self.last_stats = {k: v.numpy() for k, v in state.get('last_stats', {}).items()}
        self.resumed_tensorboard = state['tensorboard']
        self.state_extra.update(state.get('extra', {}))

    def _check_resumable(self, state: Dict):
        """TrainStateError naming the first thing that differs between the saved run and this one."""
        if state['algo'] != self.cfg.algo:
            raise TrainStateError('the training state is of algorithm %s, not %s' % (state['algo'], self.cfg.algo))
        if [int(s) for s in state['seeds']] != self.seeds:
            raise TrainStateError('the training state is of seeds %s, not %s'
                                  % (','.join(map(str, state['seeds'])), ','.join(map(str, self.seeds))))
        ours = self.cfg.to_dict()
        changed = ['%s %r (the run: %r)' % (k, ours.get(k), v) for k, v in sorted(state['config'].items())
                   if k not in RESUME_MAY_CHANGE and ours.get(k) != v]
        if changed:
            raise TrainStateError('the configuration differs from that of the run: %s' % '; '.join(changed))
        saved, given = state['datasets'], self.dataset_records()
        if [d['sha256'] for d in saved] != [d['sha256'] for d in given]:
            raise TrainStateError('the datasets differ from those of the run: %s (sha256 %s) given, the run trained '
                                  'on %s (sha256 %s)' % (', '.join(d['path'] for d in given),
                                                         ', '.join(d['sha256'][:12] for d in given),
                                                         ', '.join(d['path'] for d in saved),
                                                         ', '.join(d['sha256'][:12] for d in saved)))
        if torch.device(state['device']).type != self.device.type:
            raise TrainStateError('the run trained on %s; resume it with --device %s (the generators of one '
                                  'device type cannot continue on another)'
                                  % (state['device'], torch.device(state['device']).type))
        if bool(state.get('obs_normalised')) != (self.obs_normaliser is not None):
            raise TrainStateError('the run trained on %s observations, this one would on %s ones (give --obs-normalise '
                                  'as the run did)' % (('normalised', 'raw') if state.get('obs_normalised')
                                                       else ('raw', 'normalised')))
        if state['phase'] not in PHASES:
            raise TrainStateError('the training state names an unknown phase %r' % (state['phase'],))

    # -- TensorBoard across a resume --
    def _tensorboard_folders(self):
        return [os.path.join(d, 'tb') for d in self.out_dirs]

    def _tensorboard_sizes(self) -> Dict[str, Dict[str, int]]:
        sizes = {}
        for index, folder in enumerate(self._tensorboard_folders()):
            names = os.listdir(folder) if os.path.isdir(folder) else []
            sizes[str(index)] = {n: os.path.getsize(os.path.join(folder, n)) for n in sorted(names)
                                 if 'tfevents' in n}
        return sizes

    def _open_writers(self):
        if not self.tensorboard:
            return
        if self.resumed_tensorboard is not None:
            self._cut_tensorboard_back(self.resumed_tensorboard)
        self.writers = [self._writer(d) for d in self.out_dirs]

    def _cut_tensorboard_back(self, saved: Dict[str, Dict[str, int]]):
        """Event files as they were at the save: later events cut off, later files removed."""
        for index, folder in enumerate(self._tensorboard_folders()):
            kept = saved.get(str(index), {})
            for name in (os.listdir(folder) if os.path.isdir(folder) else []):
                path = os.path.join(folder, name)
                if 'tfevents' not in name:
                    continue
                if name not in kept:
                    os.remove(path)
                elif os.path.getsize(path) > kept[name]:
                    os.truncate(path, kept[name])


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
