"""The scan-job bound options ``stella scan`` and ``stella gate`` share (docs/scale-out.md,
"Bounded scan jobs"): each overrides, for this run, the bound the environment, the home's
``config.json`` or the default gives."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import click

from appliance.home import Home
from appliance.scanner.jobs import Bound, ScanBounds, parse_option

F = TypeVar("F", bound=Callable[..., Any])

_HELP = {
    Bound.MEMORY: "Memory (address space) of the scan's process, e.g. 2G.",
    Bound.CPU: "CPU seconds of the scan's process.",
    Bound.FILE_SIZE: "Largest file the scan's process may write (spooled files), e.g. 1G.",
    Bound.OPEN_FILES: "Files the scan's process may hold open at once.",
    Bound.RESULT: "Largest answer the scan's process may send back, e.g. 256M.",
    Bound.WALL: "Wall-clock seconds the scan's process may run.",
}


def scan_bound_options(command: F) -> F:
    """Add ``--scan-memory``, ``--scan-cpu-seconds``, ``--scan-file-size``,
    ``--scan-open-files``, ``--scan-result-size``, ``--scan-wall-seconds`` and
    ``--scan-wait``; the command receives ``scan_bounds``, a
    function of the home giving the :class:`ScanBounds` in force."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        given = {bound: kwargs.pop(_param(bound)) for bound in _HELP}
        wait = kwargs.pop("scan_wait")

        def resolve(home: Home) -> ScanBounds:
            options = {b: parse_option(b, text) if text else None for b, text in given.items()}
            return ScanBounds.resolve(home, options, wait_seconds=wait)

        return command(*args, scan_bounds=resolve, **kwargs)

    decorated: Any = wrapper
    decorated = click.option(
        "--scan-wait",
        type=click.FloatRange(min=0),
        default=None,
        metavar="SECONDS",
        help="How long to wait for a free scan slot of the home (0: refuse at once).",
    )(decorated)
    for bound, text in reversed(_HELP.items()):
        decorated = click.option(
            bound.option.split()[0],
            _param(bound),
            default=None,
            metavar=bound.option.split()[1],
            help=text + f" Default: {bound.cap.env}, the home's config.json, else "
            f"{bound.cap.describe(bound.cap.default)}.",
        )(decorated)
    return decorated  # type: ignore[no-any-return]


def _param(bound: Bound) -> str:
    return bound.option.split()[0].removeprefix("--").replace("-", "_")
