"""The episode record: one step as every producer makes it, how steps group into episodes, and how an episode ended.

Producers (the ROS env node, the in-process collector, the evaluator) build `Step`s through the episode
runner (`plas_ros.env.runner`); consumers (the recorder node, the collector's writer, the deployment's
return log, the data CLI and the loader) read episodes back through the functions here and the file
columns of `plas_ros.data.schema` (`episode_arrays`, `rows_outcome`), so "where does an episode end" and
"how did it end" have one answer:

* an episode ends at a row flagged terminal (the MDP ended: the edge was lost) or timeout (the time limit,
  or a truncation: bootstrap from it);
* an episode that ended on a fault (a stale sensor, a failed driver) is an *error* episode: its rows are
  flagged in `infos/errors` and its last row is a timeout, so it is a truncation, never a success;
* a stream that stops without either flag leaves its last episode *open* (foreign files) or *incomplete*
  (a live stream whose end was never seen).
"""
import math
from typing import Any, List, NamedTuple

import numpy as np

TERMINAL, TIMEOUT, ERROR = 'terminal', 'timeout', 'error'
OPEN = 'open'              # a file that ends without a terminal or timeout flag (foreign files only)
INCOMPLETE = 'incomplete'  # a live stream moved on to the next episode before this one's end arrived


class Step(NamedTuple):
    """One transition (or the error record that ends an episode), as plain Python and numpy."""

    episode: int
    step: int
    observation: Any
    action: Any
    reward: float
    next_observation: Any
    terminal: bool = False
    timeout: bool = False
    error: bool = False
    timestamp: float = math.nan
    gripper_width: float = math.nan
    gripper_adjustment: int = 0
    tactile_raw: Any = ()
    force_raw: Any = ()
    tip_pose: Any = ()
    error_message: str = ''

    @property
    def ends_episode(self):
        return bool(self.terminal or self.timeout or self.error)


class EpisodeSummary(NamedTuple):
    episode: int            # the producer's episode id
    steps: int              # transitions
    ret: float              # undiscounted sum of rewards
    outcome: str            # terminal | timeout | error | incomplete
    index: int = -1         # episode id in the file it was written to (infos/episode_ids), -1 when not written
    missing_steps: int = 0  # step numbers that never arrived


def outcome(terminal, timeout, error):
    """How an episode whose last row carries these flags ended (an error wins: it is never a success)."""
    if error:
        return ERROR
    if terminal:
        return TERMINAL
    return TIMEOUT if timeout else OPEN


def episode_ends(terminals, timeouts) -> np.ndarray:
    """Row mask of each episode's last row: a terminal or timeout row, and the last row of all."""
    ends = np.asarray(terminals, bool) | np.asarray(timeouts, bool)
    if len(ends):
        ends[-1] = True
    return ends


def slices_of(ends) -> List[slice]:
    """Episodes as row slices, from the mask of their last rows (`episode_ends`)."""
    stops = [int(i) + 1 for i in np.flatnonzero(ends)]
    return [slice(a, b) for a, b in zip([0] + stops[:-1], stops)]


def episode_slices(terminals, timeouts) -> List[slice]:
    """Episodes as row slices: each ends at a terminal or timeout row, the last also at the end of the rows."""
    return slices_of(episode_ends(terminals, timeouts))


def summary_of(steps: List[Step], error=False, index=-1, missing_steps=0) -> EpisodeSummary:
    """The summary of one episode from its steps (in order)."""
    last = steps[-1]
    return EpisodeSummary(int(last.episode), len(steps), float(sum(s.reward for s in steps)),
                          outcome(last.terminal, last.timeout, error or last.error), index, missing_steps)


class EpisodeReturns:
    """Per-episode returns over a live stream of transitions (the deployment's return log)."""

    def __init__(self):
        self._episode = None
        self._ret = 0.0
        self._steps = 0
        self.finished: List[EpisodeSummary] = []

    def add(self, episode, reward, terminal=False, timeout=False, error=False):
        """Account one transition; return the episodes it finished (a list, usually empty or one)."""
        done = []
        if self._episode is not None and episode != self._episode:
            done.append(self._close(INCOMPLETE))  # a new episode began before the old one's end arrived
        if self._episode is None:
            self._episode, self._ret, self._steps = int(episode), 0.0, 0
        self._ret += float(reward)
        self._steps += 1
        if terminal or timeout or error:
            done.append(self._close(outcome(terminal, timeout, error)))
        self.finished.extend(done)
        return done

    def _close(self, how):
        summary = EpisodeSummary(self._episode, self._steps, self._ret, how)
        self._episode = None
        return summary
