"""The numbers a question licenses: digits, number words, percentages, fractions."""

from __future__ import annotations

from fractions import Fraction as F

from caspo_lite.quantities import question_quantities


def test_digits_words_and_parts() -> None:
    q = question_quantities(
        "Mira has twenty-five shells and 1,200 coins, half a dozen eggs and 3/4 of a pie."
    )
    assert {F(25), F(20), F(5), F(1200), F(1, 2), F(2), F(12), F(3, 4), F(3), F(4)} <= q
    assert F(7) not in q


def test_percentages_read_both_ways() -> None:
    q = question_quantities("A $50 shirt is 20% off; the tax is 8 percent.")
    assert {F(50), F(20), F(1, 5), F(4, 5), F(8), F(2, 25)} <= q


def test_compound_numbers() -> None:
    q = question_quantities("three hundred and five, twice, a pair, thirty")
    assert {F(305), F(2), F(30)} <= q
