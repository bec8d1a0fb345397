import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Tests never talk to W&B's servers and never prompt.
os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("WANDB_SILENT", "true")


#: The seed of the tests marked ``learning`` (they train and assert a quality threshold): 0 unless
#: ``ZOO_TEST_SEED`` says otherwise, so benchmarks/learning_margins.py can measure their spread.
LEARNING_SEED = int(os.environ.get("ZOO_TEST_SEED", "0"))


def learned(test: str, value: float) -> float:
    """A learning test's metric, returned as is and, when ``ZOO_LEARNING_LOG`` names a file, appended
    to it as a JSON line (with the seed and the CPU kernel) for benchmarks/learning_margins.py."""
    log = os.environ.get("ZOO_LEARNING_LOG")
    if log:
        import torch

        row = {"test": test, "seed": LEARNING_SEED, "kernel": torch.backends.cpu.get_cpu_capability(), "value": float(value)}
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
    return value


def shared_data(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent")
    return path


@pytest.fixture
def zoo_home_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$ZOO_HOME`` in tmp_path: downloads and default caches never land in the real ~/.cache/zoo."""
    home = tmp_path / "zoo_home"
    monkeypatch.setenv("ZOO_HOME", str(home))
    return home


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """A small real-looking text file (a few thousand characters of verse-like lines)."""
    import random

    rng = random.Random(0)
    words = "the quick brown fox jumps over lazy dog and then sleeps under a warm sun while birds sing".split()
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 9))).capitalize() + "." for _ in range(600)]
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
