"""Progress of the CLI's long operations (province generate / import, audit fairness): rich
bars and spinners on stderr, so stdout keeps only the result."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

#: Marks one phase begun: the previous one is done. `phase(name, total)` with a total gives a
#: bar, advanced by `step()`.
Phase = Callable[..., Callable[[int], None]]


@contextmanager
def phases(console: Console | None = None) -> Iterator[Phase]:
    """Phases of one operation, each a line with a spinner or a bar and its elapsed time."""
    progress = Progress(SpinnerColumn(finished_text="[green]done[/]"),
                        TextColumn("{task.description:<34}"), BarColumn(),
                        MofNCompleteColumn(), TimeElapsedColumn(),
                        console=console or Console(stderr=True))
    current: list[TaskID] = []

    def phase(name: str, total: int | None = None) -> Callable[[int], None]:
        for task in current:
            progress.update(task, total=progress.tasks[task].total or 1,
                            completed=progress.tasks[task].total or 1)
        task = progress.add_task(name, total=total)
        current[:] = [task]
        def step(n: int = 1) -> None:
            progress.advance(task, n)

        return step

    with progress:
        yield phase
        for task in current:
            progress.update(task, total=progress.tasks[task].total or 1,
                            completed=progress.tasks[task].total or 1)
