"""Next-token sampling in numpy from a logits row (temperature, top-p, seeded).

Why numpy and not llama.cpp's sampler chain: every branch's row is already in our hands for
the confidence signal, so sampling from it costs one more O(V) pass and keeps the search
identical on every engine (llama.cpp, transformers, the scripted fake). One `Sampler` per
search, one reused float32 buffer: no per-token V-sized allocation.

Nucleus (top-p) never sorts the whole vocabulary in the common case: the top 64 candidates
are found with ``argpartition`` (O(V)) and only those are sorted; the full sort is a fallback
for rows so flat that 64 tokens do not reach ``top_p``.
"""

from __future__ import annotations

import numpy as np

_TOP_CANDIDATES = 64


def check_sampling(temperature: float, top_p: float) -> None:
    """Raise ValueError with the fix when a sampling knob is out of range."""
    if not temperature >= 0.0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")


class Sampler:
    """Samples token ids from logits rows; ``temperature == 0`` is argmax (greedy)."""

    def __init__(self, temperature: float = 0.7, top_p: float = 1.0, seed: int = 0) -> None:
        check_sampling(temperature, top_p)
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.rng = np.random.default_rng(seed)
        self._buf = np.empty(0, dtype=np.float32)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def sample(self, logits: np.ndarray) -> int:
        """One token id from a (V,) logits row (the row is read, never written)."""
        if self.temperature == 0.0:
            return int(np.argmax(logits))
        if self.top_p < 1.0:
            return self._sample_top_p(logits)
        if self._buf.shape != logits.shape:
            self._buf = np.empty(logits.shape, dtype=np.float32)
        buf = self._buf
        np.subtract(logits, logits.max(), out=buf)
        buf *= np.float32(1.0 / self.temperature)
        np.exp(buf, out=buf)
        np.cumsum(buf, out=buf)
        u = self.rng.random() * float(buf[-1])
        return min(int(np.searchsorted(buf, u, side="right")), logits.shape[0] - 1)

    def _sample_top_p(self, logits: np.ndarray) -> int:
        n = logits.shape[0]
        m = float(logits.max())
        inv_t = 1.0 / self.temperature
        # Partition function over the full row (one O(V) pass into the reused buffer).
        if self._buf.shape != logits.shape:
            self._buf = np.empty(logits.shape, dtype=np.float32)
        np.subtract(logits, m, out=self._buf)
        self._buf *= np.float32(inv_t)
        np.exp(self._buf, out=self._buf)
        total = float(self._buf.sum(dtype=np.float32))
        k = min(_TOP_CANDIDATES, n)
        cand = np.argpartition(logits, n - k)[n - k :] if k < n else np.arange(n)
        cand = cand[np.argsort(-logits[cand], kind="stable")]
        probs = self._buf[cand] / total
        cum = np.cumsum(probs)
        if cum[-1] < self.top_p and k < n:  # very flat row: fall back to the full sort
            cand = np.argsort(-logits, kind="stable")
            probs = self._buf[cand] / total
            cum = np.cumsum(probs)
        cut = int(np.searchsorted(cum, self.top_p, side="left")) + 1
        cut = min(cut, cand.shape[0])
        u = self.rng.random() * float(cum[cut - 1])
        idx = min(int(np.searchsorted(cum[:cut], u, side="right")), cut - 1)
        return int(cand[idx])
