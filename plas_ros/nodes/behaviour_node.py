"""behaviour_policy: answers every /cloth/observation with a /cloth/action from a behaviour policy; a learning
policy (online_td3) also learns from every /cloth/transition and saves its last checkpoint at shutdown.

Topics and parameters (defaults: config/collect.yaml `node`): README.md, section behaviour_policy. The
policies: doc/env.md.
"""
import numpy as np
import rospy

from plas_ros.collect.policies import load_collect_config, make_policy
from plas_ros.config import caller_path, job_seed
from plas_ros.env import layout
from plas_ros.msg import Action, Behaviour, Observation, Transition
from plas_ros.nodes.lifecycle import init_node
from plas_ros.nodes.messages import step_from_transition
from plas_ros.nodes.params import node_params


class BehaviourNode:
    def __init__(self):
        p = node_params('collect.yaml', 'node')
        seed = job_seed('collect', p['seed'])
        seed = seed if seed >= 0 else None
        noise = p['noise'] if p['noise'] >= 0 else None
        config = load_collect_config(p['config'] or None)
        if p['policy'] == 'online_td3' and not p['checkpoint_out']:
            raise SystemExit('behaviour_policy: policy online_td3 needs ~checkpoint_out (where its checkpoints '
                             'go; collect.launch sets it)')
        self.policy = make_policy(p['policy'], config=config, checkpoint=caller_path(p['checkpoint']) or None,
                                  noise=noise, seed=seed, checkpoint_out=caller_path(p['checkpoint_out']) or None)
        rospy.on_shutdown(self.close)
        self.episode = None
        self.last = None  # (episode, step, action) of the last answer
        self.pub = rospy.Publisher('/cloth/action', Action, queue_size=10, tcp_nodelay=True)
        # latched: a recorder that connects late still learns the behaviour of the episode under way
        self.behaviour_pub = rospy.Publisher('/cloth/behaviour', Behaviour, queue_size=100, latch=True)
        self.sub = rospy.Subscriber('/cloth/observation', Observation, self.on_observation, queue_size=1,
                                    tcp_nodelay=True)
        self.transitions = None
        if self.policy.learns:  # its replay buffer: the transitions the recorder writes
            self.transitions = rospy.Subscriber('/cloth/transition', Transition, self.on_transition,
                                                queue_size=10000, buff_size=2 ** 24)
        rospy.loginfo('behaviour_policy: %s%s', self.policy.name,
                      ', learning from /cloth/transition, checkpoints in %s' % p['checkpoint_out']
                      if self.policy.learns else '')

    def on_transition(self, msg):
        self.policy.observe(step_from_transition(msg))

    def close(self):
        self.policy.close()
        if self.policy.learns:
            rospy.loginfo('behaviour_policy: %s learned from %d transitions; last checkpoint in %s',
                          self.policy.name, len(self.policy.buffer), self.policy.checkpoint_out)

    def on_observation(self, msg):
        obs = np.asarray(msg.data, dtype=np.float32)
        if obs.shape != (layout.OBS_DIM,) or not np.all(np.isfinite(obs)):
            rospy.logerr('behaviour_policy: ignoring observation of episode %d step %d: %d values or non-finite',
                         msg.episode, msg.step, obs.size)
            return
        if self.last is not None and self.last[:2] == (msg.episode, msg.step):
            action = self.last[2]
        else:
            if msg.episode != self.episode:
                self.episode = msg.episode
                self.policy.start_episode(msg.episode)
                behaviour = getattr(self.policy, 'current', self.policy).name
                self.behaviour_pub.publish(Behaviour(episode=msg.episode, policy=behaviour))
                rospy.loginfo('behaviour_policy: episode %d with %s', msg.episode, behaviour)
            action = self.policy.act(obs)
            self.last = (msg.episode, msg.step, action)
        out = Action(episode=msg.episode, step=msg.step, data=np.asarray(action, dtype=np.float32).tolist())
        out.header.stamp = rospy.Time.now()
        self.pub.publish(out)


def main():
    init_node('behaviour_policy')
    BehaviourNode()
    rospy.spin()
