"""Text ↔ ids: the special tokens and every tokenizer the datasets and the tasks use, in one place.

- Special tokens (every subword/word tokenizer): ``<pad>`` = :data:`PAD_ID` = 0, ``<unk>`` = 1,
  ``<bos>`` = 2, ``<eos>`` = 3. A tokenizer serializes to one JSON string (``tokenizer.to_str()``),
  which a model keeps in its hyperparameters so a checkpoint can read raw text by itself.
- Classification (:func:`build_tokenizer` / :func:`train_tokenizer`): Hugging Face ``tokenizers``,
  word-level (default) or BPE, trained on the training split only. Normalization: NFKC, HTML tags
  such as ``<br />`` replaced by a space, lowercase. :func:`truncate` applies the truncation policy
  (``head_tail`` by default: a quarter of the budget from the start, the rest from the end).
- Translation (:func:`build_translation_tokenizer` / :func:`train_translation_tokenizer`): ``bpe``
  (NFKC, SentencePiece-style ``Metaspace``, exactly reversible) or ``word`` (split on whitespace and
  punctuation, approximately reversed by :func:`join_words`); :func:`detokenize` turns model output
  ids back into text.
- Characters (:func:`build_char_vocab`, :func:`encode_chars`, :func:`decode_chars`): a list of
  characters whose index 0 is :data:`UNK_CHAR` (characters never seen in training).
- :func:`pack`: ragged id lists stored flat (one int32 tensor + offsets), as the datasets cache them.
"""

from __future__ import annotations

import re
import unicodedata
from typing import List, Optional, Sequence, Tuple

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from torch import Tensor

__all__ = [
    "BOS_ID",
    "CHAR_UNK_ID",
    "EOS_ID",
    "PAD_ID",
    "SPECIAL_TOKENS",
    "TOKENIZER_KINDS",
    "TRUNCATION_POLICIES",
    "UNK_CHAR",
    "UNK_ID",
    "build_char_vocab",
    "build_tokenizer",
    "build_translation_tokenizer",
    "decode_chars",
    "detokenize",
    "encode_chars",
    "encode_sentence",
    "encode_texts",
    "encode_truncated",
    "fit_tokenizer",
    "join_words",
    "load_tokenizer",
    "pack",
    "train_tokenizer",
    "train_translation_tokenizer",
    "truncate",
]

SPECIAL_TOKENS = ["<pad>", "<unk>", "<bos>", "<eos>"]
PAD_ID, UNK_ID, BOS_ID, EOS_ID = range(4)
TOKENIZER_KINDS = ("word", "bpe")
TRUNCATION_POLICIES = ("head", "tail", "head_tail")
#: The character vocabulary's entry 0: any character never seen in training.
UNK_CHAR = "<unk>"
CHAR_UNK_ID = 0

# An HTML tag such as <br />, <br>, <i>, </i>, <p class=x>. Deliberately narrow so that "a < b > c" or
# "<3" survive: a tag starts with a letter right after "<" (or "</") and holds no other "<" or ">".
HTML_TAG = r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>"

# The approximate inverse of splitting off punctuation (see join_words).
_SPACE_BEFORE = re.compile(r" ([.,!?;:)'])")
_SPACE_AFTER = re.compile(r"\( ")
# Beyond those rules, three that the Multi30k training text supports (en: 1,243 sentences with an
# in-word hyphen against 6 with a spaced dash; 448 with a "'s"-style contraction): sacreBLEU's 13a
# tokenizer keeps "T-shirt", "man's" and "3.5" whole, so their spaced forms would cost BLEU.
_HYPHEN = re.compile(r"(?<=\w) - (?=\w)")
_CONTRACTION = re.compile(r"(?<=\w') (?=(?:s|t|re|ve|ll|d|m)\b)")
_NUMBER = re.compile(r"(?<=\d)([.,]) (?=\d)")


def _check_kind(kind: str) -> None:
    if kind not in TOKENIZER_KINDS:
        raise ValueError(f"unknown tokenizer kind {kind!r}: expected one of {TOKENIZER_KINDS}")


# ---- training and loading (any kind) --------------------------------------------------------------
def fit_tokenizer(tokenizer: Tokenizer, texts: Sequence[str], vocab_size: int, min_frequency: int) -> Tokenizer:
    """Train an untrained word-level or BPE ``tokenizer`` on ``texts``, in place; the special tokens
    become ids 0-3 and ``vocab_size`` counts them."""
    if vocab_size <= len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must exceed the {len(SPECIAL_TOKENS)} special tokens, got {vocab_size}")
    common = dict(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS, show_progress=False)
    is_bpe = isinstance(tokenizer.model, models.BPE)
    trainer = trainers.BpeTrainer(**common) if is_bpe else trainers.WordLevelTrainer(**common)
    tokenizer.train_from_iterator(texts, trainer, length=len(texts))
    if [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS] != list(range(len(SPECIAL_TOKENS))):
        raise AssertionError(f"special tokens {SPECIAL_TOKENS} must be ids 0-3")
    return tokenizer


def load_tokenizer(tokenizer_json: str) -> Tokenizer:
    """The tokenizer back from its JSON string (as kept in a model's hyperparameters); a string that is
    not a ``tokenizers`` serialization is a ``ValueError`` saying so."""
    if not isinstance(tokenizer_json, str):
        raise ValueError(
            f"a tokenizer must be given as its JSON string (tokenizer.to_str()), got a {type(tokenizer_json).__name__}"
        )
    try:
        return Tokenizer.from_str(tokenizer_json)
    except Exception as err:  # the Rust side raises a bare Exception for any malformed input
        raise ValueError(f"not a tokenizer serialization (tokenizers JSON): {err}; got {tokenizer_json[:60]!r}") from None


def encode_texts(tokenizer: Tokenizer, texts: Sequence[str]) -> List[List[int]]:
    """Token ids of every text (no special tokens added, no truncation)."""
    encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)  # _fast: no offsets
    return [e.ids for e in encode(list(texts), add_special_tokens=False)]


def encode_truncated(
    tokenizer: Tokenizer, texts: Sequence[str], max_tokens: Optional[int], policy: str = "head_tail"
) -> List[List[int]]:
    """``truncate(encode_texts(tokenizer, texts), max_tokens, policy)`` without tokenizing more of a
    long text than the cut keeps: the ids of a text's first ``head`` and last ``tail`` tokens (the
    policy's parts, :func:`truncate`) come from a window at each end, doubled until it holds them, so
    memory is bounded by what the model reads, not by the text (a 20 MB review costs what a 1 kB
    one does; docs/security.md). A window ends at a space, tab or newline outside any HTML tag
    (:data:`HTML_TAG`, after NFKC), where the tokenizers of this module (``Whitespace`` or
    ``Metaspace`` pre-tokenizers) split anyway, so the ids equal those of the whole text (tested). A
    text with no such break in its window (one giant word) is tokenized whole."""
    if max_tokens is None:
        return encode_texts(tokenizer, texts)
    if policy not in TRUNCATION_POLICIES:
        raise ValueError(f"unknown truncation policy {policy!r}: expected one of {TRUNCATION_POLICIES}")
    head = {"head": max_tokens, "tail": 0, "head_tail": max_tokens // 4}[policy]
    tail = max_tokens - head
    short = [i for i, text in enumerate(texts) if len(text) <= 2 * _window(max_tokens)]
    ids: List[Optional[List[int]]] = [None] * len(texts)
    for i, found in zip(short, encode_texts(tokenizer, [texts[i] for i in short])):
        ids[i] = truncate(torch.tensor(found, dtype=torch.long), max_tokens, policy).tolist()
    for i, text in enumerate(texts):
        if ids[i] is None:
            ids[i] = _ends(tokenizer, text, head, tail, max_tokens, policy)
    return ids  # type: ignore[return-value]


_BREAKS = " \t\n\r"  # where every tokenizer here splits, and no normalization joins across


def _window(tokens: int) -> int:
    """The first window's characters for ``tokens`` tokens (doubled while too few)."""
    return 8 * tokens + 64


def _like(char: str, angle: str) -> bool:
    """``char`` is ``angle`` (``<`` or ``>``) after NFKC (the fullwidth ``＜`` is)."""
    return char == angle or (char > "\x7f" and angle in unicodedata.normalize("NFKC", char))


def _tag_at(text: str, cut: int, direction: int) -> int:
    """From the break ``cut``, the index of the angle bracket that opens (looking back) or closes
    (looking ahead) an HTML tag that may cross it, or -1 when none can: a tag holds no other bracket."""
    opening, closing = ("<", ">") if direction < 0 else (">", "<")
    i = cut - 1 if direction < 0 else cut + 1
    while 0 <= i < len(text):
        if _like(text[i], opening):
            return i
        if _like(text[i], closing):
            return -1
        i += direction
    return -1


def _head_end(text: str, n: int) -> int:
    """The last break before ``n`` that no tag crosses (0: none): ``text[:end]`` tokenizes as the
    start of ``text``."""
    end = max(text.rfind(c, 0, n) for c in _BREAKS)
    while end > 0 and (bracket := _tag_at(text, end, -1)) >= 0:
        end = max(text.rfind(c, 0, bracket) for c in _BREAKS)
    return max(end, 0)


def _tail_start(text: str, n: int) -> int:
    """The first break at or after ``len(text) - n`` that no tag crosses (``len(text)``: none)."""
    found = [i for i in (text.find(c, len(text) - n) for c in _BREAKS) if i >= 0]
    start = min(found, default=len(text))
    while start < len(text) and (bracket := _tag_at(text, start, 1)) >= 0:
        start = min([i for i in (text.find(c, bracket) for c in _BREAKS) if i >= 0], default=len(text))
    return start


def _ends(tokenizer: Tokenizer, text: str, head: int, tail: int, max_tokens: int, policy: str) -> List[int]:
    """The ids :func:`encode_truncated` keeps of one long ``text``, from windows at its two ends."""
    encode = lambda part: tokenizer.encode(part, add_special_tokens=False).ids  # noqa: E731
    first: List[int] = []
    last: List[int] = []
    n = _window(max(head, 1))
    while head and len(first) < head:
        end = _head_end(text, n)
        if n >= len(text) or 2 * end >= len(text):  # the window is most of the text: read it all
            return truncate(torch.tensor(encode(text), dtype=torch.long), max_tokens, policy).tolist()
        first, n = encode(text[:end]), 2 * n
    n = _window(max(tail, 1))
    while tail and len(last) < tail:
        start = _tail_start(text, n)
        if n >= len(text) or 2 * (len(text) - start) >= len(text):
            return truncate(torch.tensor(encode(text), dtype=torch.long), max_tokens, policy).tolist()
        last, n = encode(text[start:]), 2 * n
    return first[:head] + (last[len(last) - tail :] if tail else [])


def pack(ids: Sequence[Sequence[int]]) -> Tuple[Tensor, Tensor]:
    """Ragged id lists → ``(flat int32 ids, int64 offsets of length n + 1)``."""
    lengths = torch.tensor([len(x) for x in ids], dtype=torch.long)
    offsets = torch.zeros(len(ids) + 1, dtype=torch.long)
    torch.cumsum(lengths, 0, out=offsets[1:])
    flat = torch.tensor([i for x in ids for i in x], dtype=torch.int32) if len(ids) else torch.zeros(0, dtype=torch.int32)
    return flat, offsets


# ---- classification: word-level or BPE over normalized words ----------------------------------------
def build_tokenizer(kind: str = "word", lowercase: bool = True) -> Tokenizer:
    """An untrained tokenizer: NFKC → HTML tags to spaces → (lowercase) → split on whitespace and
    punctuation (``\\w+|[^\\w\\s]+``) → word-level vocabulary or BPE merges."""
    _check_kind(kind)
    model = models.WordLevel(unk_token="<unk>") if kind == "word" else models.BPE(unk_token="<unk>")
    tokenizer = Tokenizer(model)
    steps = [normalizers.NFKC(), normalizers.Replace(Regex(HTML_TAG), " ")]
    if lowercase:
        steps.append(normalizers.Lowercase())
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return tokenizer


def train_tokenizer(
    texts: Sequence[str],
    kind: str = "word",
    vocab_size: int = 30_000,
    min_frequency: int = 2,
    lowercase: bool = True,
) -> Tokenizer:
    """Train on ``texts`` (the training split only). ``vocab_size`` counts the 4 special tokens; words
    (word-level) or merges (BPE) seen fewer than ``min_frequency`` times are left out."""
    return fit_tokenizer(build_tokenizer(kind, lowercase), texts, vocab_size, min_frequency)


def truncate(ids: Tensor, max_tokens: Optional[int], policy: str = "head_tail") -> Tensor:
    """Cut ``ids`` to at most ``max_tokens``: ``head`` keeps the start, ``tail`` the end, ``head_tail``
    the first ``max_tokens // 4`` tokens and the last ``max_tokens - max_tokens // 4`` (Sun et al. 2019
    found head+tail best for long reviews). ``None`` = no limit."""
    if max_tokens is None or len(ids) <= max_tokens:
        return ids
    if policy == "head":
        return ids[:max_tokens]
    if policy == "tail":
        return ids[len(ids) - max_tokens :]
    if policy == "head_tail":
        head = max_tokens // 4
        return torch.cat([ids[:head], ids[len(ids) - (max_tokens - head) :]])
    raise ValueError(f"unknown truncation policy {policy!r}: expected one of {TRUNCATION_POLICIES}")


# ---- translation: reversible BPE or word-level ----------------------------------------------------
def build_translation_tokenizer(kind: str = "bpe", lowercase: bool = False) -> Tokenizer:
    """An untrained translation tokenizer. ``bpe``: NFKC (+ lowercase), SentencePiece-style
    ``Metaspace`` pre-tokenizer and decoder, BPE merges within words (decoding gives the normalized
    text back exactly). ``word``: word-level over text split on whitespace and punctuation (every
    punctuation character a token), detokenized approximately by :func:`join_words`."""
    _check_kind(kind)
    steps = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
    if kind == "bpe":
        tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
        # Metaspace keeps every space as part of the next token, so decode() is the exact inverse.
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        tokenizer.decoder = decoders.Metaspace()
    else:
        tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tokenizer.normalizer = normalizers.Sequence(steps)
    return tokenizer


def train_translation_tokenizer(
    texts: Sequence[str],
    kind: str = "bpe",
    vocab_size: int = 8000,
    min_frequency: int = 2,
    lowercase: bool = False,
) -> Tokenizer:
    """Train a ``bpe`` or ``word`` tokenizer on ``texts`` (training sentences only). ``vocab_size``
    counts the 4 special tokens, which are ids 0-3; merges (BPE) or words seen fewer than
    ``min_frequency`` times are left out. BPE keeps every character of ``texts`` in its vocabulary."""
    return fit_tokenizer(build_translation_tokenizer(kind, lowercase), texts, vocab_size, min_frequency)


def encode_sentence(tokenizer: Tokenizer, text: str) -> List[int]:
    """Token ids of ``text``, without ``<bos>`` / ``<eos>``."""
    return tokenizer.encode(text, add_special_tokens=False).ids


def join_words(tokens: Sequence[str]) -> str:
    """Approximate detokenization for word-level tokens: join with spaces, drop the space before
    ``. , ! ? ; : ) '`` and after ``(``, and rejoin in-word hyphens (``T - shirt`` → ``T-shirt``),
    contractions (``man' s`` → ``man's``) and numbers (``3. 5`` → ``3.5``). Not exact: a space the text
    had at one of those places is lost (``beach - a man`` → ``beach-a man``), and quotes, slashes and the
    like come back with spaces around them."""
    text = _SPACE_AFTER.sub("(", _SPACE_BEFORE.sub(r"\1", " ".join(tokens)))
    return _NUMBER.sub(r"\1", _CONTRACTION.sub("", _HYPHEN.sub("-", text)))


def detokenize(tokenizer: Tokenizer, ids: Sequence[int]) -> str:
    """Text of a model output: stops at ``<eos>``, skips ``<pad>`` and ``<bos>``; ``<unk>`` stays as the
    text ``<unk>``. A tokenizer with a decoder (``bpe``) decodes exactly; one without (``word``) is
    joined by :func:`join_words`."""
    if hasattr(ids, "tolist"):
        ids = ids.tolist()
    kept: List[int] = []
    for i in ids:
        if i == EOS_ID:
            break
        if i != PAD_ID and i != BOS_ID:
            kept.append(int(i))
    if tokenizer.decoder is None or isinstance(tokenizer.model, models.WordLevel):
        return join_words([tokenizer.id_to_token(i) or "<unk>" for i in kept])
    return tokenizer.decode(kept, skip_special_tokens=False).strip()


# ---- characters -----------------------------------------------------------------------------------
def decode_words(tokenizer: Tokenizer, ids: Sequence[int]) -> List[str]:
    """A word-level decoder's output ids -> its words: stop at ``<eos>``, skip ``<pad>`` and ``<bos>``."""
    words = []
    for i in ids:
        i = int(i)
        if i == EOS_ID:
            break
        if i not in (PAD_ID, BOS_ID):
            words.append(tokenizer.id_to_token(i))
    return words


def build_char_vocab(text: str) -> List[str]:
    """``[UNK_CHAR] + sorted distinct characters``: index 0 is for characters never seen in training."""
    return [UNK_CHAR] + sorted(set(text))


def encode_chars(text: str, vocab: List[str]) -> Tensor:
    """Character ids of ``text`` (``(len(text),)`` long); unseen characters map to :data:`CHAR_UNK_ID`."""
    index = {ch: i for i, ch in enumerate(vocab)}
    return torch.tensor([index.get(ch, CHAR_UNK_ID) for ch in text], dtype=torch.long)


def decode_chars(ids, vocab: List[str]) -> str:
    """Text of character ids; :data:`CHAR_UNK_ID` shows as U+FFFD."""
    return "".join(vocab[i] if i != CHAR_UNK_ID else "\ufffd" for i in (ids.tolist() if isinstance(ids, Tensor) else ids))
