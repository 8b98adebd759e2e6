"""recorder: /cloth/transition into a crash-safe HDF5 replay buffer (plas_ros.data.writer), exiting by itself
after ~episodes complete episodes or once complete episodes hold ~transitions transitions. Topics, services
and parameters: README.md, section recorder. File format and crash safety: doc/data.md."""
import sys
import threading

import rospy
from std_msgs.msg import UInt32

from plas_ros.config import ConfigError, caller_path, job_seed, user_path
from plas_ros.data.episodes import ERROR
from plas_ros.data.writer import BackgroundCommitter, EpisodeWriter, OutputError, ReplayWriter
from plas_ros.env import layout
from plas_ros.msg import Behaviour, Transition
from plas_ros.nodes.lifecycle import init_node
from plas_ros.nodes.messages import step_from_transition
from plas_ros.nodes.params import node_params, ros_log


class RecorderNode:
    def __init__(self, params):
        self.target = int(params['episodes'])
        self.target_transitions = int(params['transitions'])
        self.fallback_dir = params['fallback_dir']
        self.close_timeout = float(params['close_timeout_s'])
        self.lost = 0  # episodes neither the output nor the fallback folder could take at shutdown
        self.replay = ReplayWriter(params['output'], layout.DATASET_FORMAT, source=params['source'],
                                   policy=params['policy'], config_text=params['config_text'],
                                   append=bool(params['append']),
                                   min_free_bytes=int(float(params['min_free_mb']) * 1e6),
                                   fsync=bool(params['fsync']), holder='recorder node %s' % rospy.get_name(),
                                   log=lambda level, text: ros_log(level, 'recorder: ' + text), seed=params['seed'],
                                   behaviour_config=params['behaviour_config_text'])
        self.replay.commit()  # the file exists (and validates) before the first transition
        self._lock = threading.Lock()
        self.handed_over = 0  # complete (terminal/timeout) episodes submitted for commit
        self.handed_over_transitions = 0  # their transitions
        self.committed = 0
        self._stopping = False
        self.committed_pub = rospy.Publisher('~committed', UInt32, queue_size=1, latch=True)
        self.committed_pub.publish(UInt32(0))
        self.committer = BackgroundCommitter(self.replay, on_committed=self.on_committed,
                                             retry_period=float(params['commit_retry_s']))
        self.episodes = EpisodeWriter(self.replay, sink=self.submit, log=rospy.logwarn)
        self.behaviours = {}  # episode id -> the behaviour that acted in it (/cloth/behaviour)
        rospy.on_shutdown(self.shutdown)
        self.behaviour_sub = rospy.Subscriber('/cloth/behaviour', Behaviour, self.on_behaviour, queue_size=100)
        self.sub = rospy.Subscriber('/cloth/transition', Transition, self.on_transition,
                                    queue_size=int(params['queue_size']), buff_size=2 ** 24)
        rospy.loginfo('recorder: writing %s (%s; %d episodes already in it), %s', self.replay.path,
                      'appending' if self.replay.episodes else 'new file', self.replay.episodes,
                      self._target_text())

    def on_transition(self, msg):
        with self._lock:
            if self._stopping or self._target_reached():
                return
            self.episodes.add(step_from_transition(msg))

    def on_behaviour(self, msg):
        with self._lock:
            self.behaviours[msg.episode] = msg.policy

    def submit(self, arrays, source_episode, missing_steps):  # called under self._lock (on_transition)
        summary = self.committer.submit(arrays, source_episode, missing_steps,
                                        self.behaviours.pop(source_episode, ''))
        if summary.outcome != ERROR:
            self.handed_over += 1
            self.handed_over_transitions += summary.steps
        return summary

    def _target_text(self):
        targets = (['%d episodes' % self.target] if self.target > 0 else []) + (
            ['%d transitions in complete episodes' % self.target_transitions] if self.target_transitions > 0 else [])
        return ' or '.join(targets) or 'until stopped'

    def _target_reached(self):
        return ((self.target > 0 and self.handed_over >= self.target)
                or (self.target_transitions > 0 and self.handed_over_transitions >= self.target_transitions))

    def on_committed(self, summaries):
        for s in summaries:
            rospy.loginfo('recorder: committed episode %d (publisher episode %d): %d steps, return %.4f, %s%s',
                          s.index, s.episode, s.steps, s.ret, s.outcome,
                          ', %d step(s) missing' % s.missing_steps if s.missing_steps else '')
        self.committed += len(summaries)
        rospy.loginfo('recorder: %s holds %d episodes, %d transitions', self.replay.path,
                      self.replay.committed_episodes, self.replay.committed_transitions)
        self.committed_pub.publish(UInt32(self.committed))
        self._maybe_finish()

    def _maybe_finish(self):
        with self._lock:
            done = self._target_reached() and not self.replay.pending_episodes
        if done and not rospy.is_shutdown():
            rospy.signal_shutdown('recorded %d complete episodes, %d transitions'
                                  % (self.handed_over, self.handed_over_transitions))

    def shutdown(self):
        with self._lock:
            self._stopping = True
            lost = self.episodes.discard_open()
        if lost:
            rospy.logwarn('recorder: discarding %d transition(s) of the episode in progress', lost)
        if not self.committer.close(self.close_timeout):
            rospy.logerr('recorder: the last commit did not finish in %.0f s', self.close_timeout)
        self.lost = self.replay.close(self.fallback_dir).lost_episodes  # logs what it could not keep
        rospy.loginfo('recorder: stopped; %s holds %d episodes; transitions %s', self.replay.path,
                      self.replay.committed_episodes, self.episodes.counts.as_dict())


def main():
    init_node('recorder')
    params = node_params('collect.yaml', 'recorder')
    if not params['output']:
        rospy.logfatal('recorder: ~output (the HDF5 file to write) is required')
        sys.exit(1)
    params['output'] = caller_path(params['output'])
    try:
        params['seed'] = job_seed(params['job'], params['seed'])
        with open(user_path(params['behaviour_config'], 'collect.yaml')) as f:
            params['behaviour_config_text'] = f.read()
    except (ConfigError, OSError) as exc:
        rospy.logfatal('recorder: %s', exc)
        sys.exit(1)
    try:
        node = RecorderNode(params)
    except (OutputError, ValueError, OSError) as exc:  # before collection starts: say so and fail the launch
        rospy.logfatal('recorder: cannot record to %s: %s', params['output'], exc)
        sys.exit(1)
    rospy.spin()
    if node.lost:  # the shutdown hook ran (signal handlers run it in this thread): the job lost data
        sys.exit(1)
