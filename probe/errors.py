"""One exception type for every user-facing failure.

The CLI turns a ``ProbeError`` into a one-line message and exit code 1; anything else is a
bug and keeps its traceback.
"""


class ProbeError(Exception):
    """A problem with the user's input or environment, explained in one line."""
