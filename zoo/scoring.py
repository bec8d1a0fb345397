"""One scorer per task: a pretrained model measured on data it never saw, the way its card was measured.

:func:`score` picks the scorer by the model's task class (:data:`SCORERS`, dotted paths, so nothing
here imports a task it does not score). Each scorer reads its data with the data set's own code and
measures with what the training recipe measures:

- ``CharLanguageModel``: :func:`datamodules.char_corpus.score_char_lm` on a corpus's validation part
  (``corpus``: a text file, or a built-in name such as ``python-stdlib``; ``max_chars`` the recipe's cut);
- ``SequenceClassifier``: :func:`zoo.metrics.score_classifier` on an aclImdb archive's test reviews;
- ``Seq2Seq``: corpus sacreBLEU of ``model.predict`` (what ``zoo translate`` does) on a Multi30k split,
  greedy and beam 5;
- ``ImageCaptioner``: the task's own test step on ShapesCaptions' held-out seed (exact match, attention
  in box via ``ShapesCaptions.evaluation_measures``, BLEU-1..4 and CIDEr-D via :mod:`zoo.metrics`);
- ``FrameClassifier``: the task's own test step on MovingShapes' test clips (accuracy on the frames where
  the disc is hidden, ``memory_acc``, against the frames where it is seen, ``direct_acc``);
- ``VisualQuestionAnswerer``: the task's own test step on ShapesVQA's held-out seed (accuracy overall and
  per question type, the last hop's attention in the answer's box via ``ShapesVQA.evaluation_measures``).

``limit`` scores a slice (the tests' slice checks): the first ``limit`` windows of every stream (char
LM), reviews of each label (IMDB), sentences, images or clips. The synthetic sets need no data path:
their test splits are the recipes' held-out seeds, generated here.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Optional, Sequence

from zoo.errors import InputError, MissingDataError

__all__ = ["SCORERS", "score", "scorer_for", "score_language_model", "score_imdb", "score_translator",
           "score_shapes_captions", "score_moving_shapes", "score_shapes_vqa", "split_metric_name", "recipe_test_scores"]

Scorer = Callable[..., Dict[str, float]]


def score_language_model(model: Any, corpus: Optional[str] = None, limit: Optional[int] = None,
                         max_chars: Optional[int] = None) -> Dict[str, float]:
    """Validation nats/char (and bits/char, perplexity) on ``corpus``'s last 10%."""
    from datamodules.char_corpus import score_char_lm

    if not corpus:
        raise InputError("a character LM is scored on a corpus: give --corpus FILE (or python-stdlib, tinyshakespeare)")
    return score_char_lm(model, corpus, max_windows=limit, max_chars=max_chars)


def score_imdb(model: Any, imdb: Optional[str] = None, limit: Optional[int] = None) -> Dict[str, float]:
    """Accuracy and macro F1 on the test reviews of an aclImdb archive (``limit`` per label)."""
    from datamodules.imdb import imdb_test_reviews
    from zoo.metrics import score_classifier

    if not imdb:
        raise InputError("an IMDB classifier is scored on an aclImdb archive: give --imdb ARCHIVE")
    return score_classifier(model, *imdb_test_reviews(imdb, limit))


def split_metric_name(split: str) -> str:
    """The prefix of a Multi30k split's metrics: ``val`` -> ``val``, ``test_2016_flickr`` -> ``test``."""
    return "test" if split.startswith("test") else split


def score_translator(model: Any, multi30k: Optional[str] = None, split: str = "test_2016_flickr",
                     limit: Optional[int] = None, beams: Sequence[int] = (1, 5), source_lang: str = "de",
                     target_lang: str = "en", batch_size: int = 100) -> Dict[str, float]:
    """Corpus sacreBLEU (the model's ``bleu_tokenize``, cased, on detokenized text against the raw
    references) of every source sentence of ``split`` through ``model.predict``; beam 1 is greedy.
    Keys: ``<val|test>_bleu_greedy``, ``<val|test>_bleu_beam<k>``, ``sentences``."""
    import sacrebleu

    from datamodules.multi30k import read_sentences, split_file

    if not multi30k:
        raise InputError("a translator is scored on Multi30k: give --multi30k DIR (with {split}.de.gz, {split}.en.gz)")
    root = Path(multi30k).expanduser()
    files = [split_file(root, split, lang) for lang in (source_lang, target_lang)]
    missing = [f"{split}.{lang}[.gz]" for lang, f in zip((source_lang, target_lang), files) if f is None]
    if missing:
        raise MissingDataError(f"{root}: no {' or '.join(missing)} (give --split val or test_2016_flickr)")
    sources, references = (read_sentences(f)[:limit] for f in files)
    prefix = split_metric_name(split)
    result: Dict[str, float] = {}
    for beam in beams:
        hyps = [r["translation"] for r in model.predict(sources, beam_size=beam, batch_size=batch_size)]
        bleu = sacrebleu.BLEU(tokenize=model.hparams.bleu_tokenize).corpus_score(hyps, [references])
        result[f"{prefix}_bleu_{'greedy' if beam == 1 else f'beam{beam}'}"] = bleu.score
    result["sentences"] = len(sources)
    return result


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Lightning's banner to nowhere and the task's own printing to stderr: stdout is the scores."""
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        logger.setLevel(level)


def recipe_test_scores(model: Any, datamodule: Any) -> Dict[str, float]:
    """What the task's test step logs on ``datamodule``'s test split (one CPU process, no logger), with
    ``test/x`` renamed ``test_x``: the recipe's own measurement, on any weights."""
    import lightning as L

    with _quiet():
        trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False)
        logged = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    return {key.replace("/", "_"): float(value) for key, value in sorted(logged.items())}


def score_shapes_captions(model: Any, limit: Optional[int] = None) -> Dict[str, float]:
    """The captioner's test step on the recipe's ShapesCaptions (seed 0: the test split is seed 2, scenes
    never trained on): ``test_exact``, ``test_attn_in_box``, ``test_bleu1..4``, ``test_cider``,
    ``test_loss``; ``images`` scored (the first ``limit``)."""
    from datamodules.shapes_captions import ShapesCaptions

    n_test = 1000 if limit is None else limit
    data = ShapesCaptions(n_test=n_test, encoder=model.hparams.encoder)  # the defaults are the recipe's
    return {**recipe_test_scores(model, data), "images": n_test}


def score_moving_shapes(model: Any, limit: Optional[int] = None) -> Dict[str, float]:
    """The frame classifier's test step on the recipe's MovingShapes test clips (seed 0, split 2):
    ``test_memory_acc`` (frames where the disc is hidden), ``test_direct_acc`` (where it is seen),
    ``test_frame_acc``, ``test_clip_acc``, ``test_loss``; ``clips`` scored (the first ``limit``)."""
    from datamodules.moving_shapes import MovingShapesDataModule

    n_test = 500 if limit is None else limit
    data = MovingShapesDataModule(num_test=n_test)  # the defaults are the recipe's
    return {**recipe_test_scores(model, data), "clips": n_test}


def score_shapes_vqa(model: Any, limit: Optional[int] = None) -> Dict[str, float]:
    """The VQA model's test step on the recipe's ShapesVQA (seed 0: the test split is seed 2, scenes and
    questions never trained on): ``test_acc``, ``test_acc_<type>`` (colour, shape, relation, count, exist),
    ``test_attn_in_box``, ``test_attn_in_named_box``, ``test_loss``; ``questions`` scored (the first
    ``limit``). The training questions are generated (not drawn) to rebuild the recipe's vocabulary."""
    from datamodules.shapes_vqa import ShapesVQA

    n_test = 2000 if limit is None else limit
    data = ShapesVQA(n_test=n_test, encoder=model.hparams.encoder)  # the defaults are the recipe's
    return {**recipe_test_scores(model, data), "questions": n_test}


#: task class (dotted path) -> its scorer and the data options it reads
SCORERS: Dict[str, Scorer] = {
    "zoo.tasks.language_model.CharLanguageModel": score_language_model,
    "zoo.tasks.classifier.SequenceClassifier": score_imdb,
    "zoo.tasks.seq2seq.Seq2Seq": score_translator,
    "zoo.tasks.captioner.ImageCaptioner": score_shapes_captions,
    "zoo.tasks.frame_classifier.FrameClassifier": score_moving_shapes,
    "zoo.tasks.vqa.VisualQuestionAnswerer": score_shapes_vqa,
}


def scorer_for(model: Any) -> Scorer:
    """The scorer of ``model``'s task class (or of the nearest zoo task it derives from)."""
    for cls in type(model).__mro__:
        found = SCORERS.get(f"{cls.__module__}.{cls.__qualname__}")
        if found is not None:
            return found
    raise InputError(f"no scorer for a {type(model).__name__}: the zoo scores {', '.join(p.rpartition('.')[2] for p in SCORERS)}")


def score(model: Any, **options: Any) -> Dict[str, float]:
    """Score ``model`` with its task's scorer; ``options`` are that scorer's keyword arguments
    (``None`` values are dropped, so a command can pass every flag it has)."""
    import inspect

    scorer = scorer_for(model)
    accepted = inspect.signature(scorer).parameters
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        raise InputError(f"{scorer.__name__} takes no {', '.join(unknown)} (it takes {', '.join(list(accepted)[1:])})")
    return scorer(model, **given)
