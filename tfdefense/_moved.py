"""The module paths of tfdefense before its folders showed the architecture keep working.

``tfdefense.registry`` is now ``tfdefense.zoo.registry``, ``tfdefense.aegan`` is
``tfdefense.families.aegan``, ``tfdefense.purification.analysis`` is
``tfdefense.evaluation.analysis``, and so on (`MOVED`). An import of an old path, a submodule
included (``tfdefense.aegan.defended``), returns the module at its new path, so nothing is
imported twice.
"""

import importlib
import importlib.abc
import importlib.util
import sys

MOVED = {
    **{m: f"defense.{m}" for m in ("contract", "defended", "serialization", "logits", "networks")},
    **{m: f"zoo.{m}" for m in ("registry", "cards", "store", "classifier_io", "training", "calibration", "export",
                               "protect")},
    **{m: f"utils.{m}" for m in ("batching", "progress")},
    **{m: f"evaluation.{m}" for m in ("harness", "threats", "sanity", "blackbox", "plots", "leaderboard", "attacks",
                                      "art_attacks")},
    **{f: f"families.{f}" for f in ("advtrain", "aegan", "apegan", "classifiers", "defensegan", "diffpure",
                                    "fmdefense", "magnet", "puvae")},
    "purification.analysis": "evaluation.analysis",
    "purification.cost": "defense.cost",
}


def new_name(fullname):
    """The current path of ``tfdefense.<old>[.rest]``, or None when it did not move."""
    parts = fullname.split(".")
    if parts[0] != "tfdefense":
        return None
    for end in range(len(parts), 1, -1):  # the longest old path that matches
        old = ".".join(parts[1:end])
        if old in MOVED:
            return ".".join(["tfdefense", MOVED[old], *parts[end:]])
    return None


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        return importlib.util.spec_from_loader(fullname, self) if new_name(fullname) else None

    def create_module(self, spec):
        return importlib.import_module(new_name(spec.name))

    def exec_module(self, module):
        pass  # already executed under its new name


def install():
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
