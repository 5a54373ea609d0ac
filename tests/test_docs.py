"""docs/ is generated (`klspec docs`) and must match what the code generates now."""

from pathlib import Path

from klspec.spec import documentation
from klspec.spec.clauses import CATALOG

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_docs_are_current():
    stale = documentation.stale(DOCS)
    assert not stale, f"docs/ is out of date in {stale}: run `klspec docs` and commit the result"


def test_every_clause_and_derivation_is_on_the_index():
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    for clause in CATALOG:
        assert f'<a id="{documentation.clause_anchor(clause.id)}"></a>' in index, clause.id
    for _, _, derivation_ids, _ in documentation.READING_ORDER:
        for d in derivation_ids:
            assert f"(proofs/{d}.md)" in index


def test_reading_order_covers_every_derivation():
    from klspec.spec.derivations import DERIVATIONS

    listed = {d for _, _, ids, _ in documentation.READING_ORDER for d in ids}
    assert listed == {d.removeprefix("derivation.") for d in DERIVATIONS}


def test_stale_detects_a_hand_edit(tmp_path):
    """The freshness check can fail: a changed, a missing and an extra page are all reported."""
    documentation.write(tmp_path)
    assert documentation.stale(tmp_path) == []
    (tmp_path / "index.md").write_text("edited by hand\n", encoding="utf-8")
    (tmp_path / "proofs" / "gibbs.md").unlink()
    (tmp_path / "proofs" / "orphan.md").write_text("x\n", encoding="utf-8")
    assert documentation.stale(tmp_path) == ["index.md", "proofs/gibbs.md", "proofs/orphan.md"]


def test_klspec_docs_check_and_write(tmp_path):
    import io

    from klspec.commands import main

    out = io.StringIO()
    assert main(["docs", "--check", "--out", str(tmp_path)], out=out) == 1
    assert "out of date" in out.getvalue()
    assert main(["docs", "--out", str(tmp_path)], out=io.StringIO()) == 0
    assert main(["docs", "--check", "--out", str(tmp_path)], out=io.StringIO()) == 0


def test_klspec_prove_exit_status(capsys):
    import io

    from klspec.commands import main

    out = io.StringIO()
    assert main(["prove", "kl_cross_entropy"], out=out) == 0
    assert "each at its claimed level" in out.getvalue()
    assert main(["prove", "no_such_derivation"], out=io.StringIO()) == 2
    assert "no derivation 'no_such_derivation'" in capsys.readouterr().err
