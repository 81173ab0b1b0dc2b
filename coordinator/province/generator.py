"""A synthetic but realistic province, reproducible from a seed.

Demos, tests and benchmarks need a registry with the texture of real data: cities of uneven size,
sites that host, guest or both, experts with spelling-variant employers, relatives on bidders'
staff, penalties, people past the age limit, and a day of projects whose committees the pool can
actually fill. Everything derives from `random.Random` seeded per section, so the same seed gives
the same province and changing one size does not reshuffle unrelated sections.

Sizes scale linearly (no pairwise loops), so the national size (`SCALES["national"]`: 300,000
experts, 3,000 sites, 30,000 workstations, 1,000,000 conflict relations, 20,000 projects on one
day) generates in about half a minute on one core.

Windows. A province's day fits in two windows (09:00-12:00 and 14:00-17:30 local). When the
day's committees would need more than half the workstations in each of them, the morning
(08:00-12:00) and the afternoon (13:00-17:00) are cut into k equal slots instead (k up to 4: one
hour each at the national size, where 20,000 committees share 30,000 workstations), so that a
workstation serves several committees a day and an expert one per half-day (the workload cap).
"""

from __future__ import annotations

import math
import random
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal

from coordinator.domain.model import (
    RELATIONS,
    Bid,
    Category,
    City,
    Company,
    CompanyRef,
    Criterion,
    District,
    Employment,
    Expert,
    ExpertKind,
    ExpertStatus,
    Penalty,
    Person,
    Project,
    Province,
    Quota,
    Relative,
    Room,
    ScoringMethod,
    ScoringMethodName,
    Site,
    SiteRole,
    Venue,
    Window,
    Workstation,
)
from coordinator.domain.names import PROVINCES, Places, normalise_company_name

__all__ = [
    "AGE_LIMIT",
    "CITY_NAMES",
    "ECONOMIC_SPECIALTY",
    "LOCAL_TZ",
    "SCALES",
    "SPECIALTY_TREE",
    "count_relations",
    "generate_province",
    "name_variant",
]

# The named sizes of `evalgrid province generate --scale`: keyword arguments of generate_province.
SCALES: dict[str, dict[str, int]] = {
    "small": {"cities": 6, "sites": 18, "workstations": 360, "experts": 3000, "companies": 600,
              "projects": 24},
    "province": {"cities": 16, "sites": 150, "workstations": 3000, "experts": 20000,
                 "companies": 4000, "projects": 200},
    "national": {"cities": 300, "sites": 3000, "workstations": 30000, "experts": 300000,
                 "companies": 60000, "projects": 20000, "relations": 1_000_000},
}  # fmt: skip
SEATS_PER_PROJECT = 5.4  # expected committee seats drawn per generated project
SLOT_LOAD = 0.5  # the share of workstations a window's committees may need before slots split
MAX_SLOTS = 4  # per half-day

CITY_NAMES: tuple[str, ...] = (
    "Hangzhou",
    "Ningbo",
    "Wenzhou",
    "Shaoxing",
    "Huzhou",
    "Jiaxing",
    "Jinhua",
    "Quzhou",
    "Zhoushan",
    "Taizhou",
    "Lishui",
    "Yiwu",
    "Cixi",
    "Yueqing",
    "Zhuji",
    "Haining",
)
PROVINCE_NAME = "Zhejiang"
#: How the cities are also written: Chinese, with and without 市, and old Latin spellings;
#: and some of their districts (区/县), for the registry in cities.jsonl.
CITY_ALIASES: dict[str, tuple[str, ...]] = {
    "Hangzhou": ("杭州", "杭州市", "Hangchow"), "Ningbo": ("宁波", "宁波市", "Ningpo"),
    "Wenzhou": ("温州", "温州市", "Wenchow"), "Shaoxing": ("绍兴", "绍兴市"),
    "Huzhou": ("湖州", "湖州市"), "Jiaxing": ("嘉兴", "嘉兴市"), "Jinhua": ("金华", "金华市"),
    "Quzhou": ("衢州", "衢州市"), "Zhoushan": ("舟山", "舟山市"), "Taizhou": ("台州", "台州市"),
    "Lishui": ("丽水", "丽水市"), "Yiwu": ("义乌", "义乌市"), "Cixi": ("慈溪", "慈溪市"),
    "Yueqing": ("乐清", "乐清市"), "Zhuji": ("诸暨", "诸暨市"), "Haining": ("海宁", "海宁市"),
}
CITY_DISTRICTS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "Hangzhou": (("Shangcheng", ("上城区",)), ("Gongshu", ("拱墅区",)), ("Xihu", ("西湖区",)),
                 ("Binjiang", ("滨江区",)), ("Xiaoshan", ("萧山区",)), ("Yuhang", ("余杭区",))),
    "Ningbo": (("Haishu", ("海曙区",)), ("Jiangbei", ("江北区",)), ("Yinzhou", ("鄞州区",))),
    "Wenzhou": (("Lucheng", ("鹿城区",)), ("Longwan", ("龙湾区",)), ("Ouhai", ("瓯海区",))),
}
LOCAL_TZ = timezone(timedelta(hours=8), "CST")
AGE_LIMIT = 70  # experts past it may still be on file; eligibility must catch them
ECONOMIC_SPECIALTY = "S.05"

# A fixed slice of the national classification: works, goods, services, then two levels.
SPECIALTY_TREE: tuple[tuple[str, str], ...] = (
    ("W", "Works"),
    ("W.01", "Building construction"),
    ("W.01.01", "Civil and structural"),
    ("W.01.02", "Decoration and fit-out"),
    ("W.01.03", "Building services installation"),
    ("W.02", "Municipal works"),
    ("W.02.01", "Roads and bridges"),
    ("W.02.02", "Water supply and drainage"),
    ("W.02.03", "Landscaping"),
    ("W.03", "Water conservancy"),
    ("W.03.01", "Hydraulic structures"),
    ("W.03.02", "River management"),
    ("W.04", "Transport infrastructure"),
    ("W.04.01", "Highways"),
    ("W.04.02", "Rail transit"),
    ("W.04.03", "Ports and waterways"),
    ("W.05", "Power and energy"),
    ("W.05.01", "Power transmission"),
    ("W.05.02", "New energy"),
    ("G", "Goods"),
    ("G.01", "Information technology"),
    ("G.01.01", "Computers and servers"),
    ("G.01.02", "Network equipment"),
    ("G.01.03", "Software"),
    ("G.02", "Medical equipment"),
    ("G.02.01", "Imaging"),
    ("G.02.02", "Laboratory"),
    ("G.02.03", "Medical consumables"),
    ("G.03", "Vehicles and machinery"),
    ("G.03.01", "Vehicles"),
    ("G.03.02", "Construction machinery"),
    ("G.04", "Office supplies and furniture"),
    ("G.04.01", "Furniture"),
    ("G.04.02", "Office equipment"),
    ("S", "Services"),
    ("S.01", "Engineering consulting"),
    ("S.01.01", "Design"),
    ("S.01.02", "Construction supervision"),
    ("S.01.03", "Survey"),
    ("S.02", "IT services"),
    ("S.02.01", "System integration"),
    ("S.02.02", "Operations and maintenance"),
    ("S.03", "Property and facility services"),
    ("S.03.01", "Property management"),
    ("S.03.02", "Cleaning and security"),
    ("S.04", "Legal and professional services"),
    ("S.04.01", "Legal"),
    ("S.04.02", "Auditing"),
    ("S.05", "Economics"),
    ("S.05.01", "Cost engineering"),
    ("S.05.02", "Finance"),
    ("S.05.03", "Tendering and procurement law"),
    ("S.05.04", "Accounting"),
)

_CLASS_OF: dict[Category, str] = {"works": "W", "goods": "G", "services": "S"}
_SURNAMES = (
    "Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou", "Xu", "Sun",
    "Ma", "Zhu", "Hu", "Guo", "He", "Lin", "Luo", "Gao", "Zheng", "Liang", "Xie", "Song", "Tang",
    "Han", "Feng", "Deng", "Cao", "Peng", "Zeng", "Xiao", "Tian", "Dong", "Pan", "Yuan", "Cai",
    "Jiang", "Yu", "Du", "Ye", "Cheng", "Wei", "Su", "Lu", "Ding", "Ren", "Shen", "Yao", "Fang",
)  # fmt: skip
_GIVEN = (
    "Wei", "Fang", "Min", "Jing", "Li", "Qiang", "Lei", "Jun", "Yang", "Yong", "Yan", "Jie",
    "Juan", "Tao", "Ming", "Chao", "Xiu", "Xia", "Ping", "Gang", "Hui", "Hong", "Hua", "Xin",
    "Bin", "Bo", "Ning", "Peng", "Hao", "Yu", "Lin", "Feng", "Qing", "Dan", "Kai", "Rui", "Ting",
    "Zhen", "Long", "Hai", "Lan", "Mei", "Shan", "Wen", "Yi", "Zhi", "Cheng", "Jian", "Xue",
)  # fmt: skip
_BRAND_SYLLABLES = (
    "heng", "da", "xin", "tai", "hua", "sheng", "long", "feng", "yuan", "cheng", "jia", "rui",
    "kang", "tong", "hong", "jin", "mei", "an", "bo", "chuang", "de", "fu", "guang", "hai", "ke",
    "li", "ming", "pu", "qi", "run", "shun", "tian", "wei", "xiang", "yi", "zhong", "hao", "lian",
    "sen", "yao",
)  # fmt: skip
_INDUSTRIES: dict[Category, tuple[str, ...]] = {
    "works": (
        "Construction Engineering",
        "Municipal Engineering",
        "Water Conservancy Engineering",
        "Road and Bridge Construction",
        "Decoration Engineering",
        "Electric Power Engineering",
        "Installation Engineering",
        "Landscape Engineering",
    ),
    "goods": (
        "Medical Equipment",
        "Information Technology",
        "Office Furniture",
        "Machinery",
        "Electronics",
        "Automobile Trading",
        "Laboratory Instruments",
        "Network Technology",
    ),
    "services": (
        "Engineering Consulting",
        "Property Management",
        "Project Management",
        "Cost Consulting",
        "Security Services",
        "Environmental Services",
        "Information Services",
        "Surveying and Mapping",
    ),
}
_SUFFIXES = ("Co., Ltd.", "Co.,Ltd.", "Co Ltd", "Company Limited", "CO., LTD.", "Co. Ltd")
_INSTITUTIONS = (
    "University",
    "University of Technology",
    "Institute of Architectural Design",
    "People's Hospital",
    "Vocational and Technical College",
    "Academy of Building Research",
    "Municipal Design Institute",
    "Water Resources Research Institute",
)
_BUREAUS = (
    "Housing and Urban-Rural Development Bureau",
    "Transportation Bureau",
    "Water Resources Bureau",
    "Education Bureau",
    "Health Commission",
    "Finance Bureau",
    "Natural Resources and Planning Bureau",
)
_DISTRICTS = (
    "Dongcheng", "Xicheng", "Nanhu", "Beishan", "Gaoxin", "Jingkai", "Binhai", "Xinqu",
    "Chengnan", "Chengbei", "Jiangbei", "Jiangnan", "Hubin", "Shanxia",
)  # fmt: skip
_PENALTY_REASONS = (
    "late for evaluation",
    "absent without leave",
    "scoring inconsistent with the evaluation criteria",
    "improper contact with a bidder",
    "failed to declare a conflict of interest",
)
_WS_ATTRIBUTES = ("dual-monitor", "accessible", "camera", "signature-pad")
_CRITERIA: dict[Category, tuple[tuple[str, bool], ...]] = {
    "works": (
        ("Construction organisation design", False),
        ("Quality assurance measures", False),
        ("Safety and environmental measures", False),
        ("Schedule and milestones", False),
        ("Project manager qualifications", True),
        ("Key personnel", True),
        ("Machinery and equipment", False),
        ("Past performance", True),
    ),
    "goods": (
        ("Technical specification compliance", False),
        ("After-sales service", False),
        ("Delivery schedule", False),
        ("Product certifications", True),
        ("Training plan", False),
        ("Warranty period", True),
        ("Past performance", True),
    ),
    "services": (
        ("Service plan", False),
        ("Team qualifications", True),
        ("Past performance", True),
        ("Quality assurance", False),
        ("Response time", False),
        ("Emergency plan", False),
    ),
}
_PROJECT_OBJECTS: dict[Category, tuple[str, ...]] = {
    "works": (
        "No. {n} Middle School Teaching Building Construction",
        "Riverside Road Reconstruction Phase {n}",
        "Wastewater Treatment Plant Expansion Phase {n}",
        "People's Hospital Inpatient Building Construction",
        "Metro Line {n} Station Fit-out",
        "Flood Control Embankment Reinforcement Section {n}",
        "Industrial Park Road Network Lot {n}",
        "Substation and Cable Works Lot {n}",
    ),
    "goods": (
        "Hospital Imaging Equipment Procurement Lot {n}",
        "Government Data Centre Servers Lot {n}",
        "School Furniture Procurement Lot {n}",
        "Public Security Vehicles Procurement",
        "Laboratory Instruments Procurement Lot {n}",
        "Office Equipment Framework Agreement {n}",
    ),
    "services": (
        "Property Management Services for Civic Centre",
        "Engineering Supervision Services Lot {n}",
        "Financial Audit Services {n}",
        "IT Operations and Maintenance Services",
        "Design Services for Urban Renewal Lot {n}",
        "Cleaning and Security Services Lot {n}",
    ),
}

# Unified social credit code: 31-character alphabet and weights of GB 32100-2015.
_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)  # organisation code check, GB 11714-1997
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)  # resident id, GB 11643
_ID_CHECK = "10X98765432"
_PLENTY = 6  # a quota prefix needs this many eligible-looking experts per seat outside the city


# --- small helpers -------------------------------------------------------------------------


def _city_names(n: int) -> list[str]:
    return [CITY_NAMES[i] if i < len(CITY_NAMES) else f"City-{i + 1}" for i in range(n)]


def _area_code(city_index: int) -> str:
    """A six-digit administrative division code for the city (33xx00 in the province)."""
    return f"{33 + city_index // 90:02d}{1 + city_index % 90:02d}00"


def _person_name(rng: random.Random) -> str:
    given = rng.choice(_GIVEN)
    if rng.random() < 0.6:
        given += rng.choice(_GIVEN).lower()
    return f"{rng.choice(_SURNAMES)} {given}"


def _width(n: int) -> int:
    return max(4, len(str(n)))


def _credit_code(rng: random.Random, area: str) -> str:
    chars = _USCC_CHARS
    if rng.random() < 0.7:  # registered since 2015: "MA" organisation numbers
        body = "MA" + "".join(rng.choice(chars) for _ in range(6))
    else:
        body = "".join(rng.choice("0123456789") for _ in range(8))
    total = sum(
        w * (int(c) if c.isdigit() else ord(c) - 55)
        for w, c in zip(_ORG_WEIGHTS, body, strict=True)
    )
    check = 11 - total % 11
    org = body + ("X" if check == 10 else "0" if check == 11 else str(check))
    head = "91" + area + org
    total = sum(w * chars.index(c) for w, c in zip(_USCC_WEIGHTS, head, strict=True))
    return head + chars[(31 - total % 31) % 31]


def _id_number(area: str, birth: date, seq: int) -> str:
    head = f"{area}{birth:%Y%m%d}{seq:03d}"
    total = sum(w * int(c) for w, c in zip(_ID_WEIGHTS, head, strict=True))
    return head + _ID_CHECK[total % 11]


def _canonical_name(name: str) -> str:
    """Key used to keep registry names distinct once spelling variants are ignored."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return "".join(ch for ch in folded if ch.isalnum()).replace("companylimited", "coltd")


def name_variant(rng: random.Random, name: str) -> str:
    """The company name as someone typed it into an expert's record: same company, other text.

    Swaps the legal-form suffix, half-/full-width brackets, letter case and spacing, so matching
    must normalise names (or use the credit code) to find the employer.
    """
    for _ in range(8):
        text = name
        ops = rng.sample(("suffix", "brackets", "case", "spaces"), rng.randint(1, 3))
        if "suffix" in ops:
            for suffix in sorted(_SUFFIXES, key=len, reverse=True):
                if text.endswith(suffix):
                    others = [s for s in _SUFFIXES if s != suffix]
                    text = text[: -len(suffix)] + rng.choice(others)
                    break
        if "brackets" in ops:
            if "(" in text:
                text = text.replace("(", "（").replace(")", "）")
            elif "（" in text:
                text = text.replace("（", "(").replace("）", ")")
        if "case" in ops:
            text = text.upper() if rng.random() < 0.5 else text.lower()
        if "spaces" in ops:
            words = text.split(" ")
            at = rng.randrange(len(words))
            words[at] = words[at] + " "
            text = " ".join(words)
        if text != name:
            return text
    return name.upper() if name.upper() != name else name.lower()


def _partition(rng: random.Random, total: int, parts: int, least: int) -> list[int]:
    """`parts` integers, each at least `least`, summing to `total`."""
    spare = total - parts * least
    cuts = sorted(rng.randint(0, spare) for _ in range(parts - 1))
    bounds = [0, *cuts, spare]
    return [least + bounds[i + 1] - bounds[i] for i in range(parts)]


def _room_sizes(rng: random.Random, target: int) -> list[int]:
    """Room sizes of 4 to 12 workstations adding up to `target` (at least 4)."""
    remaining = max(target, 4)
    sizes: list[int] = []
    while remaining > 12:
        size = rng.randint(4, min(12, remaining - 4))
        sizes.append(size)
        remaining -= size
    sizes.append(remaining)
    return sizes


def _apportion(total: int, weights: Sequence[float], least: int) -> list[int]:
    """Split `total` in proportion to `weights` (largest remainder), each share at least `least`."""
    if not weights:
        return []
    scale = sum(weights)
    raw = [total * w / scale for w in weights]
    shares = [max(least, int(r)) for r in raw]
    short = total - sum(shares)
    if short > 0:
        order = sorted(range(len(raw)), key=lambda i: raw[i] - int(raw[i]), reverse=True)
        for k in range(short):
            shares[order[k % len(order)]] += 1
    return shares


# --- sites ---------------------------------------------------------------------------------


def _gen_sites(
    rng: random.Random, cities: list[str], n_sites: int, n_workstations: int
) -> list[Site]:
    weights = [3.0 if i == 0 else rng.uniform(0.6, 2.0) for i in range(len(cities))]
    extra = rng.choices(range(len(cities)), weights=weights, k=n_sites - 2 * len(cities))
    city_of = sorted([i for i in range(len(cities)) for _ in range(2)] + extra)

    width = _width(n_sites)
    plans: list[tuple[str, str, int, frozenset[SiteRole]]] = []  # id, name, city, roles
    main_centres: set[int] = set()  # the city's main trading centre: the most workstations
    rank_in_city: Counter[int] = Counter()
    for n, ci in enumerate(city_of, start=1):
        rank = rank_in_city[ci]
        rank_in_city[ci] += 1
        roles: frozenset[SiteRole]
        if rank == 0:
            roles = frozenset(("host", "guest"))
            name = f"{cities[ci]} Public Resource Trading Centre"
            main_centres.add(n - 1)
        else:
            draw = rng.random()
            if rank == 1:  # the second site of a city always takes guests
                roles = frozenset(("host", "guest")) if draw < 0.7 else frozenset(("guest",))
            elif draw < 0.75:
                roles = frozenset(("host", "guest"))
            elif draw < 0.9:
                roles = frozenset(("guest",))
            else:
                roles = frozenset(("host",))
            district = _DISTRICTS[rank - 1] if rank - 1 < len(_DISTRICTS) else f"No. {rank}"
            name = f"{cities[ci]} {district} Trading Sub-centre"
        plans.append((f"S{n:0{width}d}", name, ci, roles))

    guest = [i for i, plan in enumerate(plans) if "guest" in plan[3]]
    site_weights = [2.0 if i in main_centres else rng.uniform(0.5, 1.5) for i in guest]
    targets = dict(zip(guest, _apportion(n_workstations, site_weights, 4), strict=True))

    sites: list[Site] = []
    for i, (site_id, name, ci, roles) in enumerate(plans):
        city = cities[ci]
        venues: list[Venue] = []
        if i in targets:
            sizes = _room_sizes(rng, targets[i])
            n_venues = 2 if len(sizes) >= 2 and rng.random() < 0.5 else 1
            split = rng.randint(1, len(sizes) - 1) if n_venues == 2 else len(sizes)
            groups = [sizes[:split], sizes[split:]] if n_venues == 2 else [sizes]
            for vi, group in enumerate(groups):
                venue_id = f"{site_id}-V{vi + 1}"
                rooms: list[Room] = []
                for ri, size in enumerate(group):
                    room_id = f"{venue_id}-R{ri + 1:02d}"
                    stations = tuple(
                        Workstation(
                            f"{room_id}-W{wi + 1:02d}",
                            site_id,
                            venue_id,
                            room_id,
                            frozenset(a for a in _WS_ATTRIBUTES if rng.random() < 0.08),
                        )
                        for wi in range(size)
                    )
                    floor = 3 + vi
                    rooms.append(Room(room_id, venue_id, f"Room {floor}{ri + 1:02d}", stations))
                venue_name = f"Evaluation Area {'AB'[vi]}"
                venues.append(Venue(venue_id, site_id, venue_name, city, tuple(rooms)))
        sites.append(Site(site_id, name, city, roles, tuple(venues)))
    return sites


# --- companies -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Registry:
    """Companies plus what the expert and project generators need to refer to them."""

    companies: list[Company] = field(default_factory=list)
    by_category: dict[Category, list[int]] = field(default_factory=dict)


def _gen_companies(rng: random.Random, cities: list[str], n: int) -> _Registry:
    reg = _Registry(by_category={"works": [], "goods": [], "services": []})
    width = _width(n)
    taken: set[str] = set()
    # Names that matching takes for one party (places dropped: names.py) belong to one group.
    places = PROVINCES | Places.of(cities)
    party_of_key: dict[str, str | None] = {}
    person_seq = 0
    group_seq = 0
    categories: tuple[Category, ...] = ("works", "goods", "services")

    def person() -> Person:
        nonlocal person_seq
        person_seq += 1
        return Person(f"P{person_seq:07d}", _person_name(rng))

    def brand() -> str:
        return (rng.choice(_BRAND_SYLLABLES) + rng.choice(_BRAND_SYLLABLES)).capitalize()

    while len(reg.companies) < n:
        remaining = n - len(reg.companies)
        grouped = remaining >= 2 and rng.random() < 0.07  # ~20% of companies end up in groups
        members = min(rng.randint(2, 6), remaining) if grouped else 1
        group_id: str | None = None
        if grouped:
            group_seq += 1
            group_id = f"G{group_seq:05d}"
        group_brand = brand()
        shared_rep = person() if grouped and rng.random() < 0.3 else None
        for _ in range(members):
            idx = len(reg.companies)
            for attempt in range(30):
                category = rng.choices(categories, weights=(0.45, 0.3, 0.25))[0]
                ci = rng.randrange(len(cities))
                name_brand = group_brand if grouped and attempt < 20 else brand()
                industry = rng.choice(_INDUSTRIES[category])
                prefix = cities[ci] if rng.random() < 0.7 else PROVINCE_NAME
                style = rng.random()
                if style < 0.6:
                    name = f"{prefix} {name_brand} {industry} Co., Ltd."
                elif style < 0.85:
                    name = f"{name_brand} {industry} ({cities[ci]}) Co., Ltd."
                else:
                    name = f"{prefix} {name_brand} {industry} Company Limited"
                if attempt == 29:
                    name = f"{prefix} {name_brand} {industry} No. {idx + 1} Co., Ltd."
                key = _canonical_name(name)
                match = normalise_company_name(name, places)
                if key not in taken and party_of_key.get(match, group_id) == group_id \
                        and (group_id is not None or match not in party_of_key):
                    taken.add(key)
                    party_of_key[match] = group_id
                    break
            code = _credit_code(rng, _area_code(ci)) if rng.random() < 0.9 else None
            legal_rep = shared_rep if shared_rep is not None else person()
            principal = None
            if rng.random() < 0.5:
                principal = legal_rep if rng.random() < 0.3 else person()
            staff = tuple(person() for _ in range(rng.randint(1, 4)))
            company_id = f"C{idx + 1:0{width}d}"
            reg.companies.append(
                Company(company_id, name, code, group_id, legal_rep, principal, staff)
            )
            reg.by_category[category].append(idx)
    return reg


def _company_ref(rng: random.Random, company: Company) -> CompanyRef:
    """How an expert database records a registry company: variants, sometimes only the code."""
    draw = rng.random()
    if company.credit_code is not None and draw < 0.15:
        return CompanyRef("", company.credit_code)
    name = company.name if rng.random() < 0.3 else name_variant(rng, company.name)
    code = company.credit_code if draw < 0.4 else None
    return CompanyRef(name, code)


# --- experts -------------------------------------------------------------------------------


def count_relations(experts: Sequence[Expert]) -> int:
    """Conflict relations on record: each employment, interest, relative, department, conflict."""
    return sum(len(e.employments) + len(e.interests) + len(e.relatives) + len(e.departments)
               + len(e.declared_conflicts) for e in experts)


def _densify(rng: random.Random, experts: list[Expert], companies: Sequence[Company],
             target: int, day: date) -> list[Expert]:
    """Add past employers and relatives among registry staff until `target` relations exist.

    Past employments end 1 to 10 years ago (so some fall inside the look-back period and some
    outside); relatives are chosen among the registry's legal representatives and key staff.
    """
    missing = target - count_relations(experts)
    if missing <= 0 or not experts or not companies:
        return experts
    people = [p for c in companies for p in c.people]
    extra_jobs: dict[int, list[Employment]] = defaultdict(list)
    extra_kin: dict[int, list[Relative]] = defaultdict(list)
    for _ in range(missing):
        i = rng.randrange(len(experts))
        if rng.random() < 0.5:
            end = day - timedelta(days=rng.randint(365, 10 * 365))
            start = end - timedelta(days=rng.randint(180, 6 * 365))
            extra_jobs[i].append(Employment(_company_ref(rng, rng.choice(companies)), start, end))
        else:
            person = rng.choice(people)
            extra_kin[i].append(Relative(person.person_id, person.name, rng.choice(RELATIONS)))
    out = list(experts)
    for i in set(extra_jobs) | set(extra_kin):
        e = out[i]
        kin = {r.person_id: r for r in (*e.relatives, *extra_kin.get(i, ()))}
        out[i] = replace(e, employments=(*extra_jobs.get(i, ()), *e.employments),
                         relatives=tuple(kin.values()))
    return out


def _specialty_choices() -> tuple[dict[str, list[str]], list[str]]:
    """Technical codes by top class (depth 2-3, economics excluded), and the economic codes."""
    technical: dict[str, list[str]] = {"W": [], "G": [], "S": []}
    economic: list[str] = []
    for code, _ in SPECIALTY_TREE:
        depth = code.count(".") + 1
        if depth < 2:
            continue
        if code.startswith(ECONOMIC_SPECIALTY):
            economic.append(code)
        else:
            technical[code[0]].append(code)
    return technical, economic


def _years_before(day: date, years: float, rng: random.Random) -> date:
    return day - timedelta(days=int(years * 365.25) + rng.randint(0, 364))


def _gen_experts(
    rng: random.Random,
    cities: list[str],
    city_weights: list[int],
    registry: _Registry,
    n: int,
    day: date,
) -> list[Expert]:
    technical_codes, economic_codes = _specialty_choices()
    siblings: dict[str, list[str]] = {}
    for codes in technical_codes.values():
        for code in codes:
            siblings.setdefault(code[:4], []).append(code)
    companies = registry.companies
    people = [p for c in companies for p in c.people]
    width = _width(n)
    cum = list(_cumulative(city_weights))
    n_cities = len(cities)
    id_numbers: set[str] = set()
    phones: set[str] = set()
    out: list[Expert] = []

    for seq in range(1, n + 1):
        ci = rng.choices(range(n_cities), cum_weights=cum)[0]
        city = cities[ci]
        age = rng.triangular(30, 75, 50)
        birth = _years_before(day, age, rng)
        id_seq = rng.randrange(1000)
        id_number = _id_number(_area_code(ci), birth, id_seq)
        while id_number in id_numbers:
            id_seq = (id_seq + 1) % 1000
            id_number = _id_number(_area_code(ci), birth, id_seq)
        id_numbers.add(id_number)
        phone = f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"
        while phone in phones:
            phone = f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"
        phones.add(phone)

        work_city = (
            city if rng.random() < 0.85 or n_cities == 1 else cities[rng.randrange(n_cities)]
        )
        catchment: tuple[str, ...] = ()
        if rng.random() < 0.2 and n_cities > 2:
            near = [cities[(ci + d) % n_cities] for d in (1, -1)]
            catchment = (city, *near[: rng.randint(1, 2)])

        kind: ExpertKind = "technical" if rng.random() < 0.75 else "economic"
        specialties: list[str]
        if kind == "economic":
            specialties = rng.sample(economic_codes, rng.randint(1, 2))
        else:
            top = rng.choices("WGS", weights=(0.45, 0.25, 0.3))[0]
            first = rng.choice(technical_codes[top])
            specialties = [first]
            for _ in range(rng.randint(0, 2)):
                pool = siblings[first[:4]] if rng.random() < 0.7 else technical_codes[top]
                code = rng.choice(pool)
                if code not in specialties:
                    specialties.append(code)

        status: ExpertStatus = "active"
        roll = rng.random()
        if age > 68 and roll < 0.5:
            status = "retired"
        elif roll < 0.02:
            status = "suspended"
        elif roll < 0.03:
            status = "blacklisted"
        elif roll < 0.04:
            status = "retired"

        employments: list[Employment] = []
        career_start = _years_before(day, age - 23, rng)
        if rng.random() < 0.35:  # an earlier employer
            ref = _employer(rng, companies, cities, ci, registry_share=0.4)
            end = career_start + timedelta(
                days=rng.randint(365, max(366, (day - career_start).days // 2))
            )
            employments.append(Employment(ref, career_start, min(end, day)))
            career_start = min(end, day) + timedelta(days=rng.randint(1, 120))
        if rng.random() < 0.7 and career_start < day:  # a current employer
            ref = _employer(rng, companies, cities, ci, registry_share=0.25)
            employments.append(Employment(ref, career_start, None))

        interests: tuple[CompanyRef, ...] = ()
        if companies and rng.random() < 0.03:
            interests = (_company_ref(rng, rng.choice(companies)),)
        relatives: list[Relative] = []
        if rng.random() < 0.06:
            for _ in range(rng.randint(1, 2)):
                relation = rng.choice(RELATIONS)
                if people and rng.random() < 0.7:
                    p = rng.choice(people)
                    relatives.append(Relative(p.person_id, p.name, relation))
                else:
                    relatives.append(Relative(f"Q{seq:0{width}d}", _person_name(rng), relation))
            relatives = list({r.person_id: r for r in relatives}.values())
        departments: tuple[str, ...] = ()
        if rng.random() < 0.08:
            departments = (f"{cities[rng.randrange(n_cities)]} {rng.choice(_BUREAUS)}",)
        conflicts: tuple[CompanyRef, ...] = ()
        if companies and rng.random() < 0.02:
            conflicts = (_company_ref(rng, rng.choice(companies)),)
        penalties: tuple[Penalty, ...] = ()
        if rng.random() < 0.03:
            penalties = tuple(
                sorted(
                    (
                        Penalty(
                            day - timedelta(days=rng.randint(30, 5 * 365)),
                            rng.choice(_PENALTY_REASONS),
                        )
                        for _ in range(rng.randint(1, 2))
                    ),
                    key=lambda p: p.on,
                )
            )

        out.append(
            Expert(
                id=f"E{seq:0{width}d}",
                name=_person_name(rng),
                id_number=id_number,
                phone=phone,
                city=city,
                work_city=work_city,
                birth_date=birth,
                kind=kind,
                specialties=tuple(specialties),
                status=status,
                employments=tuple(employments),
                interests=interests,
                relatives=tuple(relatives),
                departments=departments,
                declared_conflicts=conflicts,
                penalties=penalties,
                catchment=catchment,
            )
        )
    return out


def _cumulative(weights: Sequence[int]) -> list[int]:
    total = 0
    out: list[int] = []
    for w in weights:
        total += w
        out.append(total)
    return out


def _employer(
    rng: random.Random, companies: list[Company], cities: list[str], ci: int, registry_share: float
) -> CompanyRef:
    if companies and rng.random() < registry_share:
        return _company_ref(rng, rng.choice(companies))
    city = cities[ci] if rng.random() < 0.8 else rng.choice(cities)
    return CompanyRef(f"{city} {rng.choice(_INSTITUTIONS)}")


# --- projects ------------------------------------------------------------------------------


def _pool_counts(
    experts: Sequence[Expert], day: date
) -> tuple[Counter[str], Counter[tuple[str, str]]]:
    """Active experts under the age limit per specialty prefix, overall and per home city."""
    total: Counter[str] = Counter()
    by_city: Counter[tuple[str, str]] = Counter()
    limit = date(day.year - AGE_LIMIT, day.month, min(day.day, 28))
    for x in experts:
        if x.status != "active" or x.birth_date <= limit:
            continue
        prefixes: set[str] = set()
        for code in x.specialties:
            parts = code.split(".")
            for k in range(1, len(parts) + 1):
                prefixes.add(".".join(parts[:k]))
        for prefix in prefixes:
            total[prefix] += 1
            by_city[(x.city, prefix)] += 1
    return total, by_city


def _scoring(rng: random.Random, category: Category) -> ScoringMethod:
    method: ScoringMethodName
    draw = rng.random()
    if category == "works":
        method = "works" if draw < 0.5 else "comprehensive" if draw < 0.85 else "lowest_price"
        low, high = 40, 60
    elif category == "goods":
        method = "comprehensive" if draw < 0.8 else "lowest_price"
        low, high = 30, 40
    else:
        method = "comprehensive" if draw < 0.85 else "lowest_price"
        low, high = 10, 30
    if method == "lowest_price":  # ranked by evaluated price alone
        return ScoringMethod(method, Decimal(100), ())
    weight = rng.randrange(low, high + 1, 5)
    chosen = rng.sample(_CRITERIA[category], rng.randint(3, min(6, len(_CRITERIA[category]))))
    points = _partition(rng, 100 - weight, len(chosen), 3)
    criteria = tuple(
        Criterion(f"C{i + 1}", name, Decimal(pts), objective)
        for i, ((name, objective), pts) in enumerate(zip(chosen, points, strict=True))
    )
    deduction = Decimal(rng.choice(("0.5", "1", "2"))) if method == "works" else Decimal(1)
    threshold = Decimal(rng.choice(("0.20", "0.25", "0.30")))
    return ScoringMethod(method, Decimal(weight), criteria, deduction, threshold)


def _technical_quotas(
    rng: random.Random,
    category: Category,
    seats: int,
    city: str,
    total: Counter[str],
    by_city: Counter[tuple[str, str]],
    codes: dict[str, list[str]],
) -> list[Quota]:
    top = _CLASS_OF[category]

    def plenty(code: str, need: int) -> bool:
        return total[code] - by_city[(city, code)] >= _PLENTY * need

    deep = [c for c in codes[top] if c.count(".") == 2 and plenty(c, seats)]
    mid = [c for c in codes[top] if c.count(".") == 1 and plenty(c, seats)]
    if seats >= 3 and rng.random() < 0.25:  # two sub-specialties, e.g. 3 civil + 1 installation
        second = rng.randint(1, seats // 2)
        pair = [c for c in codes[top] if c.count(".") == 1 and plenty(c, seats - second)]
        if len(pair) >= 2:
            a, b = rng.sample(pair, 2)
            return [Quota(a, seats - second, "technical"), Quota(b, second, "technical")]
    if deep and rng.random() < 0.6:
        return [Quota(rng.choice(deep), seats, "technical")]
    if mid:
        return [Quota(rng.choice(mid), seats, "technical")]
    return [Quota(top, seats, "technical")]


def _slots_per_half_day(projects: int, workstations: int) -> int:
    """1 (the two usual windows) unless the committees would need more than SLOT_LOAD of the
    workstations in each window; then enough equal slots per half-day, at most MAX_SLOTS."""
    per_window = projects * SEATS_PER_PROJECT / 2
    if per_window <= SLOT_LOAD * max(workstations, 1):
        return 1
    return min(MAX_SLOTS, math.ceil(per_window / (SLOT_LOAD * max(workstations, 1))))


def _slot(morning: bool, i: int, k: int) -> tuple[time, time]:
    """Slot i of k in 08:00-12:00 (morning) or 13:00-17:00: equal, touching, never overlapping."""
    first = 8 * 60 if morning else 13 * 60
    length = 4 * 60 // k
    begin, finish = first + i * length, first + (i + 1) * length
    return time(begin // 60, begin % 60), time(finish // 60, finish % 60)


def _gen_projects(
    rng: random.Random,
    sites: Sequence[Site],
    registry: _Registry,
    experts: Sequence[Expert],
    n: int,
    day: date,
) -> list[Project]:
    hosts = [s for s in sites if "host" in s.roles]
    if n and not hosts:
        raise ValueError("no host site to register projects at")
    companies = registry.companies
    if n and len(companies) < 4:
        raise ValueError("projects need at least 4 companies (a tenderer and 3 bidders)")
    total, by_city = _pool_counts(experts, day)
    codes, _ = _specialty_choices()
    width = _width(n)
    morning = (time(9, 0), time(12, 0))
    afternoon = (time(14, 0), time(17, 30))
    workstations = sum(len(v.workstations) for s in sites for v in s.venues)
    k = _slots_per_half_day(n, workstations)
    categories: tuple[Category, ...] = ("works", "goods", "services")
    out: list[Project] = []
    for seq in range(1, n + 1):
        category = rng.choices(categories, weights=(0.45, 0.3, 0.25))[0]
        host = rng.choice(hosts)
        large = rng.random() < 0.2
        size = 7 if large else 5
        reps = (1 if size == 5 else rng.randint(1, 2)) if rng.random() < 0.15 else 0
        drawn = size - reps
        economic = 1 if drawn <= 5 else 2
        quotas = _technical_quotas(
            rng, category, drawn - economic, host.city, total, by_city, codes
        )
        quotas.append(Quota(ECONOMIC_SPECIALTY, economic, "economic"))

        begin, finish = morning if rng.random() < 0.5 else afternoon
        if k > 1:  # (only then: the two-window days of smaller scales keep their seeds)
            begin, finish = _slot(begin == morning[0], rng.randrange(k), k)
        window = Window(
            datetime.combine(day, begin, LOCAL_TZ).astimezone(UTC),
            datetime.combine(day, finish, LOCAL_TZ).astimezone(UTC),
        )

        tenderer = rng.randrange(len(companies))
        pool = registry.by_category[category]
        if len(pool) < 9:
            pool = list(range(len(companies)))
        n_bids = min(rng.randint(3, 8), len(pool) - 1)
        picked = rng.sample(pool, n_bids + 1)  # one spare in case the tenderer is drawn
        bidders = [idx for idx in picked if idx != tenderer][:n_bids]
        budget = Decimal(round(10 ** rng.uniform(5.5, 8.5), -3))
        bids = tuple(
            Bid(
                companies[idx].id,
                (budget * Decimal(str(rng.uniform(0.8, 0.99)))).quantize(Decimal("0.01")),
                rng.random() >= 0.05,
            )
            for idx in bidders
        )
        city = host.city
        name = f"{city} " + rng.choice(_PROJECT_OBJECTS[category]).format(n=rng.randint(1, 9))
        out.append(
            Project(
                id=f"P{day:%Y%m%d}-{seq:0{width}d}",
                name=name,
                host_site_id=host.id,
                city=city,
                tenderer_id=companies[tenderer].id,
                category=category,
                committee_size=size,
                quotas=tuple(quotas),
                window=window,
                scoring=_scoring(rng, category),
                bids=bids,
                competent_department=f"{city} {rng.choice(_BUREAUS)}",
                tenderer_reps=reps,
                double_blind=rng.random() < 0.3,
                large=large,
            )
        )
    return out


# --- entry point ---------------------------------------------------------------------------


def generate_province(
    *,
    seed: int,
    cities: int = 16,
    sites: int = 150,
    workstations: int = 3000,
    experts: int = 20000,
    companies: int = 4000,
    projects: int = 200,
    day: date,
    relations: int | None = None,
) -> Province:
    """A province of the given size with projects on `day`; the same arguments, the same data.

    `relations`: if given, the experts' conflict relations (employments, interests, relatives,
    departments, declared conflicts) are topped up to at least this many, as the scale
    benchmarks ask (e.g. 200,000 for 50,000 experts; 1,000,000 for the national pool).

    Every city gets at least two guest-capable sites (so cross-city draws are feasible) and one
    host site; quotas only name specialty prefixes with plenty of active experts outside the
    project's city.
    """
    if cities < 1:
        raise ValueError("at least one city")
    if sites < 2 * cities:
        raise ValueError(f"{sites} sites cannot give each of {cities} cities two guest sites")
    if min(workstations, experts, companies, projects) < 0:
        raise ValueError("sizes must not be negative")
    names = _city_names(cities)

    def section(name: str) -> random.Random:
        return random.Random(f"evalgrid-province:{seed}:{name}")

    site_list = _gen_sites(section("sites"), names, sites, workstations)
    registry = _gen_companies(section("companies"), names, companies)
    sites_per_city = Counter(s.city for s in site_list)
    expert_list = _gen_experts(
        section("experts"),
        names,
        [sites_per_city[c] for c in names],
        registry,
        experts,
        day,
    )
    if relations is not None:
        rng = section("relations")
        for _ in range(5):  # a few relatives are duplicates and merge: top up again
            if count_relations(expert_list) >= relations:
                break
            expert_list = _densify(rng, expert_list, registry.companies, relations, day)
    project_list = _gen_projects(
        section("projects"), site_list, registry, expert_list, projects, day
    )
    return Province(
        sites=tuple(site_list),
        experts=tuple(expert_list),
        companies=tuple(registry.companies),
        projects=tuple(project_list),
        cities=tuple(City(n, CITY_ALIASES.get(n, ()),
                          tuple(District(d, a) for d, a in CITY_DISTRICTS.get(n, ())))
                     for n in names),
        extra={
            "generator": "coordinator.province.generator",
            "seed": str(seed),
            "day": day.isoformat(),
        },
    )
