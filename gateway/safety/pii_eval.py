"""Scoring a PII detector against a labelled corpus (used by the unit tests and the trust benchmark).

Matching rule, strict on purpose: a detected span counts as a true positive only when its type equals the
expected type and its value equals the expected value, both after stripping surrounding whitespace and
sentence punctuation (``TRIM``). Anything else is a false positive (detected, not expected) and/or a false
negative (expected, not detected) — a span that is too long or too short is both. Counting is per
occurrence (a multiset per text), so two identical values in one text need two detections.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from gateway.safety.pii import PiiDetector, PiiSpan

TRIM = " \t\r\n.,;:!?\"'"
STRUCTURED = ("CARD", "IBAN", "SSN", "NINO", "EMAIL", "PHONE", "IP_ADDRESS", "DOB", "PASSPORT", "ACCOUNT")
Example = tuple[str, Sequence[tuple[str, str]]]


def _keys(pairs: Iterable[tuple[str, str]]) -> Counter[tuple[str, str]]:
    return Counter((kind, value.strip(TRIM)) for kind, value in pairs)


def _rates(tp: int, fp: int, fn: int) -> dict[str, float]:
    return {"tp": tp, "fp": fp, "fn": fn,
            "recall": tp / (tp + fn) if tp + fn else 1.0,
            "precision": tp / (tp + fp) if tp + fp else 1.0}


def evaluate(detector: PiiDetector, corpus: Iterable[Example]) -> dict[str, dict[str, float]]:
    """Per-type ``{"tp", "fp", "fn", "recall", "precision"}`` over the corpus."""
    counts: dict[str, list[int]] = {}
    for text, expected in corpus:
        want = _keys(expected)
        got = _keys((s.type, s.value) for s in detector.detect(text))
        for bucket, diff in ((0, want & got), (1, got - want), (2, want - got)):
            for (kind, _), n in diff.items():
                counts.setdefault(kind, [0, 0, 0])[bucket] += n
    return {kind: _rates(*c) for kind, c in sorted(counts.items())}


def micro_average(metrics: dict[str, dict[str, float]], types: Iterable[str]) -> dict[str, float]:
    """Pooled counts over ``types`` (e.g. ``STRUCTURED``): one recall/precision for a family of types."""
    chosen = [metrics[t] for t in types if t in metrics]
    return _rates(*(int(sum(m[k] for m in chosen)) for k in ("tp", "fp", "fn")))


def mismatches(detector: PiiDetector, corpus: Iterable[Example]) -> list[tuple[str, list[tuple[str, str]], list[tuple[str, str]]]]:
    """``(text, missed, extra)`` for every example the detector does not get exactly right."""
    out = []
    for text, expected in corpus:
        want = _keys(expected)
        got = _keys((s.type, s.value) for s in detector.detect(text))
        if want != got:
            out.append((text, sorted((want - got).elements()), sorted((got - want).elements())))
    return out


def decoy_leaks(detector: PiiDetector, decoys: Iterable[str]) -> list[tuple[str, list[PiiSpan]]]:
    """Decoys (texts with nothing to redact) on which the detector found something."""
    return [(text, spans) for text in decoys if (spans := detector.detect(text))]


def format_table(metrics: dict[str, dict[str, float]], decoys_total: int | None = None, decoys_leaked: int = 0) -> str:
    lines = [f"{'type':<12} {'tp':>4} {'fp':>4} {'fn':>4} {'recall':>7} {'precision':>9}"]
    for kind, m in metrics.items():
        lines.append(f"{kind:<12} {m['tp']:>4} {m['fp']:>4} {m['fn']:>4} {m['recall']:>7.3f} {m['precision']:>9.3f}")
    for label, types in (("structured", STRUCTURED), ("all", tuple(metrics))):
        m = micro_average(metrics, types)
        lines.append(f"{label:<12} {m['tp']:>4} {m['fp']:>4} {m['fn']:>4} {m['recall']:>7.3f} {m['precision']:>9.3f}")
    if decoys_total is not None:
        lines.append(f"decoys: {decoys_total - decoys_leaked}/{decoys_total} untouched")
    return "\n".join(lines)
