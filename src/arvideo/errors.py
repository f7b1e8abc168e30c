"""The one exception type for anything a user can cause.

The CLI catches it and prints its message as one line, then exits non-zero; everything else
is a bug and keeps its traceback.
"""


class ArvideoError(Exception):
    """A user-facing error: the message says what is wrong and how to fix it."""
