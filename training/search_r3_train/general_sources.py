"""General-domain (query, document) pairs from text that installs offline on a Debian machine.

Each reader yields :class:`GeneralDoc` records: a pseudo-query and the document it should find.

* ``man``: manual pages (``manpages``, ``manpages-dev`` and every installed package's pages),
  rendered by ``man -P cat`` (groff): the NAME line's summary -> the DESCRIPTION section.
* ``python``: the standard library's docstrings, read with ``ast`` (nothing is imported):
  the summary line of a module, class or function docstring -> the rest of the docstring.
* ``foldoc``: the Free On-line Dictionary of Computing (``dict-foldoc``, dictd format):
  headword -> definition.
* ``wordnet``: WordNet 3.0 (``wordnet-base``, the wndb(5WN) data files): a synset's words ->
  its gloss.

```python
from search_r3_train.general_sources import read_source

for doc in read_source("python", limit=3, seed=13):
    print(doc.query, "->", doc.text[:60])
```
"""

from __future__ import annotations

import ast
import gzip
import os
import random
import shutil
import subprocess
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from search_r3.errors import SearchR3Error

MIN_QUERY_CHARS = 8
MIN_TEXT_CHARS = 80
MAX_TEXT_CHARS = 2000


class SourceMissingError(SearchR3Error, RuntimeError):
    """A general-data source is not installed; the message names the package to install."""


@dataclass(frozen=True)
class SourceInfo:
    """Where a source lives, how to install it and its licence (for the data manifest)."""

    name: str
    path: str
    install: str
    licence: str


SOURCES: dict[str, SourceInfo] = {
    "man": SourceInfo(
        "man",
        "/usr/share/man",
        "apt-get install -y man-db manpages manpages-dev",
        "per page (mostly GPL/BSD/verbatim licences of the Linux man-pages project and each package)",
    ),
    "python": SourceInfo(
        "python",
        sysconfig.get_paths()["stdlib"],
        "the Python standard library sources (present in every CPython install)",
        "PSF License 2.0",
    ),
    "foldoc": SourceInfo(
        "foldoc",
        "/usr/share/dictd/foldoc.index",
        "apt-get install -y dict-foldoc",
        "GNU FDL 1.1+ (FOLDOC, Denis Howe)",
    ),
    "wordnet": SourceInfo(
        "wordnet",
        "/usr/share/wordnet/data.noun",
        "apt-get install -y wordnet-base",
        "WordNet 3.0 licence (Princeton University, BSD-style)",
    ),
}


@dataclass(frozen=True)
class GeneralDoc:
    """One pseudo-query and its document."""

    doc_id: str
    query: str
    text: str
    source: str


def _clean(text: str) -> str:
    """Paragraphs kept (blank-line separated), each paragraph's lines joined with single spaces."""
    paragraphs = [" ".join(p.split()) for p in text.split("\n\n")]
    return "\n\n".join(p for p in paragraphs if p)


def _cut(text: str) -> str:
    if len(text) <= MAX_TEXT_CHARS:
        return text
    return text[:MAX_TEXT_CHARS].rsplit(" ", 1)[0]


def require(name: str) -> SourceInfo:
    """The source's info; raises :class:`SourceMissingError` naming the install command."""
    if name not in SOURCES:
        raise SearchR3Error(f"Unknown source {name!r}; choose from {', '.join(SOURCES)}.")
    info = SOURCES[name]
    if not Path(info.path).exists() or (name == "man" and shutil.which("man") is None):
        raise SourceMissingError(f"The {name!r} source is not installed here; run: {info.install}")
    return info


def install(name: str) -> None:
    """Install a source's Debian packages with apt-get (only when the user asked for it)."""
    info = SOURCES[name]
    if not info.install.startswith("apt-get"):
        return
    command = ["apt-get", "install", "-y", "--no-install-recommends", *info.install.split()[3:]]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(command, env=env, capture_output=True, text=True).returncode != 0:
        raise SourceMissingError(f"Could not install the {name!r} source; run as root: {info.install}")


def read_source(name: str, limit: int | None = None, seed: int = 13) -> Iterator[GeneralDoc]:
    """Up to ``limit`` records of source ``name`` (a fixed random sample when limited)."""
    require(name)
    readers = {"man": _man, "python": _python, "foldoc": _foldoc, "wordnet": _wordnet}
    yield from readers[name](limit, random.Random(seed))


# -- man pages ----------------------------------------------------------------------------------
def _man_files(root: Path) -> list[Path]:
    """One file per page (symlinks and ``.so`` aliases skipped), English sections 1-8 only."""
    files = []
    for section in sorted(root.glob("man[1-8]")):
        for path in sorted(section.iterdir()):
            if path.is_file() and not path.is_symlink():
                files.append(path)
    return files


def render_man(path: Path) -> str:
    """The page as plain text, rendered by man/groff on one very wide line per paragraph."""
    env = {**os.environ, "MANWIDTH": "10000", "MAN_KEEP_FORMATTING": "", "LC_ALL": "C.UTF-8"}
    done = subprocess.run(
        ["man", "--no-hyphenation", "--no-justification", "-P", "cat", "-l", str(path)],
        env=env,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=30,
    )
    return done.stdout if done.returncode == 0 else ""


def man_sections(rendered: str) -> dict[str, str]:
    """Rendered page split at its unindented headings (NAME, SYNOPSIS, DESCRIPTION, ...)."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in rendered.strip("\n").splitlines()[1:-1]:  # without man's header and footer
        if line and not line[0].isspace():
            current = sections.setdefault(line.strip().upper(), [])
        elif current is not None:
            current.append(line.strip())
    return {name: "\n".join(lines).strip() for name, lines in sections.items()}


def man_pair(rendered: str) -> tuple[str, str] | None:
    """``(summary of the NAME line, DESCRIPTION text)`` of a rendered page, or None."""
    sections = man_sections(rendered)
    name, description = sections.get("NAME", ""), sections.get("DESCRIPTION", "")
    for dash in (" - ", " \u2010 ", " \\- ", " \u2013 "):
        if dash in name:
            summary = " ".join(name.split(dash, 1)[1].split())
            break
    else:
        return None
    text = _cut(_clean(description))
    if len(summary) < MIN_QUERY_CHARS or len(text) < MIN_TEXT_CHARS:
        return None
    return summary, text


def _man(limit: int | None, rng: random.Random) -> Iterator[GeneralDoc]:
    files = _man_files(Path(SOURCES["man"].path))
    rng.shuffle(files)
    count, seen = 0, set()
    for path in files:
        pair = man_pair(render_man(path))
        if pair is None or pair[1] in seen:
            continue
        seen.add(pair[1])
        yield GeneralDoc(f"man:{path.name}", pair[0], pair[1], "man")
        count += 1
        if limit is not None and count >= limit:
            return


# -- Python docstrings --------------------------------------------------------------------------
def docstring_pairs(source: str, module: str) -> Iterator[tuple[str, str, str]]:
    """``(id, summary, body)`` of every docstring with a summary line and a body in ``source``."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return
    nodes: list[tuple[str, ast.AST]] = [(module, tree)]
    for node in ast.walk(tree):
        named = isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        if named and not node.name.startswith("_"):
            nodes.append((f"{module}.{node.name}", node))
    for name, node in nodes:
        doc = ast.get_docstring(node)  # type: ignore[arg-type]
        if not doc or "\n\n" not in doc:
            continue
        summary, body = doc.split("\n\n", 1)
        summary, body = " ".join(summary.split()), _cut(_clean(body))
        if len(summary) >= MIN_QUERY_CHARS and len(body) >= MIN_TEXT_CHARS:
            yield name, summary, body


def _python_files(root: Path) -> list[Path]:
    skip = {"test", "tests", "idlelib", "site-packages", "lib2to3", "turtledemo", "__pycache__"}
    return sorted(p for p in root.rglob("*.py") if not skip & set(p.relative_to(root).parts))


def _python(limit: int | None, rng: random.Random) -> Iterator[GeneralDoc]:
    root = Path(SOURCES["python"].path)
    pairs = []
    for path in _python_files(root):
        module = ".".join(path.relative_to(root).with_suffix("").parts)
        text = path.read_text(encoding="utf-8", errors="replace")
        pairs.extend(docstring_pairs(text, module))
    rng.shuffle(pairs)
    seen = set()
    for name, summary, body in pairs:
        if body in seen:
            continue
        seen.add(body)
        yield GeneralDoc(f"python:{name}", summary, body, "python")
        if limit is not None and len(seen) >= limit:
            return


# -- dictd (FOLDOC) -----------------------------------------------------------------------------
_FOLDOC_MARKUP = str.maketrans("", "", "{}")  # cross-reference braces: {IBM 701}
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def dictd_number(value: str) -> int:
    """A dictd index offset or length (base 64 digits, most significant first)."""
    number = 0
    for char in value:
        number = number * 64 + _B64.index(char)
    return number


def _foldoc(limit: int | None, rng: random.Random) -> Iterator[GeneralDoc]:
    index = Path(SOURCES["foldoc"].path)
    with gzip.open(index.with_name("foldoc.dict.dz"), "rb") as handle:  # dictzip is gzip-compatible
        data = handle.read()
    entries = []
    for line in index.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split("\t")
        if len(parts) != 3 or parts[0].startswith("00-database"):
            continue
        start, length = dictd_number(parts[1]), dictd_number(parts[2])
        entries.append((parts[0], data[start : start + length].decode("utf-8", errors="replace")))
    rng.shuffle(entries)
    seen = set()
    for headword, entry in entries:
        body = entry.split("\n", 1)[1] if "\n" in entry else ""
        paragraphs = _clean(body.translate(_FOLDOC_MARKUP)).split("\n\n")
        if paragraphs and paragraphs[0].lower() == headword.lower():  # the headword repeated
            paragraphs = paragraphs[1:]
        text = _cut("\n\n".join(paragraphs))
        if len(headword) < 3 or len(text) < MIN_TEXT_CHARS or text in seen:
            continue
        seen.add(text)
        yield GeneralDoc(f"foldoc:{headword}", headword, text, "foldoc")
        if limit is not None and len(seen) >= limit:
            return


# -- WordNet ------------------------------------------------------------------------------------
def wordnet_record(line: str) -> tuple[str, list[str], str] | None:
    """``(synset id, words, gloss)`` of one wndb(5WN) data line, or None for the licence header."""
    if line.startswith("  ") or " | " not in line:
        return None
    fields, gloss = line.split(" | ", 1)
    parts = fields.split()
    count = int(parts[3], 16)
    words = [parts[4 + 2 * i].replace("_", " ") for i in range(count)]
    words = [w.split("(")[0] for w in words]  # adjective markers such as "(a)"
    return f"{parts[2]}{parts[0]}", words, gloss.strip()


def _wordnet(limit: int | None, rng: random.Random) -> Iterator[GeneralDoc]:
    root = Path(SOURCES["wordnet"].path).parent
    records = []
    for part in ("noun", "verb", "adj", "adv"):
        for line in (root / f"data.{part}").read_text(encoding="utf-8", errors="replace").splitlines():
            record = wordnet_record(line)
            if record is not None:
                records.append(record)
    rng.shuffle(records)
    count = 0
    for synset, words, gloss in records:
        query = words[0]
        text = f"{', '.join(words[1:])}: {gloss}" if len(words) > 1 else gloss  # the headword left out
        if len(query) < 3 or len(gloss) < 40:
            continue
        yield GeneralDoc(f"wordnet:{synset}", query, text, "wordnet")
        count += 1
        if limit is not None and count >= limit:
            return
