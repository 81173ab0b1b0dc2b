"""The province as plain, immutable data: sites, experts, companies, projects.

Everything the rules, the draw and scoring need is here and nothing else: no I/O, no Redis,
no gRPC. Records are frozen so a draw's inputs cannot change under it, and hashable so they
can sit in sets and be digested canonically.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Literal, NamedTuple

Category = Literal["works", "goods", "services"]
ExpertKind = Literal["technical", "economic"]
ExpertStatus = Literal["active", "suspended", "blacklisted", "retired"]
SiteRole = Literal["host", "guest"]
ScoringMethodName = Literal["comprehensive", "lowest_price", "works"]

CATEGORIES: tuple[Category, ...] = ("works", "goods", "services")
EXPERT_KINDS: tuple[ExpertKind, ...] = ("technical", "economic")
EXPERT_STATUSES: tuple[ExpertStatus, ...] = ("active", "suspended", "blacklisted", "retired")
SITE_ROLES: tuple[SiteRole, ...] = ("host", "guest")
SCORING_METHODS: tuple[ScoringMethodName, ...] = ("comprehensive", "lowest_price", "works")

# Close relatives in the sense of the avoidance rules: spouse, direct line, collateral within
# three generations, close in-laws.
RELATIONS: tuple[str, ...] = (
    "spouse",
    "parent",
    "child",
    "grandparent",
    "grandchild",
    "sibling",
    "uncle_aunt",
    "nephew_niece",
    "cousin",
    "parent_in_law",
    "child_in_law",
    "sibling_in_law",
)


@dataclass(frozen=True, slots=True)
class Window:
    """An evaluation window, [start, end) in aware UTC datetimes."""

    start: datetime
    end: datetime

    def overlaps(self, other: Window) -> bool:
        return self.start < other.end and other.start < self.end

    @property
    def start_ts(self) -> int:
        return int(self.start.timestamp())

    @property
    def end_ts(self) -> int:
        return int(self.end.timestamp())


# --- sites ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Workstation:
    id: str
    site_id: str
    venue_id: str
    room_id: str
    attributes: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Room:
    id: str
    venue_id: str
    name: str
    workstations: tuple[Workstation, ...]


@dataclass(frozen=True, slots=True)
class Venue:
    """An evaluation area at a site: where drawn experts sit, one per booth."""

    id: str
    site_id: str
    name: str
    city: str
    rooms: tuple[Room, ...]

    @property
    def workstations(self) -> tuple[Workstation, ...]:
        return tuple(ws for room in self.rooms for ws in room.workstations)


@dataclass(frozen=True, slots=True)
class District:
    """A district (or county) of a city: its name and the other ways it is written."""

    name: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class City:
    """A city of the registry. Every city a record names must be one of these (by name or
    alias: "杭州", "杭州市" and "Hangzhou" are one city); the names also let company-name
    keys drop administrative prefixes (names.py)."""

    name: str
    aliases: tuple[str, ...] = ()
    districts: tuple[District, ...] = ()

    @property
    def spellings(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(frozen=True, slots=True)
class Site:
    """A trading centre that runs an agent: hosts projects, guests experts, or both."""

    id: str
    name: str
    city: str
    roles: frozenset[SiteRole]
    venues: tuple[Venue, ...]


# --- people and companies ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Person:
    """A natural person named by a company (legal representative, principal, key staff)."""

    person_id: str
    name: str


@dataclass(frozen=True, slots=True)
class CompanyRef:
    """A company as an expert database records it: a free-text name, maybe a credit code.

    Resolved to a registry company through the normalised name or the unified social credit
    code, so spelling variants still match.
    """

    name: str
    credit_code: str | None = None


@dataclass(frozen=True, slots=True)
class Company:
    id: str
    name: str
    credit_code: str | None
    group_id: str | None
    legal_rep: Person
    principal: Person | None = None
    key_staff: tuple[Person, ...] = ()

    @property
    def people(self) -> tuple[Person, ...]:
        extra = (self.principal,) if self.principal is not None else ()
        return (self.legal_rep, *extra, *self.key_staff)


@dataclass(frozen=True, slots=True)
class Employment:
    company: CompanyRef
    start: date
    end: date | None = None  # None: still employed


@dataclass(frozen=True, slots=True)
class Relative:
    person_id: str
    name: str
    relation: str


@dataclass(frozen=True, slots=True)
class Penalty:
    on: date
    reason: str


@dataclass(frozen=True, slots=True)
class Expert:
    id: str
    name: str
    id_number: str  # personal data: sealed at rest
    phone: str  # personal data: sealed at rest
    city: str  # where the expert lives
    work_city: str
    birth_date: date
    kind: ExpertKind
    specialties: tuple[str, ...]
    status: ExpertStatus = "active"
    employments: tuple[Employment, ...] = ()
    interests: tuple[CompanyRef, ...] = ()
    relatives: tuple[Relative, ...] = ()
    departments: tuple[str, ...] = ()  # government departments the expert works for
    declared_conflicts: tuple[CompanyRef, ...] = ()
    penalties: tuple[Penalty, ...] = ()
    catchment: tuple[str, ...] = ()  # cities whose venues the expert serves; () = own city

    @property
    def catchment_cities(self) -> tuple[str, ...]:
        return self.catchment or (self.city,)


# --- projects ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Quota:
    """So many members whose specialty code falls under `specialty` (a code prefix)."""

    specialty: str
    count: int
    kind: ExpertKind | None = None


@dataclass(frozen=True, slots=True)
class Criterion:
    id: str
    name: str
    max_score: Decimal
    objective: bool = False


@dataclass(frozen=True, slots=True)
class ScoringMethod:
    method: ScoringMethodName
    price_weight: Decimal  # points for price (comprehensive / works)
    criteria: tuple[Criterion, ...]
    deduction_per_point: Decimal = Decimal("1")  # works: points off per % of deviation
    deviation_threshold: Decimal = Decimal("0.30")  # relative to the criterion's maximum


@dataclass(frozen=True, slots=True)
class Bid:
    bidder_id: str  # a Company id
    price: Decimal
    valid: bool = True  # passed the qualification review


class Parties(NamedTuple):
    """What rule "party" reads of a project: its parties and competent department. A plain
    tuple, so a day plan's batch sends 20,000 of them to its workers in milliseconds (a whole
    `Project`, slotted dataclasses down to its bids, took 200 us each to pickle)."""

    id: str
    tenderer_id: str
    bidder_ids: tuple[str, ...]
    competent_department: str


@dataclass(frozen=True, slots=True)
class Project:
    id: str
    name: str
    host_site_id: str
    city: str
    tenderer_id: str  # a Company id
    category: Category
    committee_size: int
    quotas: tuple[Quota, ...]
    window: Window
    scoring: ScoringMethod
    bids: tuple[Bid, ...]
    competent_department: str = ""
    tenderer_reps: int = 0  # seats filled by the tenderer's own representatives
    double_blind: bool = False
    large: bool = False  # large, complex purchase: committee of 7 or more

    @property
    def bidder_ids(self) -> tuple[str, ...]:
        return tuple(b.bidder_id for b in self.bids)

    @property
    def parties(self) -> Parties:
        return Parties(self.id, self.tenderer_id, self.bidder_ids, self.competent_department)

    @property
    def drawn_seats(self) -> int:
        """Members drawn from the pool (the tenderer's representatives are not drawn)."""
        return self.committee_size - self.tenderer_reps


@dataclass(frozen=True, slots=True)
class Province:
    """Everything imported: the registry the coordinator draws from."""

    sites: tuple[Site, ...] = ()
    experts: tuple[Expert, ...] = ()
    companies: tuple[Company, ...] = ()
    projects: tuple[Project, ...] = ()
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    cities: tuple[City, ...] = ()


# --- history that eligibility depends on ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sitting:
    """An expert's past or booked session: feeds cool-off, overlap and workload rules."""

    expert_id: str
    project_id: str
    tenderer_id: str
    window: Window


@dataclass(frozen=True, slots=True)
class ConductBar:
    """An expert barred from draws on the days [start, end] for their conduct.

    `kind` names the rule (e.g. "no_show_suspension", "late_decline_cool_off", "sanction"),
    `evidence` the audit entries (seq numbers) the bar rests on.
    """

    expert_id: str
    kind: str
    start: date
    end: date
    reason: str
    evidence: tuple[int, ...] = ()

    def covers(self, day: date) -> bool:
        return self.start <= day <= self.end
