"""Confidence signals against hand-computed distributions (docs/design.md §1.2)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from caspo_lite.confidence import (
    ConfidenceScorer,
    geometric_mean,
    mean_logprob,
    path_confidence,
    step_confidence,
    token_confidence,
)


def logits_for(probs: list[float], shift: float = 3.0) -> np.ndarray:
    """Logits whose softmax is exactly ``probs`` (any additive shift must not matter)."""
    return (np.log(np.asarray(probs, dtype=np.float64)) + shift).astype(np.float32)


P = [0.5, 0.25, 0.125, 0.125]
H = -sum(p * math.log(p) for p in P)  # 1.2130 nats


def test_entropy_signal_is_exp_minus_entropy() -> None:
    assert token_confidence(logits_for(P), "entropy") == pytest.approx(math.exp(-H), rel=1e-5)


def test_uniform_distribution_gives_inverse_vocab_size() -> None:
    assert token_confidence(np.zeros(8, np.float32), "entropy") == pytest.approx(1 / 8, rel=1e-5)
    assert token_confidence(np.zeros(8, np.float32), "maxprob") == pytest.approx(1 / 8, rel=1e-5)
    assert token_confidence(np.zeros(8, np.float32), "margin") == pytest.approx(0.0, abs=1e-6)


def test_maxprob_and_margin() -> None:
    assert token_confidence(logits_for(P), "maxprob") == pytest.approx(0.5, rel=1e-5)
    assert token_confidence(logits_for(P), "margin") == pytest.approx(0.25, rel=1e-5)


def test_margin_with_tied_top_two_is_zero() -> None:
    assert token_confidence(logits_for([0.4, 0.4, 0.2]), "margin") == pytest.approx(0.0, abs=1e-6)


def test_deepconf_is_minus_mean_topk_logprob() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(size=100).astype(np.float32)
    logp = z - np.log(np.exp(z.astype(np.float64)).sum())
    expected = -np.sort(logp)[-20:].mean()
    assert ConfidenceScorer("deepconf").score(z)[0] == pytest.approx(expected, rel=1e-5)


def test_chosen_logprob() -> None:
    conf, logprob = ConfidenceScorer("entropy").score(logits_for(P), chosen=1)
    assert logprob == pytest.approx(math.log(0.25), abs=1e-5)
    assert conf == pytest.approx(math.exp(-H), rel=1e-5)


def test_stats_agree_with_single_signal_scores() -> None:
    rng = np.random.default_rng(1)
    z = (rng.normal(size=5000) * 3).astype(np.float32)
    stats = ConfidenceScorer().stats(z, chosen=7)
    for signal in ("entropy", "margin", "maxprob", "deepconf"):
        assert stats.confidence(signal) == pytest.approx(ConfidenceScorer(signal).score(z)[0], rel=1e-4)
    p = np.exp(z.astype(np.float64) - z.max())
    p /= p.sum()
    assert stats.entropy == pytest.approx(float(-(p * np.log(p)).sum()), rel=1e-4)


def test_extreme_logits_stay_finite() -> None:
    z = np.array([1e4, -1e4, 0.0], dtype=np.float32)
    for signal in ("entropy", "margin", "maxprob", "deepconf"):
        assert math.isfinite(ConfidenceScorer(signal, k=2).score(z, chosen=1)[0])
    assert token_confidence(z, "entropy") == pytest.approx(1.0, abs=1e-6)


def test_scorer_reuses_buffer_across_calls() -> None:
    scorer = ConfidenceScorer()
    scorer.score(np.zeros(16, np.float32))
    buf = scorer._buf
    scorer.score(np.ones(16, np.float32))
    assert scorer._buf is buf


def test_unknown_signal_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown confidence signal"):
        ConfidenceScorer("perplexity")


def test_step_confidence_is_geometric_mean() -> None:
    assert step_confidence([0.5, 0.125]) == pytest.approx(0.25)
    assert step_confidence([]) == 1.0
    # for the entropy signal the geometric mean of exp(-H_t) is exp(-mean H)
    hs = [0.2, 1.0, 0.6]
    assert step_confidence([math.exp(-h) for h in hs]) == pytest.approx(math.exp(-sum(hs) / 3))


def test_path_confidence_modes() -> None:
    steps = [0.9, 0.4, 0.8, 0.1]
    assert path_confidence(steps) == pytest.approx(geometric_mean(steps))
    assert path_confidence(steps, "min") == pytest.approx(0.1)
    assert path_confidence(steps, "tail", tail=2) == pytest.approx(math.sqrt(0.8 * 0.1))
    with pytest.raises(ValueError):
        path_confidence(steps, "mean")


def test_mean_logprob() -> None:
    assert mean_logprob([-1.0, -3.0]) == pytest.approx(-2.0)
    assert mean_logprob([]) == 0.0
