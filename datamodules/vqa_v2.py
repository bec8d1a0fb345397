"""VQA v2 (Goyal et al. 2017): questions about COCO 2014 photographs, ten human answers each.

Files under ``root`` (default ``data/vqa_v2``)::

    v2_OpenEnded_mscoco_train2014_questions.json   (or v2_Questions_Train_mscoco.zip holding it)
    v2_mscoco_train2014_annotations.json           (or v2_Annotations_Train_mscoco.zip)
    v2_OpenEnded_mscoco_val2014_questions.json     (or v2_Questions_Val_mscoco.zip)
    v2_mscoco_val2014_annotations.json             (or v2_Annotations_Val_mscoco.zip)
    train2014/COCO_train2014_%012d.jpg             (82,783 images, 13 GB zip)
    val2014/COCO_val2014_%012d.jpg                 (40,504 images, 6.2 GB zip)

``download: true`` fetches the four JSON zips (43 MB in all) from the official bucket; the images
never: a missing folder stops with its URL and size (:func:`~datamodules.coco_captions.missing_coco_images`).

**Splits.** ``train``: the train2014 questions, less those of ``val_images`` held-out images (a
fraction, or a number of images; drawn by image id with ``seed``, so a question and its image's other
questions stay on one side); ``val``: those held-out images' questions; ``test``: the official
val2014 questions. The test-dev/test-std answers are not public (the evaluation server scores them),
so val2014 is the test set here, as in most papers that report "val" numbers.

**Answers** are normalized as the official evaluation does (:func:`normalize_answer`); the answer
vocabulary is the ``num_answers`` (3000) most frequent normalized training answers, each of the ten
human answers counted (:func:`~datamodules.vqa.answer_vocabulary`). A question's type is its
annotation's ``answer_type``: ``yes/no``, ``number`` or ``other``.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import pooch

from .coco_captions import missing_coco_images, not_all_there
from .download import DataFormatError, DownloadError, extract, fetch, read_text, write_atomic
from .vqa import VQADataModule, VQARecord

__all__ = ["VQAv2DataModule", "VQA_V2_FILES", "fetch_sized", "normalize_answer", "read_vqa_v2"]

#: Where the official zips are (the VQA download page, visualqa.org/download.html, links here).
VQA_V2_URL = "https://s3.amazonaws.com/cvmlp/vqa/mscoco/vqa/"
#: (COCO folder, kind) -> (JSON file, zip holding it, bytes of the zip). No checksum is published for
#: these zips (neither on visualqa.org nor in the VQA API repository); the byte counts are those a
#: public download script records for the same URLs (a PowerShell dataset fetcher found with the
#: code search, "Bytes = 7239401" etc.), cross-checked by the JSON sizes HF mirrors show (65.9 / 31.8 /
#: 356 / 172 MB unzipped). A download of another size is refused; the sha256 of the first download is
#: recorded beside the zip (``<zip>.sha256``) and later runs check the zip against it.
VQA_V2_FILES: Dict[Tuple[str, str], Tuple[str, str, int]] = {
    ("train2014", "questions"): ("v2_OpenEnded_mscoco_train2014_questions.json", "v2_Questions_Train_mscoco.zip", 7_239_401),
    ("train2014", "annotations"): ("v2_mscoco_train2014_annotations.json", "v2_Annotations_Train_mscoco.zip", 21_708_861),
    ("val2014", "questions"): ("v2_OpenEnded_mscoco_val2014_questions.json", "v2_Questions_Val_mscoco.zip", 3_494_929),
    ("val2014", "annotations"): ("v2_mscoco_val2014_annotations.json", "v2_Annotations_Val_mscoco.zip", 10_518_930),
}
ANSWER_TYPES = ("yes/no", "number", "other")


# ---- answer normalization (the official VQA evaluation) ------------------------------------------------
# vqaEval.py's tables. Its contraction keys with capitals ("Im", "Ive", "Id've") are left out: they can
# never match, the words are lower-cased first. "somebody'd" -> "somebodyd" is the original's (sic).
_CONTRACTIONS = dict(
    pair.split("=")
    for pair in """
aint=ain't arent=aren't cant=can't couldve=could've couldnt=couldn't couldn'tve=couldn't've couldnt've=couldn't've
didnt=didn't doesnt=doesn't dont=don't hadnt=hadn't hadnt've=hadn't've hadn'tve=hadn't've hasnt=hasn't havent=haven't
hed=he'd hed've=he'd've he'dve=he'd've hes=he's howd=how'd howll=how'll hows=how's isnt=isn't itd=it'd itd've=it'd've
it'dve=it'd've itll=it'll let's=let's maam=ma'am mightnt=mightn't mightnt've=mightn't've mightn'tve=mightn't've
mightve=might've mustnt=mustn't mustve=must've neednt=needn't notve=not've oclock=o'clock oughtnt=oughtn't
ow's'at='ow's'at 'ows'at='ow's'at 'ow'sat='ow's'at shant=shan't shed've=she'd've she'dve=she'd've she's=she's
shouldve=should've shouldnt=shouldn't shouldnt've=shouldn't've shouldn'tve=shouldn't've somebody'd=somebodyd
somebodyd've=somebody'd've somebody'dve=somebody'd've somebodyll=somebody'll somebodys=somebody's someoned=someone'd
someoned've=someone'd've someone'dve=someone'd've someonell=someone'll someones=someone's somethingd=something'd
somethingd've=something'd've something'dve=something'd've somethingll=something'll thats=that's thered=there'd
thered've=there'd've there'dve=there'd've therere=there're theres=there's theyd=they'd theyd've=they'd've
they'dve=they'd've theyll=they'll theyre=they're theyve=they've twas='twas wasnt=wasn't wed've=we'd've we'dve=we'd've
weve=we've werent=weren't whatll=what'll whatre=what're whats=what's whatve=what've whens=when's whered=where'd
wheres=where's whereve=where've whod=who'd whod've=who'd've who'dve=who'd've wholl=who'll whos=who's whove=who've
whyll=why'll whyre=why're whys=why's wont=won't wouldve=would've wouldnt=wouldn't wouldnt've=wouldn't've
wouldn'tve=wouldn't've yall=y'all yall'll=y'all'll y'allll=y'all'll yall'd've=y'all'd've y'alld've=y'all'd've
y'all'dve=y'all'd've youd=you'd youd've=you'd've you'dve=you'd've youll=you'll youre=you're youve=you've
""".split()
)
_NUMBERS = {w: str(k) for k, w in enumerate("zero one two three four five six seven eight nine ten".split())} | {"none": "0"}
_ARTICLES = {"a", "an", "the"}
_PUNCT = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")  # the original's pattern: any "." not followed by a digit
_DIGIT_COMMA = re.compile(r"(\d)(,)(\d)")


def normalize_answer(answer: str) -> str:
    """An answer as the official VQA evaluation compares it (GT-Vision-Lab/VQA,
    PythonEvaluationTools/vqaEvaluation/vqaEval.py: whitespace, then ``processPunctuation``, then
    ``processDigitArticle``):

    - punctuation ``; / [ ] " { } ( ) = + \\ _ - > < @ ` , ? !`` is deleted where it touches a space (or
      anywhere, when the answer holds a digit-comma-digit like ``1,000``), else replaced by a space;
      a period not followed by a digit is deleted (``3.5`` keeps its point);
    - lower case; number words zero..ten (and "none") become digits; articles a/an/the are dropped;
    - apostrophe-less contractions get their apostrophe back (``dont`` -> ``don't``).

    The official script normalizes the human answers only when they disagree (its copies differ on
    whether the punctuation step alone or both steps); here every answer gets both, so training targets
    and predictions are compared in one form (the usual preprocessing for VQA training)."""
    text = answer.replace("\n", " ").replace("\t", " ").strip()
    out = text
    for p in _PUNCT:
        if f"{p} " in text or f" {p}" in text or _DIGIT_COMMA.search(text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    out = _PERIOD.sub("", out)
    words = [_NUMBERS.get(w, w) for w in out.lower().split()]
    return " ".join(_CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES)


# ---- readers -----------------------------------------------------------------------------------------
def _load_json(path: Path, key: str) -> List[Dict[str, Any]]:
    try:
        data = json.loads(read_text(path, "UTF-8 JSON, the official VQA v2 format"))
    except json.JSONDecodeError as err:
        raise DataFormatError(f"{path}: not valid JSON (line {err.lineno}: {err.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise DataFormatError(f"{path}: expected a JSON object with a {key!r} list (the official VQA v2 format)")
    return data[key]


def _get(entry: Any, key: str, kinds: tuple, where: str) -> Any:
    if not isinstance(entry, dict) or key not in entry:
        raise DataFormatError(f"{where} lacks the key {key!r}")
    if not isinstance(entry[key], kinds):
        raise DataFormatError(f"{where}: {key!r} must be a {' or '.join(k.__name__ for k in kinds)}, got {entry[key]!r:.80}")
    return entry[key]


def read_vqa_v2(questions_json: Path, annotations_json: Path, images_dir: Path, prefix: str) -> List[VQARecord]:
    """One official split: its questions joined with their annotations by ``question_id``, answers
    normalized; ``image`` is ``images_dir / f"{prefix}{image_id:012d}.jpg"`` (whether it exists is
    checked later). A missing key or a question without an annotation is a :class:`DataFormatError`
    naming the file, the entry and the key."""
    annotations = {}
    for n, entry in enumerate(_load_json(annotations_json, "annotations")):
        where = f"{annotations_json}: annotations[{n}]"
        answers = [_get(a, "answer", (str,), f"{where}.answers") for a in _get(entry, "answers", (list,), where)]
        annotations[_get(entry, "question_id", (int,), where)] = (answers, _get(entry, "answer_type", (str,), where))
    records = []
    for n, entry in enumerate(_load_json(questions_json, "questions")):
        where = f"{questions_json}: questions[{n}]"
        qid, image_id = _get(entry, "question_id", (int,), where), _get(entry, "image_id", (int,), where)
        if qid not in annotations:
            raise DataFormatError(f"{where}: question_id {qid} has no entry in {annotations_json}")
        answers, answer_type = annotations[qid]
        path = Path(images_dir) / f"{prefix}{image_id:012d}.jpg"
        records.append(
            VQARecord(
                str(path),
                _get(entry, "question", (str,), where),
                [normalize_answer(a) for a in answers],
                answer_type,
                qid,
                {"image_id": image_id},
            )
        )
    return records


def _held_out_images(records: Sequence[VQARecord], val_images: Union[int, float], seed: int) -> set:
    ids = sorted({r.extra["image_id"] for r in records})
    count = int(val_images) if val_images >= 1 else int(round(val_images * len(ids)))
    return set(np.random.default_rng(seed).permutation(ids)[:count].tolist())


def fetch_sized(url: str, size: int, folder: Path) -> Path:
    """``url`` into ``folder`` for a file whose publisher gives no checksum: the size must be ``size``
    (else the file is removed and it is a :class:`DownloadError`); the sha256 of the first good copy is
    written beside it (``<name>.sha256``) and a later copy that differs from it is refused the same way."""
    path = fetch(url, None, folder=folder)
    recorded = path.with_name(path.name + ".sha256")
    problem = None
    if path.stat().st_size != size:
        problem = f"it has {path.stat().st_size:,} bytes, the published file {size:,}"
    elif recorded.is_file() and recorded.read_text().split()[0] != pooch.file_hash(str(path), alg="sha256"):
        problem = f"its sha256 differs from the one recorded at the first download ({recorded})"
    if problem:
        path.unlink()
        raise DownloadError(
            f"refusing {url}: {problem}; it was removed (nothing left at {path}). Download it again, "
            "or place a good copy there by hand"
        )
    if not recorded.is_file():
        digest = pooch.file_hash(str(path), alg="sha256")
        write_atomic(recorded, f"{digest}  {path.name}\n".encode())
    return path


# ---- the datamodule ---------------------------------------------------------------------------------------
class VQAv2DataModule(VQADataModule):
    """VQA v2 on COCO 2014 (see the module's docstring for the files, splits and answers).

    Args:
        root: the folder with the JSON files (or their zips) and ``train2014/``, ``val2014/``.
        download: fetch the four JSON zips (43 MB) when missing; the images (19 GB) are never fetched.
        val_images: the held-out training images of ``val``: a fraction (< 1) or a number of images.
        limit_questions: at most this many questions per split, e.g. ``{"train": 5000}`` (quick runs).
        num_answers: the answer vocabulary (default 3000, the usual choice for VQA v2).
        All other arguments: :class:`~datamodules.vqa.VQADataModule`.
    """

    name = "vqa_v2"

    def __init__(
        self,
        root: str = "data/vqa_v2",
        download: bool = False,
        val_images: float = 0.05,
        limit_questions: Optional[Dict[str, int]] = None,
        num_answers: int = 3000,
        **kwargs: Any,
    ) -> None:
        super().__init__(num_answers=num_answers, **kwargs)
        if not 0 < val_images:
            raise ValueError(f"val_images must be a fraction in (0, 1) or a number of images >= 1, got {val_images}")
        self.root, self.download, self.val_images = Path(root).expanduser(), download, val_images
        self.limit_questions = dict(limit_questions or {})
        self.skipped_questions: Dict[str, int] = {}  # per split: questions whose image is not on disk

    def describe_source(self) -> str:
        return f"VQA v2 at {self.root}"

    def ordered_question_types(self, seen: Sequence[str]) -> List[str]:
        """yes/no, number, other (the order of the VQA papers' tables), then any other type, sorted."""
        return [t for t in ANSWER_TYPES if t in seen] + sorted(set(seen) - set(ANSWER_TYPES))

    def json_file(self, folder: str, kind: str) -> Optional[Path]:
        """The JSON file, as given or unpacked from its zip (fetched first with ``download``), or None."""
        name, zip_name, size = VQA_V2_FILES[folder, kind]
        unpacked = self.root / Path(zip_name).stem
        for path in (self.root / name, unpacked / name):
            if path.is_file():
                return path
        archive = self.root / zip_name
        if not archive.is_file() and self.download:
            self.root.mkdir(parents=True, exist_ok=True)
            archive = fetch_sized(VQA_V2_URL + zip_name, size, self.root)
        if archive.is_file():
            extract(archive, unpacked)
            if not (unpacked / name).is_file():
                raise DataFormatError(f"{archive}: holds no {name} (expected the official VQA v2 zip)")
            return unpacked / name
        return None

    def missing(self) -> List[str]:
        """Human-readable lines for what is missing, empty when all is in place."""
        lines = []
        for (folder, kind), (name, zip_name, size) in VQA_V2_FILES.items():
            if self.json_file(folder, kind) is None:
                lines.append(
                    f"  - {self.root / name}: wget {VQA_V2_URL}{zip_name}  ({size / 1e6:.1f} MB)  &&  "
                    f"unzip {zip_name} -d {self.root}   (or pass --data.download true)"
                )
        return lines + missing_coco_images(self.root)

    def prepare_data(self) -> None:
        """Fetch what ``download`` allows and check that every file is there, without parsing the
        JSON (600 MB: ``setup`` reads it once)."""
        lines = self.missing()
        if lines:
            raise not_all_there("VQA v2 files", self.root, lines, "recipes/vqa_shapes_san.yaml")

    def read_records(self) -> Dict[str, List[VQARecord]]:
        self.prepare_data()
        train = read_vqa_v2(
            self.json_file("train2014", "questions"),
            self.json_file("train2014", "annotations"),
            self.root / "train2014",
            "COCO_train2014_",
        )
        held_out = _held_out_images(train, self.val_images, self.opts.seed)
        splits = {
            "train": [r for r in train if r.extra["image_id"] not in held_out],
            "val": [r for r in train if r.extra["image_id"] in held_out],
            "test": read_vqa_v2(
                self.json_file("val2014", "questions"),
                self.json_file("val2014", "annotations"),
                self.root / "val2014",
                "COCO_val2014_",
            ),
        }
        return {split: self._present(split, records) for split, records in splits.items()}

    def _present(self, split: str, records: List[VQARecord]) -> List[VQARecord]:
        """The questions whose image is on disk (the others skipped, counted and warned about), at most
        ``limit_questions[split]`` of them."""
        exists: Dict[str, bool] = {}
        kept = [r for r in records if exists.setdefault(r.image, Path(r.image).is_file())]
        if len(kept) < len(records):
            absent = sorted(path for path, ok in exists.items() if not ok)
            warnings.warn(
                f"VQA v2 {split}: skipped {len(records) - len(kept)} questions whose image is not on disk "
                f"({len(absent)} images, e.g. {absent[:3]})"
            )
        self.skipped_questions[split] = len(records) - len(kept)
        limit = self.limit_questions.get(split)
        return kept[: int(limit)] if limit is not None else kept
