"""A small real filesystem that a test can fill: a tmpfs of a few hundred KB mounted on a test's own folder
(we are root where the tests run), and a filler file that takes every free byte and gives them back."""
import contextlib
import errno
import os
import subprocess

import pytest

SIZE = '256k'


@contextlib.contextmanager
def small_filesystem(folder, size=SIZE):
    """Mount a tmpfs of `size` on `folder` (created; unique per test) for the block; skips where mounting is
    not permitted (the simulated-ENOSPC tests in tests/unit/test_data_disk_full.py run there instead)."""
    os.makedirs(folder, exist_ok=True)
    result = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=%s' % size, 'tmpfs', str(folder)],
                            capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        pytest.skip('mounting a tmpfs is not permitted here (%s); the simulated ENOSPC at os.write covers the '
                    'write call instead' % (result.stderr.strip() or 'mount exit %d' % result.returncode))
    try:
        yield str(folder)
    finally:
        if subprocess.run(['umount', str(folder)], capture_output=True, timeout=30).returncode != 0:
            subprocess.run(['umount', '-l', str(folder)], capture_output=True, timeout=30)  # a child still in it


class Filler:
    """A file that fills its filesystem (`fill`) and frees it again (`free`)."""

    def __init__(self, folder):
        self.path = os.path.join(str(folder), 'filler')

    def fill(self):
        """Write until the disk is full (ENOSPC); returns the filler's size."""
        chunk = b'\xff' * 4096
        with open(self.path, 'ab', buffering=0) as f:
            while True:
                try:
                    if f.write(chunk) < len(chunk):
                        continue
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
        return os.path.getsize(self.path)

    def free(self):
        if os.path.exists(self.path):
            os.remove(self.path)
