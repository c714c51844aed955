"""Quick start: embed documents, embed a query after a short reasoning, rank.

Run:  python docs/examples/quickstart.py
      Offline by default, on the shipped search-r3-smollm2-135m.
      SEARCH_R3_MODEL=ytgui/Search-R3.0-Small: the Hub model (or a search-r3 folder).
"""

import os

from search_r3 import ReasoningEmbeddings

# Any search-r3 model: a folder made by `search-r3 init` or by training, or a Hub id.
MODEL = os.environ.get("SEARCH_R3_MODEL", "search-r3-smollm2-135m")  # shipped: runs offline

emb = ReasoningEmbeddings.from_pretrained(MODEL)  # best device and dtype of this machine

documents = [
    "The Louvre, in Paris, is the world's most-visited art museum.",
    "The Prado in Madrid holds one of the finest collections of European art.",
    "A baguette is a long, thin French loaf with a crisp crust.",
]
doc_vectors = emb.encode_documents(documents)  # numpy (3, dim), one forward pass, no reasoning

queries = ["Where can I see famous paintings in France?"]
result = emb.encode_queries(queries, max_reasoning_tokens=64)  # reasons first, greedy by default

print("reasoning:", result.reasoning[0])
print("forced:", bool(result.forced[0]))  # True: the budget ran out before the model emitted the token

scores = result.embeddings @ doc_vectors.T  # vectors are L2-normalised: dot product = cosine
for rank, i in enumerate(scores[0].argsort()[::-1], start=1):
    print(f"{rank}. {scores[0, i]:.3f}  {documents[i]}")
