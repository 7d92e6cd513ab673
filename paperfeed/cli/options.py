"""Options several commands share, declared once (as sqlite-utils does with output_options)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

F = TypeVar("F", bound=Callable)


def json_option(help: str = "Print JSON on stdout.") -> Callable[[F], F]:
    """`--json`, passed as `as_json`; `help` says what the JSON holds."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def progress_option(f: F) -> F:
    """`--progress/--no-progress`, passed as `progress` (None: decide with `show_progress`)."""
    return click.option("--progress/--no-progress", default=None, help="Progress bars (default: on a terminal).")(f)


def show_progress(flag: bool | None) -> bool:
    return sys.stderr.isatty() if flag is None else flag


def data_option(f: F) -> F:
    """`--data DIR`, passed as `data_dir` (None: PAPERFEED_DATA, else ./paperfeed-data)."""
    return click.option(
        "--data",
        "data_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Data directory (env PAPERFEED_DATA; default ./paperfeed-data).",
    )(f)
