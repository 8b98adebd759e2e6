"""What the simulators' command lines share (python -m plas_ros.sim.{world,wsg,dsa}): they may be started by
roslaunch, which adds ROS remapping arguments, and they run until SIGTERM or SIGINT."""
import signal
import threading


def parse_without_ros_remappings(parser, argv):
    """`parser.parse_args` on `argv` without the `name:=value` arguments roslaunch adds (__name:=, __log:=)."""
    return parser.parse_args([a for a in argv if ':=' not in a])


class StopSignals:
    """Catches SIGTERM and SIGINT (how roslaunch and the tests stop a simulator) from the moment it is made, so a
    signal that lands while the devices start still ends the run through their stop()."""

    def __init__(self):
        self._stopping = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._stopping.set())

    def wait(self):
        while not self._stopping.wait(0.5):  # a timed wait, so the main thread still runs signal handlers
            pass
