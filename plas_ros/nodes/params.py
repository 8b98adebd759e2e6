"""What the nodes share: reading their parameters (one way, over their YAML section), a fixed-rate loop and
routing the core's log records to rosout."""
import logging
import re
import xmlrpc.client

import rospy

from plas_ros.config import ConfigError, config_path, overlay, section
from plas_ros.nodes.lifecycle import master_proxy


def node_params(config, key, namespace=False, extra=None, required=()):
    """The node's parameters: the section `key` of config/<config> (the only place their defaults live), each
    overlaid by the private parameter ~name (with `namespace`, else by name in the node's namespace: a driver
    in /wsg also reads /wsg/name). `extra` adds defaults another file owns ({name: value}).

    Strict: a value must have its default's type (an int for a float is fine, a null default takes any), an
    empty string means the YAML value (a launch argument left empty), a name of `required` that ends up
    null stops the node, and a private parameter the section does not know is reported as a warning.
    Returns a dict. A bad value stops the node with a message naming the parameter and the file.
    """
    path = config_path(config)
    try:
        defaults = dict(section(path, key), **(extra or {}))
        given = {}
        for name in defaults:
            for where in ('~' + name,) + ((name,) if namespace else ()):
                if rospy.has_param(where):
                    given[name] = _yaml11_number(rospy.get_param(where))
                    break
        values = overlay(defaults, given, path, key, required=required)
    except ConfigError as exc:
        raise SystemExit('%s: parameter %s' % (rospy.get_name(), exc)) from None
    unknown = unknown_private_params(defaults)
    if unknown:
        rospy.logwarn('%s: ignoring unknown parameter(s) %s (known: %s, defaults in config/%s %s)',
                      rospy.get_name(), ', '.join(unknown), ', '.join(sorted(defaults)), config, key)
    return values


# YAML 1.1 (rosparam, `_name:=value` on the command line) reads an exponent without a dot ("1e+12", "5e-3") as a
# string; such a value is the number it spells.
_EXPONENT_NUMBER = re.compile(r'^[-+]?[0-9]+(\.[0-9]*)?[eE][-+]?[0-9]+$')


def _yaml11_number(value):
    if isinstance(value, str) and _EXPONENT_NUMBER.match(value.strip()):
        return float(value)
    return value


def unknown_private_params(known):
    """The node's private parameters (~name) whose first name part is not in `known`."""
    prefix = rospy.get_name().rstrip('/') + '/'
    try:
        names = rospy.get_param_names()
    except Exception:  # the master went away: nothing to report
        return []
    found = {name[len(prefix):].split('/')[0] for name in names if name.startswith(prefix)}
    return sorted(found - set(known))


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


class ServiceCaller:
    """`call(name, *args)` over rospy service proxies (`types`: name -> service class); `error` (an exception
    class) when a service is not advertised within `timeout` or its call fails."""

    def __init__(self, types, timeout, error):
        self.types = dict(types)
        self.timeout = float(timeout)
        self.error = error
        self._proxies = {}

    def __call__(self, name, *args):
        try:
            return self._proxy(name)(*args)
        except rospy.ServiceException as e:
            self._proxies.pop(name, None)
            raise self.error('%s failed: %s' % (name, e)) from None

    def _proxy(self, name):
        if name not in self._proxies:
            try:
                rospy.wait_for_service(name, timeout=self.timeout)
            except rospy.ROSException:
                raise self.error('service %s not available within %.1f s' % (name, self.timeout)) from None
            self._proxies[name] = rospy.ServiceProxy(name, self.types[name])
        return self._proxies[name]


def advertised(service):
    """Whether the master knows `service` (a node still starting has not advertised it yet). False too when the
    master does not answer within `master.timeout` (config/run.yaml): a frozen master must not hold the
    caller's loop, which checks rospy.is_shutdown() between calls (doc/bounds.md, *Waits*)."""
    try:
        code, _, _ = master_proxy().lookupService(rospy.get_name(), service)
    except (OSError, xmlrpc.client.Error):  # unreachable or silent (socket.timeout is an OSError)
        return False
    return code == 1


def unadvertised(services):
    """Those of `services` the master does not know (advertised()); once ROS shuts down the rest is not asked
    about and counts as missing, so a caller's loop sees the shutdown after one bounded call at most."""
    return [service for service in services if rospy.is_shutdown() or not advertised(service)]
