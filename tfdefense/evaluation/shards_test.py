import json
import os

import keras
import pytest

from tfdefense import cli, evaluation, testing
from tfdefense.defense.defended import DefendedClassifier
from tfdefense.defense.networks import classifier_c
from tfdefense.evaluation import shards

FAST = {"pgd": {"nb_iter": 2}, "fgsm": {}}


def _comparable(report):
    rows = [{k: v for k, v in vars(r).items() if k != "wall_time_s"} for r in report.results]
    return report.n, report.clean, rows


def test_blocks_cover_the_images_once_and_seeds_do_not_depend_on_the_shard_count():
    for n, size, count in [(10, 4, 2), (10, 4, 3), (1000, 256, 4), (5, 256, 1), (9, 2, 7)]:
        got = [b for i in range(count) for b in shards.blocks_of(i, count, n, size)]
        assert got == list(range(-(-n // size)))  # each block once, in order, whatever the count
    assert shards.block_seed(7, 0) == 7 and len({shards.block_seed(s, b) for s in range(20) for b in range(50)}) == 1000
    for bad in ("1", "2/2", "-1/3", "a/b", "1/0"):
        with pytest.raises(ValueError, match="I/K"):
            shards.parse(bad)


def test_two_shards_of_a_random_defense_under_eot_merge_to_the_one_process_report(tmp_path):
    """Gray-box and white-box (exact gradient, EOT over 2 seeds), 3 queries per image: the two shards' merged
    counts equal the one-process run's exactly, though the shards never saw each other's images."""
    keras.utils.set_random_seed(0)
    classifier = classifier_c(units=16)
    x, y = testing.blob_images(10, seed=4)
    model = DefendedClassifier(classifier, testing.noisy_purifier(0.4, eot_samples=2))
    kwargs = dict(attacks=("fgsm", "pgd"), threats=("gray", "white"), eps=0.1, params=FAST, k_queries=3,
                  block_size=4, white_box={"eot": 2}, name="noisy", seed=5)
    whole = evaluation.evaluate(model, x, y, **kwargs)
    assert whole.settings["white_box_eot"] == 2 and whole.results[0].queries_k == 3
    dirs = []
    for index, blocks in enumerate(([0], [1, 2])):  # shard 1 of 2 holds images 4..9
        part = evaluation.evaluate(model, x, y, blocks=blocks, **kwargs)
        assert part.n == (4 if index == 0 else 6)
        dirs.append(str(tmp_path / f"s{index}"))
        shards.write_shard(part, dirs[-1], (index, 2), blocks, 4)
    merged = shards.merge(dirs[::-1], str(tmp_path / "merged"))  # the order of the folders does not matter
    assert _comparable(merged) == _comparable(whole)
    assert merged.settings["merged_from"] == {"shards": 2, "block_size": 4}
    assert json.load(open(tmp_path / "merged" / "report.json"))["n"] == 10
    # Different block seeds really change a random defense's answers: the seeding is what makes this exact.
    shifted = evaluation.evaluate(model, x, y, **{**kwargs, "block_size": 5})
    assert _comparable(shifted) != _comparable(whole)


def test_merge_refuses_anything_but_every_shard_of_one_run_once(tmp_path):
    keras.utils.set_random_seed(0)
    model = DefendedClassifier(classifier_c(units=8), testing.noisy_purifier(0.4, eot_samples=2))
    x, y = testing.blob_images(8, seed=1)
    dirs = []
    for index, seed in ((0, 0), (1, 0), (1, 1)):
        blocks = shards.blocks_of(index, 2, 8, 4)
        part = evaluation.evaluate(model, x, y, attacks=("fgsm",), block_size=4, blocks=blocks, seed=seed,
                                   k_queries=1)
        dirs.append(str(tmp_path / f"{index}_{seed}"))
        shards.write_shard(part, dirs[-1], (index, 2), blocks, 4)
    with pytest.raises(ValueError, match="exactly once"):
        shards.merge(dirs[:1])
    with pytest.raises(ValueError, match="exactly once"):
        shards.merge([dirs[0], dirs[0]])
    with pytest.raises(ValueError, match="not the same evaluation"):
        shards.merge([dirs[0], dirs[2]])
    with pytest.raises(FileNotFoundError, match="report.json"):
        shards.merge([dirs[0], str(tmp_path / "nowhere")])
    os.remove(os.path.join(dirs[1], shards.OUTCOMES))
    with pytest.raises(FileNotFoundError, match="outcomes.npz"):
        shards.merge(dirs[:2])


def test_sharded_cli_run_with_a_shared_substitute_equals_one_process(real_data_dir, tmp_path, capsys):
    """The published MagNet (deterministic) under gray-box and black-box FGSM, from the command line: one
    substitute trained once, two shards, merged: the report one process writes, to the count."""
    sub, bb = str(tmp_path / "sub"), '--black_box={"rounds": 1, "epochs": 1}'
    common = ["magnet_mnist", "--attacks=fgsm", "--threat=gray,black", "--n=10", "--block_size=4", bb]
    assert cli.main(["evaluate", *common, "--shard=0/2", f"--output_dir={tmp_path}/x"]) == 1
    assert "tfdefense substitute" in capsys.readouterr().err  # a shard never trains its own substitute
    assert cli.main(["substitute", "magnet_mnist", sub, bb]) == 0
    assert "oracle queries" in capsys.readouterr().out
    assert cli.main(["evaluate", *common, f"--substitute={sub}", f"--output_dir={tmp_path}/one"]) == 0
    for i in range(2):
        assert cli.main(["evaluate", *common, f"--substitute={sub}", f"--shard={i}/2",
                         f"--output_dir={tmp_path}/s{i}"]) == 0
    assert cli.main(["merge", f"{tmp_path}/s0", f"{tmp_path}/s1", f"--output_dir={tmp_path}/merged"]) == 0
    one, merged = (evaluation.Report.read(str(tmp_path / d / "report.json")) for d in ("one", "merged"))
    assert _comparable(merged) == _comparable(one) and merged.substitute == one.substitute
    assert {r.threat for r in merged.results} == {"gray", "black"}
    # A substitute trained under other settings is refused, not silently attacked.
    assert cli.main(["evaluate", *common[:-1], '--black_box={"rounds": 2, "epochs": 1}', f"--substitute={sub}",
                     f"--output_dir={tmp_path}/other"]) == 1
    assert "trained for" in capsys.readouterr().err
    assert cli.main(["evaluate", *common, f"--substitute={sub}", "--shard=2/2", f"--output_dir={tmp_path}/y"]) == 1
    assert cli.main(["evaluate", *common, f"--substitute={sub}", "--shard=0/5", f"--output_dir={tmp_path}/y"]) == 1
    assert "has no images" in capsys.readouterr().err
