"""Caption metrics: BLEU-1..4 (torchmetrics) and CIDEr-D (Vedantam, Zitnick & Parikh 2015).

Both score a generated caption against *all* reference captions of its image. Captions are compared
as :func:`normalize_caption` leaves them: lowercase words, punctuation removed (what coco-caption's
PTB tokenizer does to them before scoring).

CIDEr-D, as the MS COCO evaluation server computes it (pycocoevalcap ``Cider``, which is CIDEr-D):

    g_n(s)   = TF-IDF vector of the n-grams of sentence s; tf = raw n-gram count,
               idf(w) = log(#images) - log(max(1, #images whose references contain w))
    sim_n    = sum_w min(g_n(c)_w, g_n(r)_w) g_n(r)_w / (|g_n(c)| |g_n(r)|)      (clipped cosine)
               * exp(-(l(c) - l(r))^2 / (2 sigma^2))                              (length penalty)
    CIDEr-D  = 10 * mean over n = 1..4 of mean over references r of sim_n

The document frequencies come from the references of the evaluated set itself, and, as in the
reference code, the "length" ``l`` in the Gaussian penalty counts a sentence's bigrams (its words
minus one). :func:`cider_d` reproduces pycocoevalcap's numbers exactly (see tests/test_captioner.py);
pycocoevalcap itself is not needed.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from typing import Dict, List, Sequence, Tuple

import numpy as np

_PUNCT = re.compile(r"[^\w\s]|_")


def normalize_caption(text: str) -> str:
    """Lowercase, punctuation removed, single spaces: ``"A dog, running."`` → ``"a dog running"``."""
    return " ".join(_PUNCT.sub(" ", text.lower()).split())


def ngram_counts(words: Sequence[str], n: int = 4) -> Counter:
    counts: Counter = Counter()
    for k in range(1, n + 1):
        for i in range(len(words) - k + 1):
            counts[tuple(words[i : i + k])] += 1
    return counts


def cider_d(
    hypotheses: Sequence[str],
    references: Sequence[Sequence[str]],
    n: int = 4,
    sigma: float = 6.0,
) -> Tuple[float, np.ndarray]:
    """CIDEr-D of ``hypotheses[i]`` against ``references[i]`` (a list of captions), over the whole set:
    returns ``(corpus score, per-image scores)``. Sentences are split on whitespace as given (normalize
    them first with :func:`normalize_caption`)."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists")
    if not hypotheses:
        return 0.0, np.zeros(0)
    for i, refs in enumerate(references):
        if len(refs) == 0:
            raise ValueError(f"image {i} has no reference captions")
    hyp_counts = [ngram_counts(h.split(), n) for h in hypotheses]
    ref_counts = [[ngram_counts(r.split(), n) for r in refs] for refs in references]
    document_frequency: Dict[tuple, float] = defaultdict(float)
    for refs in ref_counts:
        for gram in set(g for r in refs for g in r):
            document_frequency[gram] += 1
    log_images = math.log(float(len(references)))

    def vector(counts: Counter):
        vec = [dict() for _ in range(n)]
        norm = [0.0] * n
        length = 0
        for gram, tf in counts.items():
            k = len(gram) - 1
            weight = float(tf) * (log_images - math.log(max(1.0, document_frequency.get(gram, 0.0))))
            vec[k][gram] = weight
            norm[k] += weight * weight
            if k == 1:  # the reference implementation's "length": the number of bigrams
                length += tf
        return vec, [math.sqrt(x) for x in norm], length

    scores = np.zeros(len(hypotheses))
    for i, (hyp, refs) in enumerate(zip(hyp_counts, ref_counts)):
        vec_h, norm_h, len_h = vector(hyp)
        total = np.zeros(n)
        for ref in refs:
            vec_r, norm_r, len_r = vector(ref)
            penalty = math.exp(-((len_h - len_r) ** 2) / (2 * sigma**2))
            for k in range(n):
                value = sum(min(w, vec_r[k].get(g, 0.0)) * vec_r[k].get(g, 0.0) for g, w in vec_h[k].items())
                if norm_h[k] != 0 and norm_r[k] != 0:
                    value /= norm_h[k] * norm_r[k]
                total[k] += value * penalty
        scores[i] = 10.0 * float(np.mean(total)) / len(refs)
    return float(scores.mean()), scores


def bleu_scores(hypotheses: Sequence[str], references: Sequence[Sequence[str]], max_n: int = 4) -> Dict[str, float]:
    """Corpus BLEU-1..``max_n`` (torchmetrics), every image scored against all its references."""
    from torchmetrics.functional.text import bleu_score

    if not hypotheses:
        return {f"bleu{k}": 0.0 for k in range(1, max_n + 1)}
    refs = [list(r) for r in references]
    return {f"bleu{k}": float(bleu_score(list(hypotheses), refs, n_gram=k)) for k in range(1, max_n + 1)}


def caption_metrics(hypotheses: Sequence[str], references: Sequence[Sequence[str]]) -> Dict[str, float]:
    """``{"bleu1".."bleu4", "cider"}`` after :func:`normalize_caption` on every sentence."""
    hyps = [normalize_caption(h) for h in hypotheses]
    refs: List[List[str]] = [[normalize_caption(r) for r in rs] for rs in references]
    out = bleu_scores(hyps, refs)
    out["cider"] = cider_d(hyps, refs)[0]
    return out


def gather_lists(values: List) -> List:
    """Every rank's list, concatenated in rank order (the list itself outside distributed runs):
    corpus-level metrics such as BLEU and CIDEr need all hypotheses, not a mean of per-rank scores."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        gathered: List[List] = [None] * dist.get_world_size()  # type: ignore[list-item]
        dist.all_gather_object(gathered, values)
        return [v for part in gathered for v in part]
    return values


def score_classifier(model, texts: Sequence[str], labels: Sequence[int], batch_size: int = 64) -> Dict[str, float]:
    """Accuracy and macro F1 of a text classifier on raw texts through its own tokenizer and
    truncation: ``model.predict(texts, batch_size=...)`` (``[{"label": name, ...}]``, exactly what
    ``zoo classify`` does), with ``labels`` as indices into ``model.label_names``."""
    names = list(model.label_names)
    predicted = [names.index(p["label"]) for p in model.predict(list(texts), batch_size=batch_size)]
    if len(predicted) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    correct = sum(int(p == y) for p, y in zip(predicted, labels))
    f1s = []
    for c in range(len(names)):
        tp = sum(int(p == c and y == c) for p, y in zip(predicted, labels))
        fp = sum(int(p == c and y != c) for p, y in zip(predicted, labels))
        fn = sum(int(p != c and y == c) for p, y in zip(predicted, labels))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return {"test_acc": correct / max(1, len(labels)), "test_macro_f1": sum(f1s) / len(f1s), "examples": len(labels)}
