"""`rosrun plas_ros run JOB ARG:=VALUE ...`: a launch file that behaves.

    rosrun plas_ros run collect episodes:=3 output:=x.h5
    rosrun plas_ros run train_offline dataset:=x.h5 out:=run
    rosrun plas_ros run deploy checkpoint:=run episodes:=5

It checks the arguments against the ones the launch file declares (an unknown one is refused, with the closest
name, before anything starts), makes path arguments absolute against the folder it runs in, then runs the
launch file through roslaunch's own API (a roscore is started when none runs, as roslaunch does) and exits with
the job's status: 0 when the job finished, its exit status when it failed (plas_ros.launcher.JobWatch).
Once the job has finished the other nodes are stopped with SIGINT, as Ctrl-C does, so a good run ends without
roslaunch's "REQUIRED process has died" banner. Usage errors exit 2, a stopped run 130. README: *Running a job*.
"""
import os
import shlex
import sys
import time

from plas_ros.launcher import INTERRUPTED, JobWatch, LaunchArgError, launch_names, prepare

USAGE = 'usage: rosrun plas_ros run <%s> [ARG:=VALUE ...]'


def _roslaunch_parent(launch, args, watch):
    """A ROSLaunchParent for one launch file whose required nodes end the run through `watch` (not through
    roslaunch, which would print an error banner even for a job that finished)."""
    import roslaunch.parent
    import roslaunch.pmon
    from rosgraph.names import ns_join

    class Listener(roslaunch.pmon.ProcessListener):
        def process_died(self, process_name, exit_code):
            watch.died(process_name, exit_code)

    class JobParent(roslaunch.parent.ROSLaunchParent):
        def _load_config(self):
            super()._load_config()
            for node in self.config.nodes:
                full = ns_join(node.namespace, node.name).lstrip('/')
                if node.required:
                    watch.jobs.add(full)
                    node.required = False
                if node.respawn:
                    watch.respawned.add(full)

        def _start_pm(self):
            super()._start_pm()
            self.pm.add_process_listener(Listener())  # before any process starts: a quick failure is seen too

    from roslaunch import rlutil
    run_id = rlutil.get_or_generate_uuid(None, False)
    roslaunch.configure_logging(run_id)
    return JobParent(run_id, [(launch, args)], is_core=False)


def stop_in_order(pm, pause=0.3, settle=2.0):
    """Stop the launch's nodes one by one, the last started first (the env before the drivers it calls, the drivers
    before the sim world they talk to), with SIGINT as Ctrl-C does. roslaunch's own shutdown stops them all at
    once, so a node may log errors about a driver that went away first. They leave the process monitor's watch
    before any is stopped, so that it reports no death."""
    from roslaunch.core import printlog
    deadline = time.monotonic() + settle
    while time.monotonic() < deadline and _dead_nodes(pm):
        time.sleep(0.05)  # the monitor handles the job's death first (else it would see an empty launch and end)
    with pm.plock:
        nodes = [p for p in pm.procs if p not in pm.core_procs]
        for process in nodes:
            pm.unregister(process)
    time.sleep(pause)  # the monitor's current round (every 0.1 s) still holds the old list
    for process in reversed(nodes):
        printlog('[%s] stopping' % process.name)
        process.stop([])


def _dead_nodes(pm):
    with pm.plock:
        return [p for p in pm.procs if p not in pm.core_procs and not p.is_alive()]


def run(job, argv, cwd):
    """Launch `job` with `argv` (ARG:=VALUE strings); returns the exit status."""
    launch, args = prepare(job, argv, cwd)
    where = os.path.basename(launch)
    print('run: roslaunch plas_ros %s %s' % (where, ' '.join(shlex.quote(a) for a in args)), flush=True)
    os.environ['PWD'] = cwd  # the launch files pass it to the nodes as PLAS_ROS_CWD (their folder is ROS_HOME)
    watch = JobWatch(())
    parent = _roslaunch_parent(launch, args, watch)
    try:
        parent.start()
        while not watch.done and parent.runner.spin_once():
            time.sleep(0.1)
        if watch.done:
            stop_in_order(parent.pm)
    finally:
        parent.shutdown()
    print('run: %s' % watch.summary(where), flush=True)
    return watch.status if watch.done else INTERRUPTED


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ('-h', '--help'):
        print(USAGE % '|'.join(launch_names()))
        print(__doc__.split('\n\n', 2)[2].strip())
        return 0 if argv else 2
    from roslaunch.core import RLException
    from rospkg import ResourceNotFound
    try:
        return run(argv[0], argv[1:], os.getcwd())
    except (LaunchArgError, RLException, ResourceNotFound) as exc:  # before any node started: one line
        print('run: error: %s' % exc, file=sys.stderr)
        return 2


if __name__ == '__main__':
    sys.exit(main())
