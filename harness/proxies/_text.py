"""Text proxies from files: fortunes (by category), your ``label<TAB>text`` file, CoNLL-2003 (NER tags).

The readers return ``(texts, labels)``; none of them unpickles anything.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..bodies import Body
from ..errors import DataError
from ._features import labelled_texts
from ._registry import ProxyRequest, ProxySpec, file_stamp, register_proxy

__all__ = ["FORTUNES_DIRS", "read_conll2003", "read_fortunes", "read_text_file"]

FORTUNES_DIRS = ("/usr/share/games/fortunes",)
"""Where Debian's fortunes package puts its files."""


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


def _numbered_lines(path: Path, proxy: str, expected: str) -> list[tuple[int, str]]:
    """Return (1-based line number, line) of a proxy's text file; raise DataError naming the format when missing."""
    if not path.is_file():
        raise DataError(f"proxy '{proxy}:{path}': file not found; expected {expected}")
    return list(enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1))


def read_text_file(path: Path) -> tuple[list[str], list[str]]:
    """Return (texts, labels) from a ``label<TAB>text`` file, one sample per line."""
    texts, labels = [], []
    for i, line in _numbered_lines(path, "text-file", "lines of label<TAB>text"):
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
    words, tags = [], []
    for i, line in _numbered_lines(path, "conll2003", "the CoNLL-2003 column format"):
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


def _build_fortunes(req: ProxyRequest, body: Body, arg: str) -> tuple[np.ndarray, np.ndarray]:
    texts, labels = read_fortunes(Path(arg) if arg else None)
    return labelled_texts(req, body, texts, labels)


def _build_text_file(req: ProxyRequest, body: Body, arg: str) -> tuple[np.ndarray, np.ndarray]:
    texts, labels = read_text_file(Path(arg))
    return labelled_texts(req, body, texts, labels)


def _build_conll(req: ProxyRequest, body: Body, arg: str) -> tuple[np.ndarray, np.ndarray]:
    words, tags = read_conll2003(Path(arg))
    return labelled_texts(req, body, words, tags)


register_proxy(ProxySpec("fortunes", _build_fortunes, "text", "English fortunes, labelled by category",
                         available=lambda: _fortunes_dir() is not None,
                         requires="Debian package fortunes (apt-get install fortunes)"))
register_proxy(ProxySpec("text-file", _build_text_file, "text", "your label<TAB>text file: text-file:PATH",
                         takes_path=True, stamp=file_stamp))
register_proxy(ProxySpec("conll2003", _build_conll, "text",
                         "CoNLL-2003 column file, NER tags as labels: conll2003:PATH", takes_path=True,
                         stamp=file_stamp))
