"""What the driver nodes share: parameter look-up, a fixed-rate loop and routing the core's log records to
rosout."""
import logging

import rospy

REQUIRED = object()


def param(name, default=REQUIRED):
    """`~name`, else `name` in the node's namespace (drivers.launch loads config/robot.yaml at the root,
    so its wsg/dsa/arm sections are the defaults); a missing required parameter stops the node, saying so."""
    value = rospy.get_param('~' + name, rospy.get_param(name, default))
    if value is REQUIRED:
        raise SystemExit('%s: parameter ~%s (or %s) is required' % (rospy.get_name(), name, rospy.resolve_name(name)))
    return value


def ros_log(level, text):
    """A `log(level, text)` callback for the core's clients: logging levels to rosout."""
    if level >= logging.ERROR:
        rospy.logerr(text)
    elif level >= logging.WARNING:
        rospy.logwarn(text)
    elif level >= logging.INFO:
        rospy.loginfo(text)
    else:
        rospy.logdebug(text)


def run_at(rate_hz, step):
    """Call `step()` at `rate_hz` until ROS shuts down (a shutdown during the sleep ends the loop quietly)."""
    rate = rospy.Rate(rate_hz)
    while not rospy.is_shutdown():
        step()
        try:
            rate.sleep()
        except rospy.ROSInterruptException:
            break
