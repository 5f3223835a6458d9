"""tfdefense: a Keras 3 model zoo of generative defenses against adversarial examples.

Example:
    >>> import tfdefense
    >>> model = tfdefense.load("classifier_a_mnist")   # doctest: +SKIP
    >>> tfdefense.list_models()                         # doctest: +SKIP
"""

import os as _os
import sys as _sys

try:
    if _os.path.basename(_sys.argv[0] if _sys.argv else "") == "tfdefense":  # the command: no C++ start-up lines
        from tfdefense import quiet as _quiet
        _quiet.import_tensorflow()
    import tensorflow  # noqa: F401
except ImportError as e:  # pragma: no cover
    raise ImportError("tfdefense needs TensorFlow 2.21: pip install 'tensorflow==2.21.0' "
                      "(GPU: 'tensorflow[and-cuda]==2.21.0').") from e

from tfdefense import _moved  # noqa: E402

_moved.install()  # tfdefense.registry, tfdefense.aegan, ... name the modules at their new paths

from tfdefense.version import __version__  # noqa: E402
from tfdefense.families import advtrain, aegan, apegan, classifiers, composed, defensegan, diffpure, fmdefense, magnet, puvae  # noqa: E402,F401,E501  (register their families and entries)
from tfdefense.zoo.cards import WeightsError  # noqa: E402
from tfdefense.defense.defended import DefendedClassifier  # noqa: E402
from tfdefense.zoo.protect import defend  # noqa: E402
from tfdefense.zoo.registry import UnknownModelError, list_families, list_models, load, load_folder  # noqa: E402

__all__ = ["load", "load_folder", "list_models", "list_families", "defend", "DefendedClassifier",
           "UnknownModelError", "WeightsError", "__version__"]


def __getattr__(name):  # `from tfdefense import registry` and `tfdefense.registry` as before the folders
    if name in _moved.MOVED:
        import importlib

        return importlib.import_module(f"tfdefense.{_moved.MOVED[name]}")
    raise AttributeError(f"module 'tfdefense' has no attribute {name!r}")
