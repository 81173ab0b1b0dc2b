"""The agent's journal: durable appends, a torn tail dropped, corruption refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from site_agent.offline_journal import JournalError, OfflineJournal


def test_records_survive_a_reopen_and_pending_excludes_done(tmp_path: Path) -> None:
    path = tmp_path / "agent" / "journal.jsonl"
    journal = OfflineJournal(path)
    journal.append("signin", rid="r1", ws="W1", session="s1")
    journal.append("sheet", rid="r2", ws="W1", sheet="...")
    journal.done("r1", "accepted")
    journal.done("r1", "accepted")  # a second answer to the same request is not recorded
    again = OfflineJournal(path)
    assert [r["kind"] for r in again.records] == ["signin", "sheet", "done"]
    assert [r["rid"] for r in again.pending()] == ["r2"]
    assert again.outcome("r1") == {"kind": "done", "rid": "r1", "outcome": "accepted"}
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_torn_last_line_is_dropped_and_the_journal_stays_writable(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = OfflineJournal(path)
    journal.append("sheet", rid="r1")
    with path.open("ab") as f:
        f.write(b'{"kind":"sheet","rid":"r2"')  # the crash hit mid-write
    reopened = OfflineJournal(path)
    assert [r["rid"] for r in reopened.pending()] == ["r1"]
    reopened.append("sheet", rid="r3")
    assert [r["rid"] for r in OfflineJournal(path).pending()] == ["r1", "r3"]


def test_a_bad_line_in_the_middle_is_refused_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b'{"kind":"sheet","rid":"r1"}\nGARBAGE\n{"kind":"done","rid":"r1"}\n')
    with pytest.raises(JournalError, match=r"journal.jsonl:2: unreadable record"):
        OfflineJournal(path)
    assert path.read_bytes().count(b"\n") == 3  # nothing was rewritten


def test_in_memory_without_a_data_dir() -> None:
    journal = OfflineJournal(None)
    journal.append("sheet", rid="r1")
    assert [r["rid"] for r in journal.pending()] == ["r1"]
