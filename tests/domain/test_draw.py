"""The three-random draw: rules, determinism, distribution, failures, commitment and replay."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace

import pytest
from domain_factories import (
    RULES,
    TODAY,
    day_screen,
    expert,
    grid,
    inputs_for,
    parties,
    project,
    seed_of,
    simple_province,
    site,
)

from coordinator.domain.draw.algorithm import draw
from coordinator.domain.draw.archive import commit, make_archive, record_digest, verify_replay
from coordinator.domain.draw.canonical import (
    canonical_inputs,
    input_digest,
    inputs_from_json,
    inputs_to_json,
)
from coordinator.domain.draw.inputs import Candidate, DrawInputs, VenueOffer
from coordinator.domain.draw.outcome import (
    DrawFailure,
    DrawOutcome,
    outcome_from_json,
    outcome_to_json,
)
from coordinator.domain.draw.supplementary import merge_committee, supplementary_inputs
from coordinator.domain.model import Province, Quota, Site
from coordinator.domain.violations import find_violations

CHI2_001 = {3: 16.266, 4: 18.467, 5: 20.515}


def chi_square(counts: Counter[str], outcomes: list[str], total: int) -> float:
    expected = total / len(outcomes)
    return sum((counts[o] - expected) ** 2 / expected for o in outcomes)


def ok(result: DrawOutcome | DrawFailure) -> DrawOutcome:
    assert isinstance(result, DrawOutcome), result
    return result


def allocation(result: DrawOutcome) -> list[tuple[str, str, str]]:
    return [(s.expert_id, s.venue_id, s.workstation_id) for s in result.seats]


def test_a_draw_satisfies_every_rule() -> None:
    prov, proj = simple_province()
    inputs = inputs_for(prov, proj)
    for n in range(20):
        result = ok(draw(inputs, seed_of(n)))
        assert len(result.seats) == 5
        assert result.cap == 1
        assert len(set(result.venues)) == 5 == len({s.venue_id for s in result.seats})
        alloc = [(proj.id, allocation(result))]
        assert find_violations(prov, alloc, [], RULES, TODAY) == []


def test_same_seed_same_outcome_other_seed_other_outcome() -> None:
    prov, proj = simple_province()
    inputs = inputs_for(prov, proj)
    first = draw(inputs, seed_of(1))
    assert draw(inputs, seed_of(1)) == first
    assert (
        draw(inputs_from_json(json.loads(json.dumps(inputs_to_json(inputs)))), seed_of(1)) == first
    )
    others = {ok(draw(inputs, seed_of(n))).seats for n in range(2, 12)}
    assert ok(first).seats not in others or len(others) > 1
    assert len(others) > 5


def test_seats_follow_quota_order_and_codes() -> None:
    prov, _ = simple_province()
    proj = project(quotas=(Quota("W.01.02", 2), Quota("W.01", 3)))
    result = ok(draw(inputs_for(prov, proj), seed_of(3)))
    assert [s.quota_index for s in result.seats] == [0, 0, 1, 1, 1]
    experts = {e.id: e for e in prov.experts}
    for s in result.seats[:2]:
        assert experts[s.expert_id].specialties == ("W.01.02",)


def test_kind_filter() -> None:
    cities = ("C1", "C2", "C3")
    experts = tuple(
        expert(f"{k[0]}{c}", c, kind=k, specialties=("G.01",))
        for c in cities
        for k in ("technical", "economic")
    )
    proj = project(quotas=(Quota("G.01", 2, "economic"),))
    prov = Province(sites=grid(cities), experts=experts, companies=parties())
    for n in range(10):
        result = ok(draw(inputs_for(prov, proj), seed_of(n)))
        assert all(s.expert_id.startswith("e") for s in result.seats)


def test_cap_rises_when_venues_are_few() -> None:
    prov, proj = simple_province(rooms=3, per_room=1)
    prov = replace(prov, sites=grid(("C1", "C2"), rooms=3, per_room=1))
    inputs = inputs_for(prov, proj)  # 5 seats, 2 venues -> cap 3
    for n in range(10):
        result = ok(draw(inputs, seed_of(n)))
        assert result.cap == 3
        per_venue = Counter(s.venue_id for s in result.seats)
        assert sorted(per_venue.values()) == [2, 3]
        rooms = [(s.venue_id, s.room_id) for s in result.seats]
        assert len(set(rooms)) == 5  # never share a room
        assert find_violations(prov, [(proj.id, allocation(result))], [], RULES, TODAY) == []


def test_rooms_limit_what_a_venue_can_take() -> None:
    """One venue with a single room can seat one member; the others fill up."""
    sites = (
        grid(("C1",), rooms=1, per_room=4)[0],
        site("SC1", "C1", rooms=1, per_room=4),
        site("SC2", "C2", rooms=4, per_room=1),
    )
    experts = tuple(expert(f"E{c}{i}", c) for c in ("C1", "C2") for i in range(5))
    proj = project(quotas=(Quota("W.01", 5),))
    prov = Province(sites=sites, experts=experts, companies=parties(), projects=(proj,))
    result = ok(draw(inputs_for(prov, proj), seed_of(0)))
    assert result.cap == 4
    assert Counter(s.venue_id for s in result.seats) == {"SC1-v": 1, "SC2-v": 4}
    assert find_violations(prov, [(proj.id, allocation(result))], [], RULES, TODAY) == []


def test_reserve_venues_serve_a_starved_quota() -> None:
    """Quota G.01 has experts only in C4; when C4 is not drawn, reserves are added in order."""
    cities = ("C1", "C2", "C3", "C4")
    experts = tuple(expert(f"W{c}{i}", c) for c in cities[:3] for i in range(2))
    experts += (expert("G1", "C4", specialties=("G.01",)),)
    proj = project(quotas=(Quota("W.01", 2), Quota("G.01", 1)))
    prov = Province(sites=grid(cities), experts=experts, companies=parties(), projects=(proj,))
    inputs = inputs_for(prov, proj)
    used_reserve = 0
    for n in range(30):
        result = ok(draw(inputs, seed_of(n)))
        assert result.seats[2].expert_id == "G1"
        assert result.seats[2].venue_id == "SC4-v"
        used_reserve += len(result.venues) > 3
        assert find_violations(prov, [(proj.id, allocation(result))], [], RULES, TODAY) == []
    assert used_reserve > 0


def test_failure_names_the_quota_and_counts() -> None:
    prov, _ = simple_province(n_per_city=1)
    proj = project(quotas=(Quota("W.01", 3), Quota("W.01.02", 2)))  # only C*0 have W.01 proper
    result = draw(inputs_for(prov, proj), seed_of(0))
    assert isinstance(result, DrawFailure)
    assert result.quota_index == 1
    assert result.quota == Quota("W.01.02", 2)
    assert result.reasons["matching"] == 0
    assert result.needed == 2 and result.available == 0
    assert "quota 1 (W.01.02 x2)" in result.message()


def test_failure_when_candidates_outnumber_but_venues_starve() -> None:
    prov, proj = simple_province()
    prov = replace(prov, sites=grid(("C1",), rooms=2, per_room=1))  # one venue, two rooms
    result = draw(inputs_for(prov, proj), seed_of(0))
    assert isinstance(result, DrawFailure)
    assert result.quota_index == 0
    assert result.needed == 3  # two seated, three to go
    assert result.reasons["venues_eligible"] == 1
    assert result.reasons["no_venue_in_catchment"] == 15  # experts of C2..C6
    assert result.reasons["catchment_venues_full"] == 1


def test_no_venue_at_all() -> None:
    prov, proj = simple_province()
    prov = replace(prov, sites=grid(()))
    result = draw(inputs_for(prov, proj), seed_of(0))
    assert isinstance(result, DrawFailure)
    assert result.reasons["venues_eligible"] == 0
    assert result.needed == 5


def test_excluded_and_busy() -> None:
    prov, proj = simple_province()
    inputs = inputs_for(prov, proj, busy={"SC1-v-r0-w0", "SC1-v-r0-w1", "SC1-v-r1-w0"})
    inputs = replace(inputs, exclude=frozenset({"EC20", "EC21", "EC22"}))
    for n in range(15):
        result = ok(draw(inputs, seed_of(n)))
        assert not {s.expert_id for s in result.seats} & inputs.exclude
        for s in result.seats:
            if s.venue_id == "SC1-v":
                assert s.workstation_id == "SC1-v-r1-w1"
            assert s.venue_id != "SC2-v"  # no candidate left in C2


def test_venue_offers_leave_out_barred_cities_hosts_and_full_venues() -> None:
    sites = (
        site("H0", "C0", roles=("host", "guest")),  # project and host city
        site("HX", "C5", roles=("host",)),  # not a guest site
        site("SC1", "C1"),
        site("SC2", "C2", rooms=1, per_room=1),  # fully busy below
        site("SC3", "C3"),  # the host's city below
    )
    proj = project(city="C0", host_site_id="SC3")  # opened in C3
    prov = Province(sites=sites, experts=(), companies=parties())
    w = proj.window
    day = day_screen(prov, busy=[(ws, w.start_ts, w.end_ts)
                                 for ws in ("SC2-v-r0-w0", "SC1-v-r0-w1")])
    offers = day.inputs(proj, "C3").resolved_venues()
    assert [o.venue_id for o in offers] == ["SC1-v"]
    assert offers[0].free == (
        ("SC1-v-r0-w0", "SC1-v-r0"),
        ("SC1-v-r1-w0", "SC1-v-r1"),
        ("SC1-v-r1-w1", "SC1-v-r1"),
    )


def test_empty_seat_list() -> None:
    prov, proj = simple_province()
    inputs = replace(inputs_for(prov, proj), seats=())
    assert draw(inputs, seed_of(0)) == DrawOutcome((), (), 1)


# --- distribution --------------------------------------------------------------------------


def _offer(vid: str, city: str, free: tuple[tuple[str, str], ...]) -> VenueOffer:
    return VenueOffer(vid, f"S-{vid}", city, free)


def _inputs(
    venues: tuple[VenueOffer, ...], candidates: tuple[Candidate, ...], seats: int = 1
) -> DrawInputs:
    return DrawInputs(
        project=project(quotas=(Quota("W.01", seats),)),
        rules_version="v1",
        venues=venues,
        candidates=candidates,
        per_venue_cap=1,
    )


def test_venue_is_uniform() -> None:
    venues = tuple(_offer(f"V{i}", f"C{i}", (("w", "r"),)) for i in range(4))
    cands = (Candidate("E", "technical", ("W.01",), tuple(f"C{i}" for i in range(4))),)
    inputs = _inputs(venues, cands)
    total = 4 * 500
    counts = Counter(ok(draw(inputs, seed_of(n))).venues[0] for n in range(total))
    assert chi_square(counts, [v.venue_id for v in venues], total) < CHI2_001[3]


def test_expert_is_uniform() -> None:
    venues = (_offer("V", "C1", (("w", "r"),)),)
    cands = tuple(Candidate(f"E{i}", "technical", ("W.01",), ("C1",)) for i in range(5))
    inputs = _inputs(venues, cands)
    total = 5 * 400
    counts = Counter(ok(draw(inputs, seed_of(n))).seats[0].expert_id for n in range(total))
    assert chi_square(counts, [c.expert_id for c in cands], total) < CHI2_001[4]


def test_workstation_is_uniform_over_workstations_not_rooms() -> None:
    free = (("w1", "r1"), ("w2", "r1"), ("w3", "r1"), ("w4", "r2"))
    inputs = _inputs((_offer("V", "C1", free),), (Candidate("E", "technical", ("W.01",), ("C1",)),))
    total = 4 * 500
    counts = Counter(ok(draw(inputs, seed_of(n))).seats[0].workstation_id for n in range(total))
    assert chi_square(counts, ["w1", "w2", "w3", "w4"], total) < CHI2_001[3]


def test_drawn_set_of_venues_is_uniform() -> None:
    """Two seats over four venues: every pair of venues equally likely (6 pairs)."""
    venues = tuple(_offer(f"V{i}", f"C{i}", (("w", "r"),)) for i in range(4))
    cands = tuple(
        Candidate(f"E{i}{j}", "technical", ("W.01",), (f"C{i}",))
        for i in range(4)
        for j in range(2)
    )
    inputs = _inputs(venues, cands, seats=2)
    total = 6 * 400
    counts: Counter[str] = Counter(
        "+".join(sorted(ok(draw(inputs, seed_of(n))).venues)) for n in range(total)
    )
    pairs = [f"V{a}+V{b}" for a in range(4) for b in range(a + 1, 4)]
    assert chi_square(counts, pairs, total) < CHI2_001[5]


# --- canonical inputs ----------------------------------------------------------------------


def test_canonical_inputs_equal_generic_json() -> None:
    prov, proj = simple_province()
    inputs = replace(inputs_for(prov, proj), exclude=frozenset({"x"}), parent="ab" * 32)
    generic = json.dumps(inputs_to_json(inputs), sort_keys=True, separators=(",", ":"))
    assert canonical_inputs(inputs) == generic.encode("ascii")


def test_canonical_inputs_escape_odd_strings() -> None:
    cands = tuple(
        sorted(
            (
                Candidate('E"1', "technical", ("W.01",), ("北京",)),
                Candidate("E\\2", "technical", (), ("C\n1",)),
                Candidate("专家3", "economic", ("W.01", "G.02"), ()),
                Candidate("E4", "economic", ('W."01', "G\x7f"), ('C"4',)),
                Candidate("E5", "economic", ("W.01",), ("C5",)),
            ),
            key=lambda c: c.expert_id,
        )
    )
    venues = (_offer("V", "北京", (("w", "r"),)),)
    inputs = _inputs(venues, cands)
    generic = json.dumps(inputs_to_json(inputs), sort_keys=True, separators=(",", ":"))
    assert canonical_inputs(inputs) == generic.encode("ascii")
    assert inputs_from_json(json.loads(generic)) == inputs


def test_digest_changes_with_any_input() -> None:
    prov, proj = simple_province()
    inputs = inputs_for(prov, proj)
    base = input_digest(inputs)
    assert input_digest(replace(inputs, per_venue_cap=2)) != base
    assert input_digest(replace(inputs, candidates=inputs.candidates[1:])) != base
    assert input_digest(replace(inputs, project=replace(proj, city="C9"))) != base
    assert input_digest(replace(inputs, rules_version="v2")) != base
    assert input_digest(replace(inputs)) == base


def test_inputs_must_be_sorted() -> None:
    prov, proj = simple_province()
    inputs = inputs_for(prov, proj)
    with pytest.raises(ValueError, match="candidates"):
        replace(inputs, candidates=tuple(reversed(inputs.candidates)))
    with pytest.raises(ValueError, match="venues"):
        replace(inputs, venues=tuple(reversed(inputs.venues)))


def test_outcome_json_round_trip() -> None:
    prov, proj = simple_province()
    result = draw(inputs_for(prov, proj), seed_of(0))
    assert outcome_from_json(json.loads(json.dumps(outcome_to_json(result)))) == result
    failure = draw(inputs_for(replace(prov, sites=grid(())), proj), seed_of(0))
    assert outcome_from_json(json.loads(json.dumps(outcome_to_json(failure)))) == failure


# --- commitment and replay -----------------------------------------------------------------


def archived(seed: bytes = seed_of("a")) -> dict:  # type: ignore[type-arg]
    prov, proj = simple_province()
    inputs = inputs_for(prov, proj)
    c = commit(seed, inputs)
    result = draw(inputs, seed)
    return json.loads(json.dumps(make_archive(c, inputs, result, seed)))


def test_an_honest_archive_verifies() -> None:
    archive = archived()
    assert verify_replay(archive) == []
    assert archive["commitment"]["input_digest"] == input_digest(
        inputs_from_json(archive["inputs"])
    )


def test_unrevealed_seed() -> None:
    archive = archived()
    archive["seed"] = None
    assert verify_replay(archive) == ["seed: not revealed yet; the draw cannot be replayed"]


def test_changed_seed_is_rejected() -> None:
    archive = archived()
    archive["seed"] = seed_of("other").hex()
    problems = verify_replay(archive)
    assert any(p.startswith("seed: SHA-256") for p in problems)
    assert any(p.startswith("result.") for p in problems)  # and the replay differs


def test_changed_input_is_rejected() -> None:
    archive = archived()
    archive["inputs"]["candidates"][0][3] = ["C6"]
    problems = verify_replay(archive)
    assert any(p.startswith("inputs: the archived inputs digest to") for p in problems)
    archive = archived()
    archive["inputs"]["project"]["city"] = "C9"
    assert any(p.startswith("inputs:") for p in verify_replay(archive))


def test_changed_outcome_is_rejected_field_by_field() -> None:
    archive = archived()
    seat = archive["result"]["seats"][2]
    seat["expert_id"] = "EC99"
    seat["workstation_id"] = "elsewhere"
    problems = verify_replay(archive)
    true_seat = archived()["result"]["seats"][2]
    assert problems == [
        f"result.seats[2].expert_id: archived 'EC99', replay '{true_seat['expert_id']}'",
        f"result.seats[2].workstation_id: archived 'elsewhere', "
        f"replay '{true_seat['workstation_id']}'",
    ]
    archive = archived()
    archive["result"]["cap"] = 2
    archive["result"]["venues"].reverse()
    problems = verify_replay(archive)
    assert [p.split(":")[0] for p in problems] == ["result.cap", "result.venues"]
    archive = archived()
    del archive["result"]["seats"][-1]
    assert verify_replay(archive) == ["result.seats: archived 4 seats, replay 5"]


def test_changed_commitment_is_rejected() -> None:
    archive = archived()
    archive["commitment"]["rules_version"] = "v0"
    assert [p.split(":")[0] for p in verify_replay(archive)] == ["rules_version"]
    archive = archived()
    archive["commitment"]["draw_id"] = "0" * 32
    assert [p.split(":")[0] for p in verify_replay(archive)] == ["draw_id"]


def test_malformed_archive() -> None:
    archive = archived()
    del archive["inputs"]["project"]
    assert verify_replay(archive)[0].startswith("archive: cannot be read")
    assert verify_replay({"format": "nope"})[0].startswith("format:")


def test_a_failure_archive_replays() -> None:
    prov, proj = simple_province()
    inputs = inputs_for(replace(prov, sites=grid(())), proj)
    seed = seed_of("f")
    result = draw(inputs, seed)
    assert isinstance(result, DrawFailure)
    archive = json.loads(json.dumps(make_archive(commit(seed, inputs), inputs, result, seed)))
    assert verify_replay(archive) == []
    archive["result"]["available"] = 7
    assert verify_replay(archive)[0].startswith("result: archived")


# --- supplementary draws -------------------------------------------------------------------


def test_supplementary_draw_chains_and_keeps_the_rules() -> None:
    prov, proj = simple_province()
    inputs = inputs_for(prov, proj)
    seed1 = seed_of("s1")
    c1 = commit(seed1, inputs)
    first = ok(draw(inputs, seed1))
    dropped = {first.seats[1].expert_id, first.seats[3].expert_id}

    busy = {s.workstation_id for s in first.seats if s.expert_id not in dropped}
    fresh = inputs_for(prov, proj, busy=busy)
    parent = record_digest(c1, first)
    supp = supplementary_inputs(
        inputs,
        first.seats,
        dropped,
        venues=fresh.venues,
        candidates=fresh.candidates,
        parent=parent,
    )
    assert supp.seats == (first.seats[1].quota_index, first.seats[3].quota_index)
    assert supp.exclude == {s.expert_id for s in first.seats}
    assert len(supp.occupied) == 3

    seed2 = seed_of("s2")
    c2 = commit(seed2, supp)
    assert c2.parent == parent
    second = ok(draw(supp, seed2))
    assert len(second.seats) == 2
    assert not {s.expert_id for s in second.seats} & supp.exclude
    committee = merge_committee(first.seats, dropped, second)
    assert len(committee) == 5
    assert Counter(s.venue_id for s in committee).most_common(1)[0][1] == 1  # cap 1 still holds
    alloc = [(proj.id, [(s.expert_id, s.venue_id, s.workstation_id) for s in committee])]
    assert find_violations(prov, alloc, [], RULES, TODAY) == []
    archive = json.loads(json.dumps(make_archive(c2, supp, second, seed2)))
    assert verify_replay(archive) == []
    archive["inputs"]["parent"] = "f" * 64
    assert any(p.startswith("inputs:") for p in verify_replay(archive))


def test_supplementary_shares_a_venue_only_in_another_room() -> None:
    """Two venues, cap raised to 3: the redraw must avoid the rooms members already hold."""
    sites: tuple[Site, ...] = grid(("C1", "C2"), rooms=3, per_room=2)
    prov, proj = simple_province()
    prov = replace(prov, sites=sites)
    inputs = inputs_for(prov, proj)
    for n in range(10):
        first = ok(draw(inputs, seed_of(n)))
        drop = {first.seats[0].expert_id}
        supp = supplementary_inputs(
            inputs,
            first.seats,
            drop,
            venues=inputs.venues,
            candidates=inputs.candidates,
            parent="0" * 64,
        )
        second = ok(draw(supp, seed_of(100 + n)))
        committee = merge_committee(first.seats, drop, second)
        rooms = [(s.venue_id, s.room_id) for s in committee]
        assert len(set(rooms)) == 5
        assert max(Counter(s.venue_id for s in committee).values()) <= 3


def test_cannot_drop_a_stranger() -> None:
    prov, proj = simple_province()
    inputs = inputs_for(prov, proj)
    first = ok(draw(inputs, seed_of(0)))
    with pytest.raises(ValueError, match="not on the committee"):
        supplementary_inputs(inputs, first.seats, {"nobody"}, venues=(), candidates=(), parent="")
