"""ROS messages <-> the core's records, in one place: `plas_ros/Transition` <-> `plas_ros.data.episodes.Step`
(the env node publishes what the recorder and the inference node read) and the driver topics' messages ->
`plas_ros.env.task.SensorReading`."""
import math

import numpy as np
import rospy

from plas_ros.data.episodes import Step
from plas_ros.env.task import SensorError, SensorReading
from plas_ros.hardware.arm import quaternion_to_pitch
from plas_ros.msg import Transition


def _list(value):
    return np.asarray(value, dtype=np.float64).reshape(-1).tolist()


def transition_msg(step: Step) -> Transition:
    msg = Transition(episode=int(step.episode), step=int(step.step), observation=_list(step.observation),
                     action=_list(step.action), reward=float(step.reward),
                     next_observation=_list(step.next_observation), terminal=bool(step.terminal),
                     timeout=bool(step.timeout), gripper_width=float(step.gripper_width),
                     gripper_adjustment=int(step.gripper_adjustment),
                     tactile_raw=np.asarray(step.tactile_raw).astype(np.uint16).reshape(-1).tolist(),
                     force_raw=_list(step.force_raw), tip_pose=_list(step.tip_pose), error=bool(step.error),
                     error_message=str(step.error_message))
    if math.isfinite(step.timestamp):
        msg.header.stamp = rospy.Time.from_sec(step.timestamp)
    return msg


def step_from_transition(msg: Transition) -> Step:
    stamp = msg.header.stamp.to_sec()
    return Step(
        episode=int(msg.episode), step=int(msg.step), observation=np.asarray(msg.observation, np.float32),
        action=np.asarray(msg.action, np.float32), reward=float(msg.reward),
        next_observation=np.asarray(msg.next_observation, np.float32), terminal=bool(msg.terminal),
        timeout=bool(msg.timeout), error=bool(msg.error), timestamp=stamp if stamp > 0 else math.nan,
        gripper_width=float(msg.gripper_width), gripper_adjustment=int(msg.gripper_adjustment),
        tactile_raw=np.asarray(msg.tactile_raw, np.float64), force_raw=np.asarray(msg.force_raw, np.float64),
        tip_pose=np.asarray(msg.tip_pose, np.float64), error_message=msg.error_message)


def reading_from_messages(msgs, tactile_topic='/dsa/frame'):
    """SensorReading from the four sensor messages (SensorError on malformed data, naming the topic)."""
    frame = msgs['tactile']
    if frame.rows * frame.cols != len(frame.data):
        raise SensorError('%s: %d x %d frame with %d values' % (tactile_topic, frame.rows, frame.cols,
                                                                len(frame.data)))
    force = msgs['wrench'].wrench.force
    pose = msgs['pose'].pose
    q = pose.orientation
    try:
        pitch = quaternion_to_pitch([q.x, q.y, q.z, q.w])
    except ValueError as e:
        raise SensorError('/arm/tip_pose: %s' % e) from None
    return SensorReading([force.x, force.y, force.z], np.asarray(frame.data, dtype=np.uint16),
                         [pose.position.x, pose.position.y, pose.position.z, pitch])
