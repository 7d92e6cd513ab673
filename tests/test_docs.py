"""Every command, bench subcommand and setting is documented in the README, and every command
imports (the CLI loads them lazily, so a broken one would otherwise only show when run)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
import pytest

from paperfeed.cli.bench import EXTERNAL
from paperfeed.cli.main import COMMANDS, cli, load_lazy
from paperfeed.config import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_imports_and_is_in_the_readme(name: str):
    cmd = load_lazy(name, COMMANDS[name], "")
    assert isinstance(cmd, click.Command)
    assert f"paperfeed {name}" in README, f"README does not mention `paperfeed {name}`"


@pytest.mark.parametrize("name", sorted(EXTERNAL))
def test_every_bench_subcommand_imports_and_is_in_the_readme(name: str):
    assert isinstance(load_lazy(name, EXTERNAL[name], ""), click.Command)
    assert f"paperfeed bench {name}" in README, f"README does not mention `paperfeed bench {name}`"


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(Settings) if f.name != "data_dir"])
def test_every_setting_is_in_the_readme(field: str):
    assert f"PAPERFEED_{field.upper()}" in README, f"README does not document PAPERFEED_{field.upper()}"


def test_the_eval_options_are_in_the_readme():
    ctx = click.Context(cli)
    ev = cli.get_command(ctx, "eval")
    assert ev is not None
    for opt in ("--suite", "--baseline", "--all-modes"):
        assert opt in {o for p in ev.params for o in p.opts}
        assert opt in README
