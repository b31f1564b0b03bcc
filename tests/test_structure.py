"""Canonical forms of calculations and the 'part of a gold calculation' rule."""

from __future__ import annotations

from fractions import Fraction as F

from caspo_lite.structure import annotations, build_structure, combine, is_part_of, value


def _sum(*terms: int) -> object:
    form: object = F(terms[0])
    for t in terms[1:]:
        form = combine("+" if t >= 0 else "-", form, F(abs(t)))
    return form


def test_sums_and_products_are_flat_multisets() -> None:
    assert combine("+", combine("+", F(8), F(5)), F(-8)) == combine("+", combine("-", F(8), F(8)), F(5))
    assert combine("*", F(48), F(1, 2)) == combine("/", F(48), F(2))
    assert value(combine("/", F(48), F(2))) == 24
    assert combine("-", F(8), F(8)) != F(0)  # terms are kept, not cancelled


def test_part_of_gold() -> None:
    gold = _sum(8, -8, 5)
    assert is_part_of(_sum(8, 5), gold) and is_part_of(_sum(5, -8), gold)
    assert not is_part_of(_sum(8, 8), gold)  # the 8 is added once and subtracted once
    assert not is_part_of(combine("-", _sum(8, 5), F(5)), gold)  # subtracts the 5 it added
    gold = _sum(20, -3, -5)
    assert is_part_of(_sum(3, 5), gold)  # a subtracted group worked out first
    assert not is_part_of(_sum(-20, 3, 5), gold)  # never the whole, negated
    product = combine("*", combine("*", F(50), F(20)), F(1, 100))
    assert is_part_of(combine("*", F(1, 5), F(50)), product)  # 20% as 0.2
    assert not is_part_of(combine("*", F(2), F(50)), combine("*", combine("*", F(50), F(1, 2)), F(4)))


def test_build_structure_chains_results_and_annotations_per_line() -> None:
    text = "Natalia sold 48/2 = <<48/2=24>>24 clips.\nAltogether 48+24 = <<48+24=72>>72.\n#### 72"
    assert annotations(text) == (
        "Natalia sold 48/2 = 24 clips.",
        "48/2=24",
        "Altogether 48+24 = 72.",
        "48+24=72",
    )
    half = combine("/", F(48), F(2))
    tree1 = ("/", ("num", F(48)), ("num", F(2)))
    tree2 = ("+", ("num", F(48)), ("num", F(24)))
    s = build_structure([(tree1, F(24)), (tree2, F(72))], frozenset({F(48), F(2), F(1, 2)}))
    assert combine("+", F(48), half) in s.forms and set(s.values) == {F(24), F(72)}
    assert s.numbers == {F(48), F(2)}  # 24 is a carried result, not an operand of the problem
