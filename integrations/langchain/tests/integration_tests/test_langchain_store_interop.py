"""Stock langchain_qdrant.QdrantVectorStore on a collection that search-r3's QdrantStore made.

The stock store needs a qdrant-client: a folder in qdrant-client's local mode
(``backend="local"``), ``:memory:`` shared through the client, or a server. A folder of the
embedded engine is copied into one with `search-r3 store migrate`.
"""

from __future__ import annotations

from langchain_qdrant import QdrantVectorStore
from qdrant_client import QdrantClient

from langchain_search_r3 import SearchR3Embeddings
from search_r3.cli.main import main
from search_r3.store import DENSE_VECTOR, METADATA_KEY, TEXT_KEY, QdrantStore


def stock_store(client: QdrantClient, embeddings: SearchR3Embeddings) -> QdrantVectorStore:
    return QdrantVectorStore(
        client=client,
        collection_name="search_r3",
        embedding=embeddings,
        vector_name=DENSE_VECTOR,
        content_payload_key=TEXT_KEY,
        metadata_payload_key=METADATA_KEY,
        validate_collection_config=False,  # no dummy embedding (a whole generation) to learn the size
    )


def test_stock_store_reads_a_local_mode_collection(fresh_embeddings, corpus, tmp_path) -> None:
    folder = tmp_path / "store"
    with QdrantStore(fresh_embeddings, path=folder, backend="local") as store:
        store.add_documents(corpus.texts, ids=corpus.ids, metadatas=corpus.metadatas)
        expected = store.search("capital of Germany", k=3, reasoning=False, mode="dense").hits
    client = QdrantClient(path=str(folder))
    try:
        found = stock_store(client, SearchR3Embeddings(model=fresh_embeddings, reasoning=False))
        docs = found.similarity_search_with_score("capital of Germany", k=3)
    finally:
        client.close()
    assert [d.page_content for d, _ in docs] == [h.text for h in expected]
    assert [d.metadata["source"] for d, _ in docs] == [h.metadata["source"] for h in expected]
    assert all(abs(score - h.score) < 1e-4 for (_, score), h in zip(docs, expected, strict=True))


def test_an_embedded_engine_folder_is_migrated_for_the_stock_store(
    fresh_embeddings, corpus, tmp_path
) -> None:
    with QdrantStore(fresh_embeddings, path=tmp_path / "edge") as store:
        assert store.backend == "edge"
        store.add_documents(corpus.texts, ids=corpus.ids, metadatas=corpus.metadatas)
        expected = [h.text for h in store.search("memory safety", k=2, reasoning=False, mode="dense").hits]
    argv = ["store", "migrate", str(tmp_path / "edge"), str(tmp_path / "local"), "--dst-backend", "local"]
    assert main([*argv, "-q"]) == 0
    client = QdrantClient(path=str(tmp_path / "local"))
    try:
        found = stock_store(client, SearchR3Embeddings(model=fresh_embeddings, reasoning=False))
        assert [d.page_content for d in found.similarity_search("memory safety", k=2)] == expected
    finally:
        client.close()
