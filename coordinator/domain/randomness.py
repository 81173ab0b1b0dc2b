"""A deterministic cryptographic generator for draws that anyone can replay.

A draw must be unpredictable before the seed is revealed and exactly reproducible after, on any
machine and Python version. `random.Random` is neither cryptographic nor specified across
versions, so the stream here is spelled out:

- key   = SHA-256(b"evalgrid-draw-v1" || seed || context), seed exactly 32 bytes (so the
          concatenation is unambiguous), context = the draw's input digest (raw bytes);
- bytes = the ChaCha20 keystream under that key with a 16-byte all-zero nonce (cryptography's
          ChaCha20: 4-byte little-endian block counter 0, 12-byte nonce 0), read in order;
- randbelow(n): n == 1 returns 0 and reads nothing; otherwise b = bit length of n - 1, read
          ceil(b / 8) bytes as a big-endian integer, keep its low b bits, and retry while the
          value is >= n (rejection sampling: no modulo bias);
- sample(seq, k): partial Fisher-Yates on a copy: for i in 0..k-1, j = i + randbelow(n - i),
          swap items i and j; the result is items 0..k-1 in that order (a uniform k-subset in a
          uniform order); shuffle is sample with k = n; choice(seq) = seq[randbelow(len(seq))].
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import MutableSequence, Sequence
from typing import TypeVar

from cryptography.hazmat.primitives.ciphers import Cipher
from cryptography.hazmat.primitives.ciphers.algorithms import ChaCha20

T = TypeVar("T")

SEED_BYTES = 32
DOMAIN_TAG = b"evalgrid-draw-v1"
_NONCE = bytes(16)
_CHUNK = 4096


class DrawRandom:
    """The replayable stream of one draw; see the module docstring for the exact definition."""

    __slots__ = ("_buffer", "_encryptor", "_pos")

    def __init__(self, seed: bytes, context: bytes) -> None:
        if len(seed) != SEED_BYTES:
            raise ValueError(f"seed must be exactly {SEED_BYTES} bytes, got {len(seed)}")
        key = hashlib.sha256(DOMAIN_TAG + seed + context).digest()
        self._encryptor = Cipher(ChaCha20(key, _NONCE), mode=None).encryptor()
        self._buffer = b""
        self._pos = 0

    def read(self, n: int) -> bytes:
        """The next n keystream bytes."""
        if self._pos + n > len(self._buffer):
            rest = self._buffer[self._pos :]
            need = max(_CHUNK, n - len(rest))
            self._buffer = rest + self._encryptor.update(bytes(need))
            self._pos = 0
        out = self._buffer[self._pos : self._pos + n]
        self._pos += n
        return out

    def randbelow(self, n: int) -> int:
        """A uniform integer in [0, n), by rejection sampling."""
        if n < 1:
            raise ValueError(f"randbelow needs n >= 1, got {n}")
        if n == 1:
            return 0
        bits = (n - 1).bit_length()
        nbytes = (bits + 7) // 8
        mask = (1 << bits) - 1
        while True:
            value = int.from_bytes(self.read(nbytes), "big") & mask
            if value < n:
                return value

    def sample(self, seq: Sequence[T], k: int) -> list[T]:
        """A uniform k-subset of seq, in draw order (partial Fisher-Yates)."""
        items = list(seq)
        n = len(items)
        if not 0 <= k <= n:
            raise ValueError(f"sample size {k} out of range for {n} items")
        for i in range(k):
            j = i + self.randbelow(n - i)
            items[i], items[j] = items[j], items[i]
        return items[:k]

    def shuffle(self, items: MutableSequence[T]) -> None:
        """Shuffle in place; the same permutation as sample(items, len(items))."""
        n = len(items)
        for i in range(n):
            j = i + self.randbelow(n - i)
            items[i], items[j] = items[j], items[i]

    def choice(self, seq: Sequence[T]) -> T:
        """A uniform element of a non-empty sequence."""
        if not seq:
            raise ValueError("choice from an empty sequence")
        return seq[self.randbelow(len(seq))]


def fresh_seed() -> bytes:
    """IMPURE: 32 bytes from the OS CSPRNG. The only non-deterministic function in the domain;
    call it in the shell, commit to its hash, and pass the seed into the pure draw."""
    return secrets.token_bytes(SEED_BYTES)


def spare_workstation(seed: bytes, session_id: str, from_workstation: str,
                      spares: Sequence[str]) -> int:
    """Which of ``spares`` (sorted ids) a member moves to when their workstation fails.

    Replayable like the draw: the stream is `DrawRandom(seed, context)` with the seed of the
    draw that placed the member (committed before, revealed with the award) and context =
    SHA-256(b"evalgrid-spare-move-v1" 0 session 0 from-workstation 0 spares joined by newline);
    the pick is `randbelow(len(spares))`. Returns the index into ``spares``.
    """
    if not spares:
        raise ValueError("no spare workstation to pick from")
    context = hashlib.sha256(b"\0".join([
        b"evalgrid-spare-move-v1", session_id.encode(), from_workstation.encode(),
        "\n".join(spares).encode()])).digest()
    return DrawRandom(seed, context).randbelow(len(spares))
