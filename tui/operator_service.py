"""What each site and city served (`Operator.ServiceStats`), on the operator console.

Key `s` on the console opens it for today (the province's local day); `p` steps through the
periods (today, the last 7 days, this month, this quarter). Rows are per site, each city
closed by its total; under the table, the selected site's workstation use by half-day. The
figures are counts from the audit trail (coordinator/domain/service_stats.py), no names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, ClassVar

from evalgrid_wire.v1 import operator_pb2
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Static

from evalgrid.i18n import N_, _
from evalgrid.wire import from_timestamp
from tui.client_errors import ClientError
from tui.footer import translate_footer
from tui.states import PROVINCE_TZ
from tui.tables import refill, selected_key

if TYPE_CHECKING:
    from tui.operator_client import OperatorClient

#: The periods `p` steps through, in order.
PERIODS: tuple[str, ...] = (N_("today"), N_("7 days"), N_("month"), N_("quarter"))


@dataclass(frozen=True)
class HalfDay:
    day: date
    half: str  # AM | PM
    workstations: int


@dataclass(frozen=True)
class SiteServiceRow:
    site_id: str
    city: str
    workstations: int
    guest_projects: int
    seat_services: int
    host_projects: int
    half_days: tuple[HalfDay, ...] = ()
    outages: int = 0
    outage_minutes: float = 0.0
    incidents: int = 0
    incident_minutes: float = 0.0
    seats_moved: int = 0

    @property
    def peak_use(self) -> int:
        return max((h.workstations for h in self.half_days), default=0)


@dataclass(frozen=True)
class CityServiceRow:
    city: str
    sites: int
    workstations: int
    guest_projects: int
    seat_services: int
    host_projects: int
    outages: int = 0
    outage_minutes: float = 0.0
    incidents: int = 0
    incident_minutes: float = 0.0


@dataclass(frozen=True)
class ServiceView:
    start: date
    end: date
    now: datetime
    sites: tuple[SiteServiceRow, ...]
    cities: tuple[CityServiceRow, ...]


def period_dates(period: str, today: date) -> tuple[date, date]:
    """The local days a period covers, ending today (month and quarter: from their first)."""
    if period == "today":
        return today, today
    if period == "7 days":
        return today - timedelta(days=6), today
    if period == "month":
        return today.replace(day=1), today
    if period == "quarter":
        return date(today.year, 3 * ((today.month - 1) // 3) + 1, 1), today
    raise ValueError(f"period: one of {', '.join(PERIODS)}, not {period!r}")


def service_from_wire(reply: operator_pb2.ServiceStatsReply) -> ServiceView:
    sites = tuple(SiteServiceRow(
        s.site_id, s.city, s.workstations, s.guest_projects, s.seat_services, s.host_projects,
        tuple(HalfDay(date.fromisoformat(h.day), h.half, h.workstations) for h in s.half_days),
        s.outages, s.outage_minutes, s.incidents, s.incident_minutes, s.seats_moved)
        for s in reply.sites)
    cities = tuple(CityServiceRow(
        c.city, c.sites, c.workstations, c.guest_projects, c.seat_services, c.host_projects,
        c.outages, c.outage_minutes, c.incidents, c.incident_minutes) for c in reply.cities)
    return ServiceView(date.fromisoformat(reply.from_day), date.fromisoformat(reply.to_day),
                       from_timestamp(reply.now), sites, cities)


def _faults(count: int, minutes: float) -> str:
    return f"{count}/{minutes:.0f}m" if count else "-"


def service_rows(view: ServiceView) -> list[tuple[str, list[str]]]:
    """Table rows: each city's sites, then the city's total (key `city:NAME`)."""
    rows: list[tuple[str, list[str]]] = []
    by_city: dict[str, list[SiteServiceRow]] = {}
    for s in view.sites:
        by_city.setdefault(s.city, []).append(s)
    totals = {c.city: c for c in view.cities}
    for city in sorted(by_city):
        for s in sorted(by_city[city], key=lambda s: s.site_id):
            rows.append((s.site_id, [
                city[:9], s.site_id, str(s.workstations), str(s.guest_projects),
                str(s.seat_services), str(s.host_projects), f"{s.peak_use}/{s.workstations}",
                _faults(s.outages, s.outage_minutes), _faults(s.incidents, s.incident_minutes),
                str(s.seats_moved or "-")]))
        c = totals.get(city)
        if c is not None and len(by_city[city]) > 1:
            rows.append((f"city:{city}", [
                city[:9], "all", str(c.workstations), str(c.guest_projects),
                str(c.seat_services), str(c.host_projects), "",
                _faults(c.outages, c.outage_minutes), _faults(c.incidents, c.incident_minutes),
                ""]))
    return rows


def half_day_text(site: SiteServiceRow, width: int = 76) -> str:
    """`S0001 workstations in use: 03-02 AM 3/4  03-02 PM 1/4` cut to `width` with a count."""
    head = _("{site} workstations in use by half-day: ").format(site=site.site_id)
    if not site.half_days:
        return head + _("none in the period")
    parts = [f"{h.day:%m-%d} {h.half} {h.workstations}/{site.workstations}"
             for h in site.half_days]
    text = head
    for i, part in enumerate(parts):
        more = " " + _("+{n} more").format(n=len(parts) - i)
        if len(text) + len(part) + 2 + (len(more) if i < len(parts) - 1 else 0) > width * 2:
            return text + more
        text += ("  " if text != head else "") + part
    return text


class ServiceScreen(ModalScreen[None]):
    """The province's service figures over a period; refreshed on each change of period."""

    DEFAULT_CSS = """
    ServiceScreen { layout: vertical; }
    ServiceScreen > Vertical { width: 100%; height: 1fr; background: $surface;
                               padding: 0 1; }
    ServiceScreen #service-head { height: 2; }
    ServiceScreen DataTable { height: 1fr; }
    ServiceScreen #service-detail { height: 3; border-top: solid $accent; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("p", "period", N_("period")),
        Binding("escape,q", "close", N_("close")),
    ]

    def __init__(self, client: OperatorClient, today: date, period: str = "today") -> None:
        super().__init__()
        translate_footer(self)
        self.client = client
        self.today = today
        self.period = period
        self.view: ServiceView | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(id="service-head")
            yield DataTable(id="service-table", cursor_type="row", zebra_stripes=True)
            yield Static(id="service-detail")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns(*(_(c) for c in (N_("City"), N_("Site"), N_("WS"), N_("Guest"),
                                           N_("Seats"), N_("Host"), N_("Peak"), N_("Outage"),
                                           N_("Incid."), N_("Moved"))))
        table.focus()
        self._load()

    def _head(self, note: str = "") -> str:
        start, end = period_dates(self.period, self.today)
        span = f"{start}" if start == end else f"{start} .. {end}"
        now = "" if self.view is None else \
            "  " + _("as of {time} +08:00").format(
                time=f"{self.view.now.astimezone(PROVINCE_TZ):%H:%M}")
        return (f"[b]{_('Service by site and city')}[/b]  {span} ({_(self.period)}){now}\n"
                + (note or _("Guest: projects served  Seats: expert-seat services  "
                             "Peak: busiest half-day")))

    @work(exclusive=True, group="service")
    async def _load(self) -> None:
        start, end = period_dates(self.period, self.today)
        head = self.query_one("#service-head", Static)
        head.update(self._head(_("loading...")))
        try:
            view: ServiceView = await self.client.service_stats(start, end)
        except ClientError as exc:
            head.update(self._head(f"[red]{str(exc)[:76]}[/red]"))
            return
        self.view = view
        head.update(self._head())
        refill(self.query_one(DataTable), service_rows(view))
        self._show_detail()

    @on(DataTable.RowHighlighted)
    def _show_detail(self) -> None:
        detail = self.query_one("#service-detail", Static)
        key = selected_key(self.query_one(DataTable))
        site = next((s for s in self.view.sites if s.site_id == key), None) \
            if self.view else None
        if site is None:
            detail.update("" if key is None else _(
                "{city}: the sum of its sites (a project served at two sites counts twice)"
            ).format(city=key.removeprefix("city:")))
            return
        detail.update(half_day_text(site))

    def action_period(self) -> None:
        self.period = PERIODS[(PERIODS.index(self.period) + 1) % len(PERIODS)]
        self._load()

    def action_close(self) -> None:
        self.dismiss(None)
