"""The process entry point. `cellctl run` takes SIGINT/SIGTERM itself, from before the first import that starts
a thread (numpy's BLAS pool does): every thread then inherits the blocked mask and a signal always reaches the
listener that knows its sender (see `runtime.signals`)."""

from __future__ import annotations

import sys

_ROOT_OPTIONS_WITH_VALUE = frozenset({"--log-level"})


def verb(argv: list[str]) -> str | None:
    """The subcommand in `argv` (the first argument that is neither a root option nor its value)."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _ROOT_OPTIONS_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def main() -> None:
    if verb(sys.argv[1:]) == "run":
        from cellctl.runtime.signals import install_for_process

        install_for_process()
    from cellctl.cli import main as cli_main

    cli_main()
