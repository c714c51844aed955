"""docs/check_site.py: the offline browser check of the built site."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_checker():
    spec = importlib.util.spec_from_file_location("check_site", ROOT / "docs" / "check_site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_page_problems_finds_what_renders_wrongly() -> None:
    check = load_checker()
    good = '<html><div class="mermaid"></div><img src="../plots/a.svg"><p>fine</p></html>'
    assert check.page_problems(good, {"/plots/a.svg": 200}, "figures/") == []
    assert check.page_problems(good, {"/plots/a.svg": 304}, "figures/") == []
    bad = (
        '<html><pre class="mermaid"><code>flowchart LR</code></pre>'
        "<p>See :meth:`encode` here.</p><blockquote><p>&gt;&gt;&gt; emb.encode()</p></blockquote>"
        '<img src="../plots/a.svg"><img src="/plots/b.svg"><img src="https://cdn.example/x.png"></html>'
    )
    problems = check.page_problems(bad, {"/plots/a.svg": 404}, "figures/")
    assert problems == [
        "a Mermaid diagram was not rendered (its source is shown as text)",
        "raw Sphinx role ':meth:`'",
        "a >>> example rendered as nested blockquotes",
        "image ../plots/a.svg not shown (HTTP 404)",
        "image /plots/b.svg not shown (HTTP never requested)",
        "image from the internet: https://cdn.example/x.png",
    ]


@pytest.mark.skipif(
    not any(map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), reason="no Chromium"
)
def test_a_small_site_in_the_browser(tmp_path: Path, capsys) -> None:
    check = load_checker()
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "a.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>'
    )
    (tmp_path / "index.html").write_text('<html><body><img src="plots/a.svg"></body></html>')
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "index.html").write_text(
        '<html><body><img src="../plots/missing.svg"></body></html>'
    )
    wide_row = "".join(f"<td>cell-{i}-unbreakable</td>" for i in range(12))
    (tmp_path / "wide").mkdir()
    (tmp_path / "wide" / "index.html").write_text(
        '<html><body><div class="md-content"><div class="md-typeset__scrollwrap" style="width:300px;'
        f'overflow:auto"><table><tr>{wide_row}</tr></table></div></div></body></html>'
    )
    assert check.main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "ok   /\n" in out and "FAIL /broken/" in out and "missing.svg not shown (HTTP 404)" in out
    assert "FAIL /wide/" in out and "wider than the page (scrolls sideways): table: cell-0-unbreakable" in out
