"""Projects: parties, committee make-up, window and scoring method, checked against the
rules."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from coordinator.domain.model import (
    CATEGORIES,
    EXPERT_KINDS,
    SCORING_METHODS,
    Bid,
    Category,
    Criterion,
    ExpertKind,
    Project,
    Quota,
    ScoringMethod,
    ScoringMethodName,
    Window,
)
from coordinator.domain.rules import packaged_rules
from coordinator.province.codec.fields import (
    SPECIALTY_RE,
    Errors,
    JsonDict,
    RecordError,
    Shape,
    bad_specialty,
    check_unique_id,
    dec_str,
    dt_str,
    path_at,
    present,
    read_bool,
    read_city,
    read_datetime,
    read_decimal,
    read_enum,
    read_id,
    read_int,
    read_list,
    read_money,
    read_obj,
    read_str,
)

TOTAL_POINTS = Decimal(100)
# Minimum price weight (points of 100) under comprehensive scoring, by category: the rules file.
MIN_PRICE_WEIGHT: Mapping[str, Decimal] = packaged_rules().scoring.min_price_weight
# Committee sizes likewise (the draw checks them again against the rules in force).
_RULES = packaged_rules()

_CATEGORY: dict[str, Category] = {c: c for c in CATEGORIES}
_KIND: dict[str, ExpertKind] = {k: k for k in EXPERT_KINDS}
_METHOD: dict[str, ScoringMethodName] = {m: m for m in SCORING_METHODS}


# --- projects ------------------------------------------------------------------------------

_PROJECT = Shape(
    (
        "id",
        "name",
        "host_site_id",
        "city",
        "tenderer_id",
        "category",
        "committee_size",
        "quotas",
        "window",
        "scoring",
        "bids",
    ),
    ("competent_department", "tenderer_reps", "double_blind", "large"),
)
_QUOTA = Shape(("specialty", "count"), ("kind",))
_WINDOW = Shape(("start", "end"))
_SCORING = Shape(
    ("method", "price_weight", "criteria"), ("deduction_per_point", "deviation_threshold")
)
_CRITERION = Shape(("id", "name", "max_score"), ("objective",))
_BID = Shape(("bidder_id", "price"), ("valid",))

_DEFAULT_DEDUCTION = Decimal("1")
_DEFAULT_DEVIATION = Decimal("0.30")


def project_to_dict(project: Project) -> JsonDict:
    """A registered project: parties, committee make-up, window (UTC) and scoring method."""
    scoring = project.scoring
    return {
        "id": project.id,
        "name": project.name,
        "host_site_id": project.host_site_id,
        "city": project.city,
        "tenderer_id": project.tenderer_id,
        "category": project.category,
        "committee_size": project.committee_size,
        "tenderer_reps": project.tenderer_reps,
        "large": project.large,
        "quotas": [
            {"specialty": q.specialty, "count": q.count, "kind": q.kind} for q in project.quotas
        ],
        "window": {"start": dt_str(project.window.start), "end": dt_str(project.window.end)},
        "scoring": {
            "method": scoring.method,
            "price_weight": dec_str(scoring.price_weight),
            "criteria": [
                {
                    "id": c.id,
                    "name": c.name,
                    "max_score": dec_str(c.max_score),
                    "objective": c.objective,
                }
                for c in scoring.criteria
            ],
            "deduction_per_point": dec_str(scoring.deduction_per_point),
            "deviation_threshold": dec_str(scoring.deviation_threshold),
        },
        "bids": [
            {"bidder_id": b.bidder_id, "price": dec_str(b.price), "valid": b.valid}
            for b in project.bids
        ],
        "competent_department": project.competent_department,
        "double_blind": project.double_blind,
    }


def _quotas(e: Errors, d: Mapping[str, Any]) -> list[Quota] | None:
    """The quotas, or None when any count is unusable (the committee sum is then not checked)."""
    out: list[Quota] = []
    complete = True
    seen: dict[tuple[str, str | None], int] = {}
    raw = read_list(e, d, "quotas", "")
    if "quotas" in d and isinstance(d["quotas"], list) and not raw:
        e.add("quotas", "a project needs at least one quota")
    for i, v in enumerate(raw):
        path = f"quotas[{i}]"
        qd = read_obj(e, v, path, _QUOTA)
        if qd is None:
            complete = False
            continue
        specialty = read_str(e, qd, "specialty", path)
        if specialty and SPECIALTY_RE.fullmatch(specialty) is None:
            e.add(path_at(path, "specialty"), bad_specialty(specialty))
        count = read_int(e, qd, "count", path)
        if count is not None and count < 1:
            e.add(path_at(path, "count"), f"must be at least 1: {count}")
            count = None
        kind = (
            None if qd.get("kind") is None
            else read_enum(e, qd, "kind", path, _KIND, "technical")
        )
        key = (specialty, kind)
        if specialty and key in seen:
            e.add(path, f"duplicate quota for {specialty!r} ({kind}), also at quotas[{seen[key]}]")
        seen.setdefault(key, i)
        if count is None:
            complete = False
            continue
        out.append(Quota(sys.intern(specialty), count, kind))
    return out if complete else None


def _scoring(e: Errors, value: object, category: Category | None) -> ScoringMethod | None:
    d = read_obj(e, value, "scoring", _SCORING)
    if d is None:
        return None
    pre = "scoring"
    method = read_enum(e, d, "method", pre, _METHOD, None)
    weight = read_decimal(e, d, "price_weight", pre)
    if weight is not None and not Decimal(0) <= weight <= TOTAL_POINTS:
        e.add("scoring.price_weight", f"must be between 0 and 100 points: {weight}")
        weight = None
    criteria: list[Criterion] = []
    seen: dict[str, str] = {}
    points_known = True
    for i, v in enumerate(read_list(e, d, "criteria", pre)):
        path = f"scoring.criteria[{i}]"
        cd = read_obj(e, v, path, _CRITERION)
        if cd is None:
            points_known = False
            continue
        crit_id = read_id(e, cd, "id", path)
        check_unique_id(e, seen, crit_id, path_at(path, "id"), "criterion")
        max_score = read_decimal(e, cd, "max_score", path)
        if max_score is not None and max_score <= 0:
            e.add(path_at(path, "max_score"), f"must be positive: {max_score}")
            max_score = None
        if max_score is None:
            points_known = False
            continue
        crit_name = read_str(e, cd, "name", path)
        objective = read_bool(e, cd, "objective", path)
        criteria.append(Criterion(crit_id, crit_name, max_score, objective))
    deduction = read_decimal(e, d, "deduction_per_point", pre, _DEFAULT_DEDUCTION)
    if deduction is not None and deduction <= 0:
        e.add("scoring.deduction_per_point", f"must be positive: {deduction}")
    threshold = read_decimal(e, d, "deviation_threshold", pre, _DEFAULT_DEVIATION)
    if threshold is not None and not Decimal(0) < threshold <= 1:
        e.add("scoring.deviation_threshold", f"must be above 0 and at most 1: {threshold}")

    if method in ("comprehensive", "works") and weight is not None and points_known:
        total = weight + sum((c.max_score for c in criteria), Decimal(0))
        if total != TOTAL_POINTS:
            e.add(
                "scoring",
                f"price_weight ({weight}) + criteria max_score ({total - weight}) must total "
                f"100 points, got {total}",
            )
    if (
        method == "comprehensive"
        and weight is not None
        and category is not None
        and category in MIN_PRICE_WEIGHT
    ):
        least = MIN_PRICE_WEIGHT[category]
        if weight < least:
            e.add(
                "scoring.price_weight",
                f"{category}: price weight must be at least {least} of 100 points, got {weight}",
            )
    if method == "works" and category is not None and category != "works":
        e.add("scoring.method", f"the works method applies to works projects only, not {category}")
    if method is None or weight is None or deduction is None or threshold is None:
        return None
    return ScoringMethod(method, weight, tuple(criteria), deduction, threshold)


def project_from_dict(data: object) -> Project:
    """Validate and build a project; raises `RecordError` listing every problem.

    Checks that need other records (the host site, the companies) or the expert pool (how many
    technical and economic members) belong to the importer and the committee rules.
    """
    e = Errors()
    d = read_obj(e, data, "", _PROJECT)
    if d is None:
        raise RecordError(e.items)
    project_id = read_id(e, d, "id", "")
    name = read_str(e, d, "name", "")
    host_site_id = read_id(e, d, "host_site_id", "")
    city = read_city(e, d, "city", "")
    tenderer_id = read_id(e, d, "tenderer_id", "")
    category: Category | None = read_enum(e, d, "category", "", _CATEGORY, None)

    large = read_bool(e, d, "large", "")
    size = read_int(e, d, "committee_size", "")
    if size is not None:
        least, least_large = _RULES.min_committee, _RULES.min_large_committee
        if size < least or size % 2 == 0:
            e.add("committee_size", f"must be odd and at least {least}: {size}")
            size = None
        elif large and size < least_large:
            e.add("committee_size", f"a large, complex purchase needs at least {least_large} "
                                    f"members: {size}")
    reps = read_int(e, d, "tenderer_reps", "", 0)
    if reps is not None and reps < 0:
        e.add("tenderer_reps", f"must not be negative: {reps}")
        reps = None
    quotas = _quotas(e, d)
    if size is not None and reps is not None and quotas:
        drawn = sum(q.count for q in quotas)
        if drawn + reps != size:
            e.add(
                "quotas",
                f"quota counts ({drawn}) + tenderer_reps ({reps}) must equal "
                f"committee_size ({size})",
            )

    window: Window | None = None
    if "window" in d:
        wd = read_obj(e, d["window"], "window", _WINDOW)
        if wd is not None:
            start = read_datetime(e, wd, "start", "window")
            end = read_datetime(e, wd, "end", "window")
            if start is not None and end is not None:
                if end <= start:
                    e.add("window.end", f"must be after window.start ({dt_str(start)})")
                window = Window(start, end)
    scoring = _scoring(e, d["scoring"], category) if "scoring" in d else None

    bids: list[Bid] = []
    seen_bidders: dict[str, int] = {}
    raw_bids = read_list(e, d, "bids", "")
    if "bids" in d and isinstance(d["bids"], list) and not raw_bids:
        e.add("bids", "a project needs at least one bid")
    for i, v in enumerate(raw_bids):
        path = f"bids[{i}]"
        bd = read_obj(e, v, path, _BID)
        if bd is None:
            continue
        bidder = read_id(e, bd, "bidder_id", path)
        if bidder and bidder in seen_bidders:
            first = seen_bidders[bidder]
            e.add(f"{path}.bidder_id", f"duplicate bidder {bidder!r}, also at bids[{first}]")
        elif bidder and bidder == tenderer_id:
            e.add(f"{path}.bidder_id", f"the tenderer {bidder!r} cannot bid on its own project")
        seen_bidders.setdefault(bidder, i)
        price = read_money(e, bd, "price", path)
        valid = read_bool(e, bd, "valid", path, True)
        if price is not None:
            bids.append(Bid(bidder, price, valid))

    department = read_str(e, d, "competent_department", "", empty_ok=True)
    double_blind = read_bool(e, d, "double_blind", "")
    e.check()
    return Project(
        id=project_id,
        name=name,
        host_site_id=host_site_id,
        city=city,
        tenderer_id=tenderer_id,
        category=present(category),
        committee_size=present(size),
        quotas=tuple(present(quotas)),
        window=present(window),
        scoring=present(scoring),
        bids=tuple(bids),
        competent_department=department,
        tenderer_reps=present(reps),
        double_blind=double_blind,
        large=large,
    )
