"""Open the built site in headless Chromium, offline, and check what a reader would see.

    .venv/bin/mkdocs build --strict --site-dir /tmp/site
    .venv/bin/python docs/check_site.py /tmp/site                    # every page
    .venv/bin/python docs/check_site.py /tmp/site --shots /tmp/shots # and screenshots of the main pages

(`make docs-check` does both.) The site is served on loopback; the browser resolves no other host,
so a page that needs the internet shows it here. For each page the DOM after JavaScript ran
(``--dump-dom``, 5 s of virtual time) is checked:

- every Mermaid diagram was rendered (Material swaps ``<pre class="mermaid">`` holding the
  diagram's source for a ``<div class="mermaid">`` holding the drawing);
- every image the page shows was fetched with HTTP 200 or 304 (the server logs each request);
- no raw Sphinx role (``:meth:`x```) and no ``>>>`` example rendered as a blockquote;
- no table or code block is wider than the page at 1280 px (a script added to each served page
  measures them after load).

Screenshots (``--shots``, 1280x2400) are for a person to look at: diagrams, plots, tables and code
that fit. Needs ``chromium`` (or ``chromium-browser``, ``google-chrome``) on the PATH; exits 2 when
there is none, 1 when a page fails a check.
"""

from __future__ import annotations

import argparse
import functools
import html
import http.server
import json
import posixpath
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

#: Pages screenshotted with ``--shots`` (paths under the site, "" is the home page).
MAIN_PAGES = (
    "",
    "quickstart/",
    "figures/",
    "model-card/",
    "concepts/",
    "guides/server/",
    "guides/qdrant/",
    "guides/langchain/",
    "reference/api/",
)
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
SPHINX_ROLE = re.compile(r":(?:meth|class|func|attr|mod|obj|data|exc|ref|py:\w+):`")


#: Added to every served page: after load, it lists the tables and code blocks wider than their
#: box (a reader would have to scroll sideways) in a hidden element that ``--dump-dom`` keeps.
LAYOUT_PROBE = """<script>
window.addEventListener("load", () => setTimeout(() => {
  const wide = [];
  document.querySelectorAll(".md-content table, .md-content pre").forEach((el) => {
    const box = el.closest(".md-typeset__scrollwrap") || el;
    if (el.scrollWidth > el.clientWidth + 2 || box.scrollWidth > box.clientWidth + 2) {
      wide.push(el.tagName.toLowerCase() + ": " + el.textContent.trim().replace(/\\s+/g, " ").slice(0, 60));
    }
  });
  const out = document.createElement("div");
  out.id = "site-check-wide";
  out.hidden = true;
  out.textContent = JSON.stringify(wide);
  document.body.appendChild(out);
}, 300));
</script>"""


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the site (pages with `LAYOUT_PROBE` added) and records ``(path, status)`` of every request."""

    requests: list[tuple[str, int]]

    def do_GET(self) -> None:
        target = Path(self.translate_path(self.path))
        if target.is_dir():
            target = target / "index.html"
        if (
            target.suffix != ".html"
            or not target.is_file()
            or not self.path.split("?")[0].endswith(("/", ".html"))
        ):
            super().do_GET()
            return
        page = target.read_text(encoding="utf-8").replace("</body>", LAYOUT_PROBE + "</body>", 1).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.requests.append((self.path.split("?")[0], int(code) if str(code).isdigit() else 0))

    def end_headers(self) -> None:
        # Nothing cached between pages: every image a page shows is requested (and logged) again.
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, list[tuple[str, int]]]:
    """The site on an ephemeral loopback port, in a daemon thread."""
    requests: list[tuple[str, int]] = []
    handler = type("Handler", (_Handler,), {"requests": requests})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(site))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, requests


def browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit(2)


def chromium(binary: str, url: str, *extra: str, profile: Path) -> str:
    """Run headless Chromium on ``url`` with every host but loopback unresolvable; its stdout."""
    command = [
        binary,
        "--headless",
        "--no-sandbox",  # root in containers
        "--disable-gpu",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--virtual-time-budget=5000",
        *extra,
        url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False).stdout


def page_problems(dom: str, fetched: dict[str, int], page: str) -> list[str]:
    """What renders wrongly in one page's DOM (after its scripts ran)."""
    problems = []
    if re.search(r'<pre[^>]*class="[^"]*\bmermaid\b', dom):
        problems.append("a Mermaid diagram was not rendered (its source is shown as text)")
    text = html.unescape(re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style)\b.*?</\1>", "", dom, flags=re.S)))
    role = SPHINX_ROLE.search(text)
    if role:
        problems.append(f"raw Sphinx role {role.group(0)!r}")
    if re.search(r"<blockquote>\s*<blockquote>\s*<blockquote>", dom) or re.search(
        r"<blockquote>\s*<p>\s*&gt;&gt;&gt;", dom
    ):
        problems.append("a >>> example rendered as nested blockquotes")
    wide = re.search(r'<div id="site-check-wide"[^>]*>(.*?)</div>', dom, flags=re.S)
    for item in json.loads(html.unescape(wide.group(1))) if wide else []:
        problems.append(f"wider than the page (scrolls sideways): {item}")
    base = "/" + page
    for src in re.findall(r'<img\b[^>]*\bsrc="([^"]+)"', dom):
        if src.startswith(("data:", "http://127.0.0.1")):
            continue
        if src.startswith(("http://", "https://")):
            problems.append(f"image from the internet: {src}")
            continue
        path = posixpath.normpath(src if src.startswith("/") else posixpath.join(base, src))
        status = fetched.get(path)
        if status not in (200, 304):  # 304: the browser's cache holds it from an earlier page
            problems.append(f"image {src} not shown (HTTP {status or 'never requested'})")
    return problems


def pages_of(site: Path) -> list[str]:
    return sorted(
        "" if p.parent == site else p.parent.relative_to(site).as_posix() + "/"
        for p in site.rglob("index.html")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("site", type=Path, help="the built site folder (mkdocs build --site-dir)")
    parser.add_argument("--shots", type=Path, default=None, help="write screenshots of the main pages here")
    parser.add_argument("--pages", nargs="+", default=None, help="only these pages (default: every page)")
    args = parser.parse_args(argv)
    if not (args.site / "index.html").is_file():
        print(
            f"{args.site}: no index.html; build the site first (mkdocs build --site-dir DIR)", file=sys.stderr
        )
        return 2
    try:
        binary = browser()
    except SystemExit:
        print(f"no headless browser found ({', '.join(BROWSERS)}): apt-get install chromium", file=sys.stderr)
        return 2
    server, requests = serve(args.site)
    root = f"http://127.0.0.1:{server.server_address[1]}/"
    failures = 0
    pages = (
        [p.strip("/") + "/" if p.strip("/") else "" for p in args.pages]
        if args.pages
        else pages_of(args.site)
    )
    with tempfile.TemporaryDirectory() as profile:
        for page in pages:
            requests.clear()
            dom = chromium(
                binary, root + page, "--dump-dom", "--window-size=1280,2400", profile=Path(profile)
            )
            fetched = dict(requests)
            problems = (
                ["the page did not load"] if "</html>" not in dom else page_problems(dom, fetched, page)
            )
            failures += bool(problems)
            print(f"{'FAIL' if problems else 'ok  '} /{page}" + "".join(f"\n     - {p}" for p in problems))
        if args.shots is not None:
            args.shots.mkdir(parents=True, exist_ok=True)
            for page in MAIN_PAGES:
                if (args.site / page / "index.html").is_file():
                    out = args.shots / ((page.strip("/").replace("/", "-") or "index") + ".png")
                    chromium(
                        binary,
                        root + page,
                        f"--screenshot={out.resolve()}",
                        "--window-size=1280,2400",
                        profile=Path(profile),
                    )
                    print(f"wrote {out}")
    server.shutdown()
    print(f"{len(pages) - failures} of {len(pages)} pages render correctly")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
