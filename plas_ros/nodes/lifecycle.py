"""Starting a node so that SIGTERM and SIGINT always end it, even when its master no longer answers; and the
master calls of our own, bounded.

rospy talks to the master without a timeout where a node would not expect it (doc/bounds.md, *Waits*):

- **Every log line** (rospy.loginfo etc.): the /rosout handler reads the parameter
  `/rosout_disable_topics_generation` through rospy's parameter cache, which cannot hold an unset parameter, so
  while nobody has set it each line is a `subscribeParam` call to the master. A node that logs from its main
  loop (the DSA driver logs every reopening of its port) blocks there for good once the master stops
  answering, and after SIGTERM its signal handler returns into that same wait. `init_node` sets the parameter
  to its default, False, when it is unset: the cache then holds it and a log line stays in the process.
- **Stopping**: rospy stops a node inside its signal handler, whose shutdown hooks unregister every topic and
  service with the master over the connection rospy keeps open to it (HTTP keep-alive). That socket was made
  with the process's default timeout: None, wait forever (60 s once rospy has connected a subscriber). So a
  master that is frozen, or on a host that vanished, holds a stopping node in the signal handler, where no loop
  of ours can see the shutdown. `init_node` registers, before every other shutdown hook, one that sets the
  default socket timeout to `master.timeout` and closes the kept connection, so that the unregistering
  connects afresh, bounded, and the node ends within that bound plus its own clean-up.

A master that is gone from a live host refuses connections at once; none of this waits then.
"""
import functools
import socket
import xmlrpc.client

import rosgraph
import rospy
import rospy.core

from plas_ros.config import lookup

ROSOUT_TOPICS_PARAM = '/rosout_disable_topics_generation'


@functools.lru_cache(maxsize=None)
def master_timeout():
    """Seconds one master call may take (config/run.yaml master.timeout; read once, the file is not reread
    at every call of a polling loop)."""
    return float(lookup('run.yaml', 'master.timeout'))


def init_node(name, **kwargs):
    """rospy.init_node(name, **kwargs), log lines that never call the master, and a bounded unregistering when
    the node stops (the module's docstring)."""
    rospy.init_node(name, **kwargs)
    if not rospy.has_param(ROSOUT_TOPICS_PARAM):
        rospy.set_param(ROSOUT_TOPICS_PARAM, False)  # rospy's and roscpp's default: /rosout lists the topics
    rospy.get_param_cached(ROSOUT_TOPICS_PARAM, False)  # in the cache now, before the first log line needs it
    timeout = master_timeout()
    rospy.on_shutdown(lambda: bound_master_calls(timeout))


def bound_master_calls(timeout):
    """Every socket opened from now on gives up after `timeout` seconds without progress (a node that stops
    has no connection left that may wait longer), and rospy's kept connection to the master, made without a
    timeout, is closed so that its next call opens a bounded one."""
    socket.setdefaulttimeout(timeout)
    rospy.core.xmlrpcapi(rosgraph.get_master_uri())('close')()


class _BoundedTransport(xmlrpc.client.Transport):
    def __init__(self, timeout):
        super().__init__()
        self._timeout = timeout

    def make_connection(self, host):
        connection = super().make_connection(host)
        connection.timeout = self._timeout   # used when it connects, for the connect and every read
        return connection


def master_proxy(timeout=None):
    """An XML-RPC proxy of the master whose calls give up after `timeout` s (default `master.timeout`) with
    socket.timeout, where rosgraph.Master's would wait forever."""
    return xmlrpc.client.ServerProxy(rosgraph.get_master_uri(),
                                     transport=_BoundedTransport(master_timeout() if timeout is None else timeout))
