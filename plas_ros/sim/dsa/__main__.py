"""python -m plas_ros.sim.dsa: the simulated DSACON32 controller on a pseudo-terminal (plas_ros.sim.dsa.cli)."""
import sys

from plas_ros.sim.dsa.cli import main

if __name__ == '__main__':
    sys.exit(main())
