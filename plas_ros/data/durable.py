"""Files that cannot be lost: one writer per output file, and atomic writes that a full disk cannot crash.

* `OutputLock` is the exclusive right to write one output file. It is an `flock` on a sidecar file,
  `.<name>.lock` in the output's folder, not on the output itself: a commit replaces the output by rename,
  and a lock on the inode it replaced would protect nothing. The kernel drops an flock when its holder's
  last descriptor closes, so a holder that dies (SIGKILL included) releases it; a lock file left behind by
  a dead holder is only a name, and the next writer takes it over. The lock file holds the holder's pid,
  host, program and start time, which a refused writer reports. A holder removes the lock file when it
  releases the lock; a writer that locked a lock file removed in between (it checks the inode it locked
  against the path) starts over on the new file, so two writers never both hold "the" lock.
* `write_bytes_atomically` writes a complete file image (built in memory) with plain `os.write` calls to a
  temporary file next to the target, fsyncs it and renames it over the target. A full disk or an I/O error
  is an `OSError` from one of those calls: the temporary is removed and the target is untouched. No
  library that keeps its own state about the file (HDF5) ever sees the failure.
"""
import errno
import fcntl
import glob
import json
import os
import shutil
import socket
import sys
import time

TMP_PREFIX = '.%s.tmp-'
LOCK_NAME = '.%s.lock'
LOCK_ATTEMPTS = 10  # a lock file removed by its holder between our open and our lock: retry on the new one


class OutputError(RuntimeError):
    """The output path cannot take the dataset (unwritable, disk full, incompatible file, another writer)."""


def lock_path(path):
    folder, name = os.path.split(os.path.abspath(str(path)))
    return os.path.join(folder, LOCK_NAME % name)


def default_holder():
    """What a lock names when its caller does not say: the program (sys.argv[0]) of this process."""
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else 'python'


class OutputLock:
    """The exclusive right to write `path` for this object's lifetime (see the module docstring).

    Raises OutputError naming the holder (pid, host, program) when another writer, in this process or
    another, holds it. `release()` (or the process ending) gives it up.
    """

    def __init__(self, path, holder=''):
        self.target = os.path.abspath(str(path))
        self.path = lock_path(self.target)
        self._fd = self._lock()
        self._write_holder(holder or default_holder())

    def _lock(self):
        for _ in range(LOCK_ATTEMPTS):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise OutputError('%s: cannot create the lock file %s (%s)' % (self.target, self.path, exc)) from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise OutputError('%s: already being written by %s; one writer per file: stop that writer or '
                                  'choose another output (lock file %s)' % (self.target, holder, self.path)) from None
            except OSError as exc:
                os.close(fd)
                raise OutputError('%s: cannot lock %s (%s)' % (self.target, self.path, exc)) from exc
            if _names_same_file(fd, self.path):
                return fd
            os.close(fd)  # its holder removed it while we waited for the lock: lock the one there now
        raise OutputError('%s: the lock file %s kept changing under %d attempts to lock it'
                          % (self.target, self.path, LOCK_ATTEMPTS))

    def _write_holder(self, holder):
        record = {'pid': os.getpid(), 'host': socket.gethostname(), 'program': str(holder),
                  'since': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, json.dumps(record).encode(), 0)
        except OSError:  # a full disk: the lock holds all the same, a refused writer just learns less
            pass

    @property
    def held(self):
        return self._fd is not None

    def release(self):
        if self._fd is None:
            return
        try:
            os.unlink(self.path)  # while still locked: a writer blocked on this inode then starts over
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None

    def __del__(self):  # a writer dropped without release gives up its file, as a dropped file object closes
        if getattr(self, '_fd', None) is not None:
            try:
                self.release()
            except Exception:  # at interpreter exit `os` may be gone; the kernel releases the lock anyway
                pass


def _names_same_file(fd, path):
    try:
        on_path = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (on_path.st_dev, on_path.st_ino)


def _read_holder(fd):
    try:
        record = json.loads(os.pread(fd, 4096, 0).decode())
        return 'pid %d on host %s (%s, since %s)' % (record['pid'], record['host'], record['program'],
                                                    record['since'])
    except (OSError, ValueError, KeyError, TypeError):
        return 'another process (its lock file does not name it yet)'


def remove_stale_temporaries(path):
    """Remove temporary files of earlier commits that were killed (their process is gone)."""
    folder, name = os.path.split(os.path.abspath(str(path)))
    for tmp in glob.glob(os.path.join(folder, TMP_PREFIX % name + '*')):
        pid = tmp.rsplit('-', 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not _process_alive(int(pid)):
            _remove_quietly(tmp)


def _process_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _fsync_path(path, directory=False):
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def free_bytes(path):
    return shutil.disk_usage(os.path.dirname(os.path.abspath(str(path)))).free


def write_bytes_atomically(path, data, fsync=True):
    """Replace `path` by a file holding `data` (bytes-like), atomically: readers see the old or the new file.

    Raises OSError (the target untouched, no temporary left) when the disk is full or an I/O call fails.
    """
    path = os.path.abspath(str(path))
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, TMP_PREFIX % name + str(os.getpid()))
    try:
        _write_file(tmp, data, fsync)
        os.replace(tmp, path)
        if fsync:
            _fsync_path(folder, directory=True)
    except BaseException:
        _remove_quietly(tmp)
        raise


def _write_file(path, data, fsync):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        view = memoryview(data).cast('B')
        while view:  # os.write may write less than it was given
            view = view[os.write(fd, view):]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def describe_write_error(exc, size, path):
    """One line for a failed write of `size` bytes next to `path`: a full disk says how full."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return 'disk full (%s): %.3f MB to write, %.3f MB free' % (errno.errorcode[exc.errno], size / 1e6,
                                                                   free_bytes(path) / 1e6)
    return str(exc)
