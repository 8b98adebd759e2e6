"""behaviour_policy: answers every /cloth/observation with a /cloth/action from a behaviour policy.

Topics and parameters: README.md, section behaviour_policy. The policies: doc/env.md.
"""
import numpy as np
import rospy

from plas_ros.collect.policies import load_collect_config, make_policy
from plas_ros.env import layout
from plas_ros.msg import Action, Observation


class BehaviourNode:
    def __init__(self):
        seed = int(rospy.get_param('~seed', -1))
        noise = float(rospy.get_param('~noise', -1.0))
        config = load_collect_config(rospy.get_param('~config', None) or None)
        self.policy = make_policy(rospy.get_param('~policy', 'schedule'), config=config,
                                  checkpoint=rospy.get_param('~checkpoint', '') or None,
                                  noise=noise if noise >= 0 else None, seed=seed if seed >= 0 else None)
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
