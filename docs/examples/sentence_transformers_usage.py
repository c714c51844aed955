"""search-r3 as a sentence-transformers model: encode_query reasons, encode_document does not.

Run:  python docs/examples/sentence_transformers_usage.py
      Offline by default, on the shipped search-r3-smollm2-135m.
      SEARCH_R3_MODEL=ytgui/Search-R3.0-Small: the Hub model (or a search-r3 folder).
"""

import os
import tempfile

from search_r3.st_module import encode_queries, load_sentence_transformer

MODEL = os.environ.get("SEARCH_R3_MODEL", "search-r3-smollm2-135m")  # shipped: runs offline

# Any search-r3 folder or Hub id, without trust_remote_code (public sentence-transformers API).
model = load_sentence_transformer(MODEL, max_reasoning_tokens=64)

documents = [
    "Rayleigh scattering makes short (blue) wavelengths scatter more than long ones.",
    "Sourdough bread rises thanks to wild yeast and lactic acid bacteria.",
]
doc_vectors = model.encode_document(documents)  # one forward pass per batch
query_vectors = model.encode_query(["why is the sky blue?"])  # reasons first
print(model.similarity(query_vectors, doc_vectors))  # cosine similarities, shape (1, 2)

# The reasoning switch and budget are encode() keywords.
fast = model.encode_query(["why is the sky blue?"], reasoning=False)
short = model.encode_query(["why is the sky blue?"], max_reasoning_tokens=16)

# Read the reasoning back: for the last batch ...
print("last reasoning:", model[0].last_reasoning)
# ... or together with the vectors, in input order:
encoded = encode_queries(model, ["why is the sky blue?", "how does sourdough rise?"])
print(encoded.embeddings.shape, encoded.reasoning, encoded.forced)

# Saving writes a plain transformers checkpoint plus the sentence-transformers files; it never
# runs generation for the model card. Load the saved folder the same way: load_sentence_transformer
# runs no code from the folder (trust_remote_code=True would import whatever modules.json names).
with tempfile.TemporaryDirectory() as folder:
    model.save(folder)
    reloaded = load_sentence_transformer(folder, device=str(model.device))
    same = reloaded.encode_document(documents)
    print("identical after save/load:", bool(abs(same - doc_vectors).max() < 1e-5))
