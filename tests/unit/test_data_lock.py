"""One writer per file: a ReplayWriter locks its output for its lifetime, in real processes.

The hole this closes: two recorders on one file each rewrote the whole file from their own memory at every
commit, so the last writer won and the other's episodes were lost without a word. Now the second writer is
refused at start with the holder's pid, host and program; the lock survives the first writer's commits
(the output is replaced by rename, the lock file is not); a SIGKILLed holder releases it; and a file a
finished writer left is appended to as before.
"""
import json
import os
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

from plas_ros.data import durable
from plas_ros.data.loader import read_file
from plas_ros.data.schema import episode_arrays
from plas_ros.data.writer import OutputError, ReplayWriter
from plas_ros.env.layout import DATASET_FORMAT as CLOTH
from tests.helpers.common import wait_for
from tests.helpers.data import make_steps
from tests.helpers.tree import REPO_ROOT
from tests.helpers.writer_child import STEPS, WriterChild

SECOND_WRITERS = 20


def held_by(child, holder):
    return r'already being written by pid %d on host %s \(%s, since ' % (child.proc.pid, socket.gethostname(),
                                                                        holder)


def check_episodes(path, episodes):
    arrays, _ = read_file(path)
    np.testing.assert_array_equal(np.bincount(arrays['infos/episode_ids']), [STEPS] * episodes)
    for index in range(episodes):
        rows = arrays['infos/episode_ids'] == index
        np.testing.assert_allclose(arrays['observations'][rows], [s.observation for s in make_steps(index, STEPS)],
                                   rtol=1e-6)


def test_a_second_writer_in_another_process_is_refused_naming_the_holder_and_loses_nothing(tmp_path):
    path = tmp_path / 'one.h5'
    first = WriterChild(path, '--holder', 'recorder node /first')
    try:
        assert first.first_line == 'ready 0'
        first.send('episode')
        second = WriterChild(path, '--holder', 'recorder node /second')
        assert second.first_line is None and second.wait() == 1
        assert 'recorder node /first' in second.stderr and str(path) in second.stderr
        assert 'error: %s: already being written by pid %d' % (path, first.proc.pid) in second.stderr
        for _ in range(3):  # the lock outlives commits that replace the output by rename
            first.send('episode')
            with pytest.raises(OutputError, match=held_by(first, 'recorder node /first')):
                ReplayWriter(path, CLOTH, policy='child')
        assert first.send('close') == {'lost': '0', 'fallback': ''} and first.wait() == 0
    finally:
        first.kill()
    check_episodes(path, 4)  # every episode of the one writer; the refused one wrote nothing
    assert sorted(os.listdir(tmp_path)) == ['one.h5'], 'the lock file goes with a clean close'


def test_second_writers_refused_n_of_n_while_the_first_keeps_committing(tmp_path):
    """The attack's scenario (a second recorder on a busy file), SECOND_WRITERS times: every one refused."""
    path = tmp_path / 'busy.h5'
    first = WriterChild(path, '--holder', 'first')
    refused = 0
    try:
        for attempt in range(SECOND_WRITERS):
            first.send('episode')
            try:
                ReplayWriter(path, CLOTH, policy='child', append=attempt % 2 == 0)
            except OutputError as exc:
                refused += 'already being written by pid %d' % first.proc.pid in str(exc)
        first.send('close')
        assert first.wait() == 0
    finally:
        first.kill()
    assert refused == SECOND_WRITERS
    check_episodes(path, SECOND_WRITERS)


def test_sigkill_releases_the_lock_and_a_stale_lock_file_does_not_block(tmp_path):
    path = tmp_path / 'killed.h5'
    first = WriterChild(path, '--holder', 'doomed')
    first.send('episode')
    first.proc.send_signal(signal.SIGKILL)
    assert first.wait() == -signal.SIGKILL
    stale = json.loads(open(durable.lock_path(path)).read())
    assert stale['pid'] == first.proc.pid and stale['program'] == 'doomed'  # left behind, names a dead process
    with ReplayWriter(path, CLOTH, policy='child', holder='heir') as heir:
        assert heir.episodes == 1
        assert json.loads(open(durable.lock_path(path)).read())['program'] == 'heir'
    check_episodes(path, 1)


def test_appending_to_a_file_of_a_finished_writer_works_in_process_and_across_processes(tmp_path):
    path = tmp_path / 'again.h5'
    with ReplayWriter(path, CLOTH, policy='child') as writer:
        writer.write_episode(episode_arrays(make_steps(0, STEPS)))
    with pytest.raises(OutputError, match='already being written by pid %d' % os.getpid()):
        with ReplayWriter(path, CLOTH, policy='child'):  # a second writer in the same process is refused too
            ReplayWriter(path, CLOTH, policy='child')
    later = WriterChild(path)
    try:
        assert later.first_line == 'ready 1'
        later.send('episode')
        later.send('close')
        assert later.wait() == 0
    finally:
        later.kill()
    check_episodes(path, 2)


def test_a_refused_or_failed_start_leaves_the_file_free(tmp_path):
    path = tmp_path / 'a.h5'
    with ReplayWriter(path, CLOTH, policy='child') as writer:
        writer.write_episode(episode_arrays(make_steps(0, STEPS)))
    with pytest.raises(OutputError, match=r'a\.h5\[source\]'):
        ReplayWriter(path, CLOTH, source='real')  # incompatible: refused after the lock was taken ...
    ReplayWriter(path, CLOTH, policy='child').close()  # ... and given back


LOCK_LOOP = '''
import os, sys, time
from plas_ros.data.durable import OutputLock, OutputError
target, marker, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
held = 0
for _ in range(rounds):
    try:
        lock = OutputLock(target, 'loop')
    except OutputError:
        continue
    fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # FileExistsError: two holders at once
    os.close(fd)
    time.sleep(0.0002)  # inside: long enough for the others to open, wait and pounce
    os.remove(marker)
    lock.release()
    held += 1
print(held)
'''


def test_writers_racing_for_one_file_never_hold_it_together(tmp_path):
    """Holders remove the lock file on release; the inode check keeps that from letting two writers in."""
    target, marker = tmp_path / 'race.h5', tmp_path / 'inside'
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO_ROOT, os.environ.get('PYTHONPATH', '')]))
    racers = [subprocess.Popen([sys.executable, '-c', LOCK_LOOP, str(target), str(marker), '600'], cwd=REPO_ROOT,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(4)]
    results = [racer.communicate(timeout=120) for racer in racers]
    assert all(racer.returncode == 0 for racer in racers), [err for _, err in results]
    assert sum(int(out) for out, _ in results) > 0
    assert not os.path.exists(durable.lock_path(target))


def test_the_collector_is_refused_by_a_writer_holding_its_output(tmp_path):
    path = tmp_path / 'collect.h5'
    with ReplayWriter(path, CLOTH, policy='expert', holder='recorder node /recorder') as holder:
        holder.commit()  # as the recorder node does: its (empty) file exists from the start
        result = subprocess.run([sys.executable, '-m', 'plas_ros.collect', '--policy', 'random', '--episodes', '1',
                                 '--output', str(path), '--no-progress'], cwd=REPO_ROOT, capture_output=True,
                                text=True, timeout=120)
    assert result.returncode == 1, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith('error: %s: already being written by pid %d' % (path, os.getpid())), lines
    assert 'recorder node /recorder' in lines[-1] and 'Traceback' not in result.stderr
    assert read_file(path)[0]['rewards'].size == 0  # the holder's (empty) file, untouched


def test_two_collectors_on_one_file_one_is_refused_naming_the_other(tmp_path):
    path = tmp_path / 'two.h5'
    cmd = [sys.executable, '-m', 'plas_ros.collect', '--policy', 'random', '--output', str(path), '--no-progress']
    first = subprocess.Popen(cmd + ['--transitions', '1000000'], cwd=REPO_ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: os.path.exists(path) or first.poll() is not None, 120,
                 what='the first collector to start writing')
        second = subprocess.run(cmd + ['--episodes', '1'], cwd=REPO_ROOT, capture_output=True, text=True,
                                timeout=120)
        first.send_signal(signal.SIGTERM)  # ends a collection cleanly, keeping every completed episode
        _, err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 130, err[-2000:]
    assert second.returncode == 1, second.stderr[-2000:]
    assert 'already being written by pid %d' % first.pid in second.stderr
    assert 'python -m plas_ros.collect' in second.stderr
    arrays, attrs = read_file(path)  # the first's file, its episodes whole; nothing of the second
    assert attrs['policy'] == 'random'
