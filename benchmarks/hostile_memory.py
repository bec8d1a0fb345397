"""Peak memory of loading hostile model folders and archives against the honest ones (issue 28).

Each case runs in a fresh process (``python -c``) that does one load or extraction and prints its
peak resident set (``ru_maxrss``); the hostile files are the issue's: a ``quantized`` entry whose
weight and scale broadcast to 60 GB, ``beam_size: 100000``, a 300 MB PAX header and GNU long name
in a tar.gz, a 513 MB zip bomb offered as a pretrained archive.

    PYTHONPATH=. taskset -c 0 python benchmarks/hostile_memory.py

prints a Markdown table (docs/security.md, "Peak memory").
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.test_files_decide import edit  # noqa: E402  (the hostile files, as the tests make them)
from tests.test_files_decide_archives import hostile_tar  # noqa: E402

RUN = """
import resource, sys
{setup}
try:
    {call}
    outcome = "loaded"
except Exception as e:
    outcome = type(e).__name__
print(outcome, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def peak(setup: str, call: str, home: Path) -> tuple[str, int]:
    """(what happened, peak RSS in MB) of one load in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-c", RUN.format(setup=setup, call=call)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "ZOO_HOME": str(home)},
        timeout=600,
    )
    outcome, mb = done.stdout.split()[-2:]
    return outcome, int(mb)


def copy(folder: Path, to: Path) -> Path:
    to.mkdir()
    for file in folder.iterdir():
        (to / file.name).write_bytes(file.read_bytes())
    return to


def main() -> None:
    from datamodules.tokenizers import train_translation_tokenizer
    from zoo.tasks.language_model import CharLanguageModel
    from zoo.tasks.seq2seq import Seq2Seq

    root = Path(tempfile.mkdtemp(prefix="zoo-hostile-"))
    torch.manual_seed(0)
    lm = CharLanguageModel(vocab=list("abcdefgh"), embedding_dim=64, hidden_size=256).save_pretrained(
        root / "lm", quantize="embeddings"
    )
    key = next(iter(json.loads((lm / "config.json").read_text())["quantized"]))
    quantized = edit(
        copy(lm, root / "lm-broadcast"),
        {key: torch.ones(1, 150_000, dtype=torch.int8), key + ".__int8_scale__": torch.ones(100_000)},
    )
    pieces = train_translation_tokenizer(["ein hund läuft", "a dog runs"] * 3, vocab_size=40, min_frequency=1).to_str()
    mt = Seq2Seq(pieces, pieces, embedding_dim=64, hidden_size=64, log_alignments=0).save_pretrained(root / "mt")
    beam = edit(copy(mt, root / "mt-beam"), init_args={"beam_size": 100_000})
    with tarfile.open(root / "lm.tar.gz", "w:gz") as tar:
        tar.add(lm, "lm")
    pax = hostile_tar(root / "pax.tar.gz", tarfile.XHDTYPE, 300 << 20)
    gnu = hostile_tar(root / "gnu.tar.gz", tarfile.GNUTYPE_LONGNAME, 300 << 20)
    with zipfile.ZipFile(root / "lm.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for file in lm.iterdir():
            zf.write(file, f"lm/{file.name}")
    with zipfile.ZipFile(root / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data.bin", bytes(513 << 20))

    load = "from zoo import load_pretrained"
    translate = "from zoo import load_pretrained"
    extract = "from datamodules.download import extract"
    locate = "from zoo.hub import locate"
    cases = [
        (
            "quantized folder",
            load,
            f"load_pretrained({str(lm)!r})",
            load,
            f"load_pretrained({str(quantized)!r})",
            "int8 weight (1, 150000) with scale (100000,): 60 GB if multiplied out",
        ),
        (
            "translator folder",
            translate,
            f"load_pretrained({str(mt)!r}).predict('ein hund')",
            translate,
            f"load_pretrained({str(beam)!r}).predict('ein hund')",
            "beam_size: 100000",
        ),
        (
            "tar.gz, max_bytes 10 MB",
            extract,
            f"extract({str(root / 'lm.tar.gz')!r}, {str(root / 'x1')!r}, max_bytes=10**7)",
            extract,
            f"extract({str(pax)!r}, {str(root / 'x2')!r}, max_bytes=10**7)",
            "300 MB PAX header",
        ),
        (
            "tar.gz",
            extract,
            f"extract({str(root / 'lm.tar.gz')!r}, {str(root / 'x3')!r})",
            extract,
            f"extract({str(gnu)!r}, {str(root / 'x4')!r})",
            "300 MB GNU long name",
        ),
        (
            "pretrained zip",
            locate,
            f"locate({str(root / 'lm.zip')!r})",
            locate,
            f"locate({str(root / 'bomb.zip')!r})",
            "513 MB of zeros, no config.json",
        ),
    ]
    print("| case | honest: outcome, peak MB | hostile | hostile: outcome, peak MB | ratio |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| (importing the zoo, nothing loaded) | {peak(load, 'pass', root / 'home0')[1]} | | | |")
    for name, setup, honest, hsetup, hostile, what in cases:
        (ok, ok_mb), (bad, bad_mb) = peak(setup, honest, root / "home1"), peak(hsetup, hostile, root / "home2")
        print(f"| {name} | {ok}, {ok_mb} | {what} | {bad}, {bad_mb} | {bad_mb / ok_mb:.2f} |")
    left = sum(f.stat().st_size for f in (root / "home2").rglob("*") if f.is_file())
    print(f"\nbytes left under the hostile runs' ZOO_HOME: {left:,}")
    print(json.dumps({"root": str(root)}))


if __name__ == "__main__":
    main()
