"""The catalog is well formed, every clause is checked, and every check has a meta-test."""

from __future__ import annotations

import re

import mpmath
import pytest
from implementations_under_test import broken_for

from klspec.spec import CATALOG, CHECKS, clause
from klspec.spec.checks import check_named, checks_for
from klspec.spec.clauses import KINDS
from klspec.spec.interface import ARGUMENTS, TOPIC_KEYS, topic_functions
from klspec.spec.special_cases import SPECIAL_CASES

ID = re.compile(r"^[a-z_]+(\.[a-z_][a-z0-9_]*)+$")


def test_clause_ids_are_unique_and_well_formed():
    ids = [c.id for c in CATALOG]
    assert len(ids) == len(set(ids))
    bad = [i for i in ids if not ID.match(i)]
    assert not bad, f"ids must be dotted lower_snake words: {bad}"


@pytest.mark.parametrize("c", CATALOG, ids=lambda c: c.id)
def test_clause_fields(c):
    assert c.kind in KINDS
    assert set(c.quantities) <= set(ARGUMENTS)
    assert c.topic in TOPIC_KEYS
    assert c.statement
    assert "\n" not in c.statement
    assert clause(c.id) is c


def test_unknown_clause_names_close_matches():
    with pytest.raises(KeyError, match=r"did you mean kl\.nonnegative"):
        clause("kl.nonnegativ")


def test_catalog_is_grouped_by_topic_then_kind_in_reading_order():
    order = [(TOPIC_KEYS.index(c.topic), KINDS.index(c.kind)) for c in CATALOG]
    assert order == sorted(order)


def test_topics_name_every_function():
    named = [q for topic in TOPIC_KEYS for q in topic_functions(topic)]
    assert sorted(named) == sorted(ARGUMENTS)  # each function in exactly one topic


def test_check_names_are_unique():
    names = [c.name for c in CHECKS]
    assert len(names) == len(set(names))
    assert all(check_named(n).name == n for n in names)


def test_every_clause_has_a_check():
    unchecked = [c.id for c in CATALOG if not checks_for(c.id)]
    assert not unchecked


def test_every_check_belongs_to_a_clause():
    ids = {c.id for c in CATALOG}
    assert all(k.clause_id in ids for k in CHECKS)


def test_every_check_has_a_meta_test():
    """A new check must come with a broken implementation it rejects (tests/test_meta.py)."""
    missing = [k.name for k in CHECKS if not broken_for(k)]
    assert not missing, f"add these checks to BROKEN in implementations_under_test.py: {missing}"


def test_special_cases_generate_their_clause_and_check():
    for row in SPECIAL_CASES:
        assert clause(row.clause_id).statement == row.statement
        assert [k.name for k in checks_for(row.clause_id)] == [row.id]


def test_special_case_ids_read_like_the_spec():
    ids = {row.clause_id: row.id for row in SPECIAL_CASES}
    assert ids["kl.special.p_zero"] == "kl(p_i == 0 and q_i > 0) -> term 0"
    assert ids["kl.special.q_zero"] == "kl(p_i > 0 and q_i == 0) -> +inf"
    assert ids["entropy.special.uniform"] == "entropy(p is uniform) -> log n"


def _kl(p, q):
    with mpmath.workdps(30):
        return mpmath.fsum(a * mpmath.log(a / b) for a, b in zip(p, q, strict=True))


@pytest.mark.parametrize(
    ("clause_id", "p", "q"),
    [
        ("example.weather.forward", (7, 3), (5, 5)),
        ("example.weather.reverse", (5, 5), (7, 3)),
    ],
)
def test_worked_example_statements_give_the_true_value(clause_id, p, q):
    """The numbers written in the clause are the exact value, to the digits shown."""
    value = _kl([mpmath.mpf(x) / 10 for x in p], [mpmath.mpf(x) / 10 for x in q])
    c = clause(clause_id)
    assert f"≈ {float(value):.4f} nats" in c.statement
    if clause_id.endswith("reverse"):
        assert f"{float(value):.8f}"[:10] in c.notes  # 0.08717669...
        assert "0.088" in c.notes  # what the post prints, and why


def test_not_a_metric_witness_numbers_in_the_notes():
    P, Q, R = ((mpmath.mpf(a) / 10, mpmath.mpf(b) / 10) for a, b in [(9, 1), (5, 5), (1, 9)])
    notes = clause("kl.not_a_metric").notes
    for value in (_kl(P, R), _kl(P, Q), _kl(Q, R)):
        assert f"{float(value):.3f}" in notes
    assert _kl(P, R) > _kl(P, Q) + _kl(Q, R)


def test_every_derivation_is_a_clause_with_a_proof_page():
    from klspec.spec.clauses import derivation_clauses
    from klspec.spec.derivations import DERIVATIONS

    derived = derivation_clauses()
    assert [c.id for c in derived] == list(DERIVATIONS)
    assert all(c.kind == "derivation" and "klspec prove" in c.notes for c in derived)
    assert not {c.id for c in derived} & {c.id for c in CATALOG}
