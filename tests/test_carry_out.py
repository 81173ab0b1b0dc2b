"""The shell carries out what the transition table says, in its order, and nothing else."""

from __future__ import annotations

import pytest

from coordinator.domain.lifecycle import (
    Instruction,
    ProjectState,
    ReportClosed,
    WindowOpened,
    handle_project,
)
from coordinator.workflow import Workflow

I = Instruction  # noqa: E741


def recorder(done: list[Instruction], instruction: Instruction):  # type: ignore[no-untyped-def]
    async def step() -> None:
        done.append(instruction)
    return step


async def test_steps_run_in_the_tables_order() -> None:
    _, todo = handle_project(ProjectState.EVALUATING, ReportClosed("close-1"))
    done: list[Instruction] = []
    # Given in another order: the table's order wins.
    await Workflow.carry_out(todo, {i: recorder(done, i) for i in reversed(todo)})
    assert done == todo == [I.REPORT, I.RELEASE, I.SEND_COMMAND, I.AUDIT]


async def test_a_missing_or_extra_step_is_refused_before_anything_runs() -> None:
    _, todo = handle_project(ProjectState.DRAWN, WindowOpened("start-1"))
    done: list[Instruction] = []
    with pytest.raises(AssertionError, match="instructions"):
        await Workflow.carry_out(todo, {I.AUDIT: recorder(done, I.AUDIT)})
    with pytest.raises(AssertionError, match="instructions"):
        await Workflow.carry_out(todo, {i: recorder(done, i)
                                        for i in (*todo, I.NOTIFY)})
    assert done == []
    _, repeat = handle_project(ProjectState.EVALUATING, WindowOpened("start-2"))
    await Workflow.carry_out(repeat, {})  # a repeat: nothing to do
    assert done == []
