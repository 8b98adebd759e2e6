"""inference node: the deployed policy, behind the safety core of plas_ros.deploy.

Topics, services and parameters: README.md, section inference. The safety gate and its latency: doc/deploy.md.
"""
import sys
import threading

import rospy
import yaml
from std_msgs.msg import Empty, String
from std_srvs.srv import SetBool, SetBoolResponse, Trigger, TriggerResponse

from plas_ros import deploy
from plas_ros.config import caller_path
from plas_ros.data.episodes import EpisodeReturns
from plas_ros.msg import Action, Observation, Transition
from plas_ros.nodes.lifecycle import init_node
from plas_ros.nodes.params import node_params

ACTIVE = 'active'


class ThrottledReasons:
    """Logs each reason for publishing nothing at most once per `period` seconds, with a count."""

    def __init__(self, period):
        self.period = period
        self._last = {}
        self._count = {}

    def report(self, reason):
        self._count[reason] = self._count.get(reason, 0) + 1
        now = rospy.get_time()
        if now - self._last.get(reason, -1e9) >= self.period:
            rospy.logwarn('publishing no action: %s (%d observation(s) since the last report)',
                          reason, self._count[reason])
            self._last[reason], self._count[reason] = now, 0


class InferenceNode:
    def __init__(self, core, config, episodes=0):
        self.core = core
        self.episodes = int(episodes)  # > 0: shut down after this many episodes ended
        import torch
        self.inference_mode = torch.inference_mode
        self.gate = core.gate
        self.returns = EpisodeReturns()
        self.dropped = ThrottledReasons(config.warn_period)
        self.implausible = deploy.EpisodeOnce()
        self._state_lock = threading.Lock()
        self.state_pub = rospy.Publisher('~state', String, queue_size=1, latch=True)
        self.action_pub = rospy.Publisher('/cloth/action', Action, queue_size=1, tcp_nodelay=True)
        self.publish_state()
        rospy.Service('~enable', SetBool, self.on_enable)
        rospy.Service('~estop', Trigger, self.on_estop)
        rospy.Service('~reset_estop', Trigger, self.on_reset_estop)
        rospy.Subscriber('/cloth/estop', Empty, lambda _msg: self.stop('/cloth/estop'), queue_size=10,
                         tcp_nodelay=True)
        rospy.Subscriber('/cloth/transition', Transition, self.on_transition, queue_size=100)
        # queue_size=1: a backlog is stale by definition, only the newest observation matters.
        rospy.Subscriber('/cloth/observation', Observation, self.on_observation, queue_size=1,
                         tcp_nodelay=True, buff_size=2 ** 16)

    def on_observation(self, msg):
        stamp = msg.header.stamp
        with self.inference_mode():  # grad mode is per thread: rospy calls back on its own threads
            decision = self.core.decide(msg.data, stamp.to_sec(), rospy.get_time())
        if decision.action is None:
            self.report(decision, msg)
            return
        action = Action(episode=msg.episode, step=msg.step, data=decision.action.tolist())
        action.header.stamp = stamp
        # Last look at what goes out: a stop may have landed on another thread; the envelope is checked again.
        reason = self.gate.publish_reason(action.data)
        if reason is None:
            self.action_pub.publish(action)
        else:
            self.dropped.report(reason)

    def report(self, decision, msg):
        if decision.reason != deploy.IMPLAUSIBLE:
            detail = '' if decision.detail is None else ': ' + decision.detail
            self.dropped.report(decision.reason + detail)
        elif self.implausible.first(msg.episode, deploy.IMPLAUSIBLE):
            rospy.logwarn('episode %d step %d: publishing no action: %s: %s (said once per episode)', msg.episode,
                          msg.step, decision.reason, decision.detail)

    def on_transition(self, msg):
        for episode in self.returns.add(msg.episode, msg.reward, msg.terminal, msg.timeout, msg.error):
            rospy.loginfo('episode %d: return %.4f over %d steps (%s)', episode.episode, episode.ret,
                          episode.steps, episode.outcome)
        finished = self.returns.finished
        if self.episodes > 0 and len(finished) >= self.episodes and not rospy.is_shutdown():
            rospy.loginfo('%d episode(s) done, mean return %.4f; shutting down', len(finished),
                          sum(e.ret for e in finished) / len(finished))
            rospy.signal_shutdown('%d episodes done' % len(finished))

    def stop(self, source):
        self.gate.estop()
        rospy.logwarn('EMERGENCY STOP from %s: no actions until ~reset_estop', source)
        self.publish_state()

    def on_enable(self, request):
        self.gate.enable(request.data)
        rospy.loginfo('policy %s', 'enabled' if request.data else 'disabled')
        self.publish_state()
        message = 'enabled' if request.data else 'disabled'
        if request.data and self.gate.estopped:
            message += ', but the emergency stop is latched: call ~reset_estop'
        return SetBoolResponse(success=True, message=message)

    def on_estop(self, _request):
        self.stop('service %s' % rospy.resolve_name('~estop'))
        return TriggerResponse(success=True, message='emergency stop latched')

    def on_reset_estop(self, _request):
        self.gate.reset_estop()
        rospy.loginfo('emergency stop reset')
        self.publish_state()
        return TriggerResponse(success=True, message='emergency stop reset; enabled: %s' % self.gate.enabled)

    def publish_state(self):
        with self._state_lock:  # services and the stop topic run on different threads
            self.state_pub.publish(String(data=self.gate.blocking_reason() or ACTIVE))


DEPLOY_FIELDS = ('max_obs_age', 'warn_period', 'threads')   # node parameters over the file's inference section


def read_params():
    """Node parameters (config/deploy.yaml `node`) and the DeployConfig (its `inference` section, or that of
    ~config) with ~max_obs_age, ~warn_period, ~threads over it; the action bounds default to the policy's; the
    plausible observation ranges (that file's `plausible` section)."""
    p = node_params('deploy.yaml', 'node', extra={name: None for name in DEPLOY_FIELDS})
    config = deploy.load_deploy_config(p['config'] or None, overrides={
        name: p[name] for name in DEPLOY_FIELDS if p[name] is not None})
    if not p['checkpoint']:
        raise ValueError('~checkpoint is not set: give the folder written by python -m plas_ros.train')
    enabled = p['sim'] if p['enabled'] is None else p['enabled']  # on real hardware an operator must enable it
    bounds = (_bound_param('~action_low', p['action_low']), _bound_param('~action_high', p['action_high']))
    if p['episodes'] < 0:
        raise ValueError('~episodes must be >= 0 (0: run until stopped), got %d' % p['episodes'])
    ranges = deploy.load_observation_ranges(p['config'] or None)
    return config, caller_path(p['checkpoint']), bool(enabled), bounds, p['episodes'], ranges


def _bound_param(name, value):
    """A bound given as a number, a list, or the text of either (roslaunch <param> passes "[a, b]" as text)."""
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as error:
            raise ValueError('%s: cannot read %r as a number or a list (%s)' % (name, value, error)) from None
    return value


def main():
    init_node('inference')
    try:
        config, checkpoint, enabled, bounds, episodes, ranges = read_params()
        core = deploy.build_core(checkpoint, config, enabled, bounds, ranges)
    except (ValueError, OSError) as error:  # a bad parameter or checkpoint: say so, do not start
        rospy.logfatal('inference node cannot start: %s', error)
        sys.exit(1)
    gate = core.gate
    rospy.loginfo('policy from %s: obs %d-d, actions clipped to [%s, %s] within the robot envelope [%s, %s], max '
                  'observation age %.3f s, %s', checkpoint, gate.obs_dim, gate.action_low.tolist(),
                  gate.action_high.tolist(), gate.envelope_low.tolist(), gate.envelope_high.tolist(),
                  gate.max_obs_age, 'enabled' if enabled else 'DISABLED until ~enable is called')
    InferenceNode(core, config, episodes)
    rospy.spin()
