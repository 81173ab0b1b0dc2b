"""Referenced draw inputs: a day snapshot plus two bitmaps, drawn and replayed like explicit."""

from __future__ import annotations

import base64
import json
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
from domain_factories import RULES, TODAY, inputs_for, seed_of, simple_province
from hypothesis import given
from hypothesis import strategies as st

from coordinator.domain.conflicts import ConflictIndex
from coordinator.domain.draw.algorithm import _draw, draw
from coordinator.domain.draw.archive import commit, make_archive, verify_replay
from coordinator.domain.draw.canonical import (
    canonical_inputs,
    input_digest,
    inputs_from_json,
    inputs_to_json,
    snapshot_to_json,
)
from coordinator.domain.draw.inputs import (
    DrawInputs,
    pack_mask,
    pack_rows,
    unpack_mask,
    unpack_rows,
)
from coordinator.domain.draw.outcome import DrawOutcome
from coordinator.domain.draw.supplementary import supplementary_inputs
from coordinator.domain.eligibility import DayScreen, PoolIndex, host_city_of
from coordinator.domain.model import Project, Province
from coordinator.domain.randomness import DrawRandom


def day_screen(prov: Province) -> DayScreen:
    pool = PoolIndex.build(prov.experts, RULES)
    index = ConflictIndex.build(prov.experts, prov.companies, RULES)
    return DayScreen(pool, index, prov.sites, RULES, TODAY)


def referenced(prov: Province, proj: Project, day: DayScreen | None = None) -> DrawInputs:
    day = day or day_screen(prov)
    return day.inputs(proj, host_city_of(proj, prov.sites))


def explicit_of(inputs: DrawInputs) -> DrawInputs:
    return replace(
        inputs,
        snapshot=None,
        barred="",
        unavailable="",
        venues=inputs.resolved_venues(),
        candidates=inputs.resolved_candidates(),
    )


def test_referenced_inputs_resolve_to_the_explicit_ones() -> None:
    prov, proj = simple_province()
    ref = referenced(prov, proj)
    explicit = inputs_for(prov, proj)
    assert ref.resolved_candidates() == explicit.candidates
    assert ref.resolved_venues() == explicit.venues
    assert ref.candidate_count() == len(explicit.candidates)
    assert ref.venue_count() == len(explicit.venues)


def test_both_forms_draw_alike_on_the_same_stream() -> None:
    prov, proj = simple_province()
    ref = referenced(prov, proj)
    for n in range(30):
        rng_a = DrawRandom(seed_of(n), bytes.fromhex(input_digest(ref)))
        rng_b = DrawRandom(seed_of(n), bytes.fromhex(input_digest(ref)))
        assert _draw(ref, rng_a) == _draw(explicit_of(ref), rng_b)


def test_referenced_digest_is_small_and_names_the_snapshot() -> None:
    prov, proj = simple_province()
    ref = referenced(prov, proj)
    assert ref.snapshot is not None
    text = canonical_inputs(ref)
    generic = json.dumps(inputs_to_json(ref), sort_keys=True, separators=(",", ":"))
    assert text == generic.encode("ascii")
    assert ref.snapshot.digest().encode() in text
    assert b"candidates" not in text and b'"venues"' not in text
    assert input_digest(ref) != input_digest(explicit_of(ref))


def test_a_busy_workstation_or_a_barred_expert_changes_the_digest() -> None:
    prov, proj = simple_province()
    day = day_screen(prov)
    base = referenced(prov, proj, day)
    ws = base.resolved_venues()[0].free[0][0]
    day.add_booking(ws, proj.window.start_ts, proj.window.end_ts)
    busy = referenced(prov, proj, day)
    assert input_digest(busy) != input_digest(base)
    assert ws not in {w for v in busy.resolved_venues() for w, _ in v.free}
    day.remove_booking(ws, proj.window.start_ts, proj.window.end_ts)
    assert input_digest(referenced(prov, proj, day)) == input_digest(base)


@pytest.mark.parametrize("gap", [0x7F, 0x80, 2**14 - 1, 2**14, 2**21 - 1, 2**21, 2**28,
                                 2**34])
def test_row_lists_take_a_byte_per_7_bits_of_each_gap(gap: int) -> None:
    """The widths at each boundary: gap g costs ceil(bits(g) / 7) bytes, at least one."""
    rows = [gap, 2 * gap + 1, 2 * gap + 2]  # gaps g, g, 0
    raw = base64.b64decode(pack_rows(rows))
    assert len(raw) == 2 * max(1, -(-gap.bit_length() // 7)) + 1
    assert unpack_rows(pack_rows(rows), 2**36, "r").tolist() == rows


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("not base64!", "not base64"),
        ("", "bytes for"),
        ("AAA=", "bytes for"),
        ("/w==", "padding bits"),
        ("AB==", "canonical"),
    ],
)
def test_malformed_bitmaps_are_refused_naming_the_field(text: str, needle: str) -> None:
    with pytest.raises(ValueError, match=f"barred: .*{needle}"):
        unpack_mask(text, 3, "barred")


def test_bitmap_round_trip() -> None:
    rng = np.random.default_rng(7)
    for n in (0, 1, 7, 8, 9, 300):
        mask = rng.random(n) < 0.3
        assert (unpack_mask(pack_mask(mask), n, "m") == mask).all()


@given(st.sets(st.integers(min_value=0, max_value=2**34)))
def test_row_lists_round_trip_in_shortest_form(rows: set[int]) -> None:
    ordered = sorted(rows)
    text = pack_rows(ordered)
    assert unpack_rows(text, 2**34 + 1, "r").tolist() == ordered
    # One byte per row while the gaps stay under 128 (a dense bar list stays small).
    if all(b - a <= 128 for a, b in zip([-1, *ordered], ordered, strict=False)):
        assert len(text) == 4 * ((len(ordered) + 2) // 3)


@given(st.lists(st.integers(min_value=0, max_value=2**35 - 1), max_size=300),
       st.sampled_from([0, 1, 8]))
def test_row_gaps_encode_alike_value_by_value_and_vectorised(values: list[int], below: int
                                                              ) -> None:
    """`_leb128` one value at a time (short lists) and in numpy passes (long ones, where the
    values over 127 recurse, value by value again once few): the same bytes, which a decoder
    written from the LEB128 definition reads back."""
    from unittest import mock

    from coordinator.domain.draw import inputs as module

    array = np.array(values, dtype=np.int64)
    with mock.patch.object(module, "_LOOP_BELOW", 10**9):
        looped = module._leb128(array).tobytes()
    with mock.patch.object(module, "_LOOP_BELOW", below):
        vectorised = module._leb128(array).tobytes()
    assert vectorised == looped
    decoded, value, shift = [], 0, 0
    for byte in looped:
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            decoded.append(value)
            value, shift = 0, 0
    assert decoded == values and (not looped or looped[-1] < 0x80)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("not base64!", "not base64"),
        ("AB==", "canonical"),
        ("gA==", "ends inside a number"),
        ("gAA=", "shortest form"),
        ("//////8A", "longer than"),
        ("AwE=", "row 5 past the 4 rows"),
    ],
)
def test_malformed_row_lists_are_refused_naming_the_field(text: str, needle: str) -> None:
    with pytest.raises(ValueError, match=f"declared: .*{needle}"):
        unpack_rows(text, 4, "declared")


@pytest.mark.parametrize("rows", [[-1], [3, 3], [5, 2]])
def test_only_ascending_distinct_rows_are_packed(rows: list[int]) -> None:
    with pytest.raises(ValueError, match="ascending"):
        pack_rows(rows)


def test_inputs_with_a_snapshot_take_no_lists_of_their_own() -> None:
    prov, proj = simple_province()
    ref = referenced(prov, proj)
    explicit = inputs_for(prov, proj)
    with pytest.raises(ValueError, match="no venues or candidates"):
        replace(ref, candidates=explicit.candidates)
    with pytest.raises(ValueError, match="need a snapshot"):
        replace(explicit, barred=ref.barred)
    with pytest.raises(ValueError, match="unavailable"):
        replace(ref, unavailable="AA==")


def test_archive_embeds_the_snapshot_and_verifies() -> None:
    prov, proj = simple_province()
    ref = referenced(prov, proj)
    seed = seed_of("a")
    result = draw(ref, seed)
    archive = json.loads(json.dumps(make_archive(commit(seed, ref), ref, result, seed)))
    assert verify_replay(archive) == []
    assert inputs_from_json(archive["inputs"], {ref.snapshot.digest(): ref.snapshot}) == ref  # type: ignore[union-attr]


def test_an_archive_without_its_snapshot_needs_it_given() -> None:
    prov, proj = simple_province()
    ref = referenced(prov, proj)
    assert ref.snapshot is not None
    seed = seed_of("b")
    archive = make_archive(commit(seed, ref), ref, draw(ref, seed), seed, embed_snapshot=False)
    problems = verify_replay(archive)
    assert len(problems) == 1 and "not provided" in problems[0]
    assert verify_replay(archive, {ref.snapshot.digest(): ref.snapshot}) == []


def test_a_tampered_snapshot_is_caught() -> None:
    prov, proj = simple_province()
    ref = referenced(prov, proj)
    seed = seed_of("c")
    archive = json.loads(json.dumps(make_archive(commit(seed, ref), ref, draw(ref, seed), seed)))
    archive["snapshot"]["candidates"][0][2] = ["G.01"]  # an expert's specialty rewritten
    problems = verify_replay(archive)
    assert len(problems) == 1 and "embedded snapshot digests to" in problems[0]
    # Filed under the right digest by someone else: still refused.
    assert ref.snapshot is not None
    forged = replace(ref.snapshot, candidates=ref.snapshot.candidates[1:])
    del archive["snapshot"]
    problems = verify_replay(archive, {ref.snapshot.digest(): forged})
    assert problems and "digests to" in problems[0]


def test_snapshot_json_round_trip_keeps_the_digest() -> None:
    from coordinator.domain.draw.canonical import snapshot_from_json

    prov, proj = simple_province()
    ref = referenced(prov, proj)
    assert ref.snapshot is not None
    again = snapshot_from_json(json.loads(json.dumps(snapshot_to_json(ref.snapshot))))
    assert again == ref.snapshot and again.digest() == ref.snapshot.digest()


def test_supplementary_referenced_draw_keeps_the_rules() -> None:
    prov, proj = simple_province(n_per_city=4)
    day = day_screen(prov)
    host = host_city_of(proj, prov.sites)
    first = day.inputs(proj, host)
    seed = seed_of("s")
    outcome = draw(first, seed)
    assert isinstance(outcome, DrawOutcome)
    drop = outcome.seats[0].expert_id
    record = commit(seed, first)
    day.book(proj, [(s.expert_id, s.workstation_id) for s in outcome.seats if s.expert_id != drop])
    barred, unavailable = day.barred(proj, host), day.unavailable(proj, host)
    again = supplementary_inputs(
        first,
        outcome.seats,
        {drop},
        venues=(),
        candidates=(),
        parent=record.draw_id,
        snapshot=day.snapshot,
        barred=barred,
        unavailable=unavailable,
    )
    second = draw(again, seed_of("t"))
    assert isinstance(second, DrawOutcome) and len(second.seats) == 1
    new = second.seats[0]
    members = {s.expert_id for s in outcome.seats}
    assert new.expert_id not in members
    kept = [s for s in outcome.seats if s.expert_id != drop]
    assert (new.venue_id, new.room_id) not in {(s.venue_id, s.room_id) for s in kept}


def test_referenced_expert_choice_is_uniform() -> None:
    """Within one open venue every eligible expert of its city is equally likely."""
    prov, proj = simple_province(n_per_city=4)
    one_seat = replace(proj, quotas=(replace(proj.quotas[0], count=1),), committee_size=1)
    ref = referenced(prov, one_seat)
    total = 3000
    counts = Counter()
    for n in range(total):
        result = draw(ref, seed_of(n))
        assert isinstance(result, DrawOutcome)
        counts[result.seats[0].expert_id] += 1
    experts = [c.expert_id for c in ref.resolved_candidates()]
    expected = total / len(experts)
    chi2 = sum((counts[e] - expected) ** 2 / expected for e in experts)
    assert chi2 < 49.7  # chi-square(23 dof) at p = 0.001


def test_inputs_survive_pickling_between_processes() -> None:
    """A worker process numbers values afresh: unpickled candidates are rebuilt, and a draw on
    unpickled inputs (both forms) equals the draw here."""
    import pickle

    prov, proj = simple_province()
    ref = referenced(prov, proj)
    for inputs in (ref, explicit_of(ref)):
        again = pickle.loads(pickle.dumps(inputs))
        assert again == inputs and input_digest(again) == input_digest(inputs)
        assert draw(again, seed_of("p")) == draw(inputs, seed_of("p"))
    candidate = ref.resolved_candidates()[0]
    assert pickle.loads(pickle.dumps(candidate)).canonical == candidate.canonical


def _draw_elsewhere(inputs: DrawInputs, seed: bytes) -> object:
    from coordinator.domain.draw.inputs import Candidate

    Candidate("Z", "economic", ("X.99",), ("Nowhere",))  # this process numbers values otherwise
    return draw(inputs, seed)


def test_a_fresh_process_draws_the_same() -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    prov, proj = simple_province()
    ref = referenced(prov, proj)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        for inputs in (ref, explicit_of(ref)):
            assert pool.submit(_draw_elsewhere, inputs, seed_of("q")).result() == draw(
                inputs, seed_of("q")
            )


def test_inputs_changed_after_referenced_draw_from_their_own_bitmaps() -> None:
    # `referenced` hands its encoded bytes over so they are not decoded again; inputs made
    # from it with another bitmap (or a malformed one) must not keep the old bytes.
    prov, proj = simple_province()
    ref = referenced(prov, proj)
    n = len(ref.snapshot.candidates) if ref.snapshot else 0
    everyone = pack_mask(np.ones(n, dtype=np.bool_))
    barred_all = replace(ref, barred=everyone)
    assert barred_all.candidate_count() == 0
    assert barred_all.resolved_candidates() == ()
    assert not isinstance(draw(barred_all, seed_of(1)), DrawOutcome)
    with pytest.raises(ValueError, match="barred: "):
        replace(ref, barred="AB==")
    again = replace(ref, per_venue_cap=ref.per_venue_cap)  # the same texts: still right
    assert again.candidate_count() == ref.candidate_count() > 0
    assert draw(again, seed_of(1)) == draw(ref, seed_of(1))


_SEGMENTS = st.sampled_from(["W", "G", "01", "011", "02", "0"])
_CODES = st.lists(_SEGMENTS, min_size=1, max_size=4).map(".".join)


@given(specialties=st.lists(st.lists(_CODES, min_size=1, max_size=3), min_size=1,
                            max_size=12),
       code=_CODES, kind=st.sampled_from([None, "technical", "economic"]))
def test_the_index_matches_a_quota_code_by_dotted_prefix_only(
        specialties: list[list[str]], code: str, kind: str | None) -> None:
    """A quota code covers a specialty equal to it or under it past a dot ("W.01" covers
    "W.01.03", not "W.011"), whatever the index keeps to answer fast."""
    from coordinator.domain.draw.index import CandidateIndex
    from coordinator.domain.draw.inputs import Candidate

    candidates = tuple(Candidate(f"E{i:03d}", "technical" if i % 3 else "economic",
                                 tuple(s), ("C1",)) for i, s in enumerate(specialties))
    rows, _ = CandidateIndex(candidates).matching(code, kind)
    expected = [i for i, c in enumerate(candidates)
                if (kind is None or c.kind == kind)
                and any(s == code or s.startswith(code + ".") for s in c.specialties)]
    assert rows.tolist() == expected


_CITIES = st.sampled_from(["C1", "C2", "C3", "C4", "C5"])


@given(catchments=st.lists(st.lists(_CITIES, min_size=1, max_size=3, unique=True),
                           min_size=1, max_size=12),
       asked=st.lists(st.frozensets(st.sampled_from(["C1", "C2", "C3", "C9"])), max_size=4),
       marked=st.lists(st.booleans(), min_size=12, max_size=12),
       venue_cities=st.lists(st.sampled_from(["C1", "C2", "C3", "C4", "C5", "C9"]),
                             max_size=6))
def test_the_index_reads_catchments_by_city_as_the_candidates_spell_them(
        catchments: list[list[str]], asked: list[frozenset[str]], marked: list[bool],
        venue_cities: list[str]) -> None:
    """`catch_ok` (masks kept per city, asked again and again) and `cities_served` (by
    array) say what a look at each candidate's own catchment says."""
    from coordinator.domain.draw.index import CandidateIndex
    from coordinator.domain.draw.inputs import Candidate

    candidates = tuple(Candidate(f"E{i:03d}", "technical", ("W",), tuple(c))
                       for i, c in enumerate(catchments))
    index = CandidateIndex(candidates)
    keys = index.catch_keys
    for cities in [*asked, *asked]:  # the second time from the kept masks
        got = index.catch_ok(cities)
        assert got.tolist() == [bool(set(k) & cities) for k in keys]
    picked = np.array(marked[:len(keys)], dtype=np.bool_)
    served = {c for k, on in zip(keys, picked, strict=True) if on for c in k}
    for _ in range(2):
        got = index.cities_served(picked, venue_cities)
        assert got.tolist() == [c in served for c in venue_cities]


@given(st.lists(st.lists(st.booleans(), max_size=4), min_size=1, max_size=8))
def test_a_venue_offers_when_one_of_its_stations_is_free(free_by_venue: list[list[bool]]
                                                         ) -> None:
    """`offering`, one reduction per venue, venues without a station included."""
    from coordinator.domain.draw.index import VenueIndex
    from coordinator.domain.draw.inputs import VenueOffer

    venues = tuple(VenueOffer(f"V{v}", "S1", "C1", tuple((f"V{v}-W{w}", f"R{w % 2}")
                                                         for w in range(len(free))))
                   for v, free in enumerate(free_by_venue))
    index = VenueIndex(venues)
    free = np.array([f for fs in free_by_venue for f in fs], dtype=np.bool_)
    assert index.offering(free).tolist() == [any(fs) for fs in free_by_venue]


@given(catchments=st.lists(st.lists(_CITIES, min_size=1, max_size=2, unique=True),
                           max_size=14),
       keep=st.lists(st.booleans(), min_size=14, max_size=14),
       near=st.frozensets(_CITIES))
def test_a_quota_grouped_by_catchment_answers_as_a_look_at_each_candidate(
        catchments: list[list[str]], keep: list[bool], near: frozenset[str]) -> None:
    """`CatchGroups.served` (catchments still holding a kept candidate) and `within` (the
    kept candidates of the marked catchments, ascending) say what a pass over the quota's
    rows says: the draw narrows each quota through them."""
    from coordinator.domain.draw.index import CandidateIndex, CatchGroups
    from coordinator.domain.draw.inputs import Candidate

    candidates = tuple(Candidate(f"E{i:03d}", "technical", ("W.01",) if i % 4 else ("G",),
                                 tuple(c)) for i, c in enumerate(catchments))
    index = CandidateIndex(candidates)
    rows, catch = index.matching("W", None)
    groups = index.grouped("W", None)
    assert index.grouped("W", None) is groups  # kept per quota code
    wide = CatchGroups(rows, catch, 1 << 17)  # codes too many for the 16-bit sort
    assert wide.rows.tolist() == groups.rows.tolist()
    assert wide.starts.tolist() == groups.starts.tolist()
    kept = np.array(keep[:len(rows)], dtype=np.bool_)
    by_row = dict(zip(rows.tolist(), kept.tolist(), strict=True))
    mine = np.array([by_row[r] for r in groups.rows.tolist()], dtype=np.bool_)
    served = sorted(groups.served(mine).tolist())
    assert served == sorted({c for r, c, k in zip(rows, catch, kept, strict=True) if k})
    marked = index.catch_ok(near)
    got_rows, got_catch = groups.within(mine, marked)
    want = [(r, c) for r, c, k in zip(rows.tolist(), catch.tolist(), kept.tolist(), strict=True)
            if k and marked[c]]
    assert list(zip(got_rows.tolist(), got_catch.tolist(), strict=True)) == want


@given(st.lists(st.lists(st.tuples(st.sampled_from(["R0", "R1", "R2"]), st.booleans()),
                         max_size=5), min_size=1, max_size=6))
def test_a_room_is_open_when_one_of_its_stations_is_free(
        stations: list[list[tuple[str, bool]]]) -> None:
    """`rooms_open`, one reduction per room, a venue's rooms interleaved or not."""
    from coordinator.domain.draw.index import VenueIndex
    from coordinator.domain.draw.inputs import VenueOffer

    venues = tuple(VenueOffer(f"V{v}", "S1", "C1", tuple((f"V{v}-W{w}", room) for w, (room, _)
                                                         in enumerate(ws)))
                   for v, ws in enumerate(stations))
    index = VenueIndex(venues)
    free = np.array([f for ws in stations for _, f in ws], dtype=np.bool_)
    want = np.zeros(index.n_rooms, dtype=np.bool_)
    want[index.ws_room[free]] = True
    assert index.rooms_open(free).tolist() == want.tolist()
