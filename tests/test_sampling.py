"""Sampling: greedy is argmax, temperature/top-p follow the distribution, seeds reproduce."""

from __future__ import annotations

import numpy as np
import pytest

from caspo_lite.sampling import Sampler


def test_greedy_is_argmax() -> None:
    row = np.array([0.1, 3.0, 2.9, -1.0], dtype=np.float32)
    assert Sampler(temperature=0.0).sample(row) == 1


def test_frequencies_follow_softmax() -> None:
    row = np.log(np.array([0.5, 0.3, 0.2], dtype=np.float32))
    s = Sampler(temperature=1.0, top_p=1.0, seed=1)
    counts = np.bincount([s.sample(row) for _ in range(4000)], minlength=3) / 4000
    assert np.allclose(counts, [0.5, 0.3, 0.2], atol=0.03)


def test_top_p_cuts_the_tail() -> None:
    row = np.log(np.array([0.6, 0.3, 0.05, 0.05], dtype=np.float32))
    s = Sampler(temperature=1.0, top_p=0.8, seed=2)
    seen = {s.sample(row) for _ in range(2000)}
    assert seen == {0, 1}


def test_top_p_on_a_large_flat_row_falls_back_to_full_sort() -> None:
    row = np.zeros(1000, dtype=np.float32)
    s = Sampler(temperature=1.0, top_p=0.5, seed=3)
    picks = {s.sample(row) for _ in range(300)}
    assert len(picks) > 100 and max(picks) < 1000


def test_low_temperature_sharpens() -> None:
    row = np.array([1.0, 0.0], dtype=np.float32)
    s = Sampler(temperature=0.05, seed=4)
    assert all(s.sample(row) == 0 for _ in range(200))


def test_seed_reproduces() -> None:
    row = np.random.default_rng(0).normal(size=500).astype(np.float32)
    a = [Sampler(0.8, 0.9, seed=7).sample(row) for _ in range(1)]
    s1, s2 = Sampler(0.8, 0.9, seed=7), Sampler(0.8, 0.9, seed=7)
    assert [s1.sample(row) for _ in range(50)] == [s2.sample(row) for _ in range(50)]
    assert a[0] == Sampler(0.8, 0.9, seed=7).sample(row)


@pytest.mark.parametrize(("temperature", "top_p"), [(-0.1, 1.0), (1.0, 0.0), (1.0, 1.5)])
def test_bad_knobs_raise(temperature: float, top_p: float) -> None:
    with pytest.raises(ValueError):
        Sampler(temperature, top_p)
