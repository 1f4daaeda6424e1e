"""Print the cross-study tables of docs/results/README.md from the studies' tests.csv files.

    python docs/results/summarize.py            # reads docs/results/<study>/tests.csv

Every number in the README's tables comes from here (standard library only), so a
rerun of the studies and their reports regenerates them.
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
STUDIES = ("proxy", "embedder-epochs", "freezing", "pretraining", "objective")


def _rows(study: str) -> list[dict[str, str]]:
    with open(ROOT / study / "tests.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _num(text: str, digits: int = 3) -> str:
    return f"{float(text):+.{digits}f}" if text not in ("", "nan") else "–"


def verdicts() -> list[str]:
    """Return markdown lines: one row per (study, hypothesis) that the study evaluates.

    ``tests.csv``'s ``hypothesis`` column holds the spec id; per-task verdicts come from the
    hypothesis's ``level`` rows. Older files (``test == "claim"``, id in ``claim``) are read too.
    """
    out = ["| study | hypothesis | verdict | per task |", "| --- | --- | --- | --- |"]
    for study in STUDIES:
        rows = _rows(study)
        for row in rows:
            legacy = row.get("test") == "claim"
            if row["test"] not in ("hypothesis", "claim") or row["variant"] != "summary" \
                    or row["verdict"] == "not evaluated":
                continue
            hid = row["claim"] if legacy else row["hypothesis"]
            if legacy:
                tasks = "; ".join(part for part in row["note"].split("; ")
                                  if re.fullmatch(r".+?: (supported|contradicted|inconclusive|not evaluated)", part))
            else:
                tasks = "; ".join(f"{r['task']}: {r['verdict']}" for r in rows
                                  if r["test"] == "hypothesis" and r["hypothesis"] == hid and r["variant"] == "level")
            out.append(f"| {study} | {hid} | **{row['verdict']}** | {tasks} |")
    return out


def contrasts() -> list[str]:
    """Return markdown lines: every paired contrast with its effect size and the seeds it would need."""
    out = ["| study | task | level vs reference | seeds | difference [95% CI] | Hedges' g | p (Holm) | "
           "seeds for 80% power |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for study in STUDIES:
        rows = _rows(study)
        power = {(r["task"], r["factor"], r["level"], r["reference"]): r["n_needed"]
                 for r in rows if r["test"] == "power"}
        for r in rows:
            if r["test"] != "contrast" or r.get("y", "test_score") != "test_score" or r["variant"] != "paired":
                continue  # the factor contrasts of the primary metric (secondary metrics have their own)
            needed = power.get((r["task"], r["factor"], r["level"], r["reference"]), "")
            out.append(f"| {study} | {r['task']} | {r['factor']} = {r['level']} vs {r['reference']} | {r['n']} | "
                       f"{_num(r['estimate'])} [{_num(r['ci_low'])}, {_num(r['ci_high'])}] | "
                       f"{_num(r['effect_size'], 2)} | {float(r['p_adj']):.3g} | {needed or '–'} |")
    return out


def baselines() -> list[str]:
    """Return markdown lines: per study and task, ORCA's best configuration against the best baseline."""
    out = ["| study | task | best ORCA configuration | best baseline | ORCA - baseline [95% CI] | seeds |",
           "| --- | --- | --- | --- | --- | --- |"]
    for study in STUDIES:
        for r in _rows(study):
            if r["test"] == "baseline" and r["variant"] == "best-vs-best":
                out.append(f"| {study} | {r['task']} | {r['level'].removeprefix('ORCA ')} | {r['reference']} | "
                           f"{_num(r['estimate'])} [{_num(r['ci_low'])}, {_num(r['ci_high'])}] | {r['n']} |")
    return out


def main() -> int:
    missing = [s for s in STUDIES if not (ROOT / s / "tests.csv").is_file()]
    if missing:
        print(f"missing tests.csv for {', '.join(missing)}: write the reports first (see README.md)", file=sys.stderr)
        return 2
    print("\n".join(verdicts()))
    print()
    print("\n".join(contrasts()))
    print()
    print("\n".join(baselines()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
