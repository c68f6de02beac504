"""How every command ends on bad input or a stop signal: one line on stderr and an exit code.

A bad input (a parameter, a file, an artifact, a row) is a ``PipelineError``: exit 2. SIGTERM
(`docker stop`), SIGHUP and SIGINT (Ctrl-C) raise ``Stopped``, which unwinds through every
``finally`` (so a temp file is removed, see ``files.replacing``): exit 128 + the signal's number,
the shell's convention. The stages and the predictor share this guard; the server handles SIGTERM
its own way (a graceful shutdown, exit 0).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

EXIT_BAD_INPUT = 2
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class PipelineError(Exception):
    """A bad input (parameter, file, artifact): the message says what and how to fix it."""


class Stopped(BaseException):
    """A stop signal arrived (a BaseException, like KeyboardInterrupt: nothing should swallow it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    def __str__(self) -> str:
        return f"stopped by {signal.Signals(self.signum).name}; an output file is replaced only by a complete run"


def _stop(signum: int, frame: object) -> None:
    for other in STOP_SIGNALS:  # a second signal must not interrupt the cleanup
        signal.signal(other, signal.SIG_IGN)
    raise Stopped(signum)


@contextmanager
def signals_held() -> Iterator[None]:
    """Stop signals wait until the block ends (then raise ``Stopped`` as usual): for a step that
    must not be cut in two, such as rewriting a file in place."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def run_guarded(main: Callable[[], None]) -> None:
    """Run ``main``: a PipelineError is one line and exit 2, a stop signal one line and exit 128 + n.

    A signal already ignored when we start (`nohup` ignores SIGHUP, a shell's background job
    SIGINT) stays ignored. Anything else is a bug in our code and keeps its traceback.
    """
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _stop)
    try:
        main()
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except Stopped as stopped:
        print(f"error: {stopped}", file=sys.stderr)
        sys.exit(128 + stopped.signum)
