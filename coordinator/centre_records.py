"""The records a trading centre publishes, from a data dir: conduct, service, inspections.

Like the auditor tools of `coordinator/offline.py`, these open the coordinator's Redis and keys
in the data dir (no running coordinator needed, a running one is fine: the audit trail takes
concurrent appends). Reading the sealed allocations is an audited act; every write (bars, a
sanction, an inspection's commitment and draw) is audited. The rules are pure:
`coordinator.domain.conduct`, `.service_stats`, `.inspection`.
"""

from __future__ import annotations

import csv
import html
import io
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coordinator import conduct_records
from coordinator.domain.audit import AuditEntry, entry_to_json
from coordinator.domain.collusion import ScoreRecord, collusion_signals
from coordinator.domain.conduct import (
    EVENT_KINDS,
    ConductError,
    bars_from_events,
    conduct_rows,
    local_day,
    quarter_bounds,
)
from coordinator.domain.inspection import (
    InspectionInputs,
    ProjectRisk,
    draw_inspection,
    input_digest,
    make_record,
    seed_hash,
)
from coordinator.domain.rules import Rules, load_rules
from coordinator.domain.service_stats import SeatPlace, SiteService, by_city, service_stats
from coordinator.offline import (
    NoClock,
    OfflineError,
    master_key,
    open_store,
    pseudonym,
    read_allocation,
    signing_key,
)
from coordinator.store.audit_log import AuditLog
from coordinator.store.keys import public_key_hex
from coordinator.store.registry import Registry
from evalgrid.datadir import DataDir
from evalgrid.pki.signer import ensure_signing_certificate

if TYPE_CHECKING:
    from coordinator.workflow import Workflow

# Column headers, Chinese and English (the centres publish in Chinese).
CONDUCT_LABELS: dict[str, str] = {
    "expert": "专家 Expert",
    "signed_in": "签到 Signed in",
    "late_sign_in": "迟到 Late sign-in",
    "no_show": "缺席 No-show",
    "decline": "拒绝参加 Declined",
    "late_decline": "临时拒绝 Late decline",
    "leave": "请假 Leave",
    "recusal": "回避 Recusal",
    "sheet_returned": "评分退回 Sheet returned",
    "deviation_upheld": "评分偏离 Deviation upheld",
    "lockout": "签到锁定 Lockout",
    "sanction": "人工处理 Sanction",
    "bars": "限制抽取 Barred (kind: from - until)",
    "evidence": "依据 Evidence (audit seq)",
}
SERVICE_LABELS: dict[str, str] = {
    "city": "城市 City", "site": "场所 Site", "workstations": "工位 Workstations",
    "guest_projects": "异地评标项目 Guest projects",
    "seat_services": "专家席位服务 Expert-seat services",
    "host_projects": "主场项目 Host projects", "half_days": "使用半天数 Half-days used",
    "peak_use": "最高工位使用 Peak workstations used",
    "outages": "断线 Outages", "outage_minutes": "断线分钟 Outage minutes",
    "incidents": "故障事件 Incidents", "incident_minutes": "故障分钟 Incident minutes",
    "seats_moved": "换位 Seats moved",
}


def _rules(path: Path | None) -> Rules:
    return load_rules(path)


def _log(redis: Any, data_dir: Path) -> AuditLog:
    return AuditLog(redis, signing_key=signing_key(data_dir), clock=NoClock())


def holds_operator_role(data_dir: Path, name: str) -> bool:
    """The caller holds the operator role: this data dir has an operator certificate and key
    for `name` that belong together, were issued by the CA and are not revoked."""
    from evalgrid.pki.ca import serial_of_pem
    from evalgrid.pki.directory import load_identity_files
    from evalgrid.pki.identity import PkiError
    from evalgrid.revocation import RevocationError, read_crl

    pki = DataDir(data_dir).pki
    try:
        files = load_identity_files(pki, "operator", name)
    except PkiError as exc:
        raise OfflineError(f"operator: {exc}") from None
    crl = pki / "crl.pem"
    if crl.exists():
        try:
            view = read_crl(crl.read_bytes(), files.ca)
        except RevocationError as exc:
            raise OfflineError(f"operator: the CRL cannot be read ({exc})") from None
        if serial_of_pem(files.cert) in view.serials:
            raise OfflineError(f"operator: the certificate of {name!r} is revoked")
    return True


# --- conduct -------------------------------------------------------------------------------


async def conduct_update(data_dir: Path, redis_url: str | None, *, by: str,
                         rules_path: Path | None = None) -> dict[str, Any]:
    rules, key = _rules(rules_path), master_key(data_dir)
    async with open_store(data_dir, redis_url) as redis:
        return await conduct_records.update_bars(redis, key, _log(redis, data_dir), rules,
                                                 DataDir(data_dir).reports, by=by)


async def conduct_sanction(data_dir: Path, redis_url: str | None, *, expert_id: str,
                           start: date, end: date, reason: str, by: str,
                           rules_path: Path | None = None) -> dict[str, Any]:
    rules, key = _rules(rules_path), master_key(data_dir)
    async with open_store(data_dir, redis_url) as redis:
        return await conduct_records.record_sanction(
            redis, key, _log(redis, data_dir), rules, DataDir(data_dir).reports,
            expert_id=expert_id, start=start, end=end, reason=reason, by=by)


async def conduct_report(data_dir: Path, redis_url: str | None, *, quarter: str,
                         out_dir: Path, operator: str | None,
                         rules_path: Path | None = None) -> dict[str, Any]:
    """`conduct-QUARTER.csv` and `.html`: per expert the quarter's events and the bars in
    force, with the audit entries they rest on; experts under keyed pseudonyms unless the
    caller holds the operator role (then id and name)."""
    start, end = quarter_bounds(quarter)
    named = operator is not None and holds_operator_role(data_dir, operator)
    rules, key = _rules(rules_path), master_key(data_dir)
    async with open_store(data_dir, redis_url) as redis:
        log = _log(redis, data_dir)
        history = await conduct_records.load_history(
            redis, key, log, rules, DataDir(data_dir).reports,
            purpose=f"conduct report {quarter}" + (f" for {operator}" if named else ""))
        names = {e.id: e.name for e in (await Registry(redis).load_province()).experts} \
            if named else {}
        bars = bars_from_events(history.events, history.sanctions, rules.conduct,
                                rules.local_utc_offset_minutes)
        rows = conduct_rows(history.events, bars, start, end, rules.local_utc_offset_minutes)

        def label(expert_id: str) -> str:
            if named:
                return f"{expert_id} {names.get(expert_id, '')}".strip()
            return pseudonym(key, expert_id)

        table = [[label(r.expert_id), *(str(r.counts[k]) for k in EVENT_KINDS),
                  "; ".join(f"{b.kind}: {b.start} - {b.end}" for b in r.bars),
                  " ".join(str(s) for s in r.evidence)] for r in rows]
        header = [CONDUCT_LABELS[k] for k in ("expert", *EVENT_KINDS, "bars", "evidence")]
        out_dir.mkdir(parents=True, exist_ok=True)
        csv_path = out_dir / f"conduct-{start.year}Q{(start.month + 2) // 3}.csv"
        csv_path.write_text(_csv(header, table), encoding="utf-8-sig")
        html_path = csv_path.with_suffix(".html")
        title = (f"专家行为记录 Expert conduct {start.year}Q{(start.month + 2) // 3} "
                 f"({start} - {end})")
        note = ("专家以实名列出（操作员）Experts named (operator)" if named else
                "专家以密钥化名列出 Experts under keyed pseudonyms")
        html_path.write_text(_html_page(title, [note, f"rules {rules.version} "
                                                f"{rules.digest()[:16]}"], header, table),
                             encoding="utf-8")
        await log.append("conduct.report_written", "conduct", {
            "quarter": quarter, "rows": len(rows), "named": named,
            "by": operator or "", "csv": csv_path.name})
    return {"csv": str(csv_path), "html": str(html_path), "rows": len(rows), "named": named}


# --- service -------------------------------------------------------------------------------


async def service_report(data_dir: Path, redis_url: str | None, *, start: date, end: date,
                         out_dir: Path, rules_path: Path | None = None) -> dict[str, Any]:
    """`service-FROM-TO.csv` and `.html` (with a chart): per site and per city."""
    if end < start:
        raise OfflineError("to: must not be before --from")
    rules, key = _rules(rules_path), master_key(data_dir)
    async with open_store(data_dir, redis_url) as redis:
        log = _log(redis, data_dir)
        province = await Registry(redis).load_province()
        places = await _seat_places(redis, key, [p.id for p in province.projects])
        entries = await log.entries()
        sites = {s.id: (s.city, sum(len(v.workstations) for v in s.venues))
                 for s in province.sites}
        figures = service_stats(entries, places, sites, start, end,
                                rules.local_utc_offset_minutes)
        await log.append("service.report_written", "service", {
            "from": start.isoformat(), "to": end.isoformat(), "sites": len(figures),
            "seat_services": sum(f.seat_services for f in figures)})
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"service-{start.isoformat()}-{end.isoformat()}"
    header, table = service_table(figures)
    stem.with_suffix(".csv").write_text(_csv(header, table), encoding="utf-8-sig")
    title = f"场所服务统计 Site service {start} - {end}"
    stem.with_suffix(".html").write_text(
        _html_page(title, [], header, table, chart=_chart(figures)), encoding="utf-8")
    return {"csv": str(stem.with_suffix(".csv")), "html": str(stem.with_suffix(".html")),
            "sites": [_site_json(f) for f in figures],
            "totals": {"guest_projects": sum(f.guest_projects for f in figures),
                       "seat_services": sum(f.seat_services for f in figures)}}


def service_table(figures: Sequence[SiteService]) -> tuple[list[str], list[list[str]]]:
    keys = ("city", "site", "workstations", "guest_projects", "seat_services", "host_projects",
            "half_days", "peak_use", "outages", "outage_minutes", "incidents",
            "incident_minutes", "seats_moved")
    rows = []
    for f in sorted(figures, key=lambda f: (f.city, f.site_id)):
        rows.append([f.city, f.site_id, str(f.workstations), str(f.guest_projects),
                     str(f.seat_services), str(f.host_projects), str(len(f.half_days)),
                     str(max(f.half_days.values(), default=0)), str(f.outages),
                     f"{f.outage_minutes:.0f}", str(f.incidents), f"{f.incident_minutes:.0f}",
                     str(f.seats_moved)])
    for c in by_city(figures):
        rows.append([c.city, "合计 all", str(c.workstations), str(c.guest_projects),
                     str(c.seat_services), str(c.host_projects), "", "", str(c.outages),
                     f"{c.outage_minutes:.0f}", str(c.incidents), f"{c.incident_minutes:.0f}",
                     ""])
    return [SERVICE_LABELS[k] for k in keys], rows


def _site_json(f: SiteService) -> dict[str, Any]:
    return {"site": f.site_id, "city": f.city, "workstations": f.workstations,
            "guest_projects": f.guest_projects, "seat_services": f.seat_services,
            "host_projects": f.host_projects,
            "half_days": {f"{d} {h}": n for (d, h), n in f.half_days.items()},
            "outages": f.outages, "outage_minutes": round(f.outage_minutes, 1),
            "incidents": f.incidents, "incident_minutes": round(f.incident_minutes, 1),
            "seats_moved": f.seats_moved}


async def grid_service_stats(workflow: Workflow, start: date, end: date) -> list[SiteService]:
    """The running coordinator's figures (Operator.ServiceStats): the same pure count as
    `report service`, over the allocations of the projects whose window touches the period
    (a sign-in happens in its window) instead of every allocation of the province."""
    offset = timedelta(minutes=workflow.rules.local_utc_offset_minutes)
    lo = datetime(start.year, start.month, start.day, tzinfo=UTC) - offset - timedelta(days=1)
    hi = datetime(end.year, end.month, end.day, tzinfo=UTC) - offset + timedelta(days=2)
    projects = [p.id for p in workflow.desk.projects()
                if p.window.start < hi and lo < p.window.end]
    places = await _seat_places(workflow.redis, workflow.master_key, projects)
    sites = {s.id: (s.city, sum(len(v.workstations) for v in s.venues))
             for s in workflow.desk.sites.values()}
    return service_stats(await workflow.audit.entries(), places, sites, start, end,
                         workflow.rules.local_utc_offset_minutes)


async def _seat_places(redis: Any, key: bytes, project_ids: Sequence[str]) -> list[SeatPlace]:
    places = []
    for project_id in project_ids:
        alloc = await read_allocation(redis, key, project_id)
        if alloc is not None:
            places += [SeatPlace(s.session_id, project_id, s.site_id, s.workstation_id)
                       for s in alloc.seats]
    return places


# --- inspections ---------------------------------------------------------------------------


@dataclass(frozen=True)
class InspectionRequest:
    start: date
    end: date
    sample: int
    inspectors: int
    roster: tuple[str, ...]


def parse_period(text: str) -> tuple[date, date]:
    """"2026-10-01..2026-12-31", "2026Q4" or one day "2026-12-05"."""
    value = text.strip()
    try:
        if "Q" in value.upper():
            return quarter_bounds(value)
        first, sep, last = value.partition("..")
        start = date.fromisoformat(first)
        end = date.fromisoformat(last) if sep else start
    except (ValueError, ConductError) as exc:
        raise OfflineError(f"period: expected FROM..TO (dates), a day or a quarter such as "
                           f"2026Q4, not {text!r} ({exc})") from None
    if end < start:
        raise OfflineError("period: the end is before the start")
    return start, end


def roster_from(data_dir: Path, roster_file: Path | None) -> tuple[str, ...]:
    """The auditor roster: a file with one name a line, else the auditor certificates of the
    data dir."""
    if roster_file is not None:
        try:
            lines = roster_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise OfflineError(f"roster: cannot read {roster_file} ({exc})") from None
        names = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    else:
        names = [p.stem for p in (DataDir(data_dir).pki / "auditor").glob("*.pem")]
    roster = tuple(sorted(set(names)))
    if not roster:
        raise OfflineError("roster: no auditors (give --roster FILE, or issue auditor "
                           "certificates with `evalgrid pki issue auditor NAME`)")
    return roster


def project_risks(data_dir: Path, entries: Sequence[AuditEntry], records: Sequence[ScoreRecord],
                  start: date, end: date, rules: Rules) -> list[ProjectRisk]:
    """Each project reported in the period with its risk signals: collusion signals naming its
    members (favour or lock-step, over the whole history), deviation warnings in its report,
    supplementary draws, and faults (incidents, seats moved or displaced)."""
    offset = rules.local_utc_offset_minutes
    reported = {}
    for e in entries:
        if e.kind == "evaluation.reported":
            at = local_day(_utc(e.at), offset)
            if start <= at <= end:
                reported[e.subject] = e
    faults: dict[str, int] = {}
    for e in entries:
        if e.kind in ("fault.incident_opened", "seat.moved", "seat.displaced"):
            faults[e.subject] = faults.get(e.subject, 0) + 1
    reports = DataDir(data_dir).reports
    risks = []
    flagged: dict[str, int] = {}
    if records:
        signals = collusion_signals(records)
        by_project: dict[str, set[str]] = {}
        for r in records:
            by_project.setdefault(r.project_id, set()).add(r.expert_ref)
        z = rules.inspection.collusion_min_z
        suspects = {f.expert_ref for f in signals.favour if f.z >= z} | {
            x for p in signals.lockstep if p.z >= z for x in (p.expert_a, p.expert_b)}
        for project_id, members in by_project.items():
            flagged[project_id] = len(members & suspects)
    for project_id in sorted(reported):
        try:
            body = json.loads((reports / f"{project_id}.json").read_text(encoding="utf-8"))
            report = body["report"]
            deviations = sum(1 for w in report["evaluation"].get("warnings", [])
                             if w.get("kind") == "deviation")
            supplementary = len(report.get("supplementary_draws", []))
        except (OSError, ValueError, KeyError, TypeError):
            deviations = supplementary = 0
        risks.append(ProjectRisk(project_id, {
            "collusion_signal": flagged.get(project_id, 0), "deviation_warning": deviations,
            "supplementary_draw": supplementary, "fault": faults.get(project_id, 0)}))
    return risks


def _utc(at: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(at.replace("Z", "+00:00"))


async def inspect(data_dir: Path, redis_url: str | None, request: InspectionRequest, *,
                  out: Path, rules_path: Path | None = None) -> dict[str, Any]:
    """Commit (audit) the seed's hash and the inputs' digest, then draw, then reveal."""
    from coordinator.offline import scoring_history

    rules = _rules(rules_path)
    records = await scoring_history(data_dir, redis_url)  # members under pseudonyms; audited
    async with open_store(data_dir, redis_url) as redis:
        log = _log(redis, data_dir)
        entries = await log.entries()
        risks = project_risks(data_dir, entries, records, request.start, request.end, rules)
        try:
            inputs = InspectionInputs(f"{request.start}..{request.end}", tuple(risks),
                                      request.roster, request.sample, request.inspectors,
                                      rules.inspection)
        except ValueError as exc:
            raise OfflineError(str(exc)) from None
        seed = secrets.token_bytes(32)  # from the OS; never chosen by the caller
        committed = await log.append("inspection.committed", inputs.period, {
            "seed_hash": seed_hash(seed), "input_digest": input_digest(inputs),
            "projects": len(risks), "sample": request.sample,
            "inspectors": request.inspectors, "weights": rules.inspection.canonical()})
        record = make_record(inputs, seed, committed.seq)
        drawn = draw_inspection(inputs, seed)
        revealed = await log.append("inspection.drawn", inputs.period, {
            "commitment_seq": committed.seq, "seed": seed.hex(),
            "projects": [a.project_id for a in drawn],
            "inspectors": sorted({a.inspector for a in drawn})})
    # Anchored like a draw archive: the two signed entries and their signer travel with it.
    signing = signing_key(data_dir)
    record["audit"] = [json.loads(entry_to_json(e)) for e in (committed, revealed)]
    record["signer"] = {"key": public_key_hex(signing), "certificate": ensure_signing_certificate(
        DataDir(data_dir).pki, signing.public_key())}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1, sort_keys=True, ensure_ascii=False),
                   encoding="utf-8")
    return record


# --- rendering -----------------------------------------------------------------------------


def _csv(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _html_page(title: str, notes: Sequence[str], header: Sequence[str],
               rows: Sequence[Sequence[str]], chart: str = "") -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    paras = "".join(f"<p>{esc(n)}</p>" for n in notes)
    return (f'<!doctype html>\n<html lang="zh-CN"><head><meta charset="utf-8">'
            f"<title>{esc(title)}</title><style>body{{font-family:sans-serif}}"
            f"table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:2px 6px}}"
            f"</style></head><body><h1>{esc(title)}</h1>{paras}{chart}"
            f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
            f"</body></html>\n")


def _chart(figures: Sequence[SiteService]) -> str:
    """An inline SVG bar chart of expert-seat services per site (no script, no network)."""
    shown = sorted(figures, key=lambda f: (f.city, f.site_id))
    if not shown:
        return ""
    top = max((f.seat_services for f in shown), default=0) or 1
    bar_w, height = 28, 160
    parts = []
    for i, f in enumerate(shown):
        h = Decimal(f.seat_services * (height - 30)) / top
        x = 10 + i * (bar_w + 6)
        parts.append(f'<rect x="{x}" y="{height - 20 - float(h):.1f}" width="{bar_w}" '
                     f'height="{float(h):.1f}" fill="#4a7ab7"><title>'
                     f"{html.escape(f.site_id)}: {f.seat_services}</title></rect>"
                     f'<text x="{x}" y="{height - 5}" font-size="9">'
                     f"{html.escape(f.site_id[-4:])}</text>"
                     f'<text x="{x}" y="{height - 24 - float(h):.1f}" font-size="9">'
                     f"{f.seat_services}</text>")
    width = 20 + len(shown) * (bar_w + 6)
    return (f"<h2>专家席位服务 Expert-seat services per site</h2>"
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'role="img" aria-label="expert-seat services per site">{"".join(parts)}</svg>')
