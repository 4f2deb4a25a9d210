"""Required literals of a regular expression: strings that any match must contain.

Why: Python's ``re`` has no literal prefilter for patterns that start with ``\\b`` and an alternation, so a
signal that cannot match still scans the whole text. On a long message the injection scorer searches about a
hundred such patterns, one full scan each (tens of milliseconds at 14,000 characters, on the event loop). A
substring test (``"disregard" in text``) is a fast C scan; when none of a pattern's required strings is in
the text, the pattern cannot match there and its search is skipped. Same verdicts, less work (RE2 and
Hyperscan prefilter the same way).

``required_literals(pattern)`` gives the requirement as clauses: every clause is a set of strings, and any
match contains at least one string of every clause. An empty tuple says nothing is known (search always).
The analysis reads ``re``'s own parse tree; a construct it does not know contributes no clause, so it only
ever weakens the filter, never makes it skip a pattern that could match.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

try:   # re's parser: public as sre_parse until 3.11 deprecated that name in favour of re._parser
    from re import _constants as _c
    from re import _parser as _sre_parse
except ImportError:   # pragma: no cover - only on interpreters without the private modules
    _sre_parse = _c = None

Clause = frozenset[str]

_MAX_EXACT = 64        # a node's exact strings are kept up to this many (cross products grow fast)
_MIN_LITERAL = 3       # a clause with a shorter string is nearly always present: not worth a test
_MAX_CLAUSES = 4       # the most specific few are enough


def required_literals(pattern: re.Pattern[str]) -> tuple[Clause, ...]:
    """Clauses (sets of strings) such that any match of ``pattern`` contains a string of every clause.
    Empty for a case-insensitive pattern (its literals could match in any case) or one that cannot be read."""
    if _sre_parse is None or pattern.flags & re.IGNORECASE or not isinstance(pattern.pattern, str):
        return ()
    try:
        tree = _sre_parse.parse(pattern.pattern, pattern.flags)
    except Exception:   # noqa: BLE001 - the analysis is an optimisation: fall back to always searching
        return ()
    clauses = {c for c in _required(list(tree)) if min(map(len, c)) >= _MIN_LITERAL}
    best = sorted(clauses, key=lambda c: (-min(map(len, c)), len(c), sorted(c)))
    return tuple(best[:_MAX_CLAUSES])


def present(clauses: Iterable[Clause], text: str, seen: dict[str, bool]) -> bool:
    """Whether ``text`` holds a string of every clause. ``seen`` caches substring tests for this text (the
    signals share many words)."""
    for clause in clauses:
        for s in clause:
            found = seen.get(s)
            if found is None:
                found = seen[s] = s in text
            if found:
                break
        else:
            return False
    return True


# -- the analysis over re's parse tree ----------------------------------------------------------------------

def _exact_seq(items: list) -> set[str] | None:
    """Every string the sequence can match, if they are few; None when unbounded or too many."""
    out = {""}
    for op, av in items:
        strings = _exact(op, av)
        if strings is None:
            return None
        out = {a + b for a in out for b in strings}
        if len(out) > _MAX_EXACT:
            return None
    return out


def _exact(op, av) -> set[str] | None:
    if op is _c.LITERAL:
        return {chr(av)}
    if op in (_c.AT, _c.ASSERT, _c.ASSERT_NOT):       # zero width: consumes nothing
        return {""}
    if op is _c.IN:
        chars: set[str] = set()
        for iop, iav in av:
            if iop is _c.LITERAL:
                chars.add(chr(iav))
            elif iop is _c.RANGE and iav[1] - iav[0] < _MAX_EXACT:
                chars.update(chr(x) for x in range(iav[0], iav[1] + 1))
            else:                                        # NEGATE, CATEGORY (\w, \s), a wide range
                return None
        return chars if len(chars) <= _MAX_EXACT else None
    if op is _c.BRANCH:
        out: set[str] = set()
        for alternative in av[1]:
            strings = _exact_seq(list(alternative))
            if strings is None:
                return None
            out |= strings
            if len(out) > _MAX_EXACT:
                return None
        return out
    if op is _c.SUBPATTERN:
        _group, add_flags, _del_flags, sub = av
        return None if add_flags & re.IGNORECASE else _exact_seq(list(sub))
    if op in _REPEATS:
        lo, hi, sub = av
        if hi == 1:
            strings = _exact_seq(list(sub))
            if strings is None:
                return None
            return strings | {""} if lo == 0 else strings
        return None
    return None


def _clause(strings: set[str] | None) -> Clause | None:
    return frozenset(strings) if strings and "" not in strings else None


def _required(items: list) -> list[Clause]:
    """CNF for a sequence: the exact strings of each run of bounded items, and each unbounded item's own."""
    clauses: list[Clause] = []
    run: set[str] = {""}
    for op, av in items:
        strings = _exact(op, av)
        if strings is not None:
            product = {a + b for a in run for b in strings}
            if len(product) <= _MAX_EXACT:
                run = product
                continue
            # the run overflowed: close it and start a new one with this item
            if (c := _clause(run)) is not None:
                clauses.append(c)
            run = set(strings)
            continue
        if (c := _clause(run)) is not None:
            clauses.append(c)
        run = {""}
        clauses.extend(_required_node(op, av))
    if (c := _clause(run)) is not None:
        clauses.append(c)
    return clauses


def _required_node(op, av) -> list[Clause]:
    if op is _c.BRANCH:                    # a match is one alternative's: the union of each one's best clause
        union: set[str] = set()
        for alternative in av[1]:
            options = [c for c in _required(list(alternative)) if min(map(len, c)) >= _MIN_LITERAL]
            if not options:
                return []
            union |= max(options, key=lambda c: (min(map(len, c)), -len(c)))
        return [frozenset(union)]
    if op is _c.SUBPATTERN:
        _group, add_flags, _del_flags, sub = av
        return [] if add_flags & re.IGNORECASE else _required(list(sub))
    if op is getattr(_c, "ATOMIC_GROUP", None):
        return _required(list(av))
    if op in _REPEATS:
        lo, _hi, sub = av
        return _required(list(sub)) if lo >= 1 else []
    return []                              # \w+, ., classes, lookarounds, group references: nothing known


_REPEATS = tuple(getattr(_c, name) for name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT") if hasattr(_c, name)) \
    if _c is not None else ()
