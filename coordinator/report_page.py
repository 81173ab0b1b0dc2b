"""The committee report as a trading centre files it: one printable HTML page (A4).

Drawn only from the signed report body (plus the report's own signature), so the page shows
nothing the JSON does not hold. Every text that came from a person (names, reasons) is escaped;
every time is in the province's local time (+08).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from coordinator.domain.scoring import MIN_VALID_BIDS
from evalgrid.clock import local_text
from evalgrid.i18n import N_, _, html_lang, using

METHODS = {
    "comprehensive": N_("comprehensive scoring: price score + technical score, out of 100"),
    "lowest_price": N_("lowest valid price (technical criteria must be met)"),
    "works": N_("works: price score against the benchmark price + technical score"),
}
NOT_QUALIFIED = N_("did not pass the qualification review")
CATEGORIES = (N_("goods"), N_("services"), N_("works"))

WARNINGS = {"deviation": N_("score far from the committee's mean"),
            "objective_inconsistent": N_("objective criterion scored differently")}
CSS = """
body { font-family: "Noto Sans", "DejaVu Sans", sans-serif; font-size: 10.5pt; margin: 2em;
       color: #111; }
h1 { font-size: 16pt; margin: 0 0 .3em; } h2 { font-size: 12pt; margin: 1.2em 0 .4em;
  border-bottom: 1px solid #555; } h3 { font-size: 10.5pt; margin: .8em 0 .3em; }
table { border-collapse: collapse; margin: .3em 0; } td, th { border: 1px solid #888;
  padding: 2px 6px; vertical-align: top; } th { background: #eee; text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; } td.c { white-space: nowrap; }
.meta td { border: none; padding: 1px 8px 1px 0; } .verdict { font-size: 12pt; font-weight: bold;
  padding: .4em .6em; border: 2px solid #333; display: inline-block; }
.failed { border-color: #a00; color: #a00; } .muted { color: #555; } code { font-size: 9pt; }
.sign td { height: 2.2em; min-width: 12em; }
@page { size: A4; margin: 15mm 12mm; }
@media print {
  body { margin: 0; font-size: 9.5pt; } h2 { break-after: avoid; }
  table, svg, .keep { break-inside: avoid; } a { color: inherit; text-decoration: none; }
}
"""


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value))


def local(iso: object, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """An ISO time of the report in the province's time; what it was if it is not one."""
    try:
        return local_text(datetime.fromisoformat(str(iso)), fmt)
    except ValueError:
        return str(iso or "")


def _num(text: object) -> float:
    try:
        return float(Decimal(str(text)))
    except (InvalidOperation, ValueError):
        return 0.0


class _Page:
    def __init__(self, body: Mapping[str, Any]) -> None:
        self.body = body
        self.project: Mapping[str, Any] = body["project"]
        self.evaluation: Mapping[str, Any] = body["evaluation"]
        self.codes: Mapping[str, str] = body.get("bid_codes", {})
        self.names: Mapping[str, str] = body.get("bidders", {})
        self.seats: Mapping[str, str] = body.get("seat_codes", {})
        self.criteria: list[Mapping[str, Any]] = list(self.project.get("criteria", []))
        self.criterion_names = {c["id"]: c["name"] for c in self.criteria}
        self.bids: list[Mapping[str, Any]] = list(self.evaluation.get("bids", []))

    # --- labels ----------------------------------------------------------------------------

    def code(self, bidder_id: str) -> str:
        return self.codes.get(bidder_id) or bidder_id

    def bidder(self, bidder_id: str) -> str:
        name = self.names.get(bidder_id)
        return f"{esc(name)} <span class=muted>({esc(bidder_id)})</span>" if name \
            else esc(bidder_id)

    def seat(self, expert_ref: str | None) -> str:
        if not expert_ref:
            return _("all members")
        return str(self.seats.get(expert_ref, expert_ref))

    def criterion(self, criterion_id: str) -> str:
        return str(self.criterion_names.get(criterion_id, criterion_id))

    # --- sections --------------------------------------------------------------------------

    def header(self) -> str:
        p = self.project
        reps = int(p.get("tenderer_reps") or 0)
        size = int(p.get("committee_size") or 0)
        committee = f"{size}" + (" " + _("({drawn} drawn + {reps} tenderer representative(s))")
                                 .format(drawn=size - reps, reps=reps) if reps else "")
        window = p.get("window") or ["", ""]
        method = str(p.get("method"))
        category = str(p.get("category") or "")
        rows = [(N_("Project"), f"{esc(p['id'])} &middot; "
                 f"{esc(_(category) if category in CATEGORIES else category)}"),
                (N_("Window"), esc(_("{start} to {end}").format(
                    start=local(window[0]), end=local(window[1], "%H:%M")))),
                (N_("Host site"), esc(p.get("host_site"))),
                (N_("Method"), esc(_(METHODS[method]) if method in METHODS
                                   else p.get("method"))),
                (N_("Committee"), esc(committee)),
                (N_("Closed"), esc(local(self.body.get("closed_at"))))]
        meta = "".join(f"<tr><td><b>{_(k)}</b></td><td>{v}</td></tr>" for k, v in rows)
        return ("<h1>" + esc(_("Committee evaluation report: {name}").format(name=p["name"]))
                + "</h1>"
                f"<table class=meta>{meta}</table>")

    def verdict(self) -> str:
        if self.evaluation.get("failed"):
            valid = sum(1 for b in self.bids if b.get("valid"))
            return ("<p class='verdict failed'>" + _(
                "Tender failed: fewer than {min} valid bids ({valid} valid). No award is made."
            ).format(min=MIN_VALID_BIDS, valid=valid) + "</p>"
                    f"<p class=muted>{esc(self.evaluation.get('reason'))}</p>")
        ranking = list(self.evaluation.get("ranking") or [])
        if not ranking:
            return f"<p class=verdict>{_('No ranking.')}</p>"
        first = ranking[0]
        return (f"<p class=verdict>{_('Recommended (rank 1):')} {esc(self.code(first))} "
                f"&ndash; {self.bidder(first)}</p>")

    def criteria_table(self) -> str:
        if not self.criteria:
            return f"<p>{_('No scored criteria.')}</p>"
        rows = "".join(
            f"<tr><td>{esc(c['id'])}</td><td>{esc(c['name'])}</td>"
            f"<td class=n>{esc(c['max_score'])}</td>"
            f"<td>{_('objective') if c.get('objective') else _('judgement')}</td></tr>"
            for c in self.criteria)
        total = sum(_num(c["max_score"]) for c in self.criteria)
        extra = []
        if self.project.get("method") != "lowest_price" and self.project.get("price_weight"):
            extra.append(_("price weight {weight}").format(
                weight=esc(self.project["price_weight"])))
        if self.evaluation.get("benchmark_price"):
            extra.append(_("benchmark price {price}").format(
                price=esc(self.evaluation["benchmark_price"])))
        note = f"<p class=muted>{_('; ').join(extra)}{_('.')}</p>" if extra else ""
        return (f"<table><tr><th>{_('Id')}</th><th>{_('Criterion')}</th>"
                f"<th class=n>{_('Max')}</th><th>{_('Kind')}</th></tr>"
                f"{rows}<tr><td></td><td><b>{_('Technical total')}</b></td>"
                f"<td class=n><b>{total:g}</b></td><td></td></tr></table>{note}")

    def ranking_table(self) -> str:
        if self.evaluation.get("failed"):  # nothing was scored: the valid bids, and no more
            listed = "".join(
                f"<tr><td class=c>{esc(b.get('code') or self.code(b['bidder_id']))}</td>"
                f"<td>{self.bidder(b['bidder_id'])}</td><td class=n>{esc(b['price'])}</td></tr>"
                for b in self.bids if b.get("valid"))
            return (f"<table><tr><th>{_('Code')}</th><th>{_('Bidder')}</th>"
                    f"<th class=n>{_('Price')}</th></tr>{listed}</table>"
                    f"<p class=muted>{_('Valid bids; not scored, no ranking.')}</p>")
        ids = [c["id"] for c in self.criteria]
        head = "".join(f"<th class=n title='{esc(self.criterion(i))}'>{esc(i)}</th>" for i in ids)
        valid = [b for b in self.bids if b.get("valid")]
        # Only the columns the method fills: no technical score without criteria, no price
        # score or total under lowest price.
        extra = [(key, title) for key, title in (("technical", N_("Technical")),
                                                  ("price_score", N_("Price score")),
                                                  ("total", N_("Total")))
                 if (key != "technical" or ids) and any(b.get(key) for b in valid)]
        rows = []
        for b in valid:
            crit = b.get("criteria") or {}
            cells = "".join(f"<td class=n>{esc(crit.get(i, ''))}</td>" for i in ids)
            more = "".join(f"<td class=n>{'<b>' if k == 'total' else ''}{esc(b.get(k) or '')}"
                           f"{'</b>' if k == 'total' else ''}</td>" for k, _ in extra)
            rows.append(
                f"<tr><td class=n>{esc(b.get('rank') or '-')}</td>"
                f"<td class=c>{esc(b.get('code') or self.code(b['bidder_id']))}</td>"
                f"<td>{self.bidder(b['bidder_id'])}</td><td class=n>{esc(b['price'])}</td>"
                f"{cells}{more}</tr>")
        extra_head = "".join(f"<th class=n>{_(title)}</th>" for key, title in extra)
        ties = "".join(
            "<li>" + esc(_("tie between {tied}: resolved by {rule}, order {order}").format(
                tied=", ".join(self.code(x) for x in t["tied"]), rule=t["resolved_by"],
                order=", ".join(self.code(x) for x in t["order"])))
            + "</li>" for t in self.evaluation.get("ties", []))
        note = ("<p class=muted>" + _(
            "Committee score per criterion: the mean of the members' scores (the single "
            "highest and lowest dropped with more than 5 members), reported to 0.01.")
                + "</p>") if ids else ""
        return (f"<table><tr><th class=n>{_('Rank')}</th><th>{_('Code')}</th>"
                f"<th>{_('Bidder')}</th><th class=n>{_('Price')}</th>{head}{extra_head}</tr>"
                f"{''.join(rows)}</table>"
                + note + (f"<ul>{ties}</ul>" if ties else ""))

    def chart(self) -> str:
        """What the method decides on: price + technical stacked to the total (out of 100), or
        the prices themselves under lowest price. A failed tender has no chart."""
        if self.evaluation.get("failed"):
            return ""
        ranked = sorted((b for b in self.bids if b.get("rank")), key=lambda b: int(b["rank"]))
        if not ranked:
            return ""
        label_w, bar_w, row_h = 120, 420, 24
        height = 40 + row_h * len(ranked)
        parts = []
        if self.project.get("method") == "lowest_price":
            peak = max(_num(b["price"]) for b in ranked) or 1.0
            title = _("Bid prices (lower wins)")
            for i, b in enumerate(ranked):
                y = 28 + i * row_h
                w = bar_w * _num(b["price"]) / peak
                colour = "#2f7d32" if i == 0 else "#8a8a8a"
                parts.append(
                    f'<text x="0" y="{y + 14}" font-size="11">{esc(b.get("code") or "")}</text>'
                    f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="16" '
                    f'fill="{colour}"/><text x="{label_w + w + 4:.1f}" y="{y + 13}" '
                    f'font-size="11">{esc(b["price"])}</text>')
        else:
            title = _("Total score out of 100: technical + price score")
            scale = bar_w / 100
            for tick in (0, 25, 50, 75, 100):
                x = label_w + tick * scale
                parts.append(f'<line x1="{x:.1f}" y1="22" x2="{x:.1f}" y2="{height - 8}" '
                             f'stroke="#ccc"/><text x="{x:.1f}" y="{height}" font-size="9" '
                             f'text-anchor="middle">{tick}</text>')
            for i, b in enumerate(ranked):
                y = 28 + i * row_h
                tech = _num(b.get("technical")) * scale
                price = _num(b.get("price_score")) * scale
                parts.append(
                    f'<text x="0" y="{y + 14}" font-size="11">{esc(b.get("rank"))}. '
                    f'{esc(b.get("code") or "")}</text>'
                    f'<rect x="{label_w}" y="{y}" width="{tech:.1f}" height="16" '
                    f'fill="#3b6ea8"/><rect x="{label_w + tech:.1f}" y="{y}" '
                    f'width="{price:.1f}" height="16" fill="#e39b2d"/>'
                    f'<text x="{label_w + tech + price + 4:.1f}" y="{y + 13}" font-size="11">'
                    f'{esc(b.get("total") or "")}</text>')
            parts.append('<rect x="120" y="4" width="10" height="10" fill="#3b6ea8"/>'
                         f'<text x="134" y="13" font-size="10">{_("technical")}</text>'
                         '<rect x="200" y="4" width="10" height="10" fill="#e39b2d"/>'
                         f'<text x="214" y="13" font-size="10">{_("price score")}</text>')
        return (f"<h2>{_('Chart')}</h2><p class=muted>{title}</p>"
                f'<svg viewBox="0 0 {label_w + bar_w + 100} {height + 4}" width="100%" '
                f'style="max-width:{label_w + bar_w + 100}px" role="img" '
                f'aria-label="{esc(title)}">{"".join(parts)}</svg>')

    def invalid_bids(self) -> str:
        invalid = [b for b in self.bids if not b.get("valid")]
        if not invalid:
            return f"<p>{_('None: every bid passed the qualification review.')}</p>"
        reasons = {x["bidder_id"]: x.get("reason", "") for x in self.body.get("invalid_bids", [])}
        rows = "".join(
            f"<tr><td class=c>{esc(b.get('code') or self.code(b['bidder_id']))}</td>"
            f"<td>{self.bidder(b['bidder_id'])}</td><td class=n>{esc(b['price'])}</td>"
            f"<td>{esc(reasons.get(b['bidder_id']) or _(NOT_QUALIFIED))}"
            f"</td></tr>" for b in invalid)
        return (f"<table><tr><th>{_('Code')}</th><th>{_('Bidder')}</th>"
                f"<th class=n>{_('Price')}</th><th>{_('Reason')}</th></tr>{rows}</table>")

    def member_sheets(self) -> str:
        sheets = self.body.get("sheets", [])
        if self.evaluation.get("failed"):
            return f"<p>{_('Not scored: the tender failed before detailed scoring.')}</p>"
        if not self.criteria:
            return ("<p>" + _("No criteria to score under this method: each member's signed "
                              "sheet is listed under the signatures.") + "</p>")
        if not sheets:
            return f"<p>{_('No signed sheets.')}</p>"
        ids = [c["id"] for c in self.criteria]
        head = "".join(f"<th class=n>{esc(c['id'])}<br><span class=muted>{_('max')} "
                       f"{esc(c['max_score'])}</span></th>" for c in self.criteria)
        by_bid: dict[str, dict[str, dict[str, str]]] = {}
        for sheet in sheets:
            for s in sheet["scores"]:
                by_bid.setdefault(s["bidder_id"], {}).setdefault(
                    sheet["expert_ref"], {})[s["criterion_id"]] = s["score"]
        out = []
        order = sorted(sheets, key=lambda sh: self.seat(sh["expert_ref"]))
        for b in self.bids:
            if not b.get("valid") or b["bidder_id"] not in by_bid:
                continue
            members = by_bid[b["bidder_id"]]
            rows = []
            for sheet in order:
                ref = sheet["expert_ref"]
                scores = members.get(ref, {})
                total = sum(_num(scores.get(i)) for i in ids)
                rows.append(f"<tr><td>{esc(self.seat(ref))}</td>"
                            + "".join(f"<td class=n>{esc(scores.get(i, '-'))}</td>" for i in ids)
                            + f"<td class=n>{total:.2f}</td></tr>")
            crit = b.get("criteria") or {}
            rows.append(f"<tr><th>{_('Committee')}</th>"
                        + "".join(f"<th class=n>{esc(crit.get(i, ''))}</th>" for i in ids)
                        + f"<th class=n>{esc(b.get('technical') or '')}</th></tr>")
            out.append(f"<div class=keep><h3>{esc(b.get('code') or self.code(b['bidder_id']))}"
                       f" &ndash; {self.bidder(b['bidder_id'])}</h3><table><tr>"
                       f"<th>{_('Seat')}</th>{head}<th class=n>{_('Sum')}</th></tr>"
                       f"{''.join(rows)}</table></div>")
        return "".join(out)

    def warnings(self) -> str:
        items = self.evaluation.get("warnings", [])
        if not items:
            return f"<p>{_('None.')}</p>"
        returns = list(self.body.get("returned_sheets", []))
        rows = []
        for w in items:
            ref = w.get("expert_ref")
            spread = ", ".join(f"{self.seat(x['expert_ref'])} {x['score']}"
                               for x in w.get("scores", []))
            involved = {ref} if ref else {x["expert_ref"] for x in w.get("scores", [])}
            returned = [r for r in returns if r.get("expert_ref") in involved]
            if returned:
                resolution = _("; ").join(
                    _("sheet of {member} returned by the leader {time}: "
                      "&ldquo;{reason}&rdquo;, then signed again").format(
                        member=esc(self.seat(r["expert_ref"])),
                        time=esc(local(r.get("at"), "%H:%M")), reason=esc(r.get("reason")))
                    for r in returned) + (
                    _("; the final score stands") if w.get("score") or spread else "")
            else:
                resolution = _("reviewed by the committee leader; the signed score stands")
            kind = w["kind"]
            rows.append(
                f"<tr><td>{esc(_(WARNINGS[kind]) if kind in WARNINGS else kind.replace('_', ' '))}"
                "</td>"
                f"<td>{esc(self.seat(ref))}</td><td class=c>{esc(self.code(w['bidder_id']))}</td>"
                f"<td>{esc(self.criterion(w['criterion_id']))}</td>"
                f"<td class=n>{esc(w.get('score') or spread)}</td>"
                f"<td class=n>{esc(w.get('mean'))}</td><td>{resolution}</td></tr>")
        return (f"<table><tr><th>{_('Warning')}</th><th>{_('Member')}</th><th>{_('Bid')}</th>"
                f"<th>{_('Criterion')}</th><th class=n>{_('Score(s)')}</th>"
                f"<th class=n>{_('Committee mean')}</th><th>{_('Resolution')}</th>"
                f"</tr>{''.join(rows)}</table>")

    def returns(self) -> str:
        items = self.body.get("returned_sheets", [])
        if not items:
            return ""
        rows = "".join(
            f"<tr><td>{esc(local(r.get('at'), '%H:%M'))}</td><td>{esc(self.seat(r['expert_ref']))}"
            f"</td><td>{esc(r.get('reason'))}</td></tr>" for r in items)
        return (f"<h2>{_('Sheets returned by the leader')}</h2><table><tr>"
                f"<th>{_('At')}</th><th>{_('Member')}</th><th>{_('Reason')}</th></tr>"
                f"{rows}</table>")

    def signatures(self, signature: str, public_key: str) -> str:
        seals = {s["expert_ref"]: s for s in self.body.get("sheets", [])}
        leader = self.body.get("leader")
        rows = []
        for m in self.body.get("committee", []):
            ref = m["expert_ref"]
            seal = seals.get(ref, {})
            role = _("leader") if ref == leader else _("member")
            signed = _("signed") if ref in seals else esc(
                _(str(m.get("status", "")).replace("_", " ")))
            rows.append(
                f"<tr><td>{esc(self.seat(ref))}</td><td><code>{esc(ref)}</code></td>"
                f"<td>{role}</td><td>{signed}</td>"
                f"<td>{esc(local(m.get('signed_in_at'), '%H:%M')) if m.get('signed_in_at') else ''}"
                f"</td><td><code>{esc(str(seal.get('digest', ''))[:16])}</code></td></tr>")
        report_seal = ("<p>" + _(
            "Report signed by the coordinator (Ed25519): signature <code>{signature}&hellip;"
            "</code>, key <code>{key}&hellip;</code>. The JSON beside this page holds it in "
            "full; check with <code>evalgrid report verify</code>.").format(
                signature=esc(signature[:32]), key=esc(public_key[:16])) + "</p>"
                       if signature else "")
        heads = "".join(f"<th>{_(h)}</th>" for h in (
            N_("Seat"), N_("Member (opaque)"), N_("Role"), N_("Sheet"), N_("Signed in"),
            N_("Sheet digest")))
        return (f"<table><tr>{heads}</tr>"
                f"{''.join(rows)}</table>{report_seal}"
                f"<table class=sign><tr><th>{_('Committee leader')}</th>"
                f"<th>{_('Host site supervisor')}</th>"
                f"<th>{_('Date')}</th></tr><tr><td></td><td></td><td></td></tr></table>")


def render_html(body: Mapping[str, Any], *, signature: str = "", public_key: str = "",
                lang: str | None = None) -> str:
    """The whole page; `signature` and `public_key` are the report's own (hex); `lang` prints
    it in another language than the process's (`zh_CN` or `en`)."""
    with using(lang):
        return _render(body, signature, public_key)


def _render(body: Mapping[str, Any], signature: str, public_key: str) -> str:
    page = _Page(body)
    draws = body.get("supplementary_draws", 0)
    return f"""<!doctype html>
<html lang="{html_lang()}"><head><meta charset="utf-8">
<title>{esc(_("Committee report {project}").format(project=page.project["id"]))}</title>
<style>{CSS}</style></head><body>
{page.header()}
{page.verdict()}
<h2>{_("Criteria")}</h2>{page.criteria_table()}
<h2>{_("Result")}</h2>{page.ranking_table()}
{page.chart()}
<h2>{_("Invalid bids")}</h2>{page.invalid_bids()}
<h2>{_("Members' scores by seat")}</h2>{page.member_sheets()}
<h2>{_("Warnings and their resolution")}</h2>{page.warnings()}
{page.returns()}
<h2>{_("Committee and signatures")}</h2>{page.signatures(signature, public_key)}
<p class=muted>{_("Supplementary draws: {n}. All times are the province's local time (+08).")
                .format(n=esc(draws))}</p>
</body></html>
"""
