"""The scorers of the cards: a model measured on data it never saw, the way its card was measured.

A task declares how it is scored: on a datamodule, by its ``score(data, limit)``
(:meth:`zoo.tasks.base.TaskModule.score`: its own test step by default; the classifier scores raw test
texts of *any* classification datamodule), and without one by naming a scorer here (its ``scorer``:
the function's name; the function's arguments are the data options). :func:`score` picks between them;
nothing here names a task class. Each scorer reads its data with the data set's own code and
measures with what the training recipe measures:

- ``score_language_model``: :func:`datamodules.char_corpus.score_char_lm` on a corpus's validation part
  (``corpus``: a text file, or a built-in name such as ``python-stdlib``; ``max_chars`` the recipe's cut);
- ``score_imdb``: :func:`zoo.metrics.score_classifier` on an aclImdb archive's test reviews;
- ``score_translator``: corpus sacreBLEU of ``model.predict`` (what ``zoo translate`` does) on a Multi30k
  split, greedy and beam 5;
- ``score_shapes_captions``: the task's score (its test step) on ShapesCaptions' held-out seed (exact
  match, attention in box via ``ShapesCaptions.evaluation_measures``, BLEU-1..4 and CIDEr-D);
- ``score_moving_shapes``: the same on MovingShapes' test clips (accuracy on the frames where the disc is
  hidden, ``memory_acc``, against the frames where it is seen, ``direct_acc``);
- ``score_shapes_vqa``: the same on ShapesVQA's held-out seed (accuracy overall and per question type,
  the last hop's attention in the answer's box via ``ShapesVQA.evaluation_measures``).

A checkpoint written by ``zoo fit`` records its datamodule (class and arguments, as LightningCLI saves
them): :func:`checkpoint_datamodule` rebuilds it (a class under ``datamodules.`` only), so that
``zoo models --evaluate --ckpt PATH`` scores a model trained with any recipe on its own data's test split.

``limit`` scores a slice (the tests' slice checks): the first ``limit`` windows of every stream (char
LM), texts of each label (classifiers), sentences, images or clips (the synthetic sets: their test
splits are the recipes' held-out seeds, generated here), or test batches (a datamodule's test step).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence

from zoo.errors import InputError, MissingDataError

__all__ = [
    "score",
    "scorer_for",
    "checkpoint_datamodule",
    "score_language_model",
    "score_imdb",
    "score_translator",
    "score_shapes_captions",
    "score_moving_shapes",
    "score_shapes_vqa",
    "split_metric_name",
]

Scorer = Callable[..., Dict[str, float]]


def score_language_model(
    model: Any, corpus: Optional[str] = None, limit: Optional[int] = None, max_chars: Optional[int] = None
) -> Dict[str, float]:
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


def score_translator(
    model: Any,
    multi30k: Optional[str] = None,
    split: str = "test_2016_flickr",
    limit: Optional[int] = None,
    beams: Sequence[int] = (1, 5),
    source_lang: str = "de",
    target_lang: str = "en",
    batch_size: int = 100,
) -> Dict[str, float]:
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


def score_shapes_captions(model: Any, limit: Optional[int] = None) -> Dict[str, float]:
    """The captioner's test step on the recipe's ShapesCaptions (seed 0: the test split is seed 2, scenes
    never trained on): ``test_exact``, ``test_attn_in_box``, ``test_bleu1..4``, ``test_cider``,
    ``test_loss``; ``images`` scored (the first ``limit``)."""
    from datamodules.shapes_captions import ShapesCaptions

    n_test = 1000 if limit is None else limit
    data = ShapesCaptions(n_test=n_test, encoder=model.hparams.encoder)  # the defaults are the recipe's
    return {**model.score(data), "images": n_test}


def score_moving_shapes(model: Any, limit: Optional[int] = None) -> Dict[str, float]:
    """The frame classifier's test step on the recipe's MovingShapes test clips (seed 0, split 2):
    ``test_memory_acc`` (frames where the disc is hidden), ``test_direct_acc`` (where it is seen),
    ``test_frame_acc``, ``test_clip_acc``, ``test_loss``; ``clips`` scored (the first ``limit``)."""
    from datamodules.moving_shapes import MovingShapesDataModule

    n_test = 500 if limit is None else limit
    data = MovingShapesDataModule(num_test=n_test)  # the defaults are the recipe's
    return {**model.score(data), "clips": n_test}


def score_shapes_vqa(model: Any, limit: Optional[int] = None) -> Dict[str, float]:
    """The VQA model's test step on the recipe's ShapesVQA (seed 0: the test split is seed 2, scenes and
    questions never trained on): ``test_acc``, ``test_acc_<type>`` (colour, shape, relation, count, exist),
    ``test_attn_in_box``, ``test_attn_in_named_box``, ``test_loss``; ``questions`` scored (the first
    ``limit``). The training questions are generated (not drawn) to rebuild the recipe's vocabulary."""
    from datamodules.shapes_vqa import ShapesVQA

    n_test = 2000 if limit is None else limit
    data = ShapesVQA(n_test=n_test, encoder=model.hparams.encoder)  # the defaults are the recipe's
    return {**model.score(data), "questions": n_test}


def scorer_for(model: Any) -> Scorer:
    """The scorer ``model``'s task declares (its ``scorer``: a function of this module by name)."""
    name = getattr(type(model), "scorer", None)
    if name is None:
        raise InputError(
            f"a {type(model).__name__} names no scorer: score it on a datamodule (zoo models --evaluate --ckpt "
            "a checkpoint of `zoo fit`, which records its datamodule)"
        )
    if name not in __all__ or not name.startswith("score_"):
        raise InputError(
            f"{type(model).__name__}.scorer = {name!r} is not a scorer of zoo.scoring "
            f"({', '.join(n for n in __all__ if n.startswith('score_'))})"
        )
    return globals()[name]


def checkpoint_datamodule(path: str | Path) -> Optional[Any]:
    """The datamodule a ``zoo fit`` checkpoint was trained with, rebuilt from what LightningCLI recorded
    (``datamodule_hyper_parameters``: its ``_class_path`` and arguments), or ``None`` when it recorded
    none. Only a LightningDataModule from a module under ``datamodules.`` is built (the file is data)."""
    import lightning as L
    import torch

    from zoo.tasks.resolve import resolve_task

    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    hparams = checkpoint.get("datamodule_hyper_parameters") if isinstance(checkpoint, dict) else None
    if not isinstance(hparams, dict) or not isinstance(hparams.get("_class_path"), str):
        return None
    cls = resolve_task(hparams["_class_path"], L.LightningDataModule, f"{path} (its datamodule)", package="datamodules")
    return cls(**{k: v for k, v in hparams.items() if not str(k).startswith("_")})


def score(model: Any, data: Any = None, **options: Any) -> Dict[str, float]:
    """Score ``model``: on the datamodule ``data`` by the task's own ``score(data, limit)``, or else by
    the scorer its task names, with ``options`` as that scorer's keyword arguments (``None`` values are
    dropped, so a command can pass every flag it has)."""
    import inspect

    given = {k: v for k, v in options.items() if v is not None}
    if data is not None:
        unknown = sorted(set(given) - {"limit"})
        if unknown:
            raise InputError(f"scoring on a datamodule takes only limit, not {', '.join(unknown)}")
        return model.score(data, given.get("limit"))
    scorer = scorer_for(model)
    accepted = inspect.signature(scorer).parameters
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        raise InputError(f"{scorer.__name__} takes no {', '.join(unknown)} (it takes {', '.join(list(accepted)[1:])})")
    return scorer(model, **given)
