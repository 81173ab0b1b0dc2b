"""Committee scoring of many projects through an executor (in-process, local processes, Ray).

The job is `scoring_batch.aggregate_range(block, span)`: the block is the shared input (put in
Ray's object store once, handed to each local worker once) and a chunk is a span of projects.
"""

from __future__ import annotations

from collections.abc import Sequence

from coordinator.batch.executor import Executor, InProcessExecutor
from coordinator.domain import scoring
from coordinator.domain.model import Project
from coordinator.domain.rules import ScoringRules
from coordinator.domain.scoring import Evaluation, ExpertSheet
from coordinator.domain.scoring_batch import (
    BlockResult,
    Refused,
    ScoreBlock,
    aggregate_range,
    evaluation_of,
    merge,
    prepare,
)

DEFAULT_CHUNK = 1000


def spans(count: int, chunk: int) -> list[tuple[int, int]]:
    """[lo, hi) ranges of at most `chunk` projects covering 0..count."""
    if chunk < 1:
        raise ValueError("chunk: must be at least 1")
    return [(lo, min(lo + chunk, count)) for lo in range(0, count, chunk)]


def aggregate(block: ScoreBlock, executor: Executor,
              chunk: int = DEFAULT_CHUNK) -> BlockResult:
    """Every project of the block, chunked over the executor, merged in project order."""
    if not len(block):
        return aggregate_range(block, (0, 0))
    return merge(executor.map_chunks(aggregate_range, block, spans(len(block), chunk)))


def evaluate_many(projects: Sequence[Project], sheets: Sequence[Sequence[ExpertSheet]],
                  lottery_seeds: Sequence[bytes], *, executor: Executor | None = None,
                  chunk: int = DEFAULT_CHUNK,
                  code_salts: Sequence[bytes | None] | None = None,
                  rules: ScoringRules | None = None,
                  ) -> list[Evaluation | Refused]:
    """scoring.evaluate for each project, vectorised: the identical Evaluation, or Refused
    with the very exception evaluate would have raised (under the same scoring `rules`)."""
    salts = list(code_salts) if code_salts is not None else [None] * len(projects)
    if len(salts) != len(projects):
        raise ValueError("code_salts: one per project")
    prepared = prepare(projects, sheets, lottery_seeds, rules)
    out: list[Evaluation | Refused | None] = [None] * len(projects)
    for i, exc in prepared.refused.items():
        out[i] = Refused(projects[i].id, exc)
    for i in prepared.direct:
        try:
            out[i] = scoring.evaluate(projects[i], sheets[i], lottery_seeds[i],
                                      code_salt=salts[i], rules=rules)
        except ValueError as exc:  # pragma: no cover - prepare refuses these first
            out[i] = Refused(projects[i].id, exc)
    own = executor or InProcessExecutor()
    try:
        for block, rows in prepared.blocks:
            result = aggregate(block, own, chunk)
            for p, i in enumerate(rows):
                out[i] = evaluation_of(projects[i], block, result, p, code_salt=salts[i])
    finally:
        if executor is None:
            own.close()
    assert all(o is not None for o in out)
    return [o for o in out if o is not None]
