"""Read documents to index: text and markdown files, folders of them, JSON lines, BEIR corpora.

Every document gets a stable id (the file's path relative to a root folder, by default the
current one, with ``#N`` for the N-th chunk of a long file, or the id field of a JSON line), so
indexing the same sources again adds nothing twice, and moving the whole tree (then indexing from
its new parent) keeps every id. ``metadata["source"]`` is that same relative path: the store's
sync groups a file's chunks by it.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search_r3.errors import SearchR3Error
from search_r3.jsonl import iter_json_objects

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".rst", ".text")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
ID_FIELDS = ("_id", "id", "doc_id", "docid", "docno")
TEXT_FIELDS = ("text", "contents", "content", "body", "page_content", "passage")

#: Default chunk size of text files, in characters (about 300-500 tokens of English).
DEFAULT_CHUNK_CHARS = 1500


class CorpusError(SearchR3Error, ValueError):
    """A path to index does not exist, has an unsupported type, or holds malformed records."""


@dataclass
class Document:
    """One text to index, with its id and metadata (``source`` is always set)."""

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


def read_documents(
    paths: Iterable[str | os.PathLike[str]],
    *,
    chunk_chars: int | None = DEFAULT_CHUNK_CHARS,
    root: str | os.PathLike[str] | None = None,
    sources: list[str] | None = None,
) -> Iterator[Document]:
    """Documents from files and folders, in a stable order.

    * ``.txt``/``.md``/``.rst`` files: split at blank lines into chunks of at most
      ``chunk_chars`` characters (``None`` or 0: one document per file).
    * ``.jsonl`` files (BEIR ``corpus.jsonl`` included): one document per line, text from
      ``text``/``contents``/``body``..., ``title`` prepended, other scalar fields as metadata.
    * Folders: every supported file below them (hidden files and folders skipped); a BEIR
      folder reads its ``corpus.jsonl`` only.

    Ids and ``metadata["source"]`` are paths relative to ``root`` (default: the current folder;
    a file outside it gets a ``../`` path), written with ``/``. A file reached twice (given
    twice, or through a symlink) is read once; a file holding NUL bytes (binary) is skipped
    with a warning.

    Args:
        paths: Files and folders to read.
        chunk_chars: Chunk size of text files in characters; ``None`` or 0 keeps whole files.
        root: Folder the ids are relative to.
        sources: When given, every source read is appended to it, including files that yield
            no document (an emptied file), so a sync can remove their old chunks.

    Example:
        ```python
        docs = list(read_documents(["notes/"], chunk_chars=800))
        print(docs[0].id, docs[0].metadata["source"])  # notes/a.md#0 notes/a.md
        ```
    """
    if chunk_chars is not None and (isinstance(chunk_chars, bool) or chunk_chars < 0):
        raise CorpusError(
            f"chunk size must be a positive number of characters (or 0 for whole files), got {chunk_chars}."
        )
    reader = _Reader(
        Path(root).expanduser().absolute() if root is not None else Path.cwd(), chunk_chars or None, sources
    )
    for raw in paths:
        if not str(raw).strip():
            raise CorpusError("an empty path was given; name the files or folders to index.")
        path = Path(raw).expanduser()
        if not path.exists():
            raise CorpusError(f"{path} does not exist; check the path (files or folders to index).")
        if path.is_dir():
            yield from reader.folder(path)
        else:
            yield from reader.file(path, explicit=True)


def relative_source(path: Path, root: Path) -> str:
    """``path`` relative to ``root``, with ``/`` (absolute when no relative path exists).

    The form of document ids and ``metadata["source"]``: ``notes/a.md`` for ``./notes/a.md``.
    """
    try:
        relative = os.path.relpath(path.expanduser().absolute(), root)
    except ValueError:  # another drive (Windows)
        return path.expanduser().absolute().as_posix()
    return Path(relative).as_posix()


@dataclass
class _Reader:
    root: Path
    chunk_chars: int | None
    sources: list[str] | None
    seen: set[Path] = field(default_factory=set)

    def source_of(self, path: Path) -> str:
        return relative_source(path, self.root)

    def first_visit(self, path: Path) -> bool:
        resolved = path.resolve()
        if resolved in self.seen:
            logger.warning("%s: already read (given twice, or a link to a file read before); skipped", path)
            return False
        self.seen.add(resolved)
        return True

    def record(self, path: Path) -> None:
        """Note a source as read (even if it yields no document: an emptied file)."""
        if self.sources is not None:
            self.sources.append(self.source_of(path))

    def folder(self, root: Path) -> Iterator[Document]:
        if (root / "corpus.jsonl").is_file() and (root / "queries.jsonl").is_file():
            yield from self.file(root / "corpus.jsonl", explicit=True)  # a BEIR folder: the corpus only
            return
        found = False
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                path = Path(dirpath) / name
                if path.suffix.lower() in TEXT_SUFFIXES + JSONL_SUFFIXES:
                    found = True
                    yield from self.file(path, explicit=False)
        if not found:
            supported = ", ".join(TEXT_SUFFIXES + JSONL_SUFFIXES)
            raise CorpusError(f"{root} holds no file search-r3 can index (supported: {supported}).")

    def file(self, path: Path, explicit: bool) -> Iterator[Document]:
        suffix = path.suffix.lower()
        if suffix in JSONL_SUFFIXES:
            if self.first_visit(path):
                self.record(path)
                yield from _read_jsonl(path, self.source_of(path))
        elif suffix in TEXT_SUFFIXES or (explicit and _looks_like_text(path)):
            if self.first_visit(path):
                text = _text_of(path)
                if "\x00" in text:
                    logger.warning("%s: holds NUL bytes (a binary file?); skipped", path)
                    return
                self.record(path)
                yield from _text_documents(path, text, self.chunk_chars, self.source_of(path))
        else:
            raise CorpusError(
                f"{path}: unsupported file type {suffix or '(none)'}; index text or markdown files "
                f"({', '.join(TEXT_SUFFIXES)}) or JSON lines ({', '.join(JSONL_SUFFIXES)})."
            )


def _looks_like_text(path: Path) -> bool:
    try:
        head = path.read_bytes()[:4096]
        head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\x00" not in head


def _text_of(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"{path} is not UTF-8 text (byte {exc.start}); convert it first, e.g. "
            f"`iconv -f latin1 -t utf-8 {path.name} > {path.stem}.utf8{path.suffix}`."
        ) from exc
    return text


def _text_documents(path: Path, text: str, chunk_chars: int | None, source: str) -> Iterator[Document]:
    title = _title_of(text, path)
    chunks = split_text(text, chunk_chars) if chunk_chars else ([text.strip()] if text.strip() else [])
    for i, chunk in enumerate(chunks):
        metadata = {"source": source, "title": title}
        if len(chunks) > 1:
            metadata["chunk"] = i
        yield Document(f"{source}#{i}" if len(chunks) > 1 else source, chunk, metadata)


def _title_of(text: str, path: Path) -> str:
    for line in text.splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
        if line.strip():
            break
    return path.stem


_BLANK = re.compile(r"\n\s*\n")


def split_text(text: str, max_chars: int) -> list[str]:
    """Blank-line separated paragraphs packed into chunks of at most ``max_chars`` characters.

    A single paragraph longer than that is cut at sentence ends (or hard, as a last resort).
    """
    if max_chars <= 0:
        raise ValueError("max_chars must be positive.")
    pieces: list[str] = []
    for paragraph in (p.strip() for p in _BLANK.split(text)):
        if not paragraph:
            continue
        start = 0  # cut by offsets: slicing the rest each time is quadratic on a huge paragraph
        while len(paragraph) - start > max_chars:
            cut = paragraph.rfind(". ", start, start + max_chars)
            cut = cut + 1 if cut > start + max_chars // 3 else start + max_chars
            piece = paragraph[start:cut].strip()
            if piece:
                pieces.append(piece)
            start = cut
        rest = paragraph[start:].strip()
        if rest:
            pieces.append(rest)
    chunks: list[str] = []
    for piece in pieces:
        if chunks and len(chunks[-1]) + 2 + len(piece) <= max_chars:
            chunks[-1] = f"{chunks[-1]}\n\n{piece}"
        else:
            chunks.append(piece)
    return chunks


def _read_jsonl(path: Path, source: str) -> Iterator[Document]:
    try:
        yield from _jsonl_documents(path, source)
    except UnicodeDecodeError as exc:
        raise CorpusError(
            f"{path} is not UTF-8 (byte {exc.start} of a line); JSON lines must be UTF-8: "
            "convert the file first."
        ) from exc


def _jsonl_documents(path: Path, source: str) -> Iterator[Document]:
    for number, row in iter_json_objects(path, CorpusError):
        text_key = next((k for k in TEXT_FIELDS if isinstance(row.get(k), str)), None)
        if text_key is None:
            raise CorpusError(
                f"{path}:{number}: no text field; give one of {', '.join(TEXT_FIELDS)} in each line."
            )
        title = str(row.get("title") or "").strip()
        body = row[text_key].strip()
        text = f"{title}\n{body}" if title and body else title or body
        if not text:
            continue  # empty records carry nothing to search
        id_key = next((k for k in ID_FIELDS if row.get(k) is not None), None)
        doc_id = str(row[id_key]) if id_key else f"{source}:{number}"
        metadata: dict[str, Any] = {"source": source}
        if title:
            metadata["title"] = title
        nested = row.get("metadata")
        if isinstance(nested, dict):
            metadata.update({k: v for k, v in nested.items() if _scalar(v)})
        for key, value in row.items():
            if key not in (*ID_FIELDS, text_key, "title", "metadata") and _scalar(value):
                metadata[key] = value
        yield Document(doc_id, text, metadata)


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) or (
        isinstance(value, list) and all(isinstance(v, (str, int, float, bool)) for v in value)
    )
