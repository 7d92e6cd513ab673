"""Every command, bench subcommand and setting is documented in the README, and every command
imports (the CLI loads them lazily, so a broken one would otherwise only show when run)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
import pytest

from paperfeed.cli.main import cli
from paperfeed.cli.table import COMMANDS, load
from paperfeed.config import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_imports_has_help_and_is_in_the_readme(name: str):
    cmd = load(name)
    assert isinstance(cmd, click.Command)
    assert COMMANDS[name].help, f"the table has no help for `paperfeed {name}`"
    assert (cmd.help or "").strip(), f"`paperfeed {name}` has no docstring or help="
    assert f"paperfeed {name}" in README, f"README does not mention `paperfeed {name}`"


def _subcommands(group: click.Group, path: str) -> list[tuple[str, click.Command]]:
    ctx = click.Context(group)
    out = []
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        assert cmd is not None, f"{path} {name}"
        out.append((f"{path} {name}", cmd))
        if isinstance(cmd, click.Group):
            out += _subcommands(cmd, f"{path} {name}")
    return out


def test_every_command_and_option_has_help():
    missing = []
    for path, cmd in _subcommands(cli, "paperfeed"):
        if not (cmd.help or cmd.short_help or "").strip():
            missing.append(path)
        missing += [f"{path} {p.opts[0]}" for p in cmd.params
                    if isinstance(p, click.Option) and not p.hidden and not (p.help or "").strip()
                    and p.opts[0] not in ("--seed", "--port", "--clients", "--queries", "--limit", "--offset")]  # fmt: skip
    assert not missing, f"no help: {missing}"


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
