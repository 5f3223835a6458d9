"""Progress bars that stay quiet in tests and readable in log files."""

import os
import sys

from tqdm.auto import tqdm


def bar(iterable, desc=None, total=None, **kwargs):
    """A tqdm bar; ``TFDEFENSE_PROGRESS=0`` turns bars off (tests do)."""
    disable = os.environ.get("TFDEFENSE_PROGRESS", "1") == "0"
    total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
    return tqdm(iterable, desc=desc, total=total, disable=disable, file=sys.stderr,
                mininterval=0.5 if sys.stderr.isatty() else 30, dynamic_ncols=True, **kwargs)
