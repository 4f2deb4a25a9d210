"""The injection guard on a set written apart from it and never used to tune it
(``injection_heldout.py``): the honest rates. Run with ``-s`` to see them.

The tuning corpus (test_injection.py) is passed almost perfectly; here the floors sit a little under
what was measured when the set was first scored (attacks blocked 0.675, blocked or fenced 0.767; benign
passed 0.983, blocked 0.008), so a regression fails while the figures stay what they are: heuristics
catch the common phrasings, not every paraphrase.
"""

from __future__ import annotations

from gateway.safety.injection import InjectionScorer, evaluate, format_rates
from tests.unit.injection_heldout import ATTACKS, BENIGN


def test_held_out_rates() -> None:
    result = evaluate(InjectionScorer(), ATTACKS, BENIGN)
    print("\nheld-out injection set\n" + format_rates(result))
    assert len(ATTACKS) >= 100 and len(BENIGN) >= 100
    assert result["blocked_or_fenced"] >= 0.72 and result["blocked"] >= 0.6
    assert result["benign_blocked"] <= 0.02 and result["benign_passed"] >= 0.95
