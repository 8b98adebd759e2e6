"""The episode loop, written once: reset, observe, act, step, record, until terminal, timeout or error.

Three callers run it, each with its own transport (where actions come from and records go):

* the ROS env node (`plas_ros.nodes.env_node`): observations out on a topic, actions back on another,
  records published as transitions;
* the in-process collector (`plas_ros.collect`): a behaviour policy called directly, records to a writer;
* the trainer's evaluator (`plas_ros.env.evaluation`): the policy under training, records kept in memory.

The world is anything with the gymnasium calls `reset(seed=...) -> (obs, info)` and
`step(action) -> (obs, reward, terminated, truncated, info)` (plus `abort()` where a fault must end the
episode in the world too): the cloth task over the simulator or over the driver nodes (`TaskEnv`), or
any gymnasium env. `Session` is the reset / autostart state machine of a long collection on the robot.
"""
import math
from typing import Callable, List, Optional

import numpy as np

from plas_ros.data.episodes import ERROR as EPISODE_ERROR
from plas_ros.data.episodes import EpisodeSummary, Step, summary_of
from plas_ros.env.task import RobotError, SensorError

# Session.phase: what the session is doing.
STARTING, RESETTING, RUNNING = 'starting', 'resetting', 'running'
WAITING, RESET_FAILED = 'waiting for reset', 'reset failed'   # waiting for an operator reset (after a failed one)
DONE, STOPPED = 'done', 'stopped'
PHASES = (STARTING, RESETTING, RUNNING, WAITING, RESET_FAILED, DONE, STOPPED)


class Transport:
    """Where the runner's actions come from and where its records go."""

    def act(self, episode, step, observation):
        """The action answering `observation`, or None to stop the run (a shutdown)."""
        raise NotImplementedError

    def record(self, step: Step):
        """One transition, or the error record that ends an episode on a fault."""

    def check_alive(self):
        """Raise a fault (SensorError) if the world went stale while the action was awaited."""

    def stopped(self):
        """True while the process shuts down: a fault then is our own silence, not the world's."""
        return False

    def timestamp(self, step):
        """The time stamped on the record of `step` (NaN: none)."""
        return math.nan


class EpisodeRunner:
    """Runs episodes of `world` for a transport. A fault (one of `faults`) ends the episode with an error
    record that has no next observation: nothing is made up."""

    def __init__(self, world, transport: Transport, faults=(SensorError, RobotError), max_steps=None):
        self.world = world
        self.transport = transport
        self.faults = tuple(faults)
        self.max_steps = max_steps
        self.steps = 0           # transitions recorded, in all episodes (for the step rate)
        self.last_fault = None   # the text of the last fault that ended an episode

    def reset(self, seed=None):
        """The first observation of a new episode (the world's reset errors propagate: see Session)."""
        observation, _info = self.world.reset(seed=seed)
        return observation

    def run(self, episode, seed=None) -> Optional[EpisodeSummary]:
        """Reset, then one episode; see run_episode."""
        return self.run_episode(episode, self.reset(seed))

    def run_episode(self, episode, observation) -> Optional[EpisodeSummary]:
        """One episode from its first observation; its summary, or None when the transport stopped the run
        before the episode ended (whatever was recorded stays recorded)."""
        records: List[Step] = []
        for step in range(self.max_steps or 2 ** 62):
            action = None
            try:
                action = self.transport.act(episode, step, observation)
                if action is None:
                    return None
                self.transport.check_alive()
                next_observation, reward, terminal, timeout, info = self.world.step(action)
            except self.faults as fault:
                if self.transport.stopped():
                    return None
                return self._end_on_fault(records, episode, step, observation, action, fault)
            timeout = bool(timeout) or (self.max_steps is not None and step + 1 >= self.max_steps)
            record = self._transition(episode, step, observation, action, reward, next_observation,
                                      bool(terminal), timeout, info)
            records.append(record)
            self.transport.record(record)
            self.steps += 1
            if record.ends_episode:
                break
            observation = next_observation
        return summary_of(records)

    def _transition(self, episode, step, observation, action, reward, next_observation, terminal, timeout, info):
        return Step(episode=int(episode), step=int(step), observation=observation,
                    action=np.asarray(action, dtype=np.float32), reward=float(reward),
                    next_observation=next_observation, terminal=terminal, timeout=timeout,
                    timestamp=self.transport.timestamp(step), gripper_width=float(info.get('gripper_width', math.nan)),
                    gripper_adjustment=int(info.get('gripper_adjustment', 0)),
                    tactile_raw=_flat(info.get('tactile_raw', ())), force_raw=_flat(info.get('force_raw', ())),
                    tip_pose=_flat(info.get('tip_pose', ())))

    def _end_on_fault(self, records, episode, step, observation, action, fault):
        abort = getattr(self.world, 'abort', None)
        if abort is not None:
            abort()
        width = getattr(self.world, 'gripper_width', math.nan)
        record = Step(episode=int(episode), step=int(step), observation=observation,
                      action=() if action is None else np.asarray(action, dtype=np.float32), reward=0.0,
                      next_observation=(), error=True, timestamp=self.transport.timestamp(step),
                      gripper_width=float(width), error_message=str(fault))
        self.last_fault = 'episode %d ended on an error at step %d: %s' % (episode, step, fault)
        self.transport.record(record)
        return summary_of(records + [record], error=True)


def _flat(value):
    return np.asarray(value).reshape(-1)


class Session:
    """Episodes back to back, or one per operator request: the reset / autostart state machine.

    With autostart, every reset starts the next episode by itself. A reset that fails (no grasp, a stale
    sensor, a driver down) turns autostart off: the operator must look, then ask for a reset; a successful
    operator reset turns autostart back on (an unattended collection carries on). Without autostart every
    episode waits for an operator reset.

    `wait_for_request(timeout)` returns an operator request (an object with `answer(success, message)`)
    or None; `stopped()` ends the session; `log(level, text)` reports (`logging` levels); `on_fault(text)`
    hears every episode that ended on a fault and every failed reset.

    What it is doing is `phase` (one of PHASES); `error_episodes` and `failed_resets` count the faults and
    `last_episode_failed` says whether the latest episode ended on one and no reset has worked since (the
    env node's /diagnostics, plas_ros.env.health).
    """

    def __init__(self, runner: EpisodeRunner, episodes=0, autostart=True, first_episode=0,
                 wait_for_request: Callable = None, stopped: Callable = None, log: Callable = None,
                 reset_faults=(), operator='an operator reset', on_fault: Callable = None):
        self.runner = runner
        self.episodes = int(episodes)
        self.autostart = bool(autostart)
        self.episode = int(first_episode)
        self.finished = 0
        self.wait_for_request = wait_for_request or (lambda timeout: None)
        self.stopped = stopped or (lambda: False)
        self.log = log or (lambda level, text: None)
        self.reset_faults = tuple(reset_faults) + runner.faults
        self.operator = operator
        self.on_fault = on_fault or (lambda text: None)
        self.accepting_requests = False
        self.phase = STARTING
        self.error_episodes = 0
        self.failed_resets = 0
        self.last_episode_failed = False

    def episodes_left(self):
        return self.episodes <= 0 or self.finished < self.episodes

    def state(self):
        """Why an operator request is not taken now (for its reply)."""
        if not self.episodes_left():
            return 'all %d episode(s) are done' % self.finished
        return 'episode %d is in progress or starting by itself (~autostart)' % self.episode

    def reset(self):
        """(first observation or None, message)."""
        try:
            observation = self.runner.reset()
        except self.reset_faults as e:
            self.failed_resets += 1
            self.log(40, 'reset for episode %d failed: %s' % (self.episode, e))
            self.on_fault('reset for episode %d failed: %s' % (self.episode, e))
            return None, str(e)
        message = self._ready_message()
        self.log(20, message)
        return observation, message

    def _ready_message(self):
        calibration = getattr(self.runner.world, 'calibration', None)
        if calibration is None:
            return 'episode %d ready' % self.episode
        return 'episode %d ready: grasp at %.1f mm (height %+.3f m)' % (
            self.episode, calibration.width_mm, calibration.height_offset_m)

    def run(self):
        """Run until `episodes` episodes ended (0: forever) or `stopped()`."""
        autostart, reset_failed = self.autostart, False
        while not self.stopped() and self.episodes_left():
            request = None
            if not autostart:
                self.phase = RESET_FAILED if reset_failed else WAITING
                self.accepting_requests = True
                try:
                    request = self.wait_for_request(0.2)
                finally:
                    self.accepting_requests = False
                if request is None:
                    continue
            self.phase = RESETTING
            observation, message = self.reset()
            reset_failed = observation is None
            if request is not None:
                request.answer(not reset_failed, message)
            if reset_failed:
                autostart = False
                self.log(40, 'waiting for %s' % self.operator)
                continue
            self.last_episode_failed = False  # recovered
            if request is not None and self.autostart and not autostart:
                self.log(20, 'the operator reset worked; running episodes back to back again')
                autostart = True
            self.phase = RUNNING
            summary = self.runner.run_episode(self.episode, observation)
            if summary is None:
                self.phase = STOPPED
                return  # stopped mid-episode
            self._ended(summary)
        self.phase = DONE if not self.episodes_left() else STOPPED

    def _ended(self, summary):
        self.last_episode_failed = summary.outcome == EPISODE_ERROR
        if self.last_episode_failed:
            self.error_episodes += 1
            self.on_fault(self.runner.last_fault)
        self.finished += 1
        self.episode += 1
