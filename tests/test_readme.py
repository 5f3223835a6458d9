"""README stays true: its commands parse, its two commands are what CI runs, its zoo table is the
cards', and its Python examples run."""

import os
import re
import shlex

import pytest

from tfdefense import cli
from tfdefense.evaluation import leaderboard

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = open(os.path.join(ROOT, "README.md")).read()


def _blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README, re.S)


def _commands():
    """Every `tfdefense ...` invocation in README's shell blocks, continuation lines joined."""
    out = []
    for block in _blocks("sh"):
        for line in block.replace("\\\n", " ").splitlines():
            words, part = shlex.split(line, comments=True), []
            for word in words + ["&&"]:
                if word not in ("&&", ";"):
                    part.append(word)
                    continue
                while part and "=" in part[0] and not part[0].startswith("-"):  # VAR=value prefixes
                    part = part[1:]
                if part and part[0] == "tfdefense":
                    out.append(part[1:])
                part = []
    return out


def test_every_readme_command_parses():
    commands = _commands()
    assert len(commands) >= 12
    for words in commands:
        cli.parser().parse_args(words)  # argparse exits (a test error) on an unknown command or flag


def test_the_two_commands_are_what_ci_runs():
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    install = 'pip install -q -e ".[test]" -c constraints.txt'
    assert f"python3 -m venv .venv && . .venv/bin/activate && {install} && tfdefense evaluate" in README
    assert f"python3 -m venv .venv && . .venv/bin/activate && {install} && python -m pytest" in README
    assert install in ci and "python -m pytest" in ci
    assert len(README.splitlines()) <= 300


def test_zoo_table_is_the_cards():
    table = leaderboard.zoo_table(leaderboard.rows())
    assert f"{leaderboard.README_BEGIN}\n{table}{leaderboard.README_END}" in README, \
        "README's zoo table differs from the cards: run `tfdefense leaderboard --readme=README.md`"


@pytest.mark.pretrained
def test_readme_python_examples_run(real_data_dir):
    for block in _blocks("python"):
        exec(compile(block, "README.md", "exec"), {})
