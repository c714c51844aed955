"""The same store on a Qdrant server, and a collection sharded and replicated across a cluster.

Run a server first, e.g.  docker run -p 6333:6333 qdrant/qdrant
Then:  QDRANT_URL=http://localhost:6333 python docs/examples/qdrant_server.py
       Model: the shipped search-r3-smollm2-135m (offline) by default.
       SEARCH_R3_MODEL=ytgui/Search-R3.0-Small: the Hub model (or a search-r3 folder).

Without QDRANT_URL this script falls back to an in-process store, so it runs anywhere; the
sharding and replication settings only take effect on a real (distributed) Qdrant deployment.
"""

import os

from qdrant_client import QdrantClient, models

from search_r3 import QdrantStore, ReasoningEmbeddings

MODEL = os.environ.get("SEARCH_R3_MODEL", "search-r3-smollm2-135m")  # shipped: runs offline
URL = os.environ.get("QDRANT_URL")  # e.g. http://localhost:6333 or a Qdrant Cloud URL
API_KEY = os.environ.get("QDRANT_API_KEY")

emb = ReasoningEmbeddings.from_pretrained(MODEL, max_reasoning_tokens=64)

# 1. One server: same API as local mode, several processes can share the collection.
#    QdrantStore(emb, "notes") with $QDRANT_URL set connects to it too.
client = QdrantClient(url=URL, api_key=API_KEY) if URL else QdrantClient(":memory:")

# 2. A cluster: create the collection yourself with shards spread over the nodes and each shard
#    replicated, then hand the client to the store (it checks size and distance, and reuses it).
collection = "docs_sharded"
if not client.collection_exists(collection):
    client.create_collection(
        collection,
        vectors_config=models.VectorParams(size=emb.embedding_dimension, distance=models.Distance.COSINE),
        shard_number=6,  # spread over the nodes; a few shards per node leaves room to grow
        replication_factor=2,  # every shard on two nodes: one node can fail
        write_consistency_factor=1,
        # int8 vectors in RAM (4x smaller), originals on disk for rescoring
        quantization_config=models.ScalarQuantization(
            scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, always_ram=True)
        ),
    )

store = QdrantStore(emb, collection, client=client)
store.add_documents(
    [
        "Qdrant distributes a collection's shards over the nodes of a cluster.",
        "Replication keeps a copy of every shard on several nodes.",
    ],
    ids=["sharding", "replication"],
)
print("documents:", store.count())
result = store.search("how do I survive a node failure?", k=1)
print(result.reasoning)
print([(hit.id, round(hit.score, 3)) for hit in result.hits])
if URL:
    info = client.get_collection(collection)
    print("shards:", info.config.params.shard_number, "replicas:", info.config.params.replication_factor)
client.close()
