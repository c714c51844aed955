"""MkDocs hooks of the search-r3 site (registered in ``mkdocs.yml`` under ``hooks:``).

* ``<!-- cli-reference: search-r3 -->`` and ``<!-- cli-reference: search-r3-train -->`` in a page
  are replaced by the commands' real ``--help`` output, built from their argparse parsers at build
  time, so the CLI reference cannot drift from the code.
* ``<!-- page-link: FILE.md | TEXT -->`` becomes a link to an optional page written by a
  training or benchmark run, or a "not yet measured" note while that page does not exist.
* ``<!-- include-section: PATH | HEADING -->`` embeds the section of a committed results file
  (``PATH`` from the repository root, e.g. ``docs/training-results-rl.md`` or
  ``benchmarks/README.md``) whose heading starts with ``HEADING``: its tables and the commands
  that produced them appear on the page without being copied by hand. While the file does not
  exist the page says "not yet measured"; when the heading is not found it links the file.
* Optional result pages (``OPTIONAL_PAGES``) are added to the navigation when they exist, so the
  strict build never refers to a missing page; any other page missing from the nav goes under
  "More", so no page is unreachable.
* Mermaid is served from the site itself (``MERMAID_JS``, vendored from the npm package), added
  only to pages that have a diagram, so diagrams render without internet; Material would
  otherwise load it from a CDN.
* Every rendered page is checked for what renders wrongly without failing the strict build on
  its own (``RENDER_CHECKS``): raw Sphinx roles (``:meth:`x```), ``>>>`` examples turned into
  nested blockquotes, and a list that collapsed into the paragraph before it (no blank line).
  Any finding fails the build, with the page and the offending text.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import posixpath
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError
from mkdocs.utils import get_relative_url

#: Pages that runs write when they have measured something: (nav section, title, file).
OPTIONAL_PAGES = [
    ("Training", "Results: stage 1 (SFT)", "training-results-sft.md"),
    ("Training", "Results: stage 2 (RL)", "training-results-rl.md"),
]

HELP_COLUMNS = 100  # fixed width so the generated page does not depend on the terminal
CLI_MARKER = re.compile(r"<!--\s*cli-reference:\s*([\w-]+)\s*-->")
PAGE_LINK_MARKER = re.compile(r"<!--\s*page-link:\s*([^|>]+?)\s*\|\s*(.+?)\s*-->")
SECTION_MARKER = re.compile(r"<!--\s*include-section:\s*([^|>]+?)\s*\|\s*(.+?)\s*-->")
HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
MD_LINK = re.compile(r"(\]\()([^)\s]+)(\))")

_cache: dict[str, str] = {}

#: Mermaid, vendored from npm (``npm pack mermaid@11.12.2``; see its README.md there).
MERMAID_JS = "assets/vendor/mermaid/mermaid.min.js"
MATERIAL_BUNDLE = re.compile(r'<script src="[^"]*assets/javascripts/bundle\.[^"]*"')

#: (name, pattern over a page's HTML with code blocks removed, how to fix it).
RENDER_CHECKS = [
    (
        "raw Sphinx role",
        re.compile(r":(?:meth|class|func|mod|attr|data|exc|obj|ref|doc):(?:<code>|`)"),
        "write `name` or a mkdocstrings cross-reference [`name`][full.path]",
    ),
    (
        "'>>>' example rendered as nested blockquotes",
        re.compile(r"<blockquote>\s*<blockquote>|<p>&gt;&gt;&gt; "),
        "write the example as a fenced ```python block",
    ),
    (
        "list collapsed into the paragraph before it",
        re.compile(r"<p>(?:(?!</p>).)*?\n(?:[-*+]|\d+\.) (?:<strong>|<code>|\w)", re.S),
        "leave a blank line before the list",
    ),
]
CODE_BLOCKS = re.compile(r"<pre\b.*?</pre>|<code\b.*?</code>", re.S)
_render_problems: list[str] = []


# -- mkdocs events ------------------------------------------------------------------------------
def on_config(config: Any) -> Any:
    """Add pages that exist but are not in ``mkdocs.yml``'s nav: the optional result pages to
    their section, any other page (written by another part of the project) under "More"."""
    docs_dir = Path(config["docs_dir"])
    nav = config["nav"] or []
    listed = set(_nav_files(nav))
    for section, title, file in OPTIONAL_PAGES:
        if (docs_dir / file).is_file() and file not in listed:
            _section(nav, section).append({title: file})
            listed.add(file)
    others = sorted(
        p.relative_to(docs_dir).as_posix()
        for p in docs_dir.rglob("*.md")
        if p.relative_to(docs_dir).parts[0] != "examples"
    )
    for file in others:
        if file not in listed:
            _section(nav, "More").append({_title_of(docs_dir / file): file})
    return config


def _nav_files(nav: Any) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [f for value in nav.values() for f in _nav_files(value)]
    if isinstance(nav, list):
        return [f for item in nav for f in _nav_files(item)]
    return []


def _section(nav: list, name: str) -> list:
    for entry in nav:
        if isinstance(entry, dict) and isinstance(entry.get(name), list):
            return entry[name]
    items: list = []
    nav.append({name: items})
    return items


def _title_of(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem.replace("-", " ").capitalize()


def on_pre_build(config: Any) -> None:
    _render_problems.clear()


def on_post_page(output: str, page: Any, config: Any) -> str:
    """Serve Mermaid locally on pages with a diagram; record what rendered wrongly."""
    _render_problems.extend(render_problems(output, page.file.src_uri))
    if 'class="mermaid"' in output:
        tag = f'<script src="{get_relative_url(MERMAID_JS, page.url)}"></script>\n'
        match = MATERIAL_BUNDLE.search(output)
        if match is None:
            raise PluginError("hooks.py: Material's bundle script not found; cannot add Mermaid before it.")
        output = output[: match.start()] + tag + output[match.start() :]
    return output


def on_post_build(config: Any) -> None:
    if _render_problems:
        listing = "\n  ".join(_render_problems)
        raise PluginError(f"{len(_render_problems)} rendering problem(s):\n  {listing}")


def render_problems(html_text: str, where: str) -> list[str]:
    """What in a rendered page shows wrongly (see ``RENDER_CHECKS``), one line per finding."""
    text = CODE_BLOCKS.sub(lambda m: "<code></code>" if m.group(0).startswith("<code") else "", html_text)
    # The API reference renders docstrings: a role shows up as ":meth:" followed by a code span.
    text = text.replace("<code></code>", "`")
    found = []
    for name, pattern, fix in RENDER_CHECKS:
        for match in pattern.finditer(text):
            snippet = re.sub(r"<[^>]+>", "", match.group(0))[-80:].replace("\n", " ").strip()
            found.append(f"{where}: {name} near {snippet!r}: {fix}")
    return found


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Expand the ``cli-reference`` and ``page-link`` markers of a page."""
    markdown = CLI_MARKER.sub(lambda m: cli_reference(m.group(1)), markdown)
    docs_dir = Path(config["docs_dir"])
    markdown = SECTION_MARKER.sub(
        lambda m: include_section(m.group(1), m.group(2), page.file.src_uri, docs_dir, config), markdown
    )
    return PAGE_LINK_MARKER.sub(
        lambda m: page_link(m.group(1), m.group(2), page.file.src_uri, docs_dir), markdown
    )


# -- optional pages -----------------------------------------------------------------------------
def page_link(target: str, text: str, src_uri: str, docs_dir: Path) -> str:
    """A link to ``target`` (relative to the docs folder) if it exists, else a plain note."""
    if (docs_dir / target).is_file():
        rel = posixpath.relpath(target, posixpath.dirname(src_uri) or ".")
        return f"[{text}]({rel})"
    return f"*{text}: not yet measured (the page appears once the run has been recorded).*"


def include_section(path: str, heading: str, src_uri: str, docs_dir: Path, config: Any) -> str:
    """The section of ``path`` under the heading that starts with ``heading``, demoted to level 3+."""
    root = docs_dir.parent
    source = root / path
    if not source.is_file():
        return f"*Not yet measured: the figures appear here once `{path}` has been recorded.*"
    lines = source.read_text(encoding="utf-8").splitlines()
    in_fence, start, level = False, None, 0
    body: list[str] = []
    for line in lines:
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        match = None if in_fence else HEADING.match(line)
        if start is None:
            if match and match.group(2).strip().startswith(heading):
                start, level = len(body), len(match.group(1))
            continue
        if match and len(match.group(1)) <= level:
            break
        body.append(line)
    link = _source_link(path, src_uri, docs_dir, root, config)
    if start is None:
        return f"*See {link} for these figures.*"
    shift = 3 - level - 1  # the section's own sub-headings become level 4 and below
    text = "\n".join(_demote(line, shift) for line in body).strip("\n")
    text = _relink(text, source.parent, src_uri, docs_dir, config)
    return f"{text}\n\n*From {link}.*"


def _demote(line: str, shift: int) -> str:
    match = HEADING.match(line)
    if not match or shift <= 0:
        return line
    return "#" * min(6, len(match.group(1)) + shift) + " " + match.group(2)


def _source_link(path: str, src_uri: str, docs_dir: Path, root: Path, config: Any) -> str:
    source = root / path
    try:
        rel_doc = source.relative_to(docs_dir).as_posix()
    except ValueError:
        return f"[`{path}`]({_repo_url(config, path)})"
    return f"[`{path}`]({posixpath.relpath(rel_doc, posixpath.dirname(src_uri) or '.')})"


def _repo_url(config: Any, path: str) -> str:
    return f"{str(config.get('repo_url') or '').rstrip('/')}/blob/main/{path}"


def _relink(text: str, source_dir: Path, src_uri: str, docs_dir: Path, config: Any) -> str:
    """Rewrite relative links of included text so they resolve from the including page."""
    root = docs_dir.parent

    def fix(m: re.Match[str]) -> str:
        target = m.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", target):
            return m.group(0)
        file, _, anchor = target.partition("#")
        resolved = (source_dir / file).resolve()
        try:
            rel_doc = resolved.relative_to(docs_dir.resolve()).as_posix()
            new = posixpath.relpath(rel_doc, posixpath.dirname(src_uri) or ".")
        except ValueError:
            new = _repo_url(config, resolved.relative_to(root.resolve()).as_posix())
        return f"{m.group(1)}{new}{'#' + anchor if anchor else ''}{m.group(3)}"

    return MD_LINK.sub(fix, text)


# -- CLI reference ------------------------------------------------------------------------------
@contextmanager
def _fixed_width():
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(HELP_COLUMNS)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


def cli_reference(program: str) -> str:
    """Markdown for one program's commands (cached for the build)."""
    if program not in _cache:
        builders = {"search-r3": _search_r3_reference, "search-r3-train": _train_reference}
        if program not in builders:
            raise ValueError(f"cli-reference: unknown program {program!r}; known: {sorted(builders)}")
        with _fixed_width():
            _cache[program] = builders[program]()
    return _cache[program]


def _code(text: str, indent: str = "") -> str:
    body = "\n".join(indent + line if line.strip() else "" for line in text.rstrip().splitlines())
    return f"{indent}```text\n{body}\n{indent}```\n"


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse exposes subparsers only through this attribute
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _search_r3_reference() -> str:
    from search_r3.cli.main import build_parser

    parser = build_parser()
    parts = ["## `search-r3`\n", _code(parser.format_help())]
    for name, sub in _subcommands(parser).items():
        parts += [f"### `search-r3 {name}`\n", _code(sub.format_help())]
    return "\n".join(parts)


def _train_reference() -> str:
    try:
        cli = importlib.import_module("search_r3_train.cli")
    except ModuleNotFoundError as exc:
        return (
            '!!! warning "Not installed"\n'
            f"    The training package could not be imported when this page was built ({exc}).\n"
            "    Install it with `pip install -e training`.\n"
        )
    parts = ["## `search-r3-train`\n", _code(cli.USAGE)]
    for name, module_name in cli.COMMANDS.items():
        parts.append(f"### `search-r3-train {name}`\n")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if not (exc.name or "").startswith("search_r3_train"):
                raise
            parts.append(
                f'!!! warning "In progress: not yet available"\n    `{module_name}` is not there yet.\n'
            )
            continue
        parser = module.build_parser()
        own = _project_fields(parser)
        if own:
            parts += [
                "Options defined by search-r3 (every `TrainingArguments` option is accepted as well; "
                "all can be set in the `--config` YAML file):\n",
                _fields_table(own),
                '??? note "Full `--help` output"\n',
                _code(parser.format_help(), indent="    "),
            ]
        else:
            parts.append(_code(parser.format_help()))
    return "\n".join(parts)


def _project_fields(parser: argparse.ArgumentParser) -> list[dataclasses.Field]:
    """Dataclass fields that search-r3-train defines (not inherited from transformers or TRL)."""
    own: list[dataclasses.Field] = []
    for cls in getattr(parser, "dataclass_types", []) or []:
        if not cls.__module__.startswith("search_r3_train"):
            continue
        inherited = {
            f.name
            for base in cls.__mro__[1:]
            if dataclasses.is_dataclass(base) and not base.__module__.startswith("search_r3_train")
            for f in dataclasses.fields(base)
        }
        own += [f for f in dataclasses.fields(cls) if f.name not in inherited and f.init]
    return own


def _fields_table(fields: list[dataclasses.Field]) -> str:
    rows = ["| option | default | meaning |", "| --- | --- | --- |"]
    for f in fields:
        if f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = repr(f.default_factory())
        else:
            default = "required"
        meaning = str(f.metadata.get("help", "")).replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `--{f.name}` | `{default}` | {meaning} |".replace("`''`", '`""`'))
    return "\n".join(rows) + "\n"
