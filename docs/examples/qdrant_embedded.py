"""Index documents into the embedded Qdrant engine (a folder, no server) and search them with reasoning.

Run:  python docs/examples/qdrant_embedded.py
      Offline by default, on the shipped search-r3-smollm2-135m.
      SEARCH_R3_MODEL=ytgui/Search-R3.0-Small: the Hub model (or a search-r3 folder).
"""

import os
import tempfile

from search_r3 import QdrantStore, ReasoningEmbeddings

MODEL = os.environ.get("SEARCH_R3_MODEL", "search-r3-smollm2-135m")  # shipped: runs offline
emb = ReasoningEmbeddings.from_pretrained(MODEL, max_reasoning_tokens=64)

texts = [
    "The Louvre, in Paris, is the world's most-visited art museum.",
    "The Prado in Madrid holds one of the finest collections of European art.",
    "The Seine flows through Paris before reaching the English Channel.",
    "A baguette is a long, thin French loaf with a crisp crust.",
]
ids = ["louvre", "prado", "seine", "baguette"]
metadatas = [{"topic": "art"}, {"topic": "art"}, {"topic": "geography"}, {"topic": "food"}]

folder = tempfile.mkdtemp()  # a real folder: the collection persists between runs
# Leave out path= to use the default folder under your user data directory ($SEARCH_R3_STORE),
# or pass path=":memory:" to keep everything in this process.
with QdrantStore(emb, "museums", path=folder) as store:
    store.add_documents(texts, ids=ids, metadatas=metadatas)  # batched, with a progress bar
    store.add_documents(texts, ids=ids, metadatas=metadatas)  # ids -> point ids: nothing twice
    print("documents:", store.count(), "engine:", store.backend)  # edge: Qdrant's engine, embedded

    result = store.search("Where can I see famous paintings in France?", k=2)
    print("reasoning:", result.reasoning)
    for hit in result.hits:
        print(f"{hit.score:.3f}  {hit.id:<9} {hit.metadata}  {hit.text}")

    # Metadata filters: a dict (all keys must match, a list matches any of its values) or a
    # native qdrant_client.models.Filter. The default mode is hybrid (dense + BM25, fused scores);
    # mode="dense" ranks by the cosine of the dense vectors alone.
    art_only = store.search("famous paintings", k=4, filter={"topic": "art"}, reasoning=False, mode="dense")
    print("art only:", [hit.id for hit in art_only.hits])

# Reopen the same folder later (one process at a time): the documents are there.
with QdrantStore(emb, "museums", path=folder) as store:
    print("after reopening:", store.count())
