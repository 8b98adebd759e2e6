"""run.json: what made a training run (code, command, configuration, data, seeds, device) and how it went.

Written beside the checkpoint (a multi-seed run: its top --out folder) atomically at the start (status
`running`), at every save of the training state and at the end (`finished`, or `failed` with the error). The
fields are listed in doc/training.md, "The run record".
"""
import datetime
import hashlib
import json
import math
import os
import platform
import subprocess
from typing import Dict, List, Optional, Sequence

import plas_ros
from plas_ros.algos.checkpoint import atomic_write
from plas_ros.config import lookup

RUN_FILE = 'run.json'
FORMAT = 'plas_ros-run'
VERSION = 1
_CHUNK = 1 << 20


def file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(_CHUNK), b''):
            digest.update(chunk)
    return digest.hexdigest()


def dataset_records(paths: Sequence[str]) -> List[Dict]:
    """[{path, size, sha256}] of each dataset file (absolute paths)."""
    return [{'path': os.path.abspath(p), 'size': os.path.getsize(p), 'sha256': file_sha256(p)} for p in paths]


def git_state(folder: Optional[str] = None) -> Dict:
    """{commit, dirty} of the git checkout holding the package; both None (with a note) outside one, or
    where git is missing or slow. `dirty`: tracked files changed or files git does not ignore added."""
    folder = folder or os.path.dirname(os.path.dirname(os.path.abspath(plas_ros.__file__)))
    try:
        commit = _git(folder, 'rev-parse', 'HEAD')
        dirty = bool(_git(folder, 'status', '--porcelain'))
    except (OSError, subprocess.SubprocessError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        return {'commit': None, 'dirty': None, 'note': 'no git checkout: %s' % reason}
    return {'commit': commit, 'dirty': dirty}


def _git(folder, *args) -> str:
    timeout = float(lookup('train.yaml', 'run.git_timeout_s'))
    done = subprocess.run(['git', '-C', folder] + list(args), capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise subprocess.SubprocessError(done.stderr.strip() or "git %s failed" % args[0])
    return done.stdout.strip()


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')


def _plain(value):
    """JSON-safe: NaN/inf become None (strict JSON has neither), numpy numbers Python ones."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, 'item') and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class RunRecord:
    """DIR/run.json of one run; `fields` are written as given (plain JSON types)."""

    def __init__(self, directory: str, **fields):
        self.path = os.path.join(str(directory), RUN_FILE)
        self.data = {'format': FORMAT, 'version': VERSION, 'status': 'running', 'started': _now(), 'updated': None,
                     'package': {'name': 'plas_ros', 'version': plas_ros.__version__, 'git': git_state(),
                                 'python': platform.python_version()}}
        self.data.update(fields)

    def load_previous(self):
        """Keep the start time and earlier resumes of the run this one resumes (a damaged file: start afresh)."""
        try:
            with open(self.path) as f:
                previous = json.load(f)
        except (OSError, ValueError):
            return
        self.data['started'] = previous.get('started', self.data['started'])
        earlier = previous.get('resumes', [])
        self.data['resumes'] = (earlier if isinstance(earlier, list) else []) + self.data.get('resumes', [])

    def update(self, **fields):
        self.data.update(fields)
        self.write()

    def write(self):
        self.data['updated'] = _now()
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        atomic_write(self.path, lambda f: json.dump(_plain(self.data), f, indent=1))
        return self.path
