"""One exception type for every user-facing failure.

The CLI turns a ``ProbeError`` into a one-line message and exit code 1; anything else is a
bug and keeps its traceback.
"""


class ProbeError(Exception):
    """A problem with the user's input or environment, explained in one line."""


def short_reason(exc: BaseException, limit: int = 120) -> str:
    """The first line of an exception from a library, for quoting inside a one-line error."""
    text = str(exc)
    return (text.splitlines()[0] if text.strip() else type(exc).__name__)[:limit]
