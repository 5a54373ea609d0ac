"""Every page of docs/ renders: MathJax in headless Chromium, as GitHub shows it.

Each Markdown page is converted to HTML (markdown-it-py, CommonMark with tables; a
```` ```math ```` fence, or a ``$$`` block on lines of its own, is display math, and
``$...$`` in the text is inline math, as on GitHub), laid out in a 900 px column and
typeset by MathJax in headless Chromium. The test fails on a MathJax error (an
undefined control sequence, a parse error), on TeX left visible in the page, typeset
math included (``\\frac``, ``\\_`` shown literally inside ``\\text{}``, ``$$``), and on
display math wider than the column. It writes a screenshot (PNG) of every page with
display math or an image to ``$KLSPEC_RENDER_DIR`` or ``build/render/`` and prints
where. Debian ships MathJax 2.7.9; GitHub uses MathJax 3, whose widths for these
pages were within about 5% of 2.7.9's (the issue's 949-2126 px against 997-2232 px).

Chromium and MathJax come from Debian packages (``apt-get install chromium
libjs-mathjax``; `.ci/run` installs them); the test is skipped, with the reason,
where either is missing. ``KLSPEC_MATHJAX`` may point at another ``MathJax.js``.

Run ``python tests/test_docs_render.py [PAGE.md ...]`` for a table of the widest
display math, errors and literal TeX per page.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
COLUMN_PX = 900
#: Literal TeX that must never be visible outside typeset math.
LITERAL_TEX = (
    r"\frac",
    r"\_",
    "$$",
    r"\text",
    r"\begin",
    r"\end{",
    r"\left",
    r"\right",
    r"\mathrm",
    r"\sum",
    r"\ln",
    r"\^",
)
_RESULT_ID = "klspec-render-result"


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def mathjax() -> Path | None:
    candidates = [os.environ.get("KLSPEC_MATHJAX", ""), "/usr/share/javascript/mathjax/MathJax.js"]
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    return None


def render_dir() -> Path:
    return Path(os.environ.get("KLSPEC_RENDER_DIR") or ROOT / "build" / "render")


# ---------------------------------------------------------------- Markdown → HTML


def _markdown():
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    default_fence = md.renderer.rules["fence"]

    def fence(renderer, tokens, idx, options, env):
        token = tokens[idx]
        if token.info.strip() == "math":
            # GitHub: a ```math fence is display math, with no Markdown processing.
            body = html.escape(token.content)
            return f'<div class="math-display">\\[{body}\\]</div>\n'
        return default_fence(tokens, idx, options, env)

    md.add_render_rule("fence", fence)
    return md


_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><base href="{base}"><title>{title}</title>
<style>
body {{ margin: 0; padding: 16px 24px; background: #fff; }}
.markdown-body {{ width: {column}px; font: 16px/1.5 "DejaVu Sans", sans-serif; color: #1f2328;
  border-right: 1px dashed #d1242f; }}
.markdown-body table {{ border-collapse: collapse; display: block; max-width: 100%;
  overflow: auto; }}
.markdown-body td, .markdown-body th {{ border: 1px solid #d1d9e0; padding: 6px 13px; }}
.markdown-body code {{ background: #eff1f3; padding: .2em .4em; border-radius: 6px;
  font-size: 85%; }}
.markdown-body pre {{ background: #f6f8fa; padding: 16px; overflow: auto; }}
#{result} {{ display: none; }}
</style>
<script type="text/x-mathjax-config">
window.klspecErrors = [];
MathJax.Hub.Config({{
  jax: ["input/TeX", "output/CommonHTML"],
  extensions: ["tex2jax.js"],
  TeX: {{ extensions: ["AMSmath.js", "AMSsymbols.js"],
          noErrors: {{ disabled: true }}, noUndefined: {{ disabled: true }} }},
  tex2jax: {{ inlineMath: [["$", "$"]], displayMath: [["$$", "$$"], ["\\\\[", "\\\\]"]],
             processEscapes: true }},
  CommonHTML: {{ linebreaks: {{ automatic: false }} }},
  showProcessingMessages: false, messageStyle: "none", menuSettings: {{ zoom: "None" }}
}});
MathJax.Hub.Register.MessageHook("TeX Jax - parse error", function (m) {{
  window.klspecErrors.push({{ message: String(m[1]), element: m[4] }});
}});
MathJax.Hub.Register.MessageHook("Math Processing Error", function (m) {{
  window.klspecErrors.push({{ message: "Math Processing Error: " + String(m[2] && m[2].message),
                             element: m[1] }});
}});
MathJax.Hub.Queue(function () {{
  var pages = [].map.call(document.querySelectorAll("article.markdown-body"), function (a) {{
    var clone = a.cloneNode(true);
    clone.querySelectorAll("script, code, pre, .MJX_Assistive_MathML")
      .forEach(function (e) {{ e.remove(); }});
    return {{ page: a.dataset.page, displays: [], errors: [], text: clone.textContent,
              height: Math.ceil(a.getBoundingClientRect().height) + 48,
              width: Math.ceil(a.scrollWidth) + 64 }};
  }});
  function pageOf(element) {{
    var a = element.closest("article.markdown-body");
    return pages.find(function (p) {{ return a && p.page === a.dataset.page; }});
  }}
  MathJax.Hub.getAllJax().forEach(function (jax) {{
    var frame = document.getElementById(jax.inputID + "-Frame");
    if (!frame || !jax.root || jax.root.Get("display") !== "block") return;
    var box = frame.querySelector(".mjx-math") || frame;
    var page = pageOf(frame);
    if (page) page.displays.push({{ tex: jax.originalText.slice(0, 160),
                                    width: Math.ceil(box.getBoundingClientRect().width) }});
  }});
  document.querySelectorAll(".mjx-merror, merror").forEach(function (e) {{
    var page = pageOf(e);
    if (page) page.errors.push("merror: " + e.textContent);
  }});
  window.klspecErrors.forEach(function (e) {{
    var page = (e.element && e.element.closest && pageOf(e.element)) || pages[0];
    page.errors.push(e.message);
  }});
  var out = document.createElement("pre");
  out.id = "{result}";
  out.textContent = JSON.stringify(pages);
  document.body.appendChild(out);
}});
</script>
<script src="{mathjax}"></script>
</head><body>
{body}
</body></html>
"""


_DISPLAY_DOLLARS = re.compile(r"^\$\$\n(.*?)\n\$\$$", re.M | re.S)


def _dollar_blocks_as_display_math(markdown_text: str) -> str:
    """A ``$$`` block on lines of its own is display math (as a ```` ```math ```` fence)."""
    return _DISPLAY_DOLLARS.sub(lambda m: "```math\n" + m.group(1) + "\n```", markdown_text)


def page_html(pages: dict[str, str], mathjax_js: Path, base: Path = DOCS) -> str:
    """One HTML document showing ``pages`` (name → Markdown), each in its own column;
    relative links and images resolve against ``base``."""
    md = _markdown()
    body = "\n".join(
        f'<article class="markdown-body" data-page="{html.escape(name)}">\n'
        + md.render(_dollar_blocks_as_display_math(text))
        + "</article>"
        for name, text in pages.items()
    )
    return _PAGE.format(
        base=html.escape(base.as_uri() + "/"),
        title=html.escape(", ".join(pages)),
        column=COLUMN_PX,
        result=_RESULT_ID,
        mathjax=mathjax_js.as_uri(),
        body=body,
    )


# ---------------------------------------------------------------- Chromium


def _chromium(browser: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [
                browser,
                "--headless",
                "--disable-gpu",
                "--no-sandbox",
                "--hide-scrollbars",
                "--allow-file-access-from-files",
                "--disable-dev-shm-usage",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--virtual-time-budget=20000",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def typeset(browser: str, html_file: Path) -> list[dict]:
    """Typeset a document in Chromium; what MathJax produced, one entry per page."""
    done = _chromium(
        browser, f"--window-size={COLUMN_PX + 100},1000", "--dump-dom", html_file.as_uri()
    )
    found = re.search(rf'<pre id="{_RESULT_ID}">(.*?)</pre>', done.stdout, re.S)
    if not found:
        tail = (done.stderr or "")[-600:]
        raise RuntimeError(f"MathJax did not finish (chromium exit {done.returncode}): {tail}")
    return json.loads(html.unescape(found.group(1)))


def screenshot(browser: str, html_file: Path, png: Path, width: int, height: int) -> None:
    height = min(max(height, 200), 16000)
    width = max(width, COLUMN_PX + 100)
    _chromium(browser, f"--window-size={width},{height}", f"--screenshot={png}", html_file.as_uri())


def problems(result: dict) -> list[str]:
    """What is wrong with one rendered page (empty when it renders well)."""
    errors = dict.fromkeys(e.removeprefix("merror: ") for e in result["errors"])
    out = [f"MathJax error: {e}" for e in errors]
    text = result["text"]
    for tex in LITERAL_TEX:
        for m in re.finditer(re.escape(tex), text):
            out.append(f"literal TeX {tex!r}: …{text[max(0, m.start() - 40) : m.end() + 40]}…")
    for d in result["displays"]:
        if d["width"] > COLUMN_PX:
            out.append(f"display math {d['width']} px wide (column {COLUMN_PX}): {d['tex']!r}")
    return out


def _flat(name: str) -> str:
    return name.removesuffix(".md").replace("/", "__")


def render_all(pages: list[Path], out_dir: Path, *, screenshots: bool = True) -> dict[str, dict]:
    """Typeset every page (one Chromium run for all), then screenshot each page with
    display math or an image (one run each, two at a time) to ``out_dir``."""
    browser, mathjax_js = chromium(), mathjax()
    assert browser
    assert mathjax_js
    out_dir.mkdir(parents=True, exist_ok=True)
    texts = {p.relative_to(DOCS).as_posix(): p.read_text(encoding="utf-8") for p in pages}
    work = Path(tempfile.mkdtemp(prefix="klspec-render-"))
    try:
        everything = work / "all.html"
        everything.write_text(page_html(texts, mathjax_js), encoding="utf-8")
        results = {r["page"]: r for r in typeset(browser, everything)}
        if not screenshots:
            return results
        jobs = []
        for name in texts:  # no screenshot left from an earlier run
            (out_dir / f"{_flat(name)}.png").unlink(missing_ok=True)
        for name, text in texts.items():
            if "```math" not in text and "![" not in text:  # index.md alone would take 10 s
                continue
            flat = _flat(name)
            one = work / f"{flat}.html"
            html_text = page_html({name: text}, mathjax_js, (DOCS / name).parent)
            one.write_text(html_text, encoding="utf-8")
            png = out_dir / f"{flat}.png"
            results[name]["screenshot"] = str(png)
            r = results[name]
            jobs.append((one, png, r["width"], r["height"]))
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda j: screenshot(browser, *j), jobs))
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


def docs_pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


# ---------------------------------------------------------------- the test


def test_every_docs_page_renders_without_errors_literal_tex_or_overflow():
    pytest.importorskip(
        "markdown_it", reason="markdown-it-py is not installed (pip install .[test])"
    )
    if chromium() is None:
        pytest.skip("no chromium on PATH (apt-get install chromium): pages not rendered")
    if mathjax() is None:
        pytest.skip(
            "MathJax not found at /usr/share/javascript/mathjax/MathJax.js "
            "(apt-get install libjs-mathjax) or $KLSPEC_MATHJAX: pages not rendered"
        )
    out_dir = render_dir()
    results = render_all(docs_pages(), out_dir)
    shots = sum("screenshot" in r for r in results.values())
    print(f"\n{len(results)} pages rendered; {shots} with math or images shot to {out_dir}")
    found = {name: problems(r) for name, r in results.items()}
    found = {name: p for name, p in found.items() if p}
    report = "\n".join(f"{name}:\n  " + "\n  ".join(p) for name, p in found.items())
    assert not found, f"pages that do not render well (screenshots in {out_dir}):\n{report}"
    assert all(
        any(r["displays"])
        for n, r in results.items()
        if n.startswith("proofs/") and n != "proofs/README.md"
    )


def test_the_render_check_can_fail(tmp_path):
    """A page with an undefined macro, a missing brace, ``\\_`` inside ``\\text{}``,
    literal TeX and a 120-term line is reported on every count."""
    pytest.importorskip("markdown_it")
    if chromium() is None or mathjax() is None:
        pytest.skip("no chromium or MathJax (apt-get install chromium libjs-mathjax)")
    wide = " + ".join(f"x_{{{k}}}" for k in range(120))
    md = (
        "```math\n\\undefinedmacro x\n```\n\n```math\n\\frac{a}{b\n```\n\n"
        f"```math\n\\text{{D\\_KL}} = {wide}\n```\n\nliteral \\\\frac{{a}}{{b}} here\n"
    )
    page = tmp_path / "bad.html"
    page.write_text(page_html({"bad.md": md}, mathjax()), encoding="utf-8")
    found = "\n".join(problems(typeset(chromium(), page)[0]))
    assert "Undefined control sequence \\undefinedmacro" in found
    assert "Missing close brace" in found
    assert "literal TeX '\\\\_'" in found
    assert "literal TeX '\\\\frac'" in found
    assert "px wide (column 900)" in found


def test_math_fences_become_display_math_and_tables_unescape_pipes():
    pytest.importorskip("markdown_it")
    out = _markdown().render("```math\na < b\n```\n\n| a | b |\n|---|---|\n| x \\| y | 2 \\* 3 |\n")
    assert '<div class="math-display">\\[a &lt; b\n\\]</div>' in out
    assert "<td>x | y</td>" in out
    assert "<td>2 * 3</td>" in out


_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def test_every_table_row_has_as_many_cells_as_its_header():
    """An unescaped ``|`` in a cell (P(b | a)) splits it and shifts the row."""
    bad = []
    for page in docs_pages():
        header = None
        for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.startswith("|"):
                header = None
                continue
            cells = len(_UNESCAPED_PIPE.findall(line))
            if header is None:
                header = cells
            elif cells != header:
                bad.append(f"{page.relative_to(DOCS)}:{n}: {cells - 1} cells, header {header - 1}")
    assert not bad, "\n".join(bad)


def test_the_fits_picture_is_drawn_and_shown():
    """docs/fits.svg has P and its three fits; docs/fits.md shows it and the index links it."""
    svg = (DOCS / "fits.svg").read_text(encoding="utf-8")
    assert svg.startswith("<svg ")
    assert svg.count("<polyline ") == 4
    assert "](fits.svg)" in (DOCS / "fits.md").read_text(encoding="utf-8")
    assert "](fits.md)" in (DOCS / "index.md").read_text(encoding="utf-8")


def _main(argv: list[str]) -> int:
    pages = [DOCS / a for a in argv] or docs_pages()
    out_dir = render_dir()
    results = render_all(pages, out_dir)
    print(f"{'page':<34} {'widest':>7} {'errors':>6} {'literal':>7}")
    for name, r in results.items():
        widest = max((d["width"] for d in r["displays"]), default=0)
        literal = sum(r["text"].count(t) for t in LITERAL_TEX)
        print(f"{name:<34} {widest:>7} {len(r['errors']):>6} {literal:>7}")
        for p in problems(r):
            print("    " + p[:200])
    print(f"screenshots in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
