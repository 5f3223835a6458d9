"""The evaluation harness: threat models, attacks, reports, and what is built on them.

* `core` (re-exported here): `evaluate`, `Report`, the attack tables, accuracies;
* `threats`: gray-box and white-box (BPDA + EOT) logits functions;
* `attacks`, `art_attacks`: the attacks (CleverHans, the zoo's own, ART);
* `blackbox`: substitute training; `sanity`: the sanity checks;
* `harness`: the CLI's evaluation of a registered model; `plots`, `leaderboard`: figures and the table.
"""

from tfdefense.evaluation.core import *  # noqa: F401,F403
from tfdefense.evaluation.core import _fmt  # noqa: F401
