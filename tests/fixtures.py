"""Builders of small data fixtures in the real formats of each dataset, shared by the datamodule tests
and tests/test_predict_recipes.py: the aclImdb layout (tarball or folder), AG News csv files,
Multi30k's gzip'd raw sentence files, COCO's Karpathy json with JPEG images, Flickr8k's token and
split files, UCF101's lists with tiny videos (PyAV), frame folders and a character corpus."""

from __future__ import annotations

import csv
import functools
import gzip
import io
import json
import random
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
from PIL import Image

# ---- IMDB (aclImdb) ------------------------------------------------------------------------------
POS_WORDS = ["great", "wonderful", "loved", "superb", "moving"]


NEG_WORDS = ["awful", "boring", "hated", "dull", "worst"]


FILLER = ["the", "movie", "film", "plot", "actor", "scene", "story", "and", "a", "was"]


def review(label: str, rng: random.Random, n: int = 30) -> str:
    words = [rng.choice(FILLER) for _ in range(n)] + [rng.choice(POS_WORDS if label == "pos" else NEG_WORDS) for _ in range(4)]
    rng.shuffle(words)
    return " ".join(words[: n // 2]) + ".<br /><br />" + " ".join(words[n // 2 :]).capitalize() + "!"


def imdb_members(per_class: int = 12, seed: int = 0) -> dict:
    """``{member name: bytes}`` in the aclImdb_v1 layout, with the files a real archive also holds."""
    rng = random.Random(seed)
    members = {
        "aclImdb/README": b"Large Movie Review Dataset v1.0\n",
        "aclImdb/imdb.vocab": b"the\nand\n",
        "aclImdb/imdbEr.txt": b"0.1\n",
        "aclImdb/train/urls_pos.txt": b"http://www.imdb.com/title/tt0453418/\n",
        "aclImdb/train/labeledBow.feat": b"9 0:9 1:1\n",
        "aclImdb/train/unsup/0_0.txt": b"unlabeled review",
    }
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            for i in range(per_class):
                rating = rng.choice([7, 8, 9, 10] if label == "pos" else [1, 2, 3, 4])
                members[f"aclImdb/{split}/{label}/{i}_{rating}.txt"] = review(label, rng).encode()
    return members


def write_tar(path: Path, members: dict) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_folder(root: Path, members: dict) -> Path:
    for name, data in members.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


# ---- AG News ----------------------------------------------------------------------------------
AG_TEXT = {
    1: ["Iraq elections", "UN talks on Iran"],
    2: ["Yankees win the series", "Olympic gold for sprinter"],
    3: ["Stocks fall as oil #36;50", "Fed raises rates"],
    4: ["New Linux kernel", "NASA probe reaches Mars"],
}


def ag_rows(per_class: int = 10, seed: int = 0):
    rng = random.Random(seed)
    rows = []
    for i in range(per_class):
        for label, titles in AG_TEXT.items():
            title = rng.choice(titles)
            rows.append([str(label), f"{title} ({i})", f'AP - {title.lower()}, reports say.\\Details "quoted" follow.'])
    return rows


def write_csv(path: Path, rows) -> Path:
    with open(path, "w", newline="") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    return path


def write_ag_news(root: Path, per_class: int = 10) -> Path:
    """An ``ag_news_csv`` folder: ``train.csv``, ``test.csv`` (quoted, no header) and ``classes.txt``."""
    root.mkdir(parents=True, exist_ok=True)
    write_csv(root / "train.csv", ag_rows(per_class, seed=0))
    write_csv(root / "test.csv", ag_rows(max(2, per_class // 3), seed=1))
    (root / "classes.txt").write_text("World\nSports\nBusiness\nSci/Tech\n")
    return root


# ---- Multi30k ---------------------------------------------------------------------------------
LEXICON = [
    ("Ein", "A"),
    ("Mann", "man"),
    ("Frau", "woman"),
    ("Hund", "dog"),
    ("läuft", "runs"),
    ("springt", "jumps"),
    ("über", "over"),
    ("die", "the"),
    ("grüne", "green"),
    ("Wiese", "meadow"),
    ("mit", "with"),
    ("einem", "a"),
    ("roten", "red"),
    ("T-Shirt", "T-shirt"),
    ("Ball", "ball"),
    ("im", "in the"),
    ("Schnee", "snow"),
    ("Straße", "street"),
    ("(lächelnd)", "(smiling)"),
    ("schnell,", "quickly,"),
]


def sentence_pair(rng: random.Random, n_words: int) -> tuple:
    words = [rng.choice(LEXICON) for _ in range(n_words)]
    end = rng.choice([".", "!", "?"])
    return " ".join(w[0] for w in words) + end, " ".join(w[1] for w in words) + end


def corpus(n: int, seed: int, lo: int = 3, hi: int = 12) -> tuple:
    rng = random.Random(seed)
    pairs = [sentence_pair(rng, rng.randint(lo, hi)) for _ in range(n)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def gz(lines: List[str]) -> bytes:
    return gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), mtime=0)


def write_files(root: Path, files: Dict[str, bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


def fixture_files(n_train: int = 120, n_val: int = 15, n_test: int = 12) -> Dict[str, bytes]:
    """``{file name: gzip'd bytes}`` of de/en train, val and test_2016_flickr."""
    files = {}
    for split, n, seed in (("train", n_train, 0), ("val", n_val, 1), ("test_2016_flickr", n_test, 2)):
        de, en = corpus(n, seed)
        files[f"{split}.de.gz"], files[f"{split}.en.gz"] = gz(de), gz(en)
    return files


# ---- images: COCO (Karpathy split) and Flickr8k ---------------------------------------------------
COLOURS = {"red": (200, 30, 30), "green": (30, 180, 60), "blue": (40, 60, 220), "yellow": (230, 210, 40)}


def write_jpeg(path: Path, colour=(200, 30, 30), size=(40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, "JPEG")
    return path


def caption_of(colour: str, n: int) -> List[str]:
    return [f"a {colour} square .", f"A {colour} picture number {n}.", f"something {colour}"]


def write_coco(root: Path, per_split: Dict[str, int] = None) -> Path:
    """COCO 2014 as ``COCOCaptionsDataModule`` reads it: ``train2014/`` and ``val2014/`` JPEGs and
    Karpathy's ``dataset_coco.json`` (``filepath``, ``filename``, ``split`` incl. ``restval``,
    ``sentences`` with ``raw`` and ``tokens``, ``cocoid``)."""
    per_split = per_split or {"train": 6, "restval": 2, "val": 3, "test": 3}
    rows, n = [], 0
    names = list(COLOURS)
    for split, count in per_split.items():
        folder = "train2014" if split in ("train", "restval") else "val2014"
        for _ in range(count):
            colour = names[n % len(names)]
            filename = f"COCO_{folder}_{n:012d}.jpg"
            write_jpeg(root / folder / filename, COLOURS[colour])
            sentences = [{"raw": c, "tokens": c.lower().strip(" .").split()} for c in caption_of(colour, n)]
            rows.append(
                {"filepath": folder, "filename": filename, "split": split, "cocoid": 1000 + n, "imgid": n, "sentences": sentences}
            )
            n += 1
    (root / "dataset_coco.json").write_text(json.dumps({"images": rows, "dataset": "coco"}))
    return root


def write_flickr8k(root: Path, per_split: Dict[str, int] = None) -> Path:
    """Flickr8k as released: ``Flickr8k.token.txt`` (``<image>#<n>\\t<caption>``), the split lists
    ``Flickr_8k.{train,dev,test}Images.txt`` and the JPEGs in ``Flicker8k_Dataset/``."""
    per_split = per_split or {"train": 6, "dev": 3, "test": 3}
    tokens, n = [], 0
    names = list(COLOURS)
    for split, count in per_split.items():
        listed = []
        for _ in range(count):
            colour = names[n % len(names)]
            name = f"{1000 + n}_{colour}.jpg"
            write_jpeg(root / "Flicker8k_Dataset" / name, COLOURS[colour])
            tokens += [f"{name}#{k}\t{c}" for k, c in enumerate(caption_of(colour, n))]
            listed.append(name)
            n += 1
        (root / f"Flickr_8k.{split}Images.txt").write_text("\n".join(listed) + "\n")
    (root / "Flickr8k.token.txt").write_text("\n".join(tokens) + "\n")
    return root


# ---- text: a character corpus --------------------------------------------------------------------
def write_corpus(path: Path, lines: int = 600, seed: int = 0) -> Path:
    """A few thousand characters of verse-like lines."""
    rng = random.Random(seed)
    words = "the quick brown fox jumps over lazy dog and then sleeps under a warm sun while birds sing".split()
    text = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 9))).capitalize() + "." for _ in range(lines)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return path


# ---- video: tiny videos, frame folders, UCF101 ---------------------------------------------------
def make_video(path: Path, frames: int = 12, width: int = 48, height: int = 32, fps: int = 10) -> Path:
    """A small MPEG-4 video whose frame i is a flat grey of level 10 * i."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            image = np.full((height, width, 3), 10 * i, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_frames(folder: Path, numbers, size: int = 20) -> Path:
    """JPEG frames ``000001.jpg, ...`` of ``size`` x ``size + 4`` pixels, frame n a flat grey 5 * n."""
    folder.mkdir(parents=True, exist_ok=True)
    for n in numbers:
        Image.fromarray(np.full((size, size + 4, 3), 5 * n, dtype=np.uint8)).save(folder / f"{n:06d}.jpg")
    return folder


def fake_ucf101(root: Path) -> Path:
    """The UCF101 layout: ``ucfTrainTestlist/`` (classInd, trainlist01, testlist01 as released, incl. the
    lists' ``HandStandPushups`` case) and three tiny videos under ``UCF-101/<class>/``."""
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 HandstandPushups\n")
    (lists / "trainlist01.txt").write_text(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nHandstandPushups/v_HandStandPushups_g08_c01.avi 2\n"
    )
    (lists / "testlist01.txt").write_text("HandstandPushups/v_HandStandPushups_g01_c01.avi\n")
    make_video(root / "UCF-101" / "ApplyEyeMakeup" / "v_ApplyEyeMakeup_g08_c01.avi", frames=6)
    make_video(root / "UCF-101" / "HandstandPushups" / "v_HandstandPushups_g08_c01.avi", frames=6)
    make_video(root / "UCF-101" / "HandstandPushups" / "v_HandstandPushups_g01_c01.avi", frames=9)
    return root


# ---- a local HTTP server (127.0.0.1 only) for download tests --------------------------------------
class StaticServer:
    """A static file server over a tmp folder that records the paths it was asked for. ``misbehave``
    makes it fail one file the ways networks do: ``"cut"`` announces the whole file's Content-Length
    but closes the connection halfway through the body; ``"stall"`` sends the headers and the first
    bytes, then nothing until the server stops (or 10 s)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[str] = []
        self.modes: Dict[str, str] = {}
        self.stopping = threading.Event()
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                mode = server.modes.get(self.path.lstrip("/"))
                if mode is None:
                    return super().do_GET()
                data = (server.root / self.path.lstrip("/")).read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2] if mode == "cut" else data[:1])
                self.wfile.flush()
                if mode == "stall":
                    server.stopping.wait(10)
                self.close_connection = True

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.running = True

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    def add(self, name: str, data: bytes) -> str:
        (self.root / name).write_bytes(data)
        return self.url(name)

    def misbehave(self, name: str, mode: Optional[str]) -> None:
        """Serve ``name`` the ``mode`` way (``"cut"``, ``"stall"``), or normally again (``None``)."""
        if mode is None:
            self.modes.pop(name, None)
        else:
            self.modes[name] = mode

    def stop(self) -> None:
        self.stopping.set()
        if self.running:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(timeout=5)
            self.running = False
