"""Atomic file writes: a temporary file in the target's folder, fsync, then os.replace.

A crash at any moment leaves either the old file or the new one under the target name, never a
half-written file. The temporary file is a hidden sibling named after the target and its
writer, ``.{target}.l3ae-{host}-{pid}-{random}{suffix}.tmp``: an exception removes it; a
writer killed outright (SIGKILL, OOM killer, power loss) cannot, so the next write to the same
target removes the temporary files of writers on this host that are no longer running.
"""

import contextlib
import os
import re
import socket
import tempfile
from pathlib import Path

_TAG = "l3ae"


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _host():
    return re.sub(r"[^A-Za-z0-9]+", "_", socket.gethostname()) or "host"


def _temp_pattern(name):
    """Temporary siblings of a target named ``name``: groups host and pid."""
    return re.compile(rf"\.{re.escape(name)}\.{_TAG}-(?P<host>\w+)-(?P<pid>\d+)-\w{{8}}.*\.tmp")


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def stale_temporaries(target):
    """Temporary siblings of ``target`` left by writers of this host that are not running."""
    target = Path(target)
    folder = target.parent if str(target.parent) else Path(".")
    pattern, host = _temp_pattern(target.name), _host()
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    stale = []
    for name in names:
        m = pattern.fullmatch(name)
        # another host's writer may be alive: its pid means nothing here
        if m and m["host"] == host and not _running(int(m["pid"])):
            stale.append(folder / name)
    return stale


@contextlib.contextmanager
def atomic_path(target, suffix=""):
    """Yield a temporary path next to ``target``; on success fsync it and rename it over target.

    On an exception the temporary file is removed and ``target`` is untouched. Temporary files
    of killed earlier writers of ``target`` are removed first.
    """
    target = Path(target)
    folder = target.parent if str(target.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    for old in stale_temporaries(target):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(old)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{_TAG}-{_host()}-{os.getpid()}-",
                               suffix=suffix + ".tmp", dir=folder)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a result file should follow umask
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        with contextlib.suppress(OSError):
            dfd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_open(target, mode="w", encoding="utf-8", newline=None):
    """Open a temporary text (or binary, ``mode="wb"``) file that replaces ``target`` on success."""
    with atomic_path(target) as tmp:
        kwargs = {} if "b" in mode else {"encoding": encoding, "newline": newline}
        with open(tmp, mode, **kwargs) as fh:
            yield fh
