"""Private files and folders: readable by their owner only, whatever the umask.

The state dir holds what Git holds, Secrets included (the mirror, exported trees), and the
daemon's history. Folders are 0700 and files 0600, set explicitly (``mkdir``/``open`` modes are
only upper bounds under the umask, and an existing path keeps its mode unless it is changed).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DIR_MODE", "FILE_MODE", "private_dir", "private_file", "private_tree"]

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` (and missing parents) and make it, and the parents created, 0700."""
    missing: list[Path] = []
    walk = path
    while not walk.exists() and walk != walk.parent:
        missing.append(walk)
        walk = walk.parent
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    for created in missing:
        os.chmod(created, DIR_MODE)
    os.chmod(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty if missing and make it 0600 (its content is left alone)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return path


def private_tree(top: Path) -> None:
    """Make every folder under ``top`` (itself included) 0700 and every file 0600 (0700 when
    its owner may execute it, as Git records executables).

    Symlinks are left alone (their mode means nothing, and their target may be elsewhere).
    """
    os.chmod(top, DIR_MODE)
    for root, dirs, files in os.walk(top):
        for name in dirs:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, DIR_MODE)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                executable = os.stat(path).st_mode & 0o100
                os.chmod(path, DIR_MODE if executable else FILE_MODE)
