"""In-process collection in the simulator: the ROS-free twin of `roslaunch plas_ros collect.launch`.

It runs the same task core (gymnasium env over the cloth simulator), the same behaviour policies and the
same crash-safe writer as the ROS graph, without a master, so datasets for experiments are quick to make:

    python -m plas_ros.collect --policy schedule --transitions 7000 --output /tmp/behaviour.h5
    python -m plas_ros.collect --policy expert --episodes 5 --output /tmp/behaviour.h5   # appends
    python -m plas_ros.collect --policy online_td3 --transitions 7000 --output /tmp/online.h5
        # TD3 learns while it collects; checkpoints in /tmp/online_online_td3 (--checkpoint-out)

Ctrl-C or SIGTERM ends a collection early: the file keeps every completed episode, and a learning policy
saves its last checkpoint. The output is locked for the run (one writer per file: a second collector or a
recorder on the same file is refused, naming this one). A commit that fails (a full disk) is reported once,
its episodes wait in memory and are retried after every episode; what the disk still cannot take at the
end goes to `--fallback-dir` (config/collect.yaml recorder.fallback_dir) or is reported lost (exit 1).
"""
import argparse
import itertools
import logging
import signal
import sys

import numpy as np
from tqdm import tqdm

from plas_ros.collect.policies import POLICY_NAMES, default_checkpoint_out, load_collect_config, make_policy
from plas_ros.config import config_path, job_seed, section, user_path
from plas_ros.data.episodes import ERROR, TIMEOUT
from plas_ros.data.schema import episode_arrays
from plas_ros.data.writer import OutputError, ReplayWriter
from plas_ros.env import layout
from plas_ros.env.runner import EpisodeRunner, Transport
from plas_ros.sim.gym_env import make_env


class PolicyTransport(Transport):
    """The collector's transport: a behaviour policy answers each observation; the steps are kept for the
    writer and handed to the policy (`observe`: a learner's replay buffer is what is written). Steps are
    stamped with their index (an in-process run has no clock worth keeping)."""

    def __init__(self, policy):
        self.policy = policy
        self.steps = []

    def act(self, episode, step, observation):
        if step == 0:
            self.steps = []
            self.policy.start_episode(episode)
        return np.asarray(self.policy.act(observation), dtype=np.float32)

    def record(self, step):
        self.steps.append(step)
        self.policy.observe(step)

    def timestamp(self, step):
        return float(step)


HOLDER = 'python -m plas_ros.collect'


class EpisodesLost(RuntimeError):
    """The collection ended with episodes that neither the output nor the fallback folder could take."""


def _report(level, text):
    if level >= logging.WARNING:
        tqdm.write(text, file=sys.stderr)


def collect(output, policy, episodes=None, transitions=None, seed=0, policy_name='', progress=True,
            fallback_dir='', behaviour_config=''):
    """Append episodes of `policy` to `output` until `episodes` episodes or `transitions` transitions.

    Every episode is committed as it completes (a failed commit is retried after the next one), so an
    interrupted collection keeps what it finished; the policy is closed however the collection ends (a
    learner saves its last checkpoint). The file stores the seed, `behaviour_config` (the behaviour YAML's
    text) and each episode's behaviour (a schedule's member). Returns the writer's episode summaries. Raises
    OutputError when another writer holds `output`, EpisodesLost when episodes could not be written by the end.
    """
    if episodes is None and transitions is None:
        raise ValueError('give episodes or transitions')
    writer = ReplayWriter(output, layout.DATASET_FORMAT, source='sim', policy=policy_name or policy.name, fsync=False,
                          holder=HOLDER, log=_report, seed=seed, behaviour_config=behaviour_config)
    try:
        summaries = _run_episodes(writer, policy, episodes, transitions, seed, policy_name, progress)
    finally:
        report = writer.close(fallback_dir)
    if report.lost_episodes:
        raise EpisodesLost('%d episode(s) (%d transitions) could not be written to %s'
                           % (report.lost_episodes, report.lost_transitions, writer.path))
    return summaries


def _run_episodes(writer, policy, episodes, transitions, seed, policy_name, progress):
    transport = PolicyTransport(policy)
    runner = EpisodeRunner(make_env(), transport)
    episode_seeds = np.random.default_rng(seed).integers(0, 2 ** 31 - 1, size=10 ** 6)
    summaries, total = [], 0
    bar = tqdm(total=transitions or episodes, unit='transition' if transitions else 'episode',
               disable=not progress, desc='collect %s' % (policy_name or policy.name))
    try:
        for episode in itertools.count():
            if (episodes is not None and episode >= episodes) or (transitions is not None and total >= transitions):
                break
            summary = runner.run(episode, seed=int(episode_seeds[episode]))
            complete = [s for s in transport.steps if not s.error]  # an error record has no next observation
            if complete:
                summaries.append(writer.add_episode(episode_arrays(complete, error=summary.outcome == ERROR),
                                                    source_episode=episode,
                                                    behaviour=getattr(policy, 'current', policy).name))
                writer.try_commit()
            total += len(complete)
            bar.update(len(complete) if transitions else 1)
    finally:
        bar.close()
        policy.close()
    return summaries


def build_parser():
    parser = argparse.ArgumentParser(prog='python -m plas_ros.collect', description=__doc__.split('\n\n')[0])
    parser.add_argument('--policy', choices=POLICY_NAMES, default='schedule')
    parser.add_argument('--checkpoint', help='policy checkpoint directory (policy checkpoint)')
    parser.add_argument('--noise', type=float, help='Gaussian action noise (expert, checkpoint; online_td3: '
                        'its exploration noise)')
    parser.add_argument('--checkpoint-out', help='online_td3: folder of its checkpoints (default: OUTPUT '
                        'without .h5 plus _online_td3)')
    parser.add_argument('--config', help='collection config (default config/collect.yaml)')
    parser.add_argument('--output', required=True, help='HDF5 file, created or appended to')
    limit = parser.add_mutually_exclusive_group(required=True)
    limit.add_argument('--episodes', type=int)
    limit.add_argument('--transitions', type=int, help='collect whole episodes until at least this many')
    parser.add_argument('--seed', type=int, default=None, help='default: config/run.yaml seeds.collect')
    parser.add_argument('--fallback-dir', default=section(config_path('collect.yaml'), 'recorder')['fallback_dir'],
                        help='where episodes go that the output\'s disk cannot take by the end (default: '
                        'config/collect.yaml recorder.fallback_dir; empty: they are reported lost)')
    parser.add_argument('--no-progress', action='store_true')
    return parser


def _terminate(signum, frame):
    raise KeyboardInterrupt('signal %d' % signum)  # SIGTERM ends the run as Ctrl-C does: cleanly


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.seed = job_seed('collect', args.seed)
    checkpoint_out = None
    if args.policy == 'online_td3':
        checkpoint_out = args.checkpoint_out or default_checkpoint_out(args.output)
    policy = make_policy(args.policy, config=load_collect_config(args.config), checkpoint=args.checkpoint,
                         noise=args.noise, seed=args.seed, checkpoint_out=checkpoint_out)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        with open(user_path(args.config, 'collect.yaml')) as f:
            behaviour_config = f.read()
        summaries = collect(args.output, policy, args.episodes, args.transitions, args.seed,
                            progress=not args.no_progress, fallback_dir=args.fallback_dir,
                            behaviour_config=behaviour_config)
    except (OutputError, EpisodesLost) as exc:
        print('error: %s' % exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('interrupted: %s keeps every completed episode%s' % (
            args.output, '; last checkpoint in %s' % checkpoint_out if checkpoint_out else ''), file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    if checkpoint_out:
        print('online_td3: %d transitions learned from, %d updates; checkpoint in %s'
              % (len(policy.buffer), policy.learner.updates, checkpoint_out))
    returns = [s.ret for s in summaries]
    held = sum(s.outcome == TIMEOUT for s in summaries)
    print('collected %d episodes, %d transitions into %s; return mean %.3f (min %.3f, max %.3f); '
          '%d of %d kept the edge for the whole episode'
          % (len(summaries), sum(s.steps for s in summaries), args.output, np.mean(returns), np.min(returns),
             np.max(returns), held, len(summaries)))
    return 0


