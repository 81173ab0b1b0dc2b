"""Committee make-up checks: refuse a project at registration, not at draw time.

A project whose committee is malformed (even size, too small, quotas not adding up, too many
tenderer representatives) or that the pool cannot staff should be refused when the host site
registers it, with reasons the host can act on, rather than starving a draw hours before the
evaluation window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from coordinator.domain.draw.inputs import Candidate
from coordinator.domain.eligibility import falls_under
from coordinator.domain.model import EXPERT_KINDS, Project, Quota
from coordinator.domain.rules import Rules


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a committee make-up is refused."""

    code: str
    detail: str

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"


def _valid_code(code: str) -> bool:
    parts = code.split(".")
    return bool(code) and all(p and p.strip() == p for p in parts)


def quota_pool_counts(project: Project, candidates: Sequence[Candidate]) -> dict[int, int]:
    """For each quota index, how many candidates (screened, other cities) could fill it."""
    counts: dict[int, int] = {}
    for i, q in enumerate(project.quotas):
        counts[i] = sum(
            1
            for c in candidates
            if (q.kind is None or c.kind == q.kind)
            and any(falls_under(s, q.specialty) for s in c.specialties)
        )
    return counts


def check_composition(
    project: Project, rules: Rules, pool_counts: Mapping[int, int] | None = None
) -> list[Problem]:
    """Problems with the project's committee make-up; empty when it may be registered.

    `pool_counts` (quota index -> eligible experts outside the project's and host's cities, e.g.
    from `DayScreen.per_quota` or `quota_pool_counts`) adds a feasibility check; the check is
    necessary, not sufficient (a draw also needs venues in the experts' catchment).
    """
    problems: list[Problem] = []
    size = project.committee_size
    if size % 2 == 0:
        problems.append(Problem("size_even", f"committee size {size} must be odd"))
    minimum = rules.min_large_committee if project.large else rules.min_committee
    if size < minimum:
        kind = "large project " if project.large else ""
        problems.append(Problem("size_small", f"{kind}committee of {size} < minimum {minimum}"))
    if project.tenderer_reps < 0:
        problems.append(Problem("reps_negative", f"tenderer_reps {project.tenderer_reps} < 0"))
    if not project.quotas:
        problems.append(Problem("no_quotas", "at least one specialty quota is required"))
    for i, q in enumerate(project.quotas):
        if q.count < 1:
            problems.append(Problem("quota_count", f"quota {i} ({q.specialty}) count {q.count}"))
        if not _valid_code(q.specialty):
            problems.append(Problem("quota_code", f"quota {i}: malformed code {q.specialty!r}"))
        if q.kind is not None and q.kind not in EXPERT_KINDS:
            problems.append(Problem("quota_kind", f"quota {i}: unknown kind {q.kind!r}"))
    drawn = sum(q.count for q in project.quotas)
    if drawn + project.tenderer_reps != size:
        problems.append(
            Problem(
                "quota_sum",
                f"quotas sum to {drawn} + {project.tenderer_reps} tenderer rep(s) "
                f"= {drawn + project.tenderer_reps}, committee size is {size}",
            )
        )
    if size > 0 and Fraction(size - project.tenderer_reps, size) < rules.technical_economic_share:
        problems.append(
            Problem(
                "share",
                f"technical and economic experts {size - project.tenderer_reps}/{size} "
                f"< {rules.technical_economic_share}",
            )
        )
    if project.window.end <= project.window.start:
        problems.append(Problem("window", "evaluation window ends before it starts"))
    if pool_counts is not None:
        problems.extend(_feasibility(project.quotas, pool_counts))
    return problems


def _feasibility(quotas: Sequence[Quota], pool_counts: Mapping[int, int]) -> list[Problem]:
    problems: list[Problem] = []
    for i, q in enumerate(quotas):
        have = pool_counts.get(i, 0)
        if have < q.count:
            kind = f" {q.kind}" if q.kind else ""
            problems.append(
                Problem(
                    "pool_short",
                    f"quota {i} ({q.specialty}{kind}) needs {q.count}, "
                    f"{have} eligible expert(s) in other cities",
                )
            )
    # Nested codes share experts: a quota and every quota under it draw from one pool.
    for i, q in enumerate(quotas):
        nested = [
            j
            for j, other in enumerate(quotas)
            if falls_under(other.specialty, q.specialty)
            and (q.kind is None or other.kind == q.kind)
        ]
        need = sum(quotas[j].count for j in nested)
        if len(nested) > 1 and pool_counts.get(i, 0) < need:
            problems.append(
                Problem(
                    "pool_short",
                    f"quotas {nested} under {q.specialty} need {need} together, "
                    f"{pool_counts.get(i, 0)} eligible expert(s)",
                )
            )
    return problems
