"""Readers of file-based proxy data: fortunes, label<TAB>text, CoNLL-2003, CIFAR-10 binary batches.

None of them unpickles anything.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import DataError

__all__ = ["FORTUNES_DIRS", "read_cifar10_bin", "read_conll2003", "read_fortunes", "read_text_file"]


FORTUNES_DIRS = ("/usr/share/games/fortunes",)


def _fortunes_dir(path: Path | None = None) -> Path | None:
    for d in ([path] if path else []) + [Path(p) for p in FORTUNES_DIRS]:
        if d is not None and d.is_dir() and any(d.glob("*.dat")):
            return d
    return None


def read_fortunes(path: Path | None = None) -> tuple[list[str], list[str]]:
    """Return (texts, category labels) of the fortune files (one category per file, ``%`` separators)."""
    root = _fortunes_dir(path)
    if root is None:
        raise DataError(f"proxy 'fortunes': no fortune files in {path or FORTUNES_DIRS[0]}; "
                        "install Debian's fortunes package (apt-get install fortunes)")
    texts: list[str] = []
    labels: list[str] = []
    for dat in sorted(root.glob("*.dat")):
        src = dat.with_suffix("")
        if not src.is_file():
            continue
        for chunk in src.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            chunk = " ".join(chunk.split())
            if chunk and chunk != "%":
                texts.append(chunk)
                labels.append(src.name)
    return texts, labels


def read_text_file(path: Path) -> tuple[list[str], list[str]]:
    """Return (texts, labels) from a ``label<TAB>text`` file, one sample per line."""
    if not path.is_file():
        raise DataError(f"proxy 'text-file:{path}': file not found; expected lines of label<TAB>text")
    texts, labels = [], []
    for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        label, sep, text = line.partition("\t")
        if not sep or not text.strip():
            raise DataError(f"{path}:{i}: expected label<TAB>text, got {line[:60]!r}")
        texts.append(text.strip())
        labels.append(label.strip())
    if len(set(labels)) < 2:
        raise DataError(f"{path}: needs at least 2 distinct labels, found {sorted(set(labels))}")
    return texts, labels


def read_conll2003(path: Path) -> tuple[list[str], list[str]]:
    """Return (words, NER tags) from a CoNLL-2003 column file (``word POS chunk NER``, blank lines between sentences)."""
    if not path.is_file():
        raise DataError(f"proxy 'conll2003:{path}': file not found; expected the CoNLL-2003 column format")
    words, tags = [], []
    for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        cols = line.split()
        if not cols or cols[0] == "-DOCSTART-":
            continue
        if len(cols) < 2:
            raise DataError(f"{path}:{i}: expected 'word POS chunk NER' columns, got {line[:60]!r}")
        words.append(cols[0])
        tags.append(cols[-1])
    if not words:
        raise DataError(f"{path}: no tokens found; expected the CoNLL-2003 column format")
    return words, tags


def read_cifar10_bin(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return images (n, 3, 32, 32) uint8 and labels (n,) from CIFAR-10 binary batches (a file or a folder)."""
    files = sorted(path.glob("data_batch_*.bin")) or sorted(path.glob("*.bin")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise DataError(f"proxy 'cifar10-bin:{path}': no CIFAR-10 binary batches (data_batch_*.bin) found")
    raw = np.concatenate([np.fromfile(f, dtype=np.uint8) for f in files])
    if raw.size % 3073:
        raise DataError(f"{path}: size {raw.size} is not a multiple of 3073 bytes (1 label + 3x32x32 pixels)")
    rec = raw.reshape(-1, 3073)
    return rec[:, 1:].reshape(-1, 3, 32, 32), rec[:, 0].astype(np.int64)


def _file_stamp(arg: str) -> str:
    p = Path(arg)
    files = sorted(p.rglob("*")) if p.is_dir() else [p]
    return ";".join(f"{f}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files if f.is_file())
