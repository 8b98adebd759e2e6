"""Child process of the lock and disk-full tests: one ReplayWriter in its own process, driven line by line.

    python -m tests.helpers.writer_child PATH [--holder NAME] [--min-free BYTES] [--fallback DIR]

On start it prints `ready <episodes in the file>` (or, refused, `error: <message>` on stderr and exits 1).
Each stdin line is a command: `episode` adds the next deterministic episode (tests.helpers.data) and tries a
commit; `episode-filling` does the same while the disk fills up in the middle of the commit (a Filler in the
output's folder takes all free space once HDF5 has built half the file's datasets: the moment the old
writer, HDF5 writing to the disk itself, crashed in); `commit` only tries one; `close` closes the writer
(final commit, fallback) and exits 0. After each
command it prints `state committed=<episodes in the file> pending=<episodes waiting> failed=<streak>`.
Whatever the writer logs goes to stderr as `log <LEVEL> <text>`.
"""
import argparse
import logging
import os
import queue
import subprocess
import sys
import threading

import h5py

from plas_ros.data.schema import episode_arrays
from plas_ros.data.writer import OutputError, ReplayWriter
from plas_ros.env.layout import DATASET_FORMAT as CLOTH
from tests.helpers.data import make_steps
from tests.helpers.disk import Filler
from tests.helpers.tree import REPO_ROOT

STEPS = 4


def log(level, text):
    print('log %s %s' % (logging.getLevelName(level), text), file=sys.stderr, flush=True)


def fill_during_next_commit(folder, after_datasets=8):
    """The disk fills up once the next commit has created `after_datasets` datasets."""
    create_dataset = h5py.Group.create_dataset
    created = [0]

    def create_then_fill(group, *args, **kwargs):
        dataset = create_dataset(group, *args, **kwargs)
        created[0] += 1
        if created[0] == after_datasets:
            Filler(folder).fill()
            h5py.Group.create_dataset = create_dataset
        return dataset
    h5py.Group.create_dataset = create_then_fill


def state(writer):
    print('state committed=%d pending=%d failed=%d' % (writer.committed_episodes, writer.pending_episodes,
                                                       writer.failed_commits), flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument('path')
    parser.add_argument('--holder', default='writer_child')
    parser.add_argument('--min-free', type=int, default=0)
    parser.add_argument('--fallback', default='')
    args = parser.parse_args(argv)
    try:
        writer = ReplayWriter(args.path, CLOTH, policy='child', min_free_bytes=args.min_free, holder=args.holder,
                              log=log)
    except OutputError as exc:
        print('error: %s' % exc, file=sys.stderr, flush=True)
        return 1
    print('ready %d' % writer.episodes, flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == 'episode-filling':
            fill_during_next_commit(os.path.dirname(writer.path))
        if command.startswith('episode'):
            writer.add_episode(episode_arrays(make_steps(writer.episodes, STEPS, 'timeout')))
            writer.try_commit()
        elif command == 'commit':
            writer.try_commit()
        elif command == 'close':
            report = writer.close(args.fallback)
            print('closed lost=%d fallback=%s' % (report.lost_episodes, report.fallback), flush=True)
            return 0
        state(writer)
    return 0


class WriterChild:
    """The parent's side: start the child, send commands, read its answers (each wait bounded)."""

    def __init__(self, path, *options, timeout=60.0):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([REPO_ROOT, os.environ.get('PYTHONPATH', '')]))
        self.timeout = timeout
        self.proc = subprocess.Popen([sys.executable, '-m', 'tests.helpers.writer_child', str(path)] + list(options),
                                     cwd=REPO_ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self._lines = queue.Queue()
        self.stderr_lines = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, self._lines.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr_lines.append), daemon=True).start()
        self.first_line = self.next_line()

    @staticmethod
    def _pump(stream, put):
        for line in stream:
            put(line.rstrip('\n'))
        put(None)

    def next_line(self):
        try:
            line = self._lines.get(timeout=self.timeout)
        except queue.Empty:
            raise AssertionError('writer child silent for %.0f s; stderr: %s'
                                 % (self.timeout, self.stderr)) from None
        return line

    def send(self, command):
        """Send one command; returns its answer as a dict (state) or the `closed ...` line's fields."""
        self.proc.stdin.write(command + '\n')
        self.proc.stdin.flush()
        line = self.next_line()
        assert line is not None, 'writer child ended (exit %s); stderr: %s' % (self.proc.wait(10),
                                                                               self.stderr)
        return dict(field.split('=', 1) for field in line.split()[1:])

    def wait(self):
        """The exit status (a negative number: killed by that signal)."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        return self.proc.wait(self.timeout)

    @property
    def stderr(self):
        return '\n'.join(line for line in self.stderr_lines if line is not None)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(self.timeout)


if __name__ == '__main__':
    sys.exit(main())
