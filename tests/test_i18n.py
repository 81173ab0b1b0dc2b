"""Chinese for the people at the desks: every displayed text has a catalogue entry, the
language is chosen as documented, and Chinese text still fits the booth's 80 columns."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from evalgrid_wire.v1 import common_pb2
from rich.cells import cell_len

from app.cli import main as cli
from coordinator.notifier import Notice
from evalgrid import i18n
from evalgrid.i18n import LanguageError, _, catalogue, choose, fit, pad, refusal, using, wrap
from evalgrid.i18n_extract import collect, source_files, texts_in
from evalgrid.wire import to_window
from site_agent import booth_console
from site_agent.booth_draft import Draft
from tui.audit_lines import PHRASES, audit_line
from tui.operator_client import AuditEvent

PLACEHOLDER = re.compile(r"{\w*}")


def test_every_displayed_text_has_a_chinese_entry() -> None:
    """A `_()`/`N_()` text added without `make messages` and a translation fails here."""
    zh = catalogue("zh_CN")
    found = collect()
    assert len(found) > 300  # the walk reaches the consoles, the booth and the report
    missing = {msgid: where[0] for msgid, (_plural, where) in found.items() if not zh.get(msgid)}
    assert missing == {}, "run `make messages` and translate these in zh_CN"


def test_the_walk_finds_texts_inside_f_string_expressions(tmp_path: Path) -> None:
    source = tmp_path / "x.py"
    source.write_text('x = f"<th>{_(\'Rank\')}</th>" + N_("two")\ny = _(name)\n')
    assert sorted(t for t, _p, _l in texts_in(source)) == ["Rank", "two"]
    assert any(p.name == "report_page.py" for p in source_files())


def test_translations_keep_every_placeholder() -> None:
    """`{name}` lost or misspelt in a translation would raise at `.format` on a desk."""
    wrong = [msgid for msgid, zh in catalogue("zh_CN").items() if isinstance(zh, str)
             and sorted(PLACEHOLDER.findall(msgid)) != sorted(PLACEHOLDER.findall(zh))]
    assert wrong == []


def test_the_trading_centres_words() -> None:
    with using("zh_CN"):
        assert _("supplementary draw") == "补抽"
        assert _("recusal") == "回避"
        assert _("x declare a conflict") == "x 申请回避"
        assert _("Host site") == "主场"
        assert "副场" in _("guest site {link}")
        assert "评标专家" in _("Experts {experts}.  Projects {n}: ")
        assert "抽取" in _("committee drawn")


@pytest.mark.parametrize("explicit, env, expected", [
    (None, {}, "en"),
    (None, {"LANG": "zh_CN.UTF-8"}, "zh_CN"),
    (None, {"LANG": "zh_TW.UTF-8"}, "zh_CN"),
    (None, {"LANG": "en_US.UTF-8"}, "en"),
    (None, {"LC_ALL": "C.UTF-8", "LANG": "zh_CN.UTF-8"}, "en"),  # LC_ALL wins, as in POSIX
    (None, {"LC_MESSAGES": "zh_CN.UTF-8", "LANG": "en_US"}, "zh_CN"),
    (None, {"EVALGRID_LANG": "en", "LC_ALL": "zh_CN.UTF-8"}, "en"),
    ("zh", {"EVALGRID_LANG": "en"}, "zh_CN"),  # --lang wins
    ("en", {"LANG": "zh_CN.UTF-8"}, "en"),
])
def test_language_is_chosen_lang_then_env_then_locale(explicit: str | None,
                                                      env: dict[str, str], expected: str) -> None:
    assert choose(explicit, env) == expected


def test_an_unknown_language_is_refused_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(LanguageError, match="language: 'fr'"):
        choose("fr", {})
    assert cli.main(["--lang", "fr", "report", "html", "nowhere.json"]) == 2
    assert "language: 'fr' is not one of en, zh_CN" in capsys.readouterr().err


def test_cli_lang_reaches_the_process_and_its_children(tmp_path: Path) -> None:
    """(conftest's EVALGRID_LANG=en is restored after the test, so nothing leaks.)"""
    assert cli.main(["--lang", "zh_CN", "report", "html", str(tmp_path / "none.json")]) == 2
    assert i18n.language() == "zh_CN"
    assert os.environ["EVALGRID_LANG"] == "zh_CN"


def test_columns_count_double_width_characters() -> None:
    assert cell_len(pad("补抽", 8)) == 8 and pad("补抽", 8) == "补抽    "
    assert fit("场地故障已决定", 9, "~") == "场地故障~"  # 4 characters = 8 columns, + mark
    assert cell_len(fit("场地故障已决定", 9, "~")) <= 9
    assert pad("abcdef", 4) == "abcd"
    lines = wrap("评标委员会：已签署 3，评分中 2 " * 6, 30, subsequent_indent="  ")
    assert all(cell_len(line) <= 30 for line in lines) and len(lines) > 3
    assert "".join(line.strip() for line in lines).replace(" ", "") == \
        ("评标委员会：已签署 3，评分中 2 " * 6).replace(" ", "")  # nothing cut


def test_every_audit_kind_reads_as_a_chinese_phrase_within_80_columns() -> None:
    at = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    with using("zh_CN"):
        for kind in PHRASES:
            assert re.search(r"[\u4e00-\u9fff]", _(PHRASES[kind])), kind
            line = audit_line(AuditEvent(1, kind, "P20260302-0001", at,
                                         '{"by": "op-alice", "reason": "' + "长" * 60 + '"}'))

            assert cell_len(line) <= 80 and line.endswith("~"), kind


def test_a_notice_reads_in_either_language() -> None:
    notice = Notice("ntc-1", "exp-1", "S0001-V1", "Hangzhou Centre, 1 Jiangnan Road",
                    datetime(2026, 3, 2, 1, 0, tzinfo=UTC), datetime(2026, 3, 2, 4, 0, tzinfo=UTC),
                    "483920")
    assert notice.to_dict()["text"].startswith("Evaluation notice: please come to Hangzhou")
    assert "03-02, 09:00 to 12:00 (+08)" in notice.text
    with using("zh_CN"):
        text = notice.to_dict()["text"]
    assert text.startswith("评标通知：请于 03-02 09:00 至 12:00") and "483920" in text


def test_a_withdrawal_reads_in_either_language_and_carries_no_code() -> None:
    notice = Notice("ntc-1a", "exp-1", "S0001-V1", "Hangzhou Centre, 1 Jiangnan Road",
                    datetime(2026, 3, 2, 1, 0, tzinfo=UTC), datetime(2026, 3, 2, 4, 0, tzinfo=UTC),
                    "483920")
    withdrawal = Notice.withdrawal(notice)
    shown = withdrawal.to_dict()
    assert (shown["kind"], shown["withdraws"], shown["notice_id"], shown["code"]) == \
        ("withdrawal", "ntc-1a", "wdr-1a", "")
    assert shown["text"].startswith("Evaluation notice withdrawn: you are no longer expected "
                                    "at Hangzhou Centre") and "483920" not in shown["text"]
    assert "03-02, 09:00 to 12:00 (+08)" in shown["text"]
    with using("zh_CN"):
        text = withdrawal.text
    assert text.startswith("评标通知撤销：03-02 09:00 至 12:00") and "483920" not in text


# --- the booth, in Chinese, at 80 columns --------------------------------------------------


class FakeBooth:
    """What `SheetSession` asks of the booth terminal, answered at once."""

    async def submit(self, scores: Any, *, signed: bool) -> common_pb2.SubmitSheetReply:
        return common_pb2.SubmitSheetReply(accepted=True, digest="ab" * 32)

    async def clarifications(self) -> common_pb2.ClarificationList:
        return common_pb2.ClarificationList()


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    answers: list[str] = []

    async def ask(prompt: str) -> str:
        print(prompt)
        return answers.pop(0)

    monkeypatch.setattr(booth_console, "_ask", ask)
    yield answers


def _form() -> common_pb2.SheetForm:
    start = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
    return common_pb2.SheetForm(
        session_id="ses-1", project_name="市民中心物业管理、保洁及安保服务项目（2026-2028 年度）",
        window=to_window(start, start.replace(hour=4)),
        criteria=[common_pb2.CriterionInfo(id=f"T{i}", name="技术方案的完整性、可行性与针对性",
                                           max_score="10") for i in range(1, 4)],
        bids=[common_pb2.BidInfo(code=f"B-{c}", bidder_name="某某建设工程有限公司" * 3,
                                 price="1234567.00") for c in "ABC"])


@pytest.mark.parametrize("lang", ["en", "zh_CN"])
async def test_the_booth_fits_80_columns(lang: str, scripted: list[str], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    form = _form()
    draft = Draft(tmp_path / "draft.json", "ses-1")
    scripted += ["1", "8", "9", "7", "s", "c", "", "q"]
    with using(lang):
        session = booth_console.SheetSession(FakeBooth(), form, draft)  # type: ignore[arg-type]
        outcome = await session.run()
    out = capsys.readouterr().out
    assert outcome == "left" and draft.scores[("B-A", "T1")] == "8"
    assert [line for line in out.splitlines() if cell_len(line) > 80] == []
    if lang == "zh_CN":
        assert "评分表：已录入 0 / 9 项" in out and "s 汇总并签署" in out
        assert "尚不能签署：6 项评分缺失或无效" in out
        english = [m for m in catalogue("zh_CN") if len(m) > 6 and "{" not in m
                   and m.strip() in out]
        assert english == []
    else:
        assert "sheet: 0 of 9 scores entered" in out
    assert Decimal(draft.scores[("B-A", "T3")]) == 7


@pytest.mark.parametrize("text", [
    "a conflict of interest (e.g. you worked for a bidder) ends your seat here; another expert "
    "is drawn in your place and your draft is discarded",
    "  refused: the score must be between 0 and 10 with at most two decimals; nothing else "
    "changed",
    "bid B-A, price 123: Some  Company   Name Ltd and a long tail of words to wrap around it",
    "x" * 100 + " tail",
])
def test_english_wraps_as_textwrap_did(text: str) -> None:
    """The booth's messages in English look exactly as before the catalogues."""
    import textwrap

    for width in (40, 80):
        assert wrap(text, width, "  ") == textwrap.wrap(text, width, subsequent_indent="  ")


def test_known_server_refusals_read_in_the_desks_language() -> None:
    locked = ("code: sign-in on workstation S0001-V1-R01-W02 is locked after 5 wrong attempts "
              "until 2026-03-02 09:40 +08:00; an operator can unlock it (`evalgrid signin "
              "unlock`, audited)")
    assert refusal(locked) == locked  # English: as the server said it
    with using("zh_CN"):
        assert refusal("code: no reserved seat at this site matches this identity and code") \
            == "签到码: 本场地没有与该身份和签到码相符的预约席位"
        assert refusal(locked) == ("签到码: 工位 S0001-V1-R01-W02 的签到因错误 5 次已锁定至 "
                                   "2026-03-02 09:40 +08:00；操作员可以解锁（`evalgrid signin "
                                   "unlock`，记入审计）")
        assert refusal("project: something new") == "项目: something new"  # unknown: as said
