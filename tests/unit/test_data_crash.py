"""Atomicity: a writer killed with SIGKILL at random moments always leaves a file that opens, validates
and holds every episode whose commit had returned, with exactly the values that were written."""
import os
import random
import signal
import subprocess
import sys
import threading
import time

import numpy as np

from plas_ros.data.loader import load_datasets, read_file
from plas_ros.data.writer import ReplayWriter
from plas_ros.env.layout import DATASET_FORMAT as CLOTH
from tests.helpers.crash_child import ENDS, episode_length
from tests.helpers.data import make_steps
from tests.helpers.tree import REPO_ROOT

KILLS = 20


def run_and_kill(path, delay):
    """Start the child, SIGKILL it `delay` s after it is ready; return the last committed index (or -1)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO_ROOT, os.environ.get('PYTHONPATH', '')]))
    child = subprocess.Popen([sys.executable, '-m', 'tests.helpers.crash_child', str(path)], cwd=REPO_ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(child.stdout), daemon=True)
    reader.start()
    deadline = time.monotonic() + 30
    while not lines and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.005)
    assert lines and lines[0].startswith('ready'), 'child did not start: %s' % child.stderr.read()
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    reader.join(10)
    committed = [int(line.split()[1]) for line in lines if line.startswith('committed')]
    return max(committed) if committed else -1


def check_contents(arrays, episodes):
    ids = arrays['infos/episode_ids']
    assert np.array_equal(np.unique(ids), np.arange(episodes)), 'episode ids not 0..%d' % (episodes - 1)
    for index in range(episodes):
        rows = ids == index
        steps = make_steps(index, episode_length(index), ENDS[index % 3])
        np.testing.assert_allclose(arrays['observations'][rows], [s.observation for s in steps], rtol=1e-6)
        assert arrays['infos/errors'][rows].all() == (ENDS[index % 3] == 'error')


def test_sigkill_at_random_moments_never_loses_a_committed_episode(tmp_path):
    path = tmp_path / 'crash.h5'
    rng = random.Random(1234)
    must_hold = 0
    for _ in range(KILLS):
        last = run_and_kill(path, rng.uniform(0.0, 0.6))
        must_hold = max(must_hold, last + 1)
        if not path.exists():
            assert must_hold == 0, 'file missing after %d committed episodes' % must_hold
            continue
        arrays, attrs = read_file(path)  # opens and validates (raises otherwise)
        episodes = int(arrays['infos/episode_ids'].max()) + 1 if len(arrays['rewards']) else 0
        assert episodes >= must_hold, 'lost episodes: file holds %d, %d were committed' % (episodes, must_hold)
        must_hold = episodes  # a commit that finished before the kill but was not yet printed is durable too
        check_contents(arrays, episodes)
        assert attrs['policy'] == 'crash-test'
    assert must_hold > KILLS, 'the kills came too early to test anything (%d episodes)' % must_hold
    load_datasets([path])
    ReplayWriter(path, CLOTH, policy='crash-test')  # cleans the temporaries of killed commits
    assert [name for name in os.listdir(tmp_path) if name != 'crash.h5'] == []
