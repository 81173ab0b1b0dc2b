"""The conflict index: party-based recusal as set look-ups, not a scan of the pool.

A project has a handful of parties (tenderer and bidders) and a pool has tens of thousands of
experts, so the index is inverted once: from what a party is known by (normalised name, credit
code, the people it names, its department) to the experts tied to it. Screening a project is then
a few dictionary look-ups whose cost depends on the number of parties and matches, never on the
pool size.

Keys: a company reference (an expert's employer, interest or declared conflict) is indexed under
"n:<normalised name>" and, when it has a credit code, "c:<normalised code>". A project party is
expanded to its corporate group (a group counts as one party) and every member's name and code
keys are looked up. References are kept unresolved at build time so a company registered after
the index was built still matches by name or code.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date

from coordinator.domain.model import City, Company, CompanyRef, Expert, Parties, Project
from coordinator.domain.names import (
    PROVINCES,
    Places,
    normalise_company_name,
    normalise_credit_code,
    normalise_department,
    reference_keys,
)
from coordinator.domain.rules import Rules

REASON_CODES: tuple[str, ...] = (
    "employer",  # employed by a party within the look-back
    "interest",  # economic interest in a party
    "declared",  # declared a conflict with a party
    "group",  # one of the above with another member of a party's corporate group
    "relative",  # close relative of a party's legal rep, principal or key staff
    "department",  # works for the competent or supervising department
)


@dataclass(frozen=True, slots=True, order=True)
class Reason:
    """Why an expert may not sit: a short code for counting and a detail for people."""

    code: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}" if self.detail else self.code


def years_before(day: date, years: int) -> date:
    """The same calendar day `years` earlier (29 Feb becomes 28 Feb)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def registry_places(cities: Iterable[City]) -> Places:
    """The provinces with every spelling of the registry's cities and their districts."""
    names = [n for c in cities for n in (*c.spellings,
                                          *(x for d in c.districts for x in (d.name, *d.aliases)))]
    return PROVINCES | Places.of(names)


def ref_keys(ref: CompanyRef, places: Places = PROVINCES) -> tuple[str, ...]:
    """The index keys of an expert's company reference (`places`: see names.py)."""
    keys = ["n:" + name for name in reference_keys(ref.name, places)]
    code = normalise_credit_code(ref.credit_code)
    if code:
        keys.append("c:" + code)
    return tuple(keys)


def company_keys(company: Company, places: Places = PROVINCES) -> tuple[str, ...]:
    """The index keys a registry company is known by (its one name key, and its code)."""
    keys: list[str] = []
    name = normalise_company_name(company.name, places)
    if name:
        keys.append("n:" + name)
    code = normalise_credit_code(company.credit_code)
    if code:
        keys.append("c:" + code)
    return tuple(keys)


def party_key(company: Company) -> str:
    """A group counts as one party: its key is the group's, else the company's own."""
    return f"g:{company.group_id}" if company.group_id else f"c:{company.id}"


@dataclass(frozen=True, slots=True)
class _Tie:
    expert_id: str
    start: date | None  # employment only
    end: date | None  # employment only; None: still employed


@dataclass(frozen=True, slots=True)
class ConflictIndex:
    """Inverted indexes from what parties are known by to the experts tied to them."""

    name_to_companies: Mapping[str, frozenset[str]]
    code_to_company: Mapping[str, str]
    company_party: Mapping[str, str]
    party_members: Mapping[str, tuple[str, ...]]
    keys_by_company: Mapping[str, tuple[str, ...]]
    companies: Mapping[str, Company]
    employments: Mapping[str, tuple[_Tie, ...]]
    interests: Mapping[str, tuple[str, ...]]
    declared: Mapping[str, tuple[str, ...]]
    relatives: Mapping[str, tuple[tuple[str, str], ...]]  # person id -> (expert id, relation)
    departments: Mapping[str, tuple[str, ...]]
    look_back_years: int
    places: Places = PROVINCES

    @classmethod
    def build(
        cls, experts: Iterable[Expert], companies: Iterable[Company], rules: Rules,
        places: Places = PROVINCES,
    ) -> ConflictIndex:
        """Build every index in one pass over experts and companies: O(experts + ties).

        `places`: the place names enterprise names may start with (the registry's cities and
        districts with the provinces), dropped from name keys on both sides of a match."""
        names: dict[str, set[str]] = defaultdict(set)
        codes: dict[str, str] = {}
        party_of: dict[str, str] = {}
        members: dict[str, list[str]] = defaultdict(list)
        keys_of: dict[str, tuple[str, ...]] = {}
        by_id: dict[str, Company] = {}
        for company in companies:
            by_id[company.id] = company
            keys_of[company.id] = company_keys(company, places)
            name = normalise_company_name(company.name, places)
            if name:
                names[name].add(company.id)
            code = normalise_credit_code(company.credit_code)
            if code:
                codes[code] = company.id
            key = party_key(company)
            party_of[company.id] = key
            members[key].append(company.id)

        employments: dict[str, list[_Tie]] = defaultdict(list)
        interests: dict[str, list[str]] = defaultdict(list)
        declared: dict[str, list[str]] = defaultdict(list)
        relatives: dict[str, list[tuple[str, str]]] = defaultdict(list)
        departments: dict[str, list[str]] = defaultdict(list)
        counted = rules.relations
        for expert in experts:
            for job in expert.employments:
                tie = _Tie(expert.id, job.start, job.end)
                for key in ref_keys(job.company, places):
                    employments[key].append(tie)
            for ref in expert.interests:
                for key in ref_keys(ref, places):
                    interests[key].append(expert.id)
            for ref in expert.declared_conflicts:
                for key in ref_keys(ref, places):
                    declared[key].append(expert.id)
            for rel in expert.relatives:
                if rel.relation in counted:
                    relatives[rel.person_id].append((expert.id, rel.relation))
            for dept in expert.departments:
                key = normalise_department(dept)
                if key:
                    departments[key].append(expert.id)
        return cls(
            name_to_companies={k: frozenset(v) for k, v in names.items()},
            code_to_company=codes,
            company_party=party_of,
            party_members={k: tuple(sorted(v)) for k, v in members.items()},
            keys_by_company=keys_of,
            companies=by_id,
            employments={k: tuple(v) for k, v in employments.items()},
            interests={k: tuple(v) for k, v in interests.items()},
            declared={k: tuple(v) for k, v in declared.items()},
            relatives={k: tuple(v) for k, v in relatives.items()},
            departments={k: tuple(v) for k, v in departments.items()},
            look_back_years=rules.look_back_years,
            places=places,
        )

    def resolve(self, ref: CompanyRef) -> frozenset[str]:
        """Registry company ids a free-text reference may denote (by code, and by name)."""
        found: set[str] = set()
        code = normalise_credit_code(ref.credit_code)
        if code and code in self.code_to_company:
            found.add(self.code_to_company[code])
        for name in reference_keys(ref.name, self.places):
            found |= self.name_to_companies.get(name, frozenset())
        return frozenset(found)

    def _party_members(
        self, project: Project | Parties, companies_by_id: Mapping[str, Company]
    ) -> list[tuple[Company, str, str, tuple[str, ...]]]:
        """(party, role, member id, member keys) for each member of each party's group."""
        out: list[tuple[Company, str, str, tuple[str, ...]]] = []
        roles = [(project.tenderer_id, "tenderer")] + [(b, "bidder") for b in project.bidder_ids]
        for company_id, role in roles:
            party = companies_by_id.get(company_id)
            if party is None:
                raise KeyError(f"project {project.id}: unknown company {company_id!r} ({role})")
            known = self.companies.get(party.id) is party  # as indexed: its keys are ready
            keys = self.keys_by_company[party.id] if known else company_keys(party, self.places)
            out.append((party, role, party.id, keys))
            for member_id in self.party_members.get(party_key(party), ()):
                if member_id != party.id:
                    out.append((party, role, member_id, self.keys_by_company.get(member_id, ())))
        return out

    def _ties(
        self, project: Project | Parties, companies_by_id: Mapping[str, Company], today: date
    ) -> Iterator[tuple[str, str, str]]:
        """(expert id, reason code, detail) of every tie to the project's parties (details are
        one concatenation each: callers wanting ids alone build no `Reason`)."""
        since = years_before(today, self.look_back_years)
        for party, role, member_id, keys in self._party_members(project, companies_by_id):
            via_group = member_id != party.id
            where = f"{role} {party.id}" + (f" via group member {member_id}" if via_group else "")
            for key in keys:
                for tie in self.employments.get(key, ()):
                    start_ok = tie.start is None or tie.start <= today
                    if start_ok and (tie.end is None or tie.end >= since):
                        yield (
                            tie.expert_id,
                            "group" if via_group else "employer",
                            "employed by " + where,
                        )
                for expert_id in self.interests.get(key, ()):
                    yield (
                        expert_id,
                        "group" if via_group else "interest",
                        "economic interest in " + where,
                    )
                for expert_id in self.declared.get(key, ()):
                    yield (
                        expert_id,
                        "group" if via_group else "declared",
                        "declared conflict with " + where,
                    )
            if not via_group:
                for person in party.people:
                    for expert_id, relation in self.relatives.get(person.person_id, ()):
                        yield (
                            expert_id,
                            "relative",
                            f"{relation} of {person.person_id} ({role} {party.id})",
                        )
        if project.competent_department:
            dept = normalise_department(project.competent_department)
            for expert_id in self.departments.get(dept, ()):
                yield expert_id, "department", f"works for {project.competent_department}"

    def ineligible_for(
        self, project: Project | Parties, companies_by_id: Mapping[str, Company], today: date
    ) -> dict[str, list[Reason]]:
        """Experts barred from `project` by its parties, with every reason that applies.

        Cost: O(parties x group size + matching ties), independent of the pool size.
        Employment counts if it overlaps [today - look_back_years, today].
        """
        found: dict[str, set[Reason]] = defaultdict(set)
        for expert_id, code, detail in self._ties(project, companies_by_id, today):
            found[expert_id].add(Reason(code, detail))
        return {expert_id: sorted(reasons) for expert_id, reasons in found.items()}

    def ineligible_ids(
        self, project: Project | Parties, companies_by_id: Mapping[str, Company], today: date
    ) -> set[str]:
        """The experts `ineligible_for` names, without building their reasons."""
        return {expert_id for expert_id, _, _ in self._ties(project, companies_by_id, today)}
