"""The rule of a score and of a sheet: one place, used by the booth, the agent and the coordinator.

Pure (`decimal` only), so the coordinator's pure domain may import it: a value the booth takes
is a value the coordinator takes, and `2.555` is refused at the booth exactly as on the server.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from decimal import Context, Decimal, InvalidOperation, localcontext

SCORE_PLACES = 2
"""A score has at most this many decimal places (the report's precision: nothing is rounded)."""

_CENT = Decimal(1).scaleb(-SCORE_PLACES)
_CTX = Context(prec=50, traps=[InvalidOperation])


def parse_score(text: str) -> Decimal | None:
    """The number written, or None when it is not a finite decimal (NaN, Infinity, words)."""
    try:
        value = Decimal(text.strip())
    except (InvalidOperation, ValueError):
        return None
    return value if value.is_finite() else None


def score_problem(value: Decimal, max_score: Decimal) -> str | None:
    """Why `value` cannot stand as a score on a criterion worth `max_score`; None when it can."""
    if not isinstance(value, Decimal):
        return "score must be a Decimal"
    if not value.is_finite():
        return "score must be a finite number"
    if value < 0:
        return "score below 0"
    if value > max_score:
        return f"score above the maximum {max_score}"
    with localcontext(_CTX):
        if value.quantize(_CENT) != value:
            return f"score has more than {SCORE_PLACES} decimal places"
    return None


def cell_problem(text: str, max_score: Decimal) -> str | None:
    """`score_problem` for a score as typed (or as it travels: exact decimal text)."""
    value = parse_score(text)
    if value is None:
        return f"not a decimal number: {text[:40]!r}"
    return score_problem(value, max_score)


def sheet_problems(bids: Sequence[str], maxima: Mapping[str, Decimal],
                   scores: Iterable[tuple[str, str, str | Decimal]], *,
                   signed: bool, tolerated: Collection[str] = ()) -> list[tuple[str, str]]:
    """(field, reason) for each problem of a sheet of (bid, criterion, score); sorted.

    The one rule of a sheet, for the booth, the agent and the coordinator: a score is the text
    typed (checked by `cell_problem`) or an exact Decimal (`score_problem`). A draft may be
    incomplete but what it holds must be in bounds; a signed sheet scores every bid on every
    criterion. `tolerated` bids may be scored but need not be (a bid that failed qualification
    after the sheet was started).
    """
    issues: list[tuple[str, str]] = []
    known = {*bids, *tolerated}
    seen: set[tuple[str, str]] = set()
    for bid, criterion, score in scores:
        cell = f"scores[{bid}][{criterion}]"
        if bid not in known:
            issues.append((cell, "unknown bid"))
        top = maxima.get(criterion)
        if top is None:
            issues.append((cell, "unknown criterion"))
            continue
        reason = (score_problem(score, top) if isinstance(score, Decimal)
                  else cell_problem(score, top))
        if reason is not None:
            issues.append((cell, reason))
        seen.add((bid, criterion))
    if signed:
        issues += [(f"scores[{b}][{c}]", "missing score")
                   for b in bids for c in maxima if (b, c) not in seen]
    return sorted(issues)
