"""One error type for every bad input, and the guard that turns it into one line and exit 2."""

from __future__ import annotations

import sys
from collections.abc import Callable


class PipelineError(Exception):
    """A bad input (parameter, file, artifact): the message says what and how to fix it."""


EXIT_BAD_INPUT = 2


def run_guarded(main: Callable[[], None]) -> None:
    """Run a stage's ``main``; a PipelineError becomes one line on stderr and exit 2.

    Anything else is a bug in our code and keeps its traceback.
    """
    try:
        main()
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
