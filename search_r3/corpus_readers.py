"""Read documents to index: text and markdown files, folders of them, JSON lines, BEIR corpora.

Every document gets a stable id (the file path, with ``#N`` for the N-th chunk of a long file,
or the id field of a JSON line), so indexing the same sources again adds nothing twice.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from search_r3.errors import SearchR3Error
from search_r3.jsonl import iter_json_objects

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
    paths: Iterable[str | os.PathLike[str]], *, chunk_chars: int | None = DEFAULT_CHUNK_CHARS
) -> Iterator[Document]:
    """Documents from files and folders, in a stable order.

    * ``.txt``/``.md``/``.rst`` files: split at blank lines into chunks of at most
      ``chunk_chars`` characters (``None`` or 0: one document per file).
    * ``.jsonl`` files (BEIR ``corpus.jsonl`` included): one document per line, text from
      ``text``/``contents``/``body``..., ``title`` prepended, other scalar fields as metadata.
    * Folders: every supported file below them (hidden files and folders skipped); a BEIR
      folder reads its ``corpus.jsonl`` only.
    """
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.exists():
            raise CorpusError(f"{path} does not exist; check the path (files or folders to index).")
        if path.is_dir():
            yield from _read_folder(path, chunk_chars)
        else:
            yield from _read_file(path, chunk_chars, explicit=True)


def _read_folder(root: Path, chunk_chars: int | None) -> Iterator[Document]:
    if (root / "corpus.jsonl").is_file() and (root / "queries.jsonl").is_file():
        yield from _read_jsonl(root / "corpus.jsonl")  # a BEIR folder: the corpus, not its queries
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
                yield from _read_file(path, chunk_chars, explicit=False)
    if not found:
        supported = ", ".join(TEXT_SUFFIXES + JSONL_SUFFIXES)
        raise CorpusError(f"{root} holds no file search-r3 can index (supported: {supported}).")


def _read_file(path: Path, chunk_chars: int | None, explicit: bool) -> Iterator[Document]:
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        yield from _read_jsonl(path)
    elif suffix in TEXT_SUFFIXES or (explicit and _looks_like_text(path)):
        yield from _read_text(path, chunk_chars)
    else:
        raise CorpusError(
            f"{path}: unsupported file type {suffix or '(none)'}; index text or markdown files "
            f"({', '.join(TEXT_SUFFIXES)}) or JSON lines ({', '.join(JSONL_SUFFIXES)})."
        )


def _looks_like_text(path: Path) -> bool:
    try:
        path.read_bytes()[:4096].decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _read_text(path: Path, chunk_chars: int | None) -> Iterator[Document]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path} is not UTF-8 text; convert it first.") from exc
    source = str(path)
    doc_id = str(path.resolve())
    title = _title_of(text, path)
    chunks = split_text(text, chunk_chars) if chunk_chars else ([text.strip()] if text.strip() else [])
    for i, chunk in enumerate(chunks):
        metadata = {"source": source, "title": title}
        if len(chunks) > 1:
            metadata["chunk"] = i
        yield Document(f"{doc_id}#{i}" if len(chunks) > 1 else doc_id, chunk, metadata)


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
        while len(paragraph) > max_chars:
            cut = paragraph.rfind(". ", 0, max_chars)
            cut = cut + 1 if cut > max_chars // 3 else max_chars
            pieces.append(paragraph[:cut].strip())
            paragraph = paragraph[cut:].strip()
        if paragraph:
            pieces.append(paragraph)
    chunks: list[str] = []
    for piece in pieces:
        if chunks and len(chunks[-1]) + 2 + len(piece) <= max_chars:
            chunks[-1] = f"{chunks[-1]}\n\n{piece}"
        else:
            chunks.append(piece)
    return chunks


def _read_jsonl(path: Path) -> Iterator[Document]:
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
        doc_id = str(row[id_key]) if id_key else f"{path.resolve()}:{number}"
        metadata: dict[str, Any] = {"source": str(path)}
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
