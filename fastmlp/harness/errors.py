"""The harness's one exception a command reports as a one-line error (exit status 2)."""


class GateError(Exception):
    """Input the gate cannot use: a missing or unreadable baseline, a bad REF, a failed build."""
