"""Write the claims ledger: one row per claim id of docs/claims.md, with a verdict computed from the results.

    python -m paper_figs.make_ledger --profile quick --sweeps paper_figs/quick \\
        --theory paper_figs/theory/verdicts --speed paper_figs/quick/speed.json --out paper_figs/CLAIMS.md

Reads every ``<sweep>.csv`` in ``--sweeps``, every notebook verdict file in
``--theory``, the speed benchmark's JSON report and the committed dated
ledgers in ``--committed`` (a claim whose verdict differs on another machine's
ledger is marked machine-sensitive); the criteria live in
``paper_figs/claims.py``. The output depends only on those inputs (no
timestamps), and is written atomically.
"""

from __future__ import annotations

import json
import math
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from experiments import cli
from experiments.atomic import atomic_write_text, why
from paper_figs import settings
from paper_figs._ledgers import MACHINE, dated_ledgers, machine_sensitive
from paper_figs._rows import read_rows
from paper_figs.claims import CLAIMS, LEDGER_SWEEPS, MIN_SEEDS, VERDICTS, Evidence


def _left_out(path: Path, problem: str) -> None:
    print(f"warning: {path}: {problem}; left out (the claims that need it read not run)", file=sys.stderr)


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ValueError(f"not JSON ({str(error)[:120]})") from None


def _number(value: Any) -> bool:
    try:
        return math.isfinite(float(value)) and float(value) > 0
    except (TypeError, ValueError):
        return False


def gather(sweeps: Path, theory: Path, speed: Path | None) -> Evidence:
    """The evidence in the three places; a file that does not parse, or rows of the wrong shape, are left out
    with one warning each, and the ledger is built from the rest."""
    evidence = Evidence()
    for path in sorted(sweeps.glob("*.csv")):
        if path.stem != "speed":
            try:
                evidence.sweeps[path.stem] = read_rows(path)
            except ValueError as error:
                print(f"warning: {error}; left out (the claims that need it read not run)", file=sys.stderr)
    for path in sorted(theory.glob("*.json")):
        try:
            records = _json(path)
        except ValueError as error:
            _left_out(path, str(error))
            continue
        if not isinstance(records, list) or not all(isinstance(r, dict) and isinstance(r.get("claim"), str) and
                                                    isinstance(r.get("holds"), bool) for r in records):
            _left_out(path, "not a list of verdict records (claim, holds, ours)")
            continue
        evidence.theory.extend({**r, "ours": str(r.get("ours", ""))} for r in records)
    if speed is not None and speed.exists():  # the benchmark's JSON report; rows that did not run are left out
        try:
            report = _json(speed)
            kernels, decoding = report["kernels"], report.get("decoding", [])
            if not isinstance(kernels, list) or not isinstance(decoding, list):
                raise TypeError("kernels and decoding must be lists of rows")
            evidence.speed = [row for row in kernels if isinstance(row, dict) and _number(row.get("seconds_ratio"))
                              and isinstance(row.get("label"), str)]
            evidence.decoding = [row for row in decoding if isinstance(row, dict) and _number(row.get("token_ratio"))
                                 and isinstance(row.get("variant"), str)]
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            _left_out(speed, f"not the speed benchmark's report ({type(error).__name__}: {str(error)[:120]})")
    return evidence


def learned_fraction(evidence: Evidence) -> tuple[int, int]:
    """(learned, total) over the trained runs the claims read (every sweep in ``LEDGER_SWEEPS``)."""
    judged = [r for name in LEDGER_SWEEPS for r in evidence.sweeps.get(name, [])]
    return sum(r.get("learned") == "1" for r in judged), len(judged)


def machine(evidence: Evidence) -> str:
    """The devices the judged runs trained on, from their results' ``device_name``."""
    names = sorted({r["device_name"] for name in LEDGER_SWEEPS for r in evidence.sweeps.get(name, [])
                    if r.get("device_name") not in (None, "", "cpu")})  # "cpu": results from before it was named
    return ", ".join(names) or "not recorded"


def render(evidence: Evidence, profile: str, committed: list[Path] = ()) -> str:
    judged = [(claim, *claim.verdict(evidence)) for claim in CLAIMS]
    counts = Counter(verdict for _, _, verdict in judged)
    here = machine(evidence)
    rows = [{"id": claim.id, "criterion": claim.criterion, "verdict": f"**{verdict}**"} for claim, _, verdict in judged]
    sensitive = machine_sensitive(rows, here, list(committed)) if here != "not recorded" else {}
    learned, total = learned_fraction(evidence)
    modes = sorted({r.get("mode", "?") for r in evidence.theory})
    lines = [
        "# Claims ledger",
        "",
        f"Profile: **{profile}** (experiments); theory notebooks in {', '.join(modes) or 'no'} mode. "
        "Verdicts are computed by `paper_figs/claims.py` from the sweep CSVs, the theory notebooks' checks and "
        "the speed benchmark; the criterion of each is in its row. Rebuilt by `make all`.",
        "",
        "Summary: " + ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS),
        "",
        MACHINE + here,
        "",
        "Machine-sensitive (the verdict differs on another machine's committed ledger, by the same criterion): "
        + (", ".join(sensitive) if sensitive else "none found" if here != "not recorded" else
           "not compared (the runs do not name their machine)") + ".",
        "",
        "Trained runs the claims read that learned their task (test accuracy at least halfway from chance to the "
        f"task's ceiling): **{learned} of {total}**" + (f" ({learned / total:.0%})" if total else "") + ". A claim whose runs did not "
        "learn is `inconclusive`, never reproduced or not; the recall sweeps put a token shift before attention "
        "(the same for every variant; `model.token_mixing` in the CSVs).",
        "",
        f"Statistics: a group of seeds learned when most of its seeds did; two groups differ only when every "
        f"leave-one-seed-out difference of their means has one sign and exceeds the noise (the larger of the "
        f"claim's margin and each group's spread once its seed farthest from the median is set aside), with at "
        f"least {MIN_SEEDS} seeds a group; so one failed seed can neither make a tie nor a win. A negative "
        f"verdict needs the claim's mechanism present in its probe; each trained claim's setting card (below "
        f"the table) gives the paper's setting against ours.",
        "",
        "| id | claim | source | paper | ours | criterion | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for claim, ours, verdict in judged:
        if claim.id in sensitive:
            ours += "; machine-sensitive: " + "; ".join(sensitive[claim.id])
        cells = [claim.id, claim.claim, claim.source, claim.paper, ours, claim.criterion, f"**{verdict}**"]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    lines += ["", *settings.render_markdown(evidence, [claim.id for claim in CLAIMS])]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = cli.Parser(prog="python -m paper_figs.make_ledger", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", required=True)
    parser.add_argument("--sweeps", type=Path, required=True, help="folder of the sweep CSVs")
    parser.add_argument("--theory", type=Path, required=True, help="folder of the notebooks' verdict files")
    parser.add_argument("--speed", type=Path, default=None, help="the speed benchmark's JSON report")
    parser.add_argument("--committed", type=Path, default=None,
                        help="folder of the committed dated ledgers to compare verdicts with (paper_figs)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.out.is_dir():
        parser.error(f"--out {args.out} is a folder; name the ledger file to write")
    committed = dated_ledgers(args.committed, args.profile) if args.committed else []
    text = render(gather(args.sweeps, args.theory, args.speed), args.profile, committed)
    try:
        atomic_write_text(args.out, text)
    except OSError as error:  # a full disk, a file where its folder belongs
        print(f"error: {why(error)}", file=sys.stderr)
        return 2
    print("\n".join(line for line in text.split("\n") if line.startswith(("Summary", "Machine", "Trained runs"))),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
