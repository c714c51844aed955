"""SearchR3Retriever over a real local Qdrant store: the standard suite and its own contract."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_tests.integration_tests import RetrieversIntegrationTests

from langchain_search_r3 import SearchR3Embeddings, SearchR3Retriever
from search_r3 import InvalidInputError, ReasoningEmbeddings
from search_r3.store import QdrantStore

BUDGET = 4


@pytest.fixture
def store(fresh_embeddings: ReasoningEmbeddings, corpus) -> Iterator[QdrantStore]:
    with QdrantStore(fresh_embeddings, "lc_test", path=":memory:") as store:
        store.add_documents(corpus.texts, ids=corpus.ids, metadatas=corpus.metadatas)
        yield store


class TestSearchR3RetrieverStandard(RetrieversIntegrationTests):
    store: QdrantStore

    @pytest.fixture(autouse=True)
    def _store(self, request: pytest.FixtureRequest, store: QdrantStore) -> None:
        request.cls.store = store

    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return SearchR3Retriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"store": self.store, "max_reasoning_tokens": BUDGET}

    @property
    def retriever_query_example(self) -> str:
        return "Which European capital has the Louvre?"


def expected_ranking(emb: ReasoningEmbeddings, corpus, query: str) -> tuple[list[str], np.ndarray, str, bool]:
    """The ranking computed independently of the retriever: numpy cosine over the same model."""
    encoded = emb.encode_queries([query], reasoning=True, max_reasoning_tokens=BUDGET)
    scores = emb.encode_documents(corpus.texts) @ encoded.embeddings[0]
    order = np.argsort(-scores)
    return [corpus.ids[i] for i in order], scores[order], encoded.reasoning[0], bool(encoded.forced[0])


def test_documents_carry_score_reasoning_and_metadata(store: QdrantStore, corpus) -> None:
    query = "a language for writing programs"
    ids, scores, reasoning, forced = expected_ranking(store.embeddings, corpus, query)
    # dense mode: the cosine ranking (the store's default is hybrid; see test_langchain_hybrid.py)
    docs = SearchR3Retriever(store=store, k=3, max_reasoning_tokens=BUDGET, mode="dense").invoke(query)
    assert [d.id for d in docs] == ids[:3]
    np.testing.assert_allclose([d.metadata["score"] for d in docs], scores[:3], atol=1e-4)
    for doc in docs:
        i = corpus.ids.index(doc.id)
        assert doc.page_content == corpus.texts[i]
        assert doc.metadata["source"] == corpus.metadatas[i]["source"]
        assert doc.metadata["reasoning"] == reasoning
        assert doc.metadata["forced"] is forced
    assert reasoning.startswith(" Paris")  # the biased tiny model's reasoning (see conftest)


def test_reasoning_is_computed_once_per_query(store: QdrantStore, count_calls) -> None:
    queries = count_calls(store.embeddings, "encode_queries")
    documents = count_calls(store.embeddings, "encode_documents")
    retriever = SearchR3Retriever(store=store, k=2, max_reasoning_tokens=BUDGET)
    retriever.invoke("capital of Germany")
    assert len(queries) == 1
    assert queries[0][1]["max_reasoning_tokens"] == BUDGET
    retriever.invoke("bread", k=4)
    assert len(queries) == 2 and not documents


async def test_ainvoke_reasons_once_and_matches_invoke(store: QdrantStore, count_calls) -> None:
    retriever = SearchR3Retriever(store=store, k=2, max_reasoning_tokens=BUDGET)
    sync_docs = retriever.invoke("green tea leaves")
    queries = count_calls(store.embeddings, "encode_queries")
    async_docs = await retriever.ainvoke("green tea leaves")
    assert len(queries) == 1
    assert [d.id for d in async_docs] == [d.id for d in sync_docs]
    assert async_docs[0].metadata["reasoning"] == sync_docs[0].metadata["reasoning"]


def test_invoke_arguments_override_fields(store: QdrantStore, count_calls) -> None:
    retriever = SearchR3Retriever(store=store, k=5, filter={"source": "food"}, max_reasoning_tokens=BUDGET)
    docs = retriever.invoke("anything to eat?")
    assert {d.metadata["source"] for d in docs} == {"food"} and len(docs) == 2
    docs = retriever.invoke("anything to eat?", k=1, filter={"source": ["geo", "code"]})
    assert len(docs) == 1 and docs[0].metadata["source"] in {"geo", "code"}

    queries = count_calls(store.embeddings, "encode_queries")
    docs = retriever.invoke("capital", reasoning=False)
    assert queries[-1][1]["reasoning"] is False
    assert docs[0].metadata["reasoning"] == "" and docs[0].metadata["forced"] is False


@pytest.mark.parametrize("k", [0, -2, 1.5, True])
def test_bad_k_is_a_clear_error(store: QdrantStore, k: object) -> None:
    retriever = SearchR3Retriever(store=store, max_reasoning_tokens=BUDGET)
    with pytest.raises(InvalidInputError, match="k must be a positive integer"):
        retriever.invoke("capital", k=k)


def test_from_documents_keeps_ids_and_settings(
    fresh_embeddings: ReasoningEmbeddings, corpus, count_calls
) -> None:
    docs = [
        Document(page_content=t, metadata=m, id=i) for i, t, m in zip(*vars(corpus).values(), strict=True)
    ]
    emb = SearchR3Embeddings(model=fresh_embeddings, max_reasoning_tokens=2)
    retriever = SearchR3Retriever.from_documents(docs, emb, k=2, collection_name="from_docs")
    assert retriever.max_reasoning_tokens == 2 and retriever.store.count() == len(docs)
    queries = count_calls(fresh_embeddings, "encode_queries")
    found = retriever.invoke("memory safe systems language")
    assert queries[0][1]["max_reasoning_tokens"] == 2
    assert len(found) == 2 and {d.id for d in found} <= set(corpus.ids)
    retriever.store.close()


def test_from_texts_on_a_local_folder_survives_reopening(fresh_embeddings, corpus, tmp_path) -> None:
    retriever = SearchR3Retriever.from_texts(
        corpus.texts, fresh_embeddings, ids=corpus.ids, path=tmp_path, k=1
    )
    first = retriever.invoke("the Louvre", max_reasoning_tokens=BUDGET)
    retriever.store.close()
    with QdrantStore(fresh_embeddings, "search_r3", path=tmp_path) as reopened:
        again = SearchR3Retriever(store=reopened, k=1).invoke("the Louvre", max_reasoning_tokens=BUDGET)
        assert reopened.count() == len(corpus.texts)
    assert [d.id for d in again] == [d.id for d in first]


def test_from_texts_on_an_existing_client_leaves_it_open(fresh_embeddings, corpus) -> None:
    from qdrant_client import QdrantClient

    client = QdrantClient(":memory:")
    retriever = SearchR3Retriever.from_texts(
        corpus.texts, fresh_embeddings, client=client, collection_name="mine"
    )
    assert retriever.store.client is client
    retriever.store.close()
    assert client.count("mine").count == len(corpus.texts)  # the caller's client is still usable


@pytest.mark.server
@pytest.mark.skipif(not os.environ.get("QDRANT_URL"), reason="needs a Qdrant server: set QDRANT_URL")
def test_retriever_on_a_qdrant_server(fresh_embeddings, corpus) -> None:
    name = f"lc_server_{uuid.uuid4().hex[:8]}"
    retriever = SearchR3Retriever.from_texts(
        corpus.texts,
        fresh_embeddings,
        ids=corpus.ids,
        collection_name=name,
        url=os.environ["QDRANT_URL"],
        api_key=os.environ.get("QDRANT_API_KEY"),
        k=2,
        max_reasoning_tokens=BUDGET,
    )
    try:
        docs = retriever.invoke("capital of Germany")
        assert len(docs) == 2 and docs[0].metadata["reasoning"].startswith(" Paris")
    finally:
        retriever.store.client.delete_collection(name)
        retriever.store.close()


def test_batch_reasons_once_for_all_queries(store: QdrantStore, count_calls) -> None:
    queries = ["green tea leaves", "capital of Germany", "green tea leaves", "a language for programs"]
    retriever = SearchR3Retriever(store=store, k=2, max_reasoning_tokens=BUDGET)
    singles = [retriever.invoke(q) for q in queries]
    calls = count_calls(store.embeddings, "encode_queries")
    batched = retriever.batch(queries)
    assert len(calls) == 1  # one batched generation for the three distinct queries
    assert calls[0][0][0] == list(dict.fromkeys(queries))
    assert calls[0][1]["max_reasoning_tokens"] == BUDGET
    assert [[d.id for d in docs] for docs in batched] == [[d.id for d in docs] for docs in singles]
    assert [docs[0].metadata["reasoning"] for docs in batched] == [
        docs[0].metadata["reasoning"] for docs in singles
    ]
    # per-call settings apply to the batch; a bad input fails alone
    out = retriever.batch(["tea", "  "], max_reasoning_tokens=2, return_exceptions=True)
    assert calls[-1][1]["max_reasoning_tokens"] == 2 and len(calls) == 2
    assert isinstance(out[1], InvalidInputError) and len(out[0]) == 2


async def test_abatch_reasons_once_for_all_queries(store: QdrantStore, count_calls) -> None:
    queries = ["green tea leaves", "capital of Germany", "a language for programs"]
    retriever = SearchR3Retriever(store=store, k=2, max_reasoning_tokens=BUDGET)
    expected = [[d.id for d in retriever.invoke(q)] for q in queries]
    calls = count_calls(store.embeddings, "encode_queries")
    results = await retriever.abatch(queries)
    assert len(calls) == 1 and calls[0][0][0] == queries
    assert [[d.id for d in docs] for docs in results] == expected
    retriever.invoke("tea")  # outside the batch, queries are encoded again
    assert len(calls) == 2
