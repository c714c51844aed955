"""``search-r3 serve``: a real uvicorn server on loopback, driven by real HTTP clients (httpx, the
``openai`` client, LangChain's ``OpenAIEmbeddings``, LlamaIndex's ``OpenAILikeEmbedding``)."""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from search_r3 import QdrantStore, ReasoningEmbeddings
from search_r3.engine import QueryEngine
from search_r3.query_cache import QueryCache
from search_r3.server import EmbeddingService, GracefulServer, ServerConfig, build_service, make_server

MODEL = "tiny-talkative"
KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
DOCS = {
    "bread": ("Bread goes stale as its starch recrystallises.", {"topic": "food"}),
    "tides": ("Tides are caused by the Moon's gravity.", {"topic": "science"}),
    "roads": ("Roman roads were paved with stone.", {"topic": "history"}),
}


# -- a real server in a thread -----------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def new_engine(embeddings: ReasoningEmbeddings, max_batch_size: int = 8) -> QueryEngine:
    return QueryEngine(embeddings, max_batch_size=max_batch_size)


@dataclass
class Running:
    base_url: str  # what OpenAI clients take: http://127.0.0.1:PORT/v1
    root: str
    service: EmbeddingService
    server: GracefulServer
    thread: threading.Thread


@contextmanager
def running_server(
    embeddings: Any, config: ServerConfig, *, engine: Any = None, **kwargs: Any
) -> Iterator[Running]:
    """Serve ``embeddings`` on a free port until the block ends (then drain and join)."""
    service = build_service(embeddings, config, engine=engine or new_engine(embeddings), **kwargs)
    port = free_port()
    server = make_server(service, config, port=port, log_level="warning")
    thread = threading.Thread(target=server.run, name="test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.02)
    root = f"http://127.0.0.1:{port}"
    try:
        yield Running(f"{root}/v1", root, service, server, thread)
    finally:
        server.begin_drain()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the server did not stop after draining"


@pytest.fixture(scope="module")
def emb(talkative_llama_dir: Path) -> ReasoningEmbeddings:
    return ReasoningEmbeddings.from_pretrained(talkative_llama_dir, device="cpu", max_reasoning_tokens=6)


@pytest.fixture(scope="module")
def served(emb: ReasoningEmbeddings) -> Iterator[Running]:
    store = QdrantStore(emb, "notes", path=":memory:")
    store.add_documents(
        [t for t, _ in DOCS.values()], ids=list(DOCS), metadatas=[m for _, m in DOCS.values()]
    )
    config = ServerConfig(
        model_name=MODEL,
        api_key=KEY,
        max_inputs=8,
        max_input_chars=200,
        max_total_chars=600,
        max_reasoning_tokens=16,
    )
    with running_server(emb, config, store=store, cache=QueryCache()) as running:
        yield running


def post(served: Running, path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        f"{served.root}{path}", json=body, headers=AUTH if headers is None else headers, timeout=60
    )


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    return error


def cosine(a: Any, b: Any) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


# -- OpenAI-compatible clients -----------------------------------------------------------------
def test_openai_client_queries_reason_and_match_the_core(served: Running, emb: ReasoningEmbeddings) -> None:
    import openai

    client = openai.OpenAI(base_url=served.base_url, api_key=KEY)
    texts = ["why do wings lift?", "what makes tides?"]
    # the client asks for base64 by default (it decodes it itself); ask for floats too
    as_b64 = client.embeddings.create(model=MODEL, input=texts)
    as_float = client.embeddings.create(model=MODEL, input=texts, encoding_format="float")
    direct = emb.encode_queries(texts, use_cache=False)
    assert [d.index for d in as_b64.data] == [0, 1]
    for i in range(2):
        assert len(as_b64.data[i].embedding) == emb.embedding_dimension
        assert cosine(as_b64.data[i].embedding, direct.embeddings[i]) > 0.99999
        np.testing.assert_allclose(as_float.data[i].embedding, as_b64.data[i].embedding, rtol=1e-6)
    extra = as_float.data[0].model_extra
    assert extra["reasoning"] == direct.reasoning[0] and "Paris" in extra["reasoning"]
    assert extra["forced"] == bool(direct.forced[0])
    prompts = emb.prompts.build(texts, "reasoning")
    assert as_b64.usage.prompt_tokens == sum(len(p) for p in prompts)
    first_usage = as_b64.usage.model_extra["reasoning_tokens"]
    assert first_usage in (0, sum(direct.generated_tokens))  # 0 when another test already cached them


def test_base64_is_little_endian_float32(served: Running, emb: ReasoningEmbeddings) -> None:
    body = post(
        served, "/v1/embeddings", {"model": MODEL, "input": "heat shields", "encoding_format": "base64"}
    ).json()
    vector = np.frombuffer(base64.b64decode(body["data"][0]["embedding"]), dtype="<f4")
    assert cosine(vector, emb.encode_queries(["heat shields"], use_cache=False).embeddings[0]) > 0.99999


def test_documents_do_not_reason(served: Running, emb: ReasoningEmbeddings) -> None:
    import openai

    texts = [t for t, _ in DOCS.values()]
    direct = emb.encode_documents(texts)
    client = openai.OpenAI(base_url=served.base_url, api_key=KEY)
    by_field = client.embeddings.create(model=MODEL, input=texts, extra_body={"input_type": "document"})
    by_url = openai.OpenAI(base_url=f"{served.base_url}/document", api_key=KEY).embeddings.create(
        model=MODEL, input=texts
    )
    for response in (by_field, by_url):
        for i, item in enumerate(response.data):
            assert cosine(item.embedding, direct[i]) > 0.99999
            assert item.model_extra["reasoning"] == "" and item.model_extra["forced"] is False
        assert response.usage.model_extra["reasoning_tokens"] == 0
    assert by_url.model_extra["input_type"] == "document"


def test_documents_run_on_the_engine_thread(served: Running, emb: ReasoningEmbeddings, monkeypatch) -> None:
    """All the model's work in one thread (the engine's): OpenMP keeps one team of threads awake."""
    threads = []
    encode = emb.encode_documents

    def spy(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread().name)
        return encode(*args, **kwargs)

    monkeypatch.setattr(emb, "encode_documents", spy)
    body = {"model": MODEL, "input": ["a wing", "a rocket"], "input_type": "document"}
    assert post(served, "/v1/embeddings", body).status_code == 200
    assert threads == ["search-r3-query-engine"]


def test_documents_get_503_once_the_engine_is_closed(emb: ReasoningEmbeddings) -> None:
    from search_r3.server.errors import APIError

    engine = new_engine(emb)
    service = build_service(emb, ServerConfig(model_name=MODEL), engine=engine)
    engine.close()

    async def encode_documents() -> APIError:
        await service.start()
        try:
            with pytest.raises(APIError) as raised:
                await service.documents(["a wing"])
        finally:
            await service.close()
        return raised.value

    error = asyncio.run(encode_documents())
    assert error.status == 503 and error.code == "shutting_down"


def test_reasoning_can_be_turned_off_or_budgeted(served: Running, emb: ReasoningEmbeddings) -> None:
    off = post(served, "/v1/embeddings", {"model": MODEL, "input": ["sea level"], "reasoning": False}).json()
    np.testing.assert_allclose(
        off["data"][0]["embedding"],
        emb.encode_queries(["sea level"], reasoning=False).embeddings[0],
        atol=1e-5,
    )
    assert off["data"][0]["reasoning"] == ""
    short = post(
        served, "/v1/embeddings", {"model": MODEL, "input": ["sea level"], "max_reasoning_tokens": 2}
    ).json()
    direct = emb.encode_queries(["sea level"], max_reasoning_tokens=2, use_cache=False)
    assert short["data"][0]["forced"] is True and short["data"][0]["reasoning"] == direct.reasoning[0]
    assert cosine(short["data"][0]["embedding"], direct.embeddings[0]) > 0.99999


def test_langchain_openai_embeddings(served: Running, emb: ReasoningEmbeddings) -> None:
    from langchain_openai import OpenAIEmbeddings

    common = dict(model=MODEL, base_url=served.base_url, api_key=KEY, check_embedding_ctx_length=False)
    queries = OpenAIEmbeddings(**common)
    documents = OpenAIEmbeddings(**common, model_kwargs={"extra_body": {"input_type": "document"}})
    q = queries.embed_query("where is the Louvre?")
    assert cosine(q, emb.encode_queries(["where is the Louvre?"], use_cache=False).embeddings[0]) > 0.99999
    d = documents.embed_documents([DOCS["bread"][0], DOCS["tides"][0]])
    direct = emb.encode_documents([DOCS["bread"][0], DOCS["tides"][0]])
    assert [round(cosine(a, b), 5) for a, b in zip(d, direct, strict=True)] == [1.0, 1.0]
    again = asyncio.run(queries.aembed_query("where is the Louvre?"))
    np.testing.assert_allclose(again, q, rtol=1e-6)


def test_llama_index_openai_like_embedding(served: Running, emb: ReasoningEmbeddings) -> None:
    from llama_index.embeddings.openai_like import OpenAILikeEmbedding

    model = OpenAILikeEmbedding(model_name=MODEL, api_base=served.base_url, api_key=KEY)
    query = model.get_query_embedding("rain and clouds")
    assert cosine(query, emb.encode_queries(["rain and clouds"], use_cache=False).embeddings[0]) > 0.99999
    docs = OpenAILikeEmbedding(
        model_name=MODEL,
        api_base=served.base_url,
        api_key=KEY,
        additional_kwargs={"extra_body": {"input_type": "document"}},
    )
    assert (
        cosine(docs.get_text_embedding(DOCS["roads"][0]), emb.encode_documents([DOCS["roads"][0]])[0])
        > 0.99999
    )


# -- cache, models, health, metrics ------------------------------------------------------------
def test_repeated_query_is_a_cache_hit_with_the_same_vector(served: Running) -> None:
    body = {"model": MODEL, "input": ["a query seen twice"], "encoding_format": "base64"}
    first = post(served, "/v1/embeddings", body).json()
    second = post(served, "/v1/embeddings", body).json()
    assert first["data"][0]["cached"] is False and second["data"][0]["cached"] is True
    assert second["data"][0]["embedding"] == first["data"][0]["embedding"]  # the same bytes
    assert second["data"][0]["reasoning"] == first["data"][0]["reasoning"] != ""
    assert first["usage"]["reasoning_tokens"] > 0 and second["usage"]["reasoning_tokens"] == 0
    metrics = httpx.get(f"{served.root}/metrics").text
    hits = [line for line in metrics.splitlines() if line.startswith("search_r3_cache_hits_total")]
    assert hits and float(hits[0].split()[-1]) >= 1


def test_models_health_and_metrics(served: Running, emb: ReasoningEmbeddings) -> None:
    import openai

    models = openai.OpenAI(base_url=served.base_url, api_key=KEY).models.list()
    assert [m.id for m in models.data] == [MODEL]
    assert models.data[0].model_extra["dimension"] == emb.embedding_dimension
    assert httpx.get(f"{served.root}/health").json()["status"] == "ok"  # no key needed
    post(served, "/v1/embeddings", {"model": MODEL, "input": ["x1", "x2"], "input_type": "document"})
    text = httpx.get(f"{served.root}/metrics").text
    for name in (
        'search_r3_requests_total{endpoint="/v1/embeddings",status="200"}',
        'search_r3_batch_size_bucket{kind="document"',
        'search_r3_queue_seconds_count{endpoint="/v1/embeddings",kind="document"}',
        "search_r3_reasoning_tokens_total",
        "search_r3_reasoning_tokens_per_second",
        "search_r3_cache_misses_total",
        "search_r3_cache_entries",
        "search_r3_in_flight_requests",
    ):
        assert name in text, name
    tokens = next(line for line in text.splitlines() if line.startswith("search_r3_prompt_tokens_total"))
    assert float(tokens.split()[-1]) > 0


# -- search --------------------------------------------------------------------------------------
def test_search_returns_hits_with_reasoning(served: Running, emb: ReasoningEmbeddings) -> None:
    body = post(served, "/v1/search", {"query": "stale bread", "k": 2, "mode": "dense"}).json()
    store_view = emb.encode_queries(["stale bread"], use_cache=False)
    assert body["reasoning"] == store_view.reasoning[0] and len(body["hits"]) == 2
    scores = {h["id"]: h["score"] for h in body["hits"]}
    for doc_id, score in scores.items():
        doc = emb.encode_documents([DOCS[doc_id][0]])[0]
        assert abs(score - cosine(doc, store_view.embeddings[0])) < 1e-4
    filtered = post(
        served, "/v1/search", {"query": "stale bread", "k": 3, "filter": {"topic": "history"}}
    ).json()
    assert [h["id"] for h in filtered["hits"]] == ["roads"] and filtered["hits"][0]["metadata"] == {
        "topic": "history"
    }


def test_search_modes_match_the_store(served: Running, count_calls) -> None:
    """Where the store has sparse and hybrid modes, the server's answers are the store's own."""
    if not served.service.store_has_modes:
        pytest.skip("this store searches dense vectors only")
    store = served.service.store
    calls = count_calls(store, "search_encoded")
    modes = ("hybrid", "sparse", "dense")
    for mode in modes:
        body = post(served, "/v1/search", {"query": "stale bread", "k": 3, "mode": mode}).json()
        direct = store.search("stale bread", k=3, mode=mode)
        assert body["mode"] == mode and body["reasoning"] == direct.reasoning
        assert [h["id"] for h in body["hits"]] == [h.id for h in direct.hits]
        np.testing.assert_allclose(
            [h["score"] for h in body["hits"]], [h.score for h in direct.hits], rtol=1e-4
        )
    # one code path: the server's search and the store's own both end in search_encoded
    assert [kw["mode"] for _, kw in calls] == [m for m in modes for _ in range(2)]
    assert error_of(post(served, "/v1/search", {"query": "x", "mode": "fuzzy"}), 400)["message"]


def test_search_errors(served: Running, emb: ReasoningEmbeddings) -> None:
    if not served.service.store_has_modes:
        assert error_of(post(served, "/v1/search", {"query": "x", "mode": "hybrid"}), 400)["param"] == "mode"
    assert error_of(post(served, "/v1/search", {"query": "x", "filter": {"topic": 1.5}}), 400)["message"]
    assert error_of(post(served, "/v1/search", {"query": "x", "k": 0}), 422)["param"] == "k"
    assert error_of(post(served, "/v1/search", {"query": " "}), 400)["code"] == "empty_input"
    with running_server(emb, ServerConfig(model_name=MODEL)) as bare:
        assert error_of(post(bare, "/v1/search", {"query": "x"}), 404)["code"] == "search_not_configured"


# -- errors --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "status", "param", "code"),
    [
        ({"input": []}, 400, "input", "empty_input"),
        ({"input": ""}, 400, "input", "empty_input"),
        ({"input": ["ok", "  "]}, 400, "input[1]", "empty_input"),
        ({"input": [101, 2023, 102]}, 400, "input", "token_ids_not_supported"),
        ({"input": [[101, 2023], [102]]}, 400, "input", "token_ids_not_supported"),
        ({"input": ["ok", 3]}, 422, "input[1]", "invalid_type"),
        ({"input": None}, 422, "input", "invalid_type"),
        ({"input": {"text": "x"}}, 422, "input", "invalid_type"),
        ({}, 422, "input", "invalid_value"),
        ({"input": ["q"] * 9}, 413, "input", "too_many_inputs"),
        ({"input": ["x" * 201]}, 413, "input[0]", "input_too_long"),
        ({"input": ["x" * 200] * 4}, 413, "input", "request_too_large"),
        ({"input": "q", "dimensions": 8}, 400, "dimensions", "unsupported_dimensions"),
        ({"input": "q", "model": "text-embedding-3-small"}, 404, "model", "model_not_found"),
        ({"input": "q", "max_reasoning_tokens": 17}, 400, "max_reasoning_tokens", "invalid_value"),
        ({"input": "q", "max_reasoning_tokens": -1}, 422, "max_reasoning_tokens", "invalid_value"),
        ({"input": "q", "input_type": "passage"}, 422, "input_type", "invalid_value"),
        ({"input": "q", "encoding_format": "int8"}, 422, "encoding_format", "invalid_value"),
        ({"input": "q", "input_type": "document", "reasoning": True}, 400, "reasoning", "invalid_value"),
    ],
)
def test_bad_requests_get_openai_errors(
    served: Running, body: dict, status: int, param: str, code: str
) -> None:
    error = error_of(post(served, "/v1/embeddings", {"model": MODEL, **body}), status)
    assert (error["param"], error["code"]) == (param, code)


def test_malformed_json_and_unknown_routes(served: Running) -> None:
    bad = httpx.post(
        f"{served.base_url}/embeddings",
        content=b"{not json",
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert error_of(bad, 400)["code"] == "invalid_json"
    assert error_of(httpx.get(f"{served.root}/v2/nothing", headers=AUTH), 404)["code"] == "not_found"
    wrong_type = httpx.post(f"{served.base_url}/passage/embeddings", json={"input": "q"}, headers=AUTH)
    assert error_of(wrong_type, 404)["code"] == "not_found"
    assert httpx.get(f"{served.base_url}/document/models", headers=AUTH).json()["data"][0]["id"] == MODEL


def test_the_openai_client_raises_its_own_error_types(served: Running) -> None:
    import openai

    client = openai.OpenAI(base_url=served.base_url, api_key=KEY, max_retries=0)
    with pytest.raises(openai.BadRequestError, match="empty"):
        client.embeddings.create(model=MODEL, input=[""])
    with pytest.raises(openai.AuthenticationError, match="API key"):
        openai.OpenAI(base_url=served.base_url, api_key="wrong", max_retries=0).embeddings.create(
            model=MODEL, input="q"
        )


def test_api_key(served: Running) -> None:
    body = {"model": MODEL, "input": "q"}
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {KEY}"}):
        assert (
            error_of(post(served, "/v1/embeddings", body, headers=headers), 401)["code"] == "invalid_api_key"
        )
    assert error_of(httpx.get(f"{served.base_url}/models"), 401)["type"] == "authentication_error"
    assert post(served, "/v1/embeddings", body).status_code == 200


def test_oversized_body_is_refused_before_reading(emb: ReasoningEmbeddings) -> None:
    config = ServerConfig(model_name=MODEL, max_total_chars=100)
    with running_server(emb, config) as small:
        response = httpx.post(
            f"{small.base_url}/embeddings", json={"input": "x" * (config.max_body_bytes + 1)}
        )
        assert error_of(response, 413)["code"] == "request_too_large"


def test_queue_limit_answers_429(emb: ReasoningEmbeddings) -> None:
    with running_server(emb, ServerConfig(model_name=MODEL, max_pending_queries=2)) as small:
        error = error_of(httpx.post(f"{small.base_url}/embeddings", json={"input": ["a", "b", "c"]}), 429)
        assert error["code"] == "queue_full" and error["type"] == "rate_limit_error"
        ok = httpx.post(f"{small.base_url}/embeddings", json={"input": ["a", "b"]}, timeout=60)
        assert ok.status_code == 200 and small.service.pending_queries == 0


def test_a_bad_request_never_fails_the_good_ones_beside_it(served: Running, emb: ReasoningEmbeddings) -> None:
    texts = [f"concurrent query {i}" for i in range(6)]

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(headers=AUTH, timeout=60) as client:
            calls = [
                client.post(f"{served.base_url}/embeddings", json={"model": MODEL, "input": t}) for t in texts
            ]
            calls.insert(
                3, client.post(f"{served.base_url}/embeddings", json={"model": MODEL, "input": ["ok", 7]})
            )
            calls.insert(
                1, client.post(f"{served.base_url}/embeddings", json={"model": MODEL, "input": ["x" * 500]})
            )
            return await asyncio.gather(*calls)

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200, 413, 200, 200, 422, 200, 200, 200]
    good = [r.json()["data"][0]["embedding"] for r in responses if r.status_code == 200]
    direct = emb.encode_queries(texts, use_cache=False)
    assert [round(cosine(g, d), 5) for g, d in zip(good, direct.embeddings, strict=True)] == [1.0] * 6


def _histogram(text: str, name: str, labels: str) -> dict[str, float]:
    """``{"count": .., "sum": .., "le=0.25": ..}`` of one labelled Prometheus histogram."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(f"{name}_count{{{labels}}}"):
            out["count"] = float(line.split()[-1])
        elif line.startswith(f"{name}_sum{{{labels}}}"):
            out["sum"] = float(line.split()[-1])
        elif line.startswith(f"{name}_bucket{{{labels},le="):
            out["le=" + line.split('le="')[1].split('"')[0]] = float(line.split()[-1])
    return out


def test_metrics_report_queue_time_per_endpoint(emb: ReasoningEmbeddings) -> None:
    """A query that waits for a busy engine shows its wait in ``search_r3_queue_seconds``, under
    the endpoint it came through; the query that found the engine free does not."""
    engine = new_engine(emb, max_batch_size=1)  # one query decodes at a time: the next one queues
    gate, decoding = threading.Event(), threading.Event()
    step = engine._decoder.step

    def held_step() -> Any:  # the first query's decoding waits for the gate
        decoding.set()
        gate.wait(30)
        return step()

    engine._decoder.step = held_step
    store = QdrantStore(emb, "queue", path=":memory:")
    store.add_documents([t for t, _ in DOCS.values()], ids=list(DOCS))
    wait = 0.4
    name = "search_r3_queue_seconds"
    with running_server(emb, ServerConfig(model_name=MODEL), engine=engine, store=store) as running:
        responses: dict[str, httpx.Response] = {}

        def call(key: str, path: str, body: dict[str, Any]) -> threading.Thread:
            thread = threading.Thread(
                target=lambda: responses.update(
                    {key: httpx.post(f"{running.base_url}{path}", json=body, timeout=60)}
                )
            )
            thread.start()
            return thread

        first = call("first", "/embeddings", {"input": "why do wings stall?"})
        assert decoding.wait(30)  # the first query is decoding (held)
        second = call("second", "/embeddings", {"input": "what makes bread go stale?"})
        third = call("third", "/search", {"query": "how do tides work?", "k": 1, "mode": "dense"})
        deadline = time.monotonic() + 30
        while engine.pending < 2:  # both wait behind the first
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(wait)  # they have now queued for at least `wait` seconds
        gate.set()
        for thread in (first, second, third):
            thread.join(60)
        assert [responses[k].status_code for k in ("first", "second", "third")] == [200, 200, 200]
        text = httpx.get(f"{running.root}/metrics").text
    embeddings = _histogram(text, name, 'endpoint="/v1/embeddings",kind="query"')
    search = _histogram(text, name, 'endpoint="/v1/search",kind="query"')
    assert embeddings["count"] == 2 and search["count"] == 1
    assert embeddings["sum"] >= wait and search["sum"] >= wait
    # of the two embeddings queries only the first (which found the engine free) is in the
    # buckets below the wait; the search query waited at least `wait`
    assert embeddings["le=0.25"] <= 1 and search["le=0.25"] == 0


# -- shutdown ------------------------------------------------------------------------------------
class HeldEngine:
    """The real engine, except that results are handed out only once ``release`` is set, so a
    request can be held in flight while the test starts a shutdown."""

    def __init__(self, engine: Any):
        self.engine = engine
        self.release = threading.Event()
        self.closed = False

    def submit(self, text: str, **kwargs: Any) -> Future:
        inner = self.engine.submit(text, **kwargs)
        outer: Future = Future()

        def hand_out() -> None:
            self.release.wait(30)
            try:
                outer.set_result(inner.result())
            except Exception as exc:
                outer.set_exception(exc)

        threading.Thread(target=hand_out, daemon=True).start()
        return outer

    def close(self, drain: bool = True) -> None:
        self.engine.close(drain=drain)
        self.closed = True


def test_shutdown_drains_in_flight_requests_and_refuses_new_ones(emb: ReasoningEmbeddings) -> None:
    engine = HeldEngine(new_engine(emb))
    with running_server(emb, ServerConfig(model_name=MODEL), engine=engine) as running:
        held: dict[str, httpx.Response] = {}
        first = threading.Thread(
            target=lambda: held.update(
                r=httpx.post(f"{running.base_url}/embeddings", json={"input": "held"}, timeout=60)
            )
        )
        first.start()
        deadline = time.monotonic() + 30
        while running.service.pending_queries == 0:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        running.server.begin_drain()
        refused = httpx.post(f"{running.base_url}/embeddings", json={"input": "late"}, timeout=10)
        assert error_of(refused, 503)["code"] == "shutting_down" and refused.headers["retry-after"] == "1"
        assert httpx.get(f"{running.root}/health").status_code == 503
        assert running.thread.is_alive()  # still waiting for the held request
        engine.release.set()
        first.join(30)
        assert (
            held["r"].status_code == 200
            and len(held["r"].json()["data"][0]["embedding"]) == emb.embedding_dimension
        )
        running.thread.join(30)
        assert not running.thread.is_alive() and engine.closed


# -- the command ---------------------------------------------------------------------------------
def test_serve_help_has_examples(capsys) -> None:
    from search_r3.cli.main import main

    with pytest.raises(SystemExit) as done:
        main(["serve", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "search-r3 serve" in out and "/v1/query" in out


def test_serve_checks_arguments_before_loading_a_model(capsys, tmp_path: Path) -> None:
    from search_r3.cli.main import main

    missing = str(tmp_path / "no-such-model")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--model", missing, "--port", str(port)]) == 1
        assert "already in use" in capsys.readouterr().err
    assert main(["serve", "--model", missing, "--port", "0"]) == 1
    assert "--port" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:  # a usage error, from the shared store-option check
        main(["serve", "--model", missing, "--path", "a", "--url", "http://x"])
    assert usage.value.code == 2
    assert "not both" in capsys.readouterr().err
    assert main(["serve", "--model", missing, "--port", str(free_port())]) == 1
    assert "No model folder" in capsys.readouterr().err
    assert main(["serve", "--model", missing, "--threads", "0"]) == 1
    assert "--threads 0" in capsys.readouterr().err
    for workers in ("0", "many", "33"):  # 33: more workers than --max-batch-size rows
        assert main(["serve", "--model", missing, "--decode-workers", workers]) == 1
        assert (
            "--decode-workers takes 'auto' or a number from 1 to --max-batch-size (32)"
            in capsys.readouterr().err
        )


def test_serve_keeps_one_thread_here_before_the_model_loads(capsys, tmp_path: Path) -> None:
    """The model's work runs on the engine's thread (with --threads); the loading and event-loop
    thread keeps one torch thread, so OpenMP runs a single team (see QueryEngine's threads)."""
    import torch

    from search_r3.cli.main import main

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        missing = str(tmp_path / "no-such-model")
        assert main(["serve", "--model", missing, "--port", str(free_port()), "--threads", "2"]) == 1
        assert "No model folder" in capsys.readouterr().err
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_serve_command_end_to_end(talkative_llama_dir: Path, tmp_path: Path) -> None:
    """The real command in a subprocess: serve, answer, then SIGTERM drains and exits."""
    import os
    import signal
    import subprocess
    import sys

    port = free_port()
    cache = tmp_path / "q.sqlite"
    command = [
        sys.executable,
        "-m",
        "search_r3.cli.main",
        "serve",
        "--model",
        str(talkative_llama_dir),
        "--device",
        "cpu",
    ]
    command += [
        "--port",
        str(port),
        "--max-reasoning-tokens",
        "4",
        "--cache-path",
        str(cache),
        "--log-level",
        "warning",
        "--threads",
        "2",
        "--decode-workers",
        "2",
    ]
    env = {**os.environ, "SEARCH_R3_API_KEY": KEY, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        root = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "serve did not come up"
            try:
                if httpx.get(f"{root}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        models = httpx.get(f"{root}/v1/models", headers=AUTH).json()
        assert models["data"][0]["id"] == talkative_llama_dir.name
        body = {"model": talkative_llama_dir.name, "input": "persisted"}
        response = httpx.post(f"{root}/v1/embeddings", json=body, headers=AUTH, timeout=60).json()
        assert response["data"][0]["reasoning"]
        assert "search_r3_engine_workers 2.0" in httpx.get(f"{root}/metrics").text
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
    with QueryCache(path=cache) as reopened:
        assert len(reopened) == 1  # the query outlived the process
    stderr = process.stderr.read() if process.stderr else ""
    assert "serving" in stderr and "Traceback" not in stderr
