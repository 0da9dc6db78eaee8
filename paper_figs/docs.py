"""The generated parts of the documentation, rebuilt from the committed data they report.

    python -m paper_figs.docs            # rewrite them
    python -m paper_figs.docs --check    # exit 1 naming every file that is out of date (a test runs this)

Three things are generated, each from files in the repository, never from a run at hand:

- the results table of ``README.md`` (between its ``results`` markers) and the ledger blocks of
  ``docs/results.md``, from the newest dated ledger ``paper_figs/ledger_<profile>_<date>.md`` of the most
  deciding profile committed (full, then deep, then quick: :func:`newest_ledger`);
- ``benchmarks/README.md``, from the benchmark JSON files beside it (``experiments.bench_scaling.markdown``);
- the quick start's expected output in ``README.md`` (between its ``quickstart`` markers), from the
  learning-rate search's run of the same config (``paper_figs/lr_search/quick.csv``).

``docs/results.md`` also holds a hand-written reading of each claim after its block; ``--check`` fails
when a reading cites a number (``0.53``, ``8.8x``, ``30x``, ``85%``) that its claim's ledger row and setting
card do not contain, so the prose cannot drift from the ledger it reads.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from experiments.atomic import atomic_write_text, why
from experiments.bench_scaling import markdown as benchmark_markdown
from experiments.cache import result_path
from experiments.run import parse as parse_run
from experiments.runs import describe
from paper_figs._ledgers import dated_ledgers, parse
from paper_figs._rows import read_rows

ROOT = Path(__file__).resolve().parent.parent
README, RESULTS, BENCHMARKS = ROOT / "README.md", ROOT / "docs" / "results.md", ROOT / "benchmarks" / "README.md"
# a decimal (not 1.5-entmax), or a whole number of times or percent (30x, 85%): what the ledger measures
_NUMBER = re.compile(r"(?<![\w.])(?:\d+\.\d+(?![\d-])|\d+(?=[x%]))")
CUT = 110  # characters of a ledger cell the README's table shows before pointing to docs/results.md


DECIDING_PROFILES = ("full", "deep", "quick")  # the profile whose ledger the docs read first: the one that decides most


def newest_ledger(folder: Path = ROOT / "paper_figs") -> Path:
    """The committed ledger the docs read: the newest of the most deciding profile that has one (full, then
    deep, then quick; quick is the half-hour check, which may leave a claim inconclusive for lack of steps)."""
    for profile in DECIDING_PROFILES:
        dated = dated_ledgers(folder, profile)
        if dated:
            return dated[-1]
    raise FileNotFoundError(f"no dated ledger (ledger_<profile>_<date>.md, profile one of {DECIDING_PROFILES}) "
                            f"in {folder}")


def parse_ledger(text: str) -> tuple[str, list[dict[str, str]], dict[str, str]]:
    """The summary, the table's rows (by column name) and each claim's setting card (markdown)."""
    header, rows, cards = parse(text)
    return header["Summary"], rows, cards


def _short(cell: str, limit: int = CUT) -> str:
    if len(cell) <= limit:
        return cell
    cut = cell[:limit].rsplit(" ", 1)[0].rstrip(",;:(")
    return cut + " ..."


def _anchor(claim: str) -> str:
    return claim.lower()


def readme_table(ledger: Path) -> str:
    summary, rows, _ = parse_ledger(ledger.read_text(encoding="utf-8"))
    lines = [f"From [`{ledger.relative_to(ROOT)}`]({ledger.relative_to(ROOT)}) ({summary}); "
             "each row in full, with its criterion and setting card, in [docs/results.md](docs/results.md).", "",
             "| id | claim | paper | ours | verdict |", "|---|---|---|---|---|"]
    for row in rows:
        claim = row["id"]
        lines.append(f"| [{claim}](docs/results.md#{_anchor(claim)}) | {row['claim']} | {_short(row['paper'])} | "
                     f"{_short(row['ours'])} | {row['verdict']} |")
    return "\n".join(lines)


def ledger_block(row: dict[str, str], card: str | None) -> str:
    parts = [f'<a id="{_anchor(row["id"])}"></a>', "", f"- **verdict**: {row['verdict']}",
             f"- **source**: {row['source']}", f"- **paper**: {row['paper']}", f"- **ours**: {row['ours']}",
             f"- **criterion**: {row['criterion']}"]
    if card:
        parts += ["", "Setting card " + card.split("\n", 1)[0][4 + len(row["id"]):].strip() + ":",
                  "", card.split("\n", 1)[1].strip()]
    return "\n".join(parts)


def _replace_between(text: str, name: str, body: str) -> str:
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    if start not in text or end not in text:
        raise ValueError(f"markers {start} ... {end} missing")
    head, rest = text.split(start, 1)
    return head + start + "\n" + body + "\n" + end + rest.split(end, 1)[1]


def results_md(ledger: Path, current: str) -> str:
    """docs/results.md with every claim's ledger block rebuilt; a claim the file lacks gets a section."""
    _, rows, cards = parse_ledger(ledger.read_text(encoding="utf-8"))
    text = _replace_between(current, "ledger", f"From [`{ledger.relative_to(ROOT)}`](../{ledger.relative_to(ROOT)}).")
    for row in rows:
        name = f"ledger {row['id']}"
        if f"<!-- {name} -->" not in text:
            text = text.rstrip("\n") + f"\n\n## {row['id']}: {row['claim']}\n\n<!-- {name} -->\n<!-- /{name} -->\n"
        text = _replace_between(text, name, ledger_block(row, cards.get(row["id"])))
    return text


def unsupported_numbers(results: str) -> dict[str, list[str]]:
    """Per claim, the numbers its hand-written reading cites that its ledger block does not contain."""
    missing = {}
    for section in re.split(r"\n(?=## )", results):
        block = re.search(r"<!-- ledger (\S+) -->\n(.*?)<!-- /ledger \1 -->(.*)", section, re.S)
        if block:
            known = set(_NUMBER.findall(block[2]))
            extra = [n for n in _NUMBER.findall(block[3]) if n not in known]
            if extra:
                missing[block[1]] = extra
    return missing


def benchmarks_readme(folder: Path = ROOT / "benchmarks") -> str:
    intro = (folder / "README.in.md").read_text(encoding="utf-8").rstrip("\n")
    sections = []
    for path in sorted(folder.glob("*.json")):
        report = json.loads(path.read_text(encoding="utf-8"))
        table = benchmark_markdown(report).replace("\n# ", "\n## ").removeprefix("# ")
        sections.append(f"## {path.stem}: {table}\nData: [`{path.name}`]({path.name}).")
    return intro + "\n\n" + "\n\n".join(sections) + "\n"


QUICKSTART = ("--task", "mqar", "--attention", "softmax")  # the README's one experiment
LR_TABLE = ROOT / "paper_figs" / "lr_search" / "quick.csv"


def quickstart(table: Path = LR_TABLE) -> str:
    """What ``python -m experiments.run`` prints for :data:`QUICKSTART`, read from the row of ``table`` that ran
    the same config (the same cache key on a CPU); a command whose config the table lacks is an error."""
    _, config = parse_run([*QUICKSTART, "--dry-run"])
    config = config.on("cpu")
    row = next((r for r in read_rows(table) if r.get("key") == config.key()), None)  # ValueError naming the file
    if row is None:
        raise ValueError(f"{table.relative_to(ROOT)} has no run of {' '.join(QUICKSTART)} ({config.run_id()})")
    try:
        result = {"run_id": row["run_id"], "status": row["status"], "steps_run": int(row["steps_run"]),
                  "config": config.to_dict(), "wall_seconds": float(row["wall_seconds"]),
                  "device_name": row["device_name"],
                  "final": {"test_loss": float(row["test_loss"]), "test_accuracy": float(row["test_accuracy"])}}
    except (KeyError, ValueError) as error:  # a damaged table: a column missing, a cell not a number
        raise ValueError(f"{table}: the row of {config.run_id()} is not a finished run's ({error})") from None
    return "```\n" + describe(result, saved_at=str(result_path(config, "results"))) + "\n```"


def expected() -> dict[Path, str]:
    ledger = newest_ledger()
    readme = _replace_between(README.read_text(encoding="utf-8"), "quickstart", quickstart())
    return {README: _replace_between(readme, "results", readme_table(ledger)),
            RESULTS: results_md(ledger, RESULTS.read_text(encoding="utf-8")),
            BENCHMARKS: benchmarks_readme()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m paper_figs.docs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    try:
        return sync(args.check)
    except OSError as error:  # a folder or an unreadable file where a source or a generated file belongs
        print(f"error: {why(error)}", file=sys.stderr)
    except ValueError as error:  # a file that is not UTF-8, or lacks its markers
        print(f"error: {' '.join(str(error).split())[:300]}", file=sys.stderr)
    return 2


def sync(check: bool) -> int:
    """Rewrite (or with ``check``, only name) the generated files that are out of date; 1 if any is, or if a
    reading cites a number its ledger block lacks."""
    stale, wanted = [], expected()
    for path, text in wanted.items():
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            stale.append(path.relative_to(ROOT))
            if not check:
                atomic_write_text(path, text)
    unsupported = unsupported_numbers(wanted[RESULTS])
    for claim, numbers in unsupported.items():
        print(f"docs/results.md: the reading of {claim} cites {', '.join(numbers)}, not in its ledger row or card",
              file=sys.stderr)
    if check and stale:
        print("out of date (run python -m paper_figs.docs): " + ", ".join(map(str, stale)), file=sys.stderr)
    elif stale:
        print("rewrote " + ", ".join(map(str, stale)))
    return 1 if (check and stale) or unsupported else 0


if __name__ == "__main__":
    raise SystemExit(main())
