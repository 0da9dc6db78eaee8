"""Committed ledgers read back: their rows and setting cards, and the claims whose verdict depends on the machine.

A dated ledger ``paper_figs/ledger_<profile>_<date>.md`` is the ledger of one ``make all`` run, kept in the
repository; its ``Machine:`` line names the devices its runs trained on (the ``device_name`` of their results).
A claim is **machine-sensitive** when a committed ledger of the same profile from another machine, judging it
by the same criterion, reached another verdict: floats take other paths on another CPU model, and a run near
its threshold can land on the other side. Ledgers without a ``Machine:`` line are not compared.
"""

from __future__ import annotations

import re
from pathlib import Path

LEDGER_NAME = re.compile(r"ledger_(?P<profile>[a-z]+)_(?P<date>\d{4}-\d{2}-\d{2})\.md")
MACHINE = "Machine: "


def dated_ledgers(folder: Path, profile: str | None = None) -> list[Path]:
    """The committed ledgers in ``folder``, oldest first (by the date in their names)."""
    found = [(m["date"], p) for p in folder.glob("ledger_*_*.md")
             if (m := LEDGER_NAME.fullmatch(p.name)) and profile in (None, m["profile"])]
    return [p for _, p in sorted(found)]


def parse(text: str) -> tuple[dict[str, str], list[dict[str, str]], dict[str, str]]:
    """The header's ``Key: value`` lines (``Summary``, ``Machine``), the table's rows by column name and each
    claim's setting card (markdown)."""
    lines = text.splitlines()
    header = {m[1]: m[2] for line in lines if (m := re.fullmatch(r"(Summary|Machine): (.*)", line))}
    start = next(i for i, line in enumerate(lines) if line.startswith("| id |"))
    names = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(names, (c.strip() for c in line.strip().strip("|").split(" | ")))))
    cards, current = {}, None
    for line in lines:
        if line.startswith("### "):
            current = line[4:].split()[0]
            cards[current] = [line]
        elif line.startswith("## "):
            current = None
        elif current:
            cards[current].append(line)
    return header, rows, {claim: "\n".join(card).strip() for claim, card in cards.items()}


def machine_sensitive(rows: list[dict[str, str]], machine: str, committed: list[Path]) -> dict[str, list[str]]:
    """Per claim id, a note for each committed ledger from another machine whose verdict by the same criterion
    differs from ``rows``' (``partly on <machine> (<file>)``)."""
    notes: dict[str, list[str]] = {}
    for path in committed:
        try:
            header, theirs, _ = parse(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, StopIteration):
            continue
        other = header.get("Machine")
        if not other or other == machine:
            continue
        by_id = {row.get("id"): row for row in theirs}
        for row in rows:
            then = by_id.get(row["id"])
            if then and then.get("criterion") == row["criterion"] and then.get("verdict") != row["verdict"]:
                notes.setdefault(row["id"], []).append(f"{then['verdict'].strip('*')} on {other} ({path.name})")
    return notes
