"""Results on disk, written as each case finishes, atomically, so a run can resume.

Every write goes to a temporary file in the same directory and is moved over
the target with ``os.replace`` (atomic on POSIX and Windows): an interrupted run
leaves either the previous or the new file, never half of one.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from fastmlp import _atomic


def write_atomic(path, text):
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic.write(path, lambda file: file.write(text), "w")


def _clean(value):
    """JSON has no NaN: store it as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(data):
    if isinstance(data, dict):
        return {k: dumps(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [dumps(v) for v in data]
    return _clean(data)


class ResultStore:
    """Rows of one report directory: ``results.json`` and ``results.csv``, plus sections.

    A row is identified by ``(key, backend, mode)``; ``done`` tells a resumed run
    which rows it can skip. Sections (convergence, machine...) are JSON files of
    their own, each also written atomically. ``fresh``: resume nothing, neither rows
    nor the sections an earlier run wrote.
    """

    def __init__(self, directory, mode, fresh=False):
        self.dir, self.mode, self.fresh = Path(directory), mode, fresh
        self.rows = [] if fresh else self._load_rows()
        self.rows = [r for r in self.rows if r.get("mode") == mode]
        self._saved = set()  # sections written by this run

    def _load_rows(self):
        try:
            rows = json.loads((self.dir / "results.json").read_text())
        except (OSError, ValueError):
            return []  # nothing to resume (or an unreadable file): start over
        return rows if isinstance(rows, list) else []

    def done(self, key, backend):
        return any(r["key"] == key and r["backend"] == backend for r in self.rows)

    def add(self, row):
        row = dict(row, mode=self.mode)
        self.rows = [r for r in self.rows
                     if (r["key"], r["backend"]) != (row["key"], row["backend"])] + [row]
        self._flush()

    def _flush(self):
        import pandas as pd

        write_atomic(self.dir / "results.json", json.dumps(dumps(self.rows), indent=1))
        write_atomic(self.dir / "results.csv", pd.DataFrame(self.rows).to_csv(index=False))

    def section(self, name):
        if self.fresh and name not in self._saved:
            return None  # an earlier run's
        try:
            return json.loads((self.dir / f"{name}.json").read_text())
        except (OSError, ValueError):
            return None

    def save_section(self, name, data):
        self._saved.add(name)
        write_atomic(self.dir / f"{name}.json", json.dumps(dumps(data)))


class Rows:
    """An in-memory stand-in for ``ResultStore`` (``fastmlp targets`` keeps nothing)."""

    def __init__(self):
        self.rows = []

    def done(self, key, backend):
        return False

    def add(self, row):
        self.rows.append(row)

    def best(self):
        """One row per case and backend: the smallest min and median over the passes."""
        best = {}
        for r in self.rows:
            key = (r["key"], r["backend"])
            if key not in best or best[key]["status"] != "ok":
                best[key] = dict(r)
            elif r["status"] == "ok":
                for f in ("min_s", "median_s"):
                    best[key][f] = min(best[key][f], r[f])
        return list(best.values())
