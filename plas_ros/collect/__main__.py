import sys

from plas_ros.collect.collector import main

if __name__ == '__main__':
    sys.exit(main())
