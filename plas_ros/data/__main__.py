"""`python -m plas_ros.data {info,validate,merge,export}`: see plas_ros/data/cli.py."""
import sys

from plas_ros.data.cli import main

if __name__ == '__main__':
    sys.exit(main())
