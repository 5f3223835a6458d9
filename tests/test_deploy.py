"""The manifests in deploy/ run real tfdefense commands, and their shard counts agree."""

import os
import re
import shlex

import pytest

from tfdefense import cli

DEPLOY = os.path.join(os.path.dirname(__file__), "..", "deploy")


def _read(*parts):
    with open(os.path.join(DEPLOY, *parts)) as f:
        return f.read()


def _commands(text):
    """Every `tfdefense ...` command line in a manifest (YAML folded lines and shell continuations joined)."""
    text = re.sub(r"\\\n\s*", " ", text)
    text = re.sub(r"\n\s+(?=--)", " ", text)  # a folded YAML scalar continues on the next indented line
    found = []
    for match in re.finditer(r"(?:exec |\s)tfdefense ((?:[a-z]+)[^\n'\"&]*)", text):
        line = match.group(1).strip()
        line = line.replace("${JOB_COMPLETION_INDEX}", "3").replace("${SLURM_ARRAY_TASK_ID}", "3")
        found.append(shlex.split(line.replace('"', "")))
    return found


@pytest.mark.parametrize("path", [("kubernetes", f) for f in ("substitute.yaml", "evaluate-shards.yaml", "merge.yaml",
                                                               "train-multiworker.yaml")]
                         + [("slurm", f) for f in ("substitute.sbatch", "evaluate.sbatch", "merge.sbatch",
                                                   "train-multiworker.sbatch")])
def test_every_command_in_the_manifests_parses(path):
    commands = _commands(_read(*path))
    assert commands, f"no tfdefense command found in {path}"
    for argv in commands:
        args = cli.parser().parse_args(argv)  # an unknown flag or command exits with status 2
        assert args.command == argv[0]


def test_the_shard_count_is_the_same_everywhere():
    job = _read("kubernetes", "evaluate-shards.yaml")
    completions = int(re.search(r"completions: (\d+)", job).group(1))
    assert int(re.search(r"parallelism: (\d+)", job).group(1)) == completions
    assert "completionMode: Indexed" in job and f"--shard=${{JOB_COMPLETION_INDEX}}/{completions}" in job
    array = _read("slurm", "evaluate.sbatch")
    last = int(re.search(r"--array=0-(\d+)", array).group(1))
    assert f'--shard="${{SLURM_ARRAY_TASK_ID}}/{last + 1}"' in array
    train = _read("kubernetes", "train-multiworker.yaml")
    workers = int(re.search(r"completions: (\d+)", train).group(1))
    assert train.count(".tfdefense-train:12345") == workers
