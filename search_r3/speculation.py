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
    stop = len(tokens) - n if source is tokens else len(source) - n  # leave a token after it
    for i in range(min(stop, len(source) - n) - 1, -1, -1):
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


#: Most tokens one check forward feeds, live rows' next tokens included (see ``draft_limit``).
MAX_CHECKED_TOKENS = 24


def draft_limit(rows: int, k: int, max_tokens: int = MAX_CHECKED_TOKENS) -> int:
    """Most tokens each of ``rows`` live rows drafts in a step, given ``k`` for a lone row.

    PLACEHOLDER: set from the measurement.
    """
    return max(0, min(k, (max_tokens - rows) // rows))
