"""Atomic file writes: a temporary file in the target's directory, then ``os.replace``
(atomic on POSIX and Windows), so an interrupted write leaves the old file or the new
one, never half of one."""
import os
import stat
import tempfile


def write(path, writer, mode="wb"):
    """Call ``writer(file)`` on a temporary file opened with ``mode``, then move it to
    ``path``; the temporary file is removed if ``writer`` raises."""
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, mode) as file:
            writer(file)
        os.chmod(temporary, _mode_for(path))
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _mode_for(path):
    """The permissions ``open(path, "w")`` would give: the old file's, or 0o666 less the
    umask (mkstemp makes its file 0o600, readable by its owner only)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
