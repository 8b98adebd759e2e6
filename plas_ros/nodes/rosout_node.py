"""rosout in rospy: the log aggregator of a graph kept on loopback (tools/ros_etc/roscore.xml).

It does what the C++ rosout does for consumers: every message on /rosout is republished on /rosout_agg
(rosgraph_msgs/Log), which rqt_console and `rostopic echo /rosout_agg` read. Being a rospy node, its XML-RPC and
TCPROS servers bind where ROS_IP says (127.0.0.1 under env.sh), where the C++ rosout's XML-RPC server
(xmlrpcpp) binds to every interface. It does not write rosout.log: each node's own log file has its lines.
"""
import rospy
from rosgraph_msgs.msg import Log

from plas_ros.nodes.lifecycle import init_node

AGGREGATE_QUEUE = 100


def main():
    init_node('rosout', disable_rosout=True)
    aggregate = rospy.Publisher('/rosout_agg', Log, queue_size=AGGREGATE_QUEUE)
    rospy.Subscriber('/rosout', Log, aggregate.publish, queue_size=AGGREGATE_QUEUE)
    rospy.spin()


if __name__ == '__main__':
    main()
