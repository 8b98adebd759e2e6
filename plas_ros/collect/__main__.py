import sys

from plas_ros.collect.collector import main

sys.exit(main())
