"""behaviour_policy: answers every /cloth/observation with a /cloth/action from a behaviour policy.

Topics and parameters (defaults: config/collect.yaml `node`): README.md, section behaviour_policy. The
policies: doc/env.md.
"""
import numpy as np
import rospy

from plas_ros.collect.policies import load_collect_config, make_policy
from plas_ros.env import layout
from plas_ros.msg import Action, Observation
from plas_ros.nodes.params import node_params


class BehaviourNode:
    def __init__(self):
        p = node_params('collect.yaml', 'node')
        seed = p['seed'] if p['seed'] >= 0 else None
        noise = p['noise'] if p['noise'] >= 0 else None
        config = load_collect_config(p['config'] or None)
        self.policy = make_policy(p['policy'], config=config, checkpoint=p['checkpoint'] or None, noise=noise,
                                  seed=seed)
        self.episode = None
        self.last = None  # (episode, step, action) of the last answer
        self.pub = rospy.Publisher('/cloth/action', Action, queue_size=10)
        self.sub = rospy.Subscriber('/cloth/observation', Observation, self.on_observation, queue_size=1)
        rospy.loginfo('behaviour_policy: %s', self.policy.name)

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
                rospy.loginfo('behaviour_policy: episode %d with %s', msg.episode,
                              getattr(self.policy, 'current', self.policy).name)
            action = self.policy.act(obs)
            self.last = (msg.episode, msg.step, action)
        out = Action(episode=msg.episode, step=msg.step, data=np.asarray(action, dtype=np.float32).tolist())
        out.header.stamp = rospy.Time.now()
        self.pub.publish(out)


def main():
    rospy.init_node('behaviour_policy')
    BehaviourNode()
    rospy.spin()
