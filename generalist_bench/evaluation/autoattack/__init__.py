"""AutoAttack's components, run on pyautoattack's code: APGD-CE / APGD-T / APGD-DLR (``apgd``), FAB / FAB-T (``fab``),
Square (``square``), each registered as an evaluation attack, and the ``compact`` engine's loops (``compact``).

They live under evaluation, not ``attacks/``, because they run through the evaluation's model runner
(``evaluation.fastpath``). Importing this package registers them; ``generalist_bench.plugins`` does that on first
use of the attack registry.
"""

from . import apgd, fab, square  # noqa: F401  (registration)
