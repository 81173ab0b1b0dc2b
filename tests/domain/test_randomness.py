"""The draw generator: deterministic, unbiased, and exactly the documented stream."""

from __future__ import annotations

import hashlib
from collections import Counter
from itertools import permutations

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher
from cryptography.hazmat.primitives.ciphers.algorithms import ChaCha20

from coordinator.domain.randomness import DrawRandom, fresh_seed

SEED = bytes(range(32))

# Chi-square critical values at alpha = 0.001 (df: value); a fair generator fails one in 1,000.
CHI2_001 = {3: 16.266, 4: 18.467, 5: 20.515, 6: 22.458, 11: 31.264, 12: 32.909}


def chi_square(counts: Counter[object], outcomes: list[object], total: int) -> float:
    expected = total / len(outcomes)
    return sum((counts[o] - expected) ** 2 / expected for o in outcomes)


def test_stream_is_the_documented_chacha20() -> None:
    context = b"ctx"
    key = hashlib.sha256(b"evalgrid-draw-v1" + SEED + context).digest()
    expected = Cipher(ChaCha20(key, bytes(16)), mode=None).encryptor().update(bytes(10_000))
    rng = DrawRandom(SEED, context)
    got = b"".join(rng.read(n) for n in (1, 7, 4096, 5000, 896))
    assert got == expected


def test_known_answers() -> None:
    """Pinned values: a change here breaks every archived draw's replay."""
    rng = DrawRandom(SEED, b"known-answer")
    assert [rng.randbelow(1000) for _ in range(5)] == KNOWN_RANDBELOW
    assert rng.sample(list(range(10)), 3) == KNOWN_SAMPLE


KNOWN_RANDBELOW = [561, 591, 180, 20, 740]
KNOWN_SAMPLE = [4, 2, 3]


def test_deterministic_and_context_bound() -> None:
    a = [DrawRandom(SEED, b"x").randbelow(10**6) for _ in range(1)]
    b = [DrawRandom(SEED, b"x").randbelow(10**6) for _ in range(1)]
    assert a == b
    r1, r2 = DrawRandom(SEED, b"x"), DrawRandom(SEED, b"y")
    assert [r1.randbelow(2**32) for _ in range(4)] != [r2.randbelow(2**32) for _ in range(4)]


def test_seed_must_be_32_bytes() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        DrawRandom(b"short", b"")


def test_randbelow_edges() -> None:
    rng = DrawRandom(SEED, b"")
    assert rng.randbelow(1) == 0
    assert rng.read(4) == DrawRandom(SEED, b"").read(4)  # n == 1 consumed nothing
    with pytest.raises(ValueError):
        rng.randbelow(0)
    values = {rng.randbelow(3) for _ in range(200)}
    assert values == {0, 1, 2}
    big = 10**30 + 7
    assert all(0 <= rng.randbelow(big) < big for _ in range(200))


@pytest.mark.parametrize("n", [7, 6, 13])
def test_randbelow_unbiased(n: int) -> None:
    """Chi-square over n outcomes; 7 and 13 need rejection (not powers of two)."""
    total = 3000 * n
    rng = DrawRandom(SEED, f"chi-{n}".encode())
    counts: Counter[object] = Counter(rng.randbelow(n) for _ in range(total))
    stat = chi_square(counts, list(range(n)), total)
    assert stat < CHI2_001[n - 1], (stat, counts)


def test_modulo_bias_would_be_caught() -> None:
    """The same test rejects a biased generator: byte % 200 favours 0..55."""
    rng = DrawRandom(SEED, b"bias")
    total = 40_000
    counts: Counter[object] = Counter(rng.read(1)[0] % 200 // 40 for _ in range(total))
    assert chi_square(counts, list(range(5)), total) > CHI2_001[4]


def test_sample_uniform_over_ordered_pairs() -> None:
    rng = DrawRandom(SEED, b"sample")
    total = 12 * 800
    outcomes: list[object] = list(permutations("abcd", 2))
    counts: Counter[object] = Counter(tuple(rng.sample("abcd", 2)) for _ in range(total))
    assert chi_square(counts, outcomes, total) < CHI2_001[11]


def test_shuffle_uniform_and_equal_to_full_sample() -> None:
    rng = DrawRandom(SEED, b"shuffle")
    total = 6 * 1000
    counts: Counter[object] = Counter()
    for _ in range(total):
        items = ["a", "b", "c"]
        rng.shuffle(items)
        counts[tuple(items)] += 1
    assert chi_square(counts, list(permutations("abc")), total) < CHI2_001[5]
    r1, r2 = DrawRandom(SEED, b"same"), DrawRandom(SEED, b"same")
    items = list(range(20))
    r1.shuffle(items)
    assert items == r2.sample(range(20), 20)


def test_choice_and_sample_errors() -> None:
    rng = DrawRandom(SEED, b"")
    assert rng.choice(["only"]) == "only"
    with pytest.raises(ValueError):
        rng.choice([])
    with pytest.raises(ValueError):
        rng.sample([1, 2], 3)


def test_fresh_seed() -> None:
    a, b = fresh_seed(), fresh_seed()
    assert len(a) == 32 and a != b
