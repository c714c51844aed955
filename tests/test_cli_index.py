"""`search-r3 index`, `delete` and `search --filter` on bad or odd input: one-line errors, no tracebacks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from search_r3.cli.main import main
from search_r3.cli.search_cmd import parse_filters
from search_r3.errors import InvalidInputError
from search_r3.store import QdrantStore

DOCS = ["Bread goes stale.", "Tides follow the Moon.", "Roman roads were paved.", "Zip codes in Boston."]
METAS = [
    {"source": "notes/bread.md", "code": "123", "topic": "food"},
    {"source": "notes/tides.md", "code": 123, "topic": "sea"},
    {"source": "notes/old/roads.md", "zip": "02139", "topic": "art"},
    {"source": "notes/old/zip.md", "topic": "1", "flag": True},
]
IDS = ["bread", "tides", "roads", "zip"]


@pytest.fixture(autouse=True)
def in_tmp_folder(isolated_env: Path, monkeypatch) -> None:
    """Each test runs in its own folder, with no user settings (``isolated_env``)."""
    monkeypatch.chdir(isolated_env)


@pytest.fixture
def db(tiny_embeddings, tmp_path: Path) -> Path:
    path = tmp_path / "db"
    with QdrantStore(tiny_embeddings, "notes", path=path) as store:
        store.add_documents(DOCS, ids=IDS, metadatas=METAS)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_delete_has_help_with_examples(capsys) -> None:
    with pytest.raises(SystemExit) as done:
        main(["delete", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "search-r3 delete --source" in out and "--filter" in out


# (argv, message on stderr); "{model}" is the tiny model, "{bad_model}" a folder that is no model:
# an error naming the argument (not the model) shows the argument is checked before the model loads
BAD_ARGS = [
    (["index", "a.txt", "--batch-size", "-1", "--model", "{bad_model}"], "batch size must be a positive"),
    (["index", "a.txt", "--batch-size", "0", "--model", "{bad_model}"], "batch size must be a positive"),
    (["index", "a.txt", "--chunk-chars", "-5", "--model", "{bad_model}"], "chunk size must be a positive"),
    (["index", "", "--model", "{bad_model}"], "an empty path was given"),
    (["index", "latin1.txt", "--model", "{bad_model}"], "is not UTF-8 text"),
    (["index", "latin1.jsonl", "--model", "{bad_model}"], "is not UTF-8"),
    (["index", "nul.txt", "--model", "{bad_model}"], "nothing to index"),
    (["index", "a.txt", "--model", "{bad_model}", "--path", ""], "store path is empty"),
    (["index", "a.txt", "--model", "{bad_model}", "--path", "db", "--url", "http://x:1"], "not both"),
    (["index", "a.txt", "--model", "{bad_model}", "--url", "http://127.0.0.1:{port}"], "Could not reach"),
    (["search", "q", "--path", ""], "store path is empty"),
    (["search", "q", "--path", "db", "--url", "http://127.0.0.1:1"], "not both"),
    (["search", "q", "--url", "http://127.0.0.1:{port}"], "Could not reach the Qdrant server"),
    (["search", "q", "--path", "db", "--collection", "unknown", "--model", "{bad_model}"], "No collection"),
    (["search", "q", "--path", "db", "--collection", "notes", "--filter", "n:float=1"], "unknown type"),
    (["search", "q", "--path", "db", "--collection", "notes", "--filter", "n:int=x"], "not an integer"),
    (["search", "q", "--path", "db", "--collection", "notes", "--filter", "=1"], "write KEY=VALUE"),
    (["delete", "--path", "db", "--collection", "notes"], "Nothing to delete"),
    (["delete", "x", "--all", "--path", "db", "--collection", "notes"], "give it alone"),
    (["delete", "x", "--path", "db", "--collection", "unknown"], "No collection 'unknown'"),
    (["delete", "x", "--url", "http://127.0.0.1:{port}"], "Could not reach the Qdrant server"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_ARGS, ids=[" ".join(a[:4]) for a, _ in BAD_ARGS])
def test_bad_input_is_one_line_and_non_zero(
    argv: list[str], message: str, db: Path, tiny_llama_dir: Path, tmp_path: Path, capsys
) -> None:
    (tmp_path / "a.txt").write_text("Some text to index.\n")
    (tmp_path / "latin1.txt").write_bytes("Caf\xe9 cr\xe8me\n".encode("latin-1"))
    (tmp_path / "latin1.jsonl").write_bytes('{"id": 1, "text": "caf\xe9"}\n'.encode("latin-1"))
    (tmp_path / "nul.txt").write_bytes(b"\x00" * 3000)
    (tmp_path / "bad-model").mkdir()
    values = {
        "model": str(tiny_llama_dir),
        "bad_model": str(tmp_path / "bad-model"),
        "port": str(free_port()),
    }
    argv = [a.format(**values) for a in argv]
    capsys.readouterr()
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's own usage errors exit 2
        rc = exc.code
    assert rc in (1, 2)
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.startswith("error:")]) <= 1


def test_search_never_creates_a_collection(db: Path, capsys) -> None:
    assert main(["search", "q", "--path", str(db), "--collection", "unknown", "--model", "nowhere"]) == 1
    assert "No collection 'unknown'" in (err := capsys.readouterr().err) and "notes" in err
    from search_r3.store import open_client

    client = open_client(db)
    assert [c.name for c in client.get_collections().collections] == ["notes"]
    client.close()


def test_binary_twice_and_symlinked_files_do_not_fail_the_run(
    tiny_llama_dir: Path, tmp_path: Path, capsys
) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.md").write_text("A note about bread.\n")
    (tmp_path / "notes" / "nul.txt").write_bytes(b"\x00" * 3000)
    (tmp_path / "link.md").symlink_to(tmp_path / "notes" / "a.md")
    argv = ["index", "notes", "notes/a.md", "link.md", "--model", str(tiny_llama_dir), "--path", "db"]
    assert main([*argv, "--json"]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["documents"] == 1 and summary["count"] == 1 and summary["added"] == 1
    # the CLI's log handler writes warnings to stderr
    warnings = captured.err.splitlines()
    assert any("nul.txt: holds NUL bytes" in w for w in warnings)
    assert sum("already read" in w for w in warnings) == 2  # a.md given again, and the link to it


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (["code=123"], {"bread", "tides"}),  # the string and the integer
        (["code:str=123"], {"bread"}),
        (["code:int=123"], {"tides"}),
        (["zip=02139"], {"roads"}),  # a leading zero survives
        (["topic=art,1"], {"roads", "zip"}),
        (["topic=food,sea", "code:str=123"], {"bread"}),
        (["flag:bool=true"], {"zip"}),
        (["flag=TRUE"], {"zip"}),
    ],
)
def test_typed_filters(
    filters: list[str], expected: set[str], db: Path, tiny_llama_dir: Path, capsys
) -> None:
    argv = ["search", "q", "--path", str(db), "--collection", "notes", "--model", str(tiny_llama_dir)]
    argv += [x for f in filters for x in ("--filter", f)]
    capsys.readouterr()
    assert main([*argv, "--no-reasoning", "-k", "4", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)[0]["hits"]
    assert {h["id"] for h in hits} == expected


def test_parse_filters() -> None:
    assert parse_filters(["zip=02139", "year:int=1990", "lang=en,de", "t=a\\,b"]) == {
        "zip": ["02139", 2139],
        "year": 1990,
        "lang": ["en", "de"],
        "t": "a,b",
    }
    assert parse_filters(["flag=true"]) == {"flag": ["true", True]} and parse_filters([]) is None
    with pytest.raises(InvalidInputError, match="given twice"):
        parse_filters(["a=1", "a=2"])


@pytest.mark.parametrize(
    ("selector", "deleted", "left"),
    [
        (["bread", "nope"], 1, {"tides", "roads", "zip"}),
        (["--source", "notes/old"], 2, {"bread", "tides"}),
        (["--source", "notes/bread.md"], 1, {"tides", "roads", "zip"}),
        (["--source", "notes/old", "tides"], 3, {"bread"}),
        (["--filter", "code=123"], 2, {"roads", "zip"}),
        (["--filter", "topic=art", "--filter", "zip=02139"], 1, {"bread", "tides", "zip"}),
        (["--all"], 4, set()),
    ],
)
def test_delete(selector: list[str], deleted: int, left: set[str], db: Path, tiny_embeddings, capsys) -> None:
    capsys.readouterr()
    assert main(["delete", *selector, "--path", str(db), "--collection", "notes", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "collection": "notes",
        "deleted": deleted,
        "count": len(left),
    }
    with QdrantStore(tiny_embeddings, "notes", path=db) as store:
        assert {h.id for h in store.get(IDS)} == left


def read_only_mount_works(tmp_path: Path) -> bool:
    probe = tmp_path / "probe"
    probe.mkdir()
    script = f"mount --bind {probe} {probe} && mount -o remount,bind,ro {probe} && ! touch {probe}/x"
    try:
        done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


@pytest.mark.parametrize("command", ["index", "search"])
def test_read_only_store_is_a_clear_error(
    command: str, db: Path, tiny_llama_dir: Path, tmp_path: Path
) -> None:
    """A real read-only file system: a read-only bind mount in a user namespace (skipped without)."""
    if not read_only_mount_works(tmp_path):
        pytest.skip("needs `unshare -rm` (user and mount namespaces) for a read-only mount")
    (tmp_path / "a.txt").write_text("Some text to index.\n")
    args = ["a.txt"] if command == "index" else ["q", "--collection", "notes"]
    cli = [sys.executable, "-m", "search_r3.cli.main", command, *args, "--model", str(tiny_llama_dir)]
    script = f'mount --bind {db} {db} && mount -o remount,bind,ro {db} && exec "$@"'
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, "sh", *cli, "--path", str(db)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Cannot write to the store folder" in done.stderr and "Traceback" not in done.stderr
