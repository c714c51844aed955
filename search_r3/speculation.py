"""Prompt-lookup drafts: cheap guesses of a row's next tokens, checked by one forward pass.

At batch 1 a decoding step reads every weight once for one token, so the step costs about the
same for a few tokens: feeding a row its next token and ``k`` drafted ones in one forward, and
keeping the drafted tokens that equal what greedy decoding picks at each position, gives several
tokens for the price of one step when the guesses are good (``search_r3.decoding.Decoder`` does
the checking; the tokens are exactly the greedy ones either way).

The drafts come from the text itself, no second model. One token at a time, ``draft`` guesses:

1. the continuation of the *closing sequence* (the separator, closing text and embed token the
   rules append), when the last tokens match part of it;
2. in a *list* such as ``a, b, c`` (the tokens alternate with a separator): the separator after
   an item, and after the separator the token that follows the last item in the prompt (a
   reasoning that lists the query's words copies them in order);
3. the continuation of the latest earlier occurrence of the last ``n`` tokens (``n >= 2``) in
   the prompt and generated text: classic prompt lookup.

Longer matches go first: ``n = max_ngram .. 2`` in the closing sequence then the text, then the
list rules, then a single token of the closing sequence. A single token of the text is not
matched: on the tuning queries such guesses were right 7% of the time, and a forward that checks
a wrong guess costs more than a plain step (about 1.1-1.2 times on a CPU).

Example:
    ```python
    prompt = [5, 6, 7, 8, 9]  # "... alpha beta gamma delta"
    draft(prompt + [1, 6, 1, 7], prompt_length=5, k=3)  # ", alpha, beta" + [1, 8, 1]: ", delta,"
    ```
"""

from __future__ import annotations

from collections.abc import Sequence

#: Default number of drafted tokens per forward (``ReasoningEmbeddings.speculative_tokens``):
#: tuned on Cranfield queries 11-50 with the shipped model (1.7 tokens per forward at 4, 1.6 at
#: 3, 1.8 at 6; a forward of 5 tokens costs about 1.2 plain steps on a CPU, longer ones more).
DEFAULT_SPECULATIVE_TOKENS = 4

#: Longest n-gram matched (then shorter ones).
MAX_NGRAM = 3


def _after(tokens: Sequence[int], source: Sequence[int], n: int) -> int | None:
    """The token after the latest occurrence in ``source`` of the last ``n`` of ``tokens``, or
    None. When ``source`` is ``tokens`` itself, the tail's own place does not count."""
    if len(tokens) < n:
        return None
    tail = list(tokens[len(tokens) - n :])
    # the last start is len(source) - n - 1: a token must follow the match (which also leaves
    # out the tail's own place when ``source`` is ``tokens``)
    for i in range(len(source) - n - 1, -1, -1):
        if source[i + n - 1] == tail[-1] and list(source[i : i + n]) == tail:
            return int(source[i + n])
    return None


def next_guess(
    tokens: Sequence[int], prompt_length: int, closing: Sequence[int] = (), max_ngram: int = MAX_NGRAM
) -> int | None:
    """One guess of the token after ``tokens`` (prompt then generated text), or None.

    Longer matches first: an n-gram of two or more tokens in the closing sequence, then in the
    text; then a list's separator or next item; then a single token of the closing sequence.
    """
    for n in range(max_ngram, 1, -1):
        guess = _after(tokens, closing, n)
        guess = _after(tokens, tokens, n) if guess is None else guess
        if guess is not None:
            return guess
    generated = len(tokens) - prompt_length
    if generated >= 4 and tokens[-2] == tokens[-4] != tokens[-1]:
        return int(tokens[-2])  # "a , b": the separator again
    if generated >= 3 and tokens[-1] == tokens[-3]:
        # "a , b ,": the prompt's token after the last item
        guess = _after(tokens[:-1], tokens[:prompt_length], 1)
        if guess is not None:
            return guess
    return _after(tokens, closing, 1)


def draft(
    tokens: Sequence[int],
    prompt_length: int,
    k: int,
    closing: Sequence[int] = (),
    max_ngram: int = MAX_NGRAM,
) -> list[int]:
    """Up to ``k`` guessed next tokens after ``tokens`` (``prompt_length`` of them the prompt).

    Args:
        tokens: The prompt's token ids followed by the generated ones.
        prompt_length: How many of ``tokens`` are the prompt.
        k: Most tokens drafted.
        closing: The closing sequence the rules may append (separator, closing text, token).
        max_ngram: Longest n-gram matched.

    Returns:
        The drafted ids (fewer than ``k``, possibly none, when nothing matches).
    """
    tokens = list(tokens)
    out: list[int] = []
    for _ in range(k):
        guess = next_guess(tokens, prompt_length, closing, max_ngram)
        if guess is None:
            break
        out.append(guess)
        tokens.append(guess)
    return out


#: Tokens a check forward aims to feed at most, live rows' next tokens included (``draft_limit``).
MAX_CHECKED_TOKENS = 12


def draft_limit(rows: int, k: int, max_tokens: int = MAX_CHECKED_TOKENS) -> int:
    """Most tokens each of ``rows`` live rows drafts in a step, ``k`` the most for a lone row.

    ``rows * (drafts + 1) <= max_tokens``, at least one draft per row, at most ``k``: with
    ``k = 4``, 4 drafts for 1-2 rows, 3 for 3, 2 for 4, 1 from 5 rows on. A lone row's forward
    reads every weight once whatever its few tokens, but with many rows the products are no
    longer memory-bound: each fed token costs about 1.5-1.7 ms of CPU on SmolLM2-135M in float32
    (a plain step of 16 rows 53 ms, the same forward with 16 more tokens 79 ms), so a drafted
    token pays only if it is kept more often than a fed token's share of the step (about 0.1 at
    2 rows, 0.25 at 4, 0.35 at 8, 0.5 at 16). First drafts are kept 73% of the time, second ones
    46%, third and fourth 12% (Cranfield queries with the shipped model). Measured end to end
    (48 queries at once in a ``QueryEngine``, CPU time against no speculation): 4 rows gain 1.11x
    with 1 draft, 1.16x with 2, 1.14x with 4; 8 rows 1.09x, 1.08x, 1.05x; 16 rows (13.4 live on
    average) 1.09x, 1.04x, 0.98x. See benchmarks/README.md ("Speculation with several rows").

    Example:
        ```python
        draft_limit(1, 4), draft_limit(4, 4), draft_limit(16, 4)  # (4, 2, 1)
        ```
    """
    if k <= 0:
        return 0
    return min(k, max(1, max_tokens // max(rows, 1) - 1))
