"""Image captioning on real photographs: COCO 2014 (Karpathy split), Flickr8k and Flickr30k.

The readers turn each release's caption files into :class:`~datamodules.captions.CaptionRecord` per
split: Karpathy's ``dataset_{coco,flickr8k,flickr30k}.json`` (or a Hugging Face mirror of it with
the same columns), and Flickr8k's original ``Flickr8k.token.txt`` with its split lists. The
datamodules say where those files and the images are and what is missing; everything else (tokenizer,
transforms, feature cache, batches) is :class:`~datamodules.captions.CaptionDataModule`'s.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

from .captions import SPLITS, CaptionDataModule, CaptionRecord
from .download import DataFormatError, MissingDataError, read_text

__all__ = [
    "COCOCaptionsDataModule",
    "FlickrCaptionsDataModule",
    "karpathy_rows_to_records",
    "missing_coco_images",
    "not_all_there",
    "read_flickr_token",
    "parquet_split",
    "read_karpathy_hub",
    "read_karpathy_json",
]


# ---- readers ---------------------------------------------------------------------------------------
KARPATHY_FORMAT = "Karpathy's format: filepath, filename, split, sentences"


def _karpathy_caption(sentence: Any, where: str) -> str:
    if isinstance(sentence, str):
        return sentence
    raw = sentence.get("raw") if isinstance(sentence, dict) else None
    if raw is None and isinstance(sentence, dict) and isinstance(sentence.get("tokens", []), list):
        raw = " ".join(str(t) for t in sentence.get("tokens", []))
    if not isinstance(raw, str):
        raise DataFormatError(
            f"{where}: a sentence must be a string or an object with a 'raw' string or a 'tokens' list, got {sentence!r:.80}"
        )
    return raw


def _field(row: Dict[str, Any], key: str, kinds: tuple, where: str) -> Any:
    if key not in row:
        raise DataFormatError(f"{where} lacks the key {key!r} (expected {KARPATHY_FORMAT})")
    if not isinstance(row[key], kinds):
        wanted = " or ".join(k.__name__ for k in kinds)
        raise DataFormatError(f"{where}: {key!r} must be a {wanted}, got {type(row[key]).__name__} {row[key]!r:.80}")
    return row[key]


def karpathy_rows_to_records(rows: Iterable[Dict[str, Any]], images_root: Path, source: str) -> Dict[str, List[CaptionRecord]]:
    """Entries of Karpathy's ``dataset_*.json`` ``images`` list (or rows of a Hub mirror with the same
    columns: ``filepath``, ``filename``, ``split``, ``sentences``, ``cocoid``/``imgid``) → records per
    split. ``restval`` (COCO) joins ``train``, as in the standard 113,287-image training set. An entry
    of the wrong shape is a :class:`DataFormatError` naming ``source``, the entry and the key."""
    splits: Dict[str, List[CaptionRecord]] = {s: [] for s in SPLITS}
    for n, row in enumerate(rows):
        where = f"{source}: entry {n}"
        if not isinstance(row, dict):
            raise DataFormatError(f"{where} is a {type(row).__name__}, not an object (expected {KARPATHY_FORMAT})")
        name = _field(row, "split", (str,), where)
        split = {"restval": "train", "validation": "val"}.get(name, name)
        if split not in splits:
            raise DataFormatError(f"{where} has split {name!r}; expected train, restval, val or test")
        filepath = row.get("filepath") or ""
        if not isinstance(filepath, str):
            raise DataFormatError(f"{where}: 'filepath' must be a str, got {type(filepath).__name__}")
        path = images_root / filepath / _field(row, "filename", (str,), where)
        sentences = _field(row, "sentences", (list, tuple), where)
        image_id = str(row.get("cocoid", row.get("imgid", row["filename"])))
        splits[split].append(
            CaptionRecord(str(path), [_karpathy_caption(s, where) for s in sentences], image_id, f"{source} entry {n}")
        )
    return splits


def read_karpathy_json(path: Path, images_root: Path) -> Dict[str, List[CaptionRecord]]:
    """Karpathy's split file (``dataset_coco.json``, ``dataset_flickr8k.json``, ``dataset_flickr30k.json``)."""
    try:
        data = json.loads(read_text(path, "UTF-8 JSON in Karpathy's split format"))
    except json.JSONDecodeError as err:
        raise DataFormatError(f"{path}: not valid JSON (line {err.lineno}: {err.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise DataFormatError(f"{path}: expected Karpathy's split format, a JSON object with an 'images' list")
    return karpathy_rows_to_records(data["images"], Path(images_root), str(path))


def read_flickr_token(token_file: Path, split_files: Dict[str, Path], images_dir: Path) -> Dict[str, List[CaptionRecord]]:
    """Flickr8k's ``Flickr8k.token.txt`` (``<image>#<n>\\t<caption>`` per line) and the split lists
    (one image file name per line)."""
    captions: Dict[str, List[str]] = {}
    sources: Dict[str, str] = {}
    for lineno, line in enumerate(read_text(token_file, "UTF-8 text, '<image>#<n>\\t<caption>' per line").splitlines(), 1):
        if not line.strip():
            continue
        key, tab, caption = line.partition("\t")
        if not tab or "#" not in key:
            raise DataFormatError(f"{token_file}:{lineno}: expected '<image>#<n>\\t<caption>', got {line[:80]!r}")
        name = key.rsplit("#", 1)[0]
        captions.setdefault(name, []).append(caption)
        sources.setdefault(name, f"{token_file}:{lineno}")
    splits: Dict[str, List[CaptionRecord]] = {}
    for split, list_file in split_files.items():
        records = []
        for lineno, line in enumerate(read_text(list_file, "UTF-8 text, one image file name per line").splitlines(), 1):
            name = line.strip()
            if not name:
                continue
            if name not in captions:
                raise DataFormatError(f"{list_file}:{lineno}: image {name!r} has no captions in {token_file}")
            records.append(CaptionRecord(str(Path(images_dir) / name), captions[name], name, sources[name]))
        splits[split] = records
    return splits


# ---- COCO 2014 ----------------------------------------------------------------------------------------------
COCO_FILES = {
    "train2014": ("http://images.cocodataset.org/zips/train2014.zip", "13 GB", "82,783 images"),
    "val2014": ("http://images.cocodataset.org/zips/val2014.zip", "6.2 GB", "40,504 images"),
}


def missing_coco_images(root: Path, folders: Iterable[str] = tuple(COCO_FILES)) -> List[str]:
    """A line per COCO 2014 image folder (``train2014``, ``val2014``) absent or empty under ``root``:
    the folder, its image count, the command that fetches it and its size (the images are never
    downloaded automatically: 19 GB)."""
    lines = []
    for folder in folders:
        url, size, count = COCO_FILES[folder]
        path = Path(root) / folder
        if not path.is_dir() or not any(path.iterdir()):
            lines.append(f"  - {path}/ ({count}): wget {url}  ({size})  &&  unzip {Path(url).name} -d {root}")
    return lines


def not_all_there(what: str, root: Path, lines: List[str], offline_recipe: str) -> MissingDataError:
    """The error for a data set whose files are not all under ``root``: ``lines`` (one per missing
    piece: where it goes, how to fetch it, how big it is), then the recipe that needs no download."""
    return MissingDataError(
        f"{what} are not (all) in {Path(root).resolve()}. Missing:\n"
        + "\n".join(lines)
        + f"\nPut them there (or pass --data.root DIR where they are), then run again. For a run without any download use {offline_recipe}."
    )


KARPATHY_JSON_HELP = (
    "Karpathy's split file dataset_coco.json (from caption_datasets.zip, about 36 MB; its original URL "
    "cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip is gone, copies circulate, e.g. "
    "on Kaggle as 'karpathy-splits'), or set karpathy_hub to a Hugging Face dataset mirror with the same "
    "columns (default yerevann/coco-karpathy, parquet; needs `pip install pyarrow`)"
)


def parquet_split(relative: Path) -> Optional[str]:
    """The split a Hub mirror's parquet file holds, from its path inside the dataset
    (``data/train-00000-of-00004.parquet``, ``validation/0000.parquet``), or ``None``. Only that
    relative path counts: the cache folder above it (say ``/train/hf_cache``) names no split."""
    for part in Path(relative).parts:
        for split in ("restval", "train", "validation", "val", "test"):
            if part.startswith(split):
                return split
    return None


def read_karpathy_hub(repo_id: str, images_root: Path, cache_dir: Optional[Path] = None) -> Dict[str, List[CaptionRecord]]:
    """The Karpathy split from a Hub dataset mirror whose rows carry Karpathy's columns
    (``filepath``, ``filename``, ``split`` or the parquet file's split, ``sentences``, ``cocoid``)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as err:  # pragma: no cover - a dependency of timm
        raise MissingDataError(
            "reading the Karpathy split from the Hub needs huggingface_hub (pip install huggingface_hub)"
        ) from err
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDataError(
            f"the Karpathy split mirror {repo_id} is stored as parquet, which needs pyarrow: `pip install pyarrow`, "
            "or download dataset_coco.json and put it in the COCO root"
        ) from None
    try:
        folder = Path(
            snapshot_download(repo_id, repo_type="dataset", allow_patterns=["*.parquet", "*.json"], cache_dir=cache_dir)
        )
    except Exception as err:
        raise MissingDataError(
            f"could not download the Karpathy split from the Hub dataset {repo_id} ({type(err).__name__}: {err}); {KARPATHY_JSON_HELP}"
        ) from None
    rows = []
    for file in sorted(folder.rglob("*.parquet")):
        split_from_name = parquet_split(file.relative_to(folder))
        for row in pq.read_table(file).to_pylist():
            if "split" not in row or row["split"] is None:
                row["split"] = split_from_name
            rows.append(row)
    if not rows:
        raise MissingDataError(f"the Hub dataset {repo_id} holds no parquet rows; {KARPATHY_JSON_HELP}")
    return karpathy_rows_to_records(rows, images_root, f"hf://datasets/{repo_id}")


class COCOCaptionsDataModule(CaptionDataModule):
    """MS COCO 2014 captions on the Karpathy split (113,287 train incl. restval / 5,000 val / 5,000 test
    images, about 5 captions each).

    ``root`` must hold ``train2014/`` and ``val2014/`` (the images, from the official zips) and, unless
    ``karpathy_json`` names it elsewhere or ``karpathy_hub`` supplies it, ``dataset_coco.json``. The
    images (19 GB) are not downloaded automatically: a missing piece stops with what is missing, where
    it goes and the command that fetches it. All other arguments: :class:`CaptionDataModule`.
    """

    name = "coco"

    def __init__(
        self,
        root: str = "data/coco",
        karpathy_json: Optional[str] = None,
        karpathy_hub: Optional[str] = "yerevann/coco-karpathy",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.root = Path(root).expanduser()
        self.karpathy_json = karpathy_json
        self.karpathy_hub = karpathy_hub

    def describe_source(self) -> str:
        return f"COCO 2014 at {self.root}"

    def missing(self) -> List[str]:
        """Human-readable lines for what is missing, empty when all is in place."""
        lines = missing_coco_images(self.root)
        json_path = Path(self.karpathy_json).expanduser() if self.karpathy_json else self.root / "dataset_coco.json"
        if not json_path.is_file():
            if not self.karpathy_hub:
                lines.append(f"  - {json_path}: {KARPATHY_JSON_HELP}")
            elif importlib.util.find_spec("pyarrow") is None:
                lines.append(
                    f"  - {json_path}: {KARPATHY_JSON_HELP} [pyarrow is not installed here, so the Hub mirror {self.karpathy_hub} cannot be read]"
                )
        return lines

    def read_records(self) -> Dict[str, List[CaptionRecord]]:
        lines = self.missing()
        if lines:
            raise not_all_there("COCO 2014 captions", self.root, lines, "recipes/caption_attn_shapes.yaml")
        json_path = Path(self.karpathy_json).expanduser() if self.karpathy_json else self.root / "dataset_coco.json"
        if json_path.is_file():
            return read_karpathy_json(json_path, self.root)
        return read_karpathy_hub(self.karpathy_hub, self.root)


# ---- Flickr8k / Flickr30k ---------------------------------------------------------------------------------
FLICKR_IMAGE_DIRS = (
    "images",
    "Flicker8k_Dataset",
    "Flickr8k_Dataset",
    "Flickr8k_Dataset/Flicker8k_Dataset",
    "flickr30k-images",
    "flickr30k_images",
)
FLICKR_HELP = {
    "flickr8k": (
        "Flickr8k (about 1 GB of images + 2 MB of captions): e.g. "
        "wget https://github.com/jbrownlee/Datasets/releases/download/Flickr8k/Flickr8k_Dataset.zip "
        "https://github.com/jbrownlee/Datasets/releases/download/Flickr8k/Flickr8k_text.zip, unzip both into the root; "
        "or Karpathy's dataset_flickr8k.json beside an images/ folder"
    ),
    "flickr30k": (
        "Flickr30k (about 4.4 GB of images, by request from the authors: shannon.cs.illinois.edu/DenotationGraph) "
        "as flickr30k-images/ plus Karpathy's dataset_flickr30k.json in the root"
    ),
}


class FlickrCaptionsDataModule(CaptionDataModule):
    """Flickr8k or Flickr30k. ``root`` holds the images (in ``images/``, ``Flicker8k_Dataset/``,
    ``flickr30k-images/`` or the root itself) and either Karpathy's ``dataset_flickr8k.json`` /
    ``dataset_flickr30k.json`` or (Flickr8k) the original ``Flickr8k.token.txt`` with
    ``Flickr_8k.{train,dev,test}Images.txt``. ``split_format``: ``auto`` (Karpathy's JSON when present),
    ``karpathy`` or ``token``. All other arguments: :class:`CaptionDataModule`."""

    def __init__(self, root: str = "data/flickr8k", dataset: str = "flickr8k", split_format: str = "auto", **kwargs) -> None:
        if dataset not in FLICKR_HELP:
            raise ValueError(f"dataset must be one of {sorted(FLICKR_HELP)}, got {dataset!r}")
        if split_format not in ("auto", "karpathy", "token"):
            raise ValueError(f"split_format must be auto, karpathy or token, got {split_format!r}")
        super().__init__(**kwargs)
        self.root, self.dataset, self.split_format = Path(root).expanduser(), dataset, split_format
        self.name = dataset

    def describe_source(self) -> str:
        return f"{self.dataset} at {self.root}"

    def images_dir(self) -> Path:
        for name in FLICKR_IMAGE_DIRS:
            if (self.root / name).is_dir():
                return self.root / name
        return self.root

    def read_records(self) -> Dict[str, List[CaptionRecord]]:
        karpathy = self.root / f"dataset_{self.dataset}.json"
        token = self.root / "Flickr8k.token.txt"
        lists = {"train": "Flickr_8k.trainImages.txt", "val": "Flickr_8k.devImages.txt", "test": "Flickr_8k.testImages.txt"}
        use_karpathy = self.split_format == "karpathy" or (self.split_format == "auto" and karpathy.is_file())
        if use_karpathy:
            if not karpathy.is_file():
                raise MissingDataError(f"{karpathy} is missing. {FLICKR_HELP[self.dataset]}")
            return read_karpathy_json(karpathy, self.images_dir())
        if self.dataset != "flickr8k":
            raise MissingDataError(f"{karpathy} is missing (Flickr30k has no official split lists). {FLICKR_HELP[self.dataset]}")
        missing = [p for p in [token, *(self.root / f for f in lists.values())] if not p.is_file()]
        if missing:
            raise MissingDataError(
                f"Flickr8k captions are not (all) in {self.root.resolve()}: missing {', '.join(str(p) for p in missing)}. "
                f"{FLICKR_HELP['flickr8k']}"
            )
        return read_flickr_token(token, {s: self.root / f for s, f in lists.items()}, self.images_dir())
