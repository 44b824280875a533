"""Atomic file writes: a temporary file in the target's directory, then ``os.replace``
(atomic on POSIX and Windows), so an interrupted write leaves the old file or the new
one, never half of one."""
import os
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
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
