"""What every visual-question-answering datamodule shares (:class:`datamodules.shapes_vqa.ShapesVQA`,
:class:`datamodules.vqa_v2.VQAv2DataModule`): records, the answer vocabulary, the VQA accuracy, batches.

The flow::

    records (image, question, every human answer, question type; per split)
        ▼
    question tokenizer: word level, trained on the *train* questions only (datamodules.tokenizers)
    answer vocabulary: the ``num_answers`` most frequent answers of the train split
        ▼
    batches {"images" (B,3,S,S), "ids" (B,T) question tokens, "lengths", "answer" (B,) the most common
             human answer's index (-100 when it is outside the vocabulary: not trained on),
             "answer_scores" (B, A) the VQA accuracy each vocabulary answer would get,
             "question_type" (B,), "index", "question" (list of str)}

**The VQA accuracy** (Antol et al. 2015): an answer is right in as far as humans gave it,
``min(#humans who gave it / 3, 1)`` (:func:`vqa_score`); a data set with one true answer per question
(ShapesVQA) sets :attr:`VQADataModule.agreement` to 1, and the score is plain accuracy. ``answer_scores`` holds it for every vocabulary answer, so a model's accuracy is the
score of its argmax, whatever the data set.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Dict, List, Optional, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from .download import MissingDataError
from .image_data import ImageDataModule
from .loaders import IGNORE
from .tokenizers import PAD_ID, encode_texts, train_tokenizer

__all__ = ["VQADataModule", "VQADataset", "VQARecord", "answer_vocabulary", "vqa_collate", "vqa_score"]

SPLITS = ("train", "val", "test")


@dataclass
class VQARecord:
    """One question about one image: ``answers`` are every human answer (VQA v2: ten; ShapesVQA: the
    one true answer); ``image`` is what :meth:`VQADataModule.load_image` reads (a path, or an id)."""

    image: Any
    question: str
    answers: List[str]
    question_type: str
    question_id: Any = None
    extra: Dict[str, Any] = field(default_factory=dict)


def vqa_score(answer: str, human_answers: Sequence[str], agreement: int = 3) -> float:
    """The VQA accuracy of ``answer``: ``min(#humans who gave it / 3, 1)`` (``agreement`` = 3, VQA's
    ten annotators); a data set with one true answer per question uses ``agreement = 1``."""
    return min(sum(a == answer for a in human_answers) / agreement, 1.0)


def answer_vocabulary(records: Sequence[VQARecord], num_answers: int) -> List[str]:
    """The ``num_answers`` most frequent human answers of ``records`` (each question's answers counted
    once per human), most frequent first; ties in first-seen order, so the list is deterministic."""
    counts = Counter(a for r in records for a in r.answers)
    return [a for a, _ in counts.most_common(num_answers)]


class VQADataset(Dataset):
    """Items of one split; ``image(i)`` gives record ``i``'s normalized image tensor."""

    def __init__(
        self, records: List[VQARecord], ids: List[List[int]], answer_index: Dict[str, int], image, extra=None, agreement: int = 3
    ) -> None:
        self.records, self.ids, self.answer_index, self.image, self.extra = records, ids, answer_index, image, extra
        self.agreement = agreement

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> Dict[str, Any]:
        record = self.records[i]
        counts = Counter(record.answers)
        top = counts.most_common(1)[0][0] if counts else None
        scores = {self.answer_index[a]: min(n / self.agreement, 1.0) for a, n in counts.items() if a in self.answer_index}
        item = {
            "index": i,
            "question": record.question,
            "image": self.image(i),
            "ids": torch.tensor(self.ids[i], dtype=torch.long),
            "answer": self.answer_index.get(top, IGNORE),
            "scores": scores,
            "question_type": record.question_type,
        }
        if self.extra is not None:
            item.update(self.extra(i))
        return item


def _pad_boxes(items: List[Dict[str, Any]], key: str) -> Dict[str, Tensor]:
    most = max(1, max(len(x[key]) for x in items))
    boxes = torch.zeros(len(items), most, 4)
    mask = torch.zeros(len(items), most, dtype=torch.bool)
    for row, x in enumerate(items):
        boxes[row, : len(x[key])] = x[key]
        mask[row, : len(x[key])] = True
    return {key: boxes, f"{key}_mask": mask}


def vqa_collate(items: List[Dict[str, Any]], num_answers: int, question_types: Sequence[str]) -> Dict[str, Any]:
    """Pad the questions with ``<pad>`` = 0, stack the images, densify the answer scores; boxes
    (ShapesVQA's ``target_boxes``, ``named_boxes``) padded to the most of the batch, with masks."""
    lengths = torch.tensor([len(x["ids"]) for x in items], dtype=torch.long)
    ids = torch.full((len(items), max(1, int(lengths.max()))), PAD_ID, dtype=torch.long)
    scores = torch.zeros(len(items), num_answers)
    for row, x in enumerate(items):
        ids[row, : len(x["ids"])] = x["ids"]
        for k, s in x["scores"].items():
            scores[row, k] = s
    type_index = {t: k for k, t in enumerate(question_types)}
    batch: Dict[str, Any] = {
        "images": torch.stack([x["image"] for x in items]),
        "ids": ids,
        "lengths": lengths,
        "answer": torch.tensor([x["answer"] for x in items], dtype=torch.long),
        "answer_scores": scores,
        "question_type": torch.tensor([type_index[x["question_type"]] for x in items], dtype=torch.long),
        "index": torch.tensor([x["index"] for x in items], dtype=torch.long),
        "question": [x["question"] for x in items],
    }
    for key in ("target_boxes", "named_boxes"):
        if key in items[0]:
            batch.update(_pad_boxes(items, key))
    return batch


class VQADataModule(ImageDataModule):
    """What every VQA datamodule shares. A subclass provides :meth:`read_records` (``{split: [VQARecord]}``)
    and may override :meth:`load_image` (default: the file at ``record.image``), :meth:`image_tensor`
    and :meth:`item_extra`.

    After ``setup`` it exposes what the model is built from: ``tokenizer_json``, ``answer_names``,
    ``question_types``, ``image_config`` (dict) and ``max_question_len``."""

    name = "vqa"
    #: how many humans must give an answer for it to count fully (VQA: 3 of 10; one true answer: 1)
    agreement = 3

    def __init__(
        self,
        encoder: Optional[str] = "resnet152",
        image_size: Optional[int] = None,
        crop_pct: Optional[float] = None,
        num_answers: int = 1000,
        vocab_size: int = 15_000,
        min_frequency: int = 1,
        max_question_len: int = 26,
        batch_size: int = 64,
        eval_batch_size: Optional[int] = None,
        num_workers: int = 0,
        seed: int = 0,
    ) -> None:
        """
        Args:
            encoder: the timm model whose preprocessing the images get (use the model's encoder name).
            image_size, crop_pct: override the encoder's input size / centre-crop fraction.
            num_answers: the answer vocabulary: this many most frequent training answers.
            vocab_size, min_frequency: the question tokenizer (word level, training questions only;
                ``vocab_size`` counts the 4 special tokens).
            max_question_len: the most question tokens the model reads; longer training questions are
                cut to it, and the model refuses longer questions at inference (it never saw them).
            batch_size, eval_batch_size, num_workers, seed: the loaders (per rank).
        """
        super().__init__(encoder, image_size, crop_pct)
        if num_answers < 2:
            raise ValueError(f"num_answers must be >= 2, got {num_answers}")
        if max_question_len < 1:
            raise ValueError(f"max_question_len must be >= 1, got {max_question_len}")
        self.save_hyperparameters()
        # Kept apart from self.hparams: under LightningCLI hparams hold only the subclass's own arguments.
        self.opts = SimpleNamespace(
            encoder=encoder,
            num_answers=num_answers,
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            max_question_len=max_question_len,
            batch_size=batch_size,
            eval_batch_size=eval_batch_size,
            num_workers=num_workers,
            seed=seed,
        )
        self.records: Dict[str, List[VQARecord]] = {}
        self.datasets: Dict[str, VQADataset] = {}
        self.tokenizer_json: Optional[str] = None
        self.answer_names: Optional[List[str]] = None
        self.question_types: Optional[List[str]] = None
        self.collate_fn = self._collate

    # -- what a subclass provides (and read_records, describe_source, load_image: ImageDataModule) ----------
    def image_tensor(self, split: str, i: int) -> Tensor:
        return self._transform(self.load_image(split, i))

    def item_extra(self, split: str):
        return None

    def ordered_question_types(self, seen: Sequence[str]) -> List[str]:
        """The question types in a fixed order (default: sorted)."""
        return sorted(set(seen))

    # -- the model reads these (and image_config, encoder_name, preview: ImageDataModule) ------------------
    @property
    def max_question_len(self) -> int:
        return self.opts.max_question_len

    # -- building ---------------------------------------------------------------------------------------------
    def _collate(self, items: List[Dict[str, Any]]) -> Dict[str, Any]:
        return vqa_collate(items, len(self.answer_names), self.question_types)

    def setup(self, stage: Optional[str] = None) -> None:
        if self.datasets:
            return
        hp = self.opts
        raw = self.read_records()
        for split in ("train", "val"):
            if not raw.get(split):
                raise MissingDataError(f"{self.describe_source()} has no {split} questions")
        train = raw["train"]
        self.answer_names = answer_vocabulary(train, hp.num_answers)
        self.question_types = self.ordered_question_types([r.question_type for s in raw.values() for r in s])
        tokenizer = train_tokenizer([r.question for r in train], "word", hp.vocab_size, hp.min_frequency)
        self.tokenizer_json = tokenizer.to_str()
        answer_index = {a: k for k, a in enumerate(self.answer_names)}
        self._transform = self._config.transform()
        for split in SPLITS:
            records = raw.get(split) or []
            self.records[split] = records
            if not records:
                continue
            ids = [x[: hp.max_question_len] for x in encode_texts(tokenizer, [r.question for r in records])]
            keep = [k for k, x in enumerate(ids) if x]
            if len(keep) < len(ids):  # nothing to read: such a question cannot be answered, only guessed
                warnings.warn(f"{split}: skipped {len(ids) - len(keep)} questions with no words after tokenization")
                records, ids = [records[k] for k in keep], [ids[k] for k in keep]
                self.records[split] = records
            self.datasets[split] = VQADataset(
                records, ids, answer_index, lambda i, s=split: self.image_tensor(s, i), self.item_extra(split), self.agreement
            )
