"""Child process of the crash test: appends deterministic episodes to a file until it is killed.

    python -m tests.helpers.crash_child PATH     # from the repository root

Prints `committed <index>` after each commit returned (flushed), so the parent knows what must survive.
"""
import sys

from plas_ros.data.writer import EpisodeWriter, ReplayWriter
from plas_ros.env.layout import DATASET_FORMAT as CLOTH
from tests.helpers.data import make_steps

ENDS = ('timeout', 'terminal', 'error')


def episode_length(index):
    return 3 + index % 11


def main(path):
    replay = ReplayWriter(path, CLOTH, source='sim', policy='crash-test')
    writer = EpisodeWriter(replay)
    print('ready %d' % replay.episodes, flush=True)
    while True:
        index = replay.episodes
        for step in make_steps(index, episode_length(index), ENDS[index % 3]):
            if writer.add(step) is not None:
                print('committed %d' % index, flush=True)


if __name__ == '__main__':
    main(sys.argv[1])
