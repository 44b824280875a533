"""The other side of ``fastmlp bench --against REF``: REF built beside the working tree,
and the fresh timing processes of both sides, alternated.

REF is checked out with ``git worktree add`` into a temporary folder under
``<dir>/worktrees/``, its extension built in place with this Python
(``setup.py build_ext --inplace``), a marker written, and only then renamed to
``<dir>/worktrees/<sha>`` (``git worktree move``): an interrupted build leaves
nothing behind, a finished one is reused while REF names the same commit.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from fastmlp.harness import worker
from fastmlp.harness.errors import GateError
from fastmlp.harness.store import write_atomic

WORKER = Path(worker.__file__)
MARKER = ".fastmlp-gate-built"
BUILD = ("setup.py", "build_ext", "--inplace")
BUILD_TIMEOUT_S, PROCESS_TIMEOUT_S = 1800, 900


def git(*args, cwd):
    """``git args`` in ``cwd``: its stdout, or ``None`` when git fails."""
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise GateError("git is not installed; --against needs it") from None
    return done.stdout.strip() if done.returncode == 0 else None


def tree_root():
    """The folder holding the ``fastmlp`` package that runs: the working tree timed."""
    import fastmlp

    return Path(fastmlp.__file__).resolve().parent.parent


def commit(root):
    """``sha`` or ``sha+dirty`` of the checkout at ``root`` (``None`` outside git)."""
    sha = git("rev-parse", "HEAD", cwd=root)
    if sha and git("status", "--porcelain", "--untracked-files=no", cwd=root):
        sha += "+dirty"
    return sha


def toplevel(cwd="."):
    """The root of the git working tree holding ``cwd``."""
    root = git("rev-parse", "--show-toplevel", cwd=cwd)
    if not root:
        raise GateError(f"{Path(cwd).resolve()} is not inside a git checkout; run "
                        "`fastmlp bench --against` from the fastmlp repository")
    return Path(root)


def resolve(ref, tree):
    """The full sha of the commit ``ref`` names in ``tree``'s repository."""
    sha = git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=tree)
    if not sha:
        raise GateError(f"REF {ref!r} is not a commit of {tree}; give a branch, tag or sha "
                        "(`git log --oneline` lists them)")
    return sha


def _last_error(text):
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no output"])[-1]


def _remove(path, tree):
    git("worktree", "remove", "--force", str(path), cwd=tree)
    shutil.rmtree(path, ignore_errors=True)
    git("worktree", "prune", cwd=tree)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process
    return True


def build(path, label, log):
    """``python setup.py build_ext --inplace`` in ``path``; ``GateError`` with its error."""
    try:
        done = subprocess.run([sys.executable, *BUILD], cwd=path, capture_output=True,
                              text=True, timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise GateError(f"building {label} took over {BUILD_TIMEOUT_S} s; gave up") from None
    if done.returncode != 0:
        write_atomic(log, done.stdout + done.stderr)
        error = _last_error(done.stderr or done.stdout)
        hint = ("; install its build requirements into this Python (`pip install -e "
                "\".[gate]\"`)" if "ModuleNotFoundError" in error else "")
        raise GateError(f"{label} does not build (`python {' '.join(BUILD)}` failed: "
                        f"{error}){hint}; full log in {log}")


def worktree(ref, tree, directory, say=None):
    """REF's built worktree under ``directory``: reused, or built now (atomically);
    ``say(text)`` is told when a build starts."""
    sha = resolve(ref, tree)
    root = Path(directory).resolve() / "worktrees"
    final, label = root / sha[:12], f"REF {ref!r} ({sha[:12]})"
    for stale in root.glob(".building-*"):
        if not _alive(int(stale.name.split("-")[2])):  # a build killed before its clean-up
            _remove(stale, tree)
    if (final / MARKER).is_file() and (final / MARKER).read_text().strip() == sha:
        changes = git("status", "--porcelain", "--untracked-files=no", cwd=final)
        if changes:
            raise GateError(f"the REF worktree {final} has local changes "
                            f"({changes.splitlines()[0].strip()}); discard them with "
                            f"`git -C {final} checkout -- .` or delete it with "
                            f"`git worktree remove --force {final}`")
        return final
    if final.exists():
        _remove(final, tree)  # not finished (no marker): never reused
    root.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".building-{sha[:12]}-{os.getpid()}-", dir=root))
    try:
        if git("worktree", "add", "--detach", str(building), sha, cwd=tree) is None:
            raise GateError(f"`git worktree add` of {label} failed in {tree}")
        if say is not None:
            say(f"building {label} in {final} (once per commit)")
        build(building, label, root / f"{sha[:12]}.build.log")
        (building / MARKER).write_text(sha + "\n")
        if git("worktree", "move", str(building), str(final), cwd=tree) is None:
            raise GateError(f"`git worktree move` of {label} to {final} failed")
    except BaseException:
        _remove(building, tree)
        raise
    return final


class Worker:
    """A fresh timing process of the tree at ``root`` (``worker.py``); ``serve``: it times
    one turn of a case each time ``turn`` asks, otherwise all its cases at once."""

    def __init__(self, root, label, quick, budget, only=None, patterns=(), memory=False,
                 serve=True):
        self.root, self.label = Path(root), label
        self.folder = tempfile.TemporaryDirectory(prefix="fastmlp-gate-")
        self.out = os.path.join(self.folder.name, "result.json")
        command = [sys.executable, str(WORKER), self.out, "--budget", str(budget)]
        command += ["--quick"] * quick + ["--no-memory"] * (not memory) + ["--serve"] * serve
        command += ["--backends", ",".join(only)] if only else []
        for pattern in patterns:
            command += ["--case", pattern]
        self.stderr = open(os.path.join(self.folder.name, "stderr"), "w+")
        stdin = subprocess.PIPE if serve else subprocess.DEVNULL  # a warm-up reads no turns
        self.process = subprocess.Popen(command, cwd=self.root, text=True, stdin=stdin,
                                        stdout=subprocess.PIPE, stderr=self.stderr,
                                        env=dict(os.environ, PYTHONPATH=str(self.root)))

    def _failed(self):
        self.stderr.seek(0)
        return GateError(f"the cases of {self.label} could not be timed: "
                         f"{_last_error(self.stderr.read())}")

    def _answer(self):
        for line in self.process.stdout:
            if line.startswith(worker.TAG):
                payload = line[len(worker.TAG):].strip()
                return payload if payload == "ok" else json.loads(payload)
        self.process.wait()
        raise self._failed()

    def cases(self):
        """The case ids this process built (its first answer)."""
        return self._answer()

    def turn(self, case):
        self.process.stdin.write(case + "\n")
        self.process.stdin.flush()
        self._answer()

    def finish(self):
        """The process's document, once it has measured memory (if asked) and exited."""
        if self.process.stdin and not self.process.stdin.closed:
            self.process.stdin.write("done\n")
            self.process.stdin.close()
        if self.process.wait(timeout=PROCESS_TIMEOUT_S) != 0:
            raise self._failed()
        result = json.loads(Path(self.out).read_text())
        if not Path(result["fastmlp_file"]).resolve().is_relative_to(self.root.resolve()):
            raise GateError(f"{self.label}'s timing process imported fastmlp from "
                            f"{result['fastmlp_file']}, not from {self.root}")
        return result

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.stderr.close()
        self.folder.cleanup()


#: Timing processes per side that also measure allocations (they are deterministic, and
#: tracemalloc slows the naive backend's calls tenfold).
MEMORY_PROCESSES = 2


def pair(sides, flip=False, **options):
    """One fresh process per side, alive together, timing each case in turns: a turn of
    case 1 on each side, then case 2 ..., ``worker.TURNS`` times (``flip``: B's turn
    first). Returns their documents, in the order of ``sides``."""
    workers = []
    try:
        for label, root in sides:
            workers.append(Worker(root, label, **options))
        built = [w.cases() for w in workers]
        both = [c for c in built[-1] if all(c in b for b in built)]
        order = workers[::-1] if flip else workers
        for _ in range(worker.TURNS):
            for case in both:
                for process in order:
                    process.turn(case)
            for process, cases in zip(workers, built):  # cases of one side only
                for case in cases:
                    if case not in both:
                        process.turn(case)
        return [w.finish() for w in workers]
    finally:
        for process in workers:
            process.close()


def warm_up(sides, quick, only=None, patterns=()):
    """One untimed process per tree of ``sides``, all at once: each fills its tree's Numba
    cache if it is cold (an A/A run's two sides share one tree, and one cache)."""
    trees = dict((Path(root).resolve(), label) for label, root in sides)
    warm = []
    try:
        for root, label in trees.items():
            warm.append(Worker(root, label, quick, 0.001, only, patterns, serve=False))
        for process in warm:
            process.finish()
    finally:
        for process in warm:
            process.close()


def alternate(sides, processes, progress=None, **options):
    """``{label: [worker documents]}``: the untimed warm-up processes (``warm_up``), then
    ``processes`` pairs (``pair``), which side turns first alternating from one pair to
    the next."""
    warm_up(sides, options["quick"], options.get("only"), options.get("patterns", ()))
    runs = {label: [] for label, _ in sides}
    for i in range(processes):
        docs = pair(sides, flip=i % 2 == 1, memory=i < MEMORY_PROCESSES, **options)
        for (label, _), doc in zip(sides, docs):
            runs[label].append(doc)
        if progress is not None:
            progress.update(len(sides))
    return runs
