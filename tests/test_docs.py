"""The documentation a newcomer reads: generated parts up to date, prose checked against the ledger, links that
resolve, a README that fits on a few screens."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from paper_figs import docs

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]


def test_every_generated_table_matches_the_data_it_comes_from(capsys):
    assert docs.main(["--check"]) == 0, capsys.readouterr().err


def test_a_reading_that_cites_a_number_its_ledger_block_lacks_is_caught():
    text = ("## R2: x\n\n<!-- ledger R2 -->\n- **ours**: relu 0.34 (0/3 learned, out/res 8.8x)\n<!-- /ledger R2 -->\n\n"
            "Plain ReLU reached 0.34 with an output 8.8x the stream, 30x at 128; ReLA-i 0.91, 95% and 1.5-entmax.\n")
    assert docs.unsupported_numbers(text) == {"R2": ["30", "0.91", "95"]}
    assert docs.unsupported_numbers(text.replace(", 30x at 128; ReLA-i 0.91, 95%", "")) == {}


def test_the_docs_read_the_newest_ledger_of_the_most_deciding_profile(tmp_path):
    for name in ("ledger_quick_2026-12-10.md", "ledger_deep_2026-12-01.md", "ledger_deep_2026-11-01.md",
                 "ledger_smoke_2026-12-11.md"):
        (tmp_path / name).write_text("x")
    assert docs.newest_ledger(tmp_path).name == "ledger_deep_2026-12-01.md"  # deep decides more than a newer quick
    (tmp_path / "ledger_deep_2026-12-01.md").unlink()
    (tmp_path / "ledger_deep_2026-11-01.md").unlink()
    assert docs.newest_ledger(tmp_path).name == "ledger_quick_2026-12-10.md"  # never a smoke ledger


def test_the_readme_table_has_one_row_per_claim_of_the_newest_ledger_with_its_verdict():
    summary, rows, _ = docs.parse_ledger(docs.newest_ledger().read_text(encoding="utf-8"))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split("<!-- results -->")[1].split("<!-- /results -->")[0]
    for row in rows:
        assert re.search(rf"^\| \[{row['id']}\]\(docs/results\.md#{row['id'].lower()}\) \|.*\| {re.escape(row['verdict'])} \|$",
                         table, re.M), row["id"]
    counts = re.findall(r"(\d+) (reproduced|partly|not reproduced|inconclusive|not run)", summary)
    verdicts = [row["verdict"].strip("*") for row in rows]
    assert counts and all(int(n) == verdicts.count(kind) for n, kind in counts)


def test_the_readme_is_a_front_door():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) < 250
    first_screen = "\n".join(lines[:40])
    for start in ("make test", "make all", "python -m experiments.run", "<!-- /quickstart -->", "\naccuracy "):
        assert start in first_screen, f"the quick start's {start.strip()!r} is not on the first screen"
    first_screens = "\n".join(lines[:60])
    assert "![" in first_screens and "reproduced" in first_screens  # a result figure and the verdicts up front
    body = "\n".join(line for line in lines if "ledger_" not in line)
    assert not re.search(r"\b20\d\d-\d\d-\d\d\b", body), "a date outside a ledger's file name"
    assert not re.search(r"`[0-9a-f]{7,40}`", body), "a commit id"


def _anchors(text: str) -> set[str]:
    """Explicit ``<a id>`` anchors and the GitHub slugs of the headings."""
    slugs = {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
             for heading in re.findall(r"^#+ (.*)$", text, re.M)}
    return slugs | set(re.findall(r'<a id="([^"]+)"></a>', text))


def test_every_local_link_and_image_of_the_docs_resolves():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            assert resolved.exists(), f"{page.relative_to(ROOT)} links to {target}"
            if anchor:
                assert anchor in _anchors(resolved.read_text(encoding="utf-8")), f"{page.name}: #{anchor}"


def test_one_python_version_a_license_and_a_citation():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    version = project["requires-python"].removeprefix(">=")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"Python {version}" in readme and f"requires-python >= {version}" in readme
    assert set(re.findall(r"Python (3\.\d+)", readme)) == {version}
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert citation["cff-version"] and citation["title"] and citation["authors"]
    assert citation["license"] == project["license"]["text"] == "MIT"


def test_the_own_model_example_of_the_extending_guide_runs():
    text = (ROOT / "docs" / "extending.md").read_text(encoding="utf-8")
    section = text.split("## Using a variant in your own model", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "docs/extending.md", "exec"), namespace)  # the guide's own code, as a reader would run it
    assert tuple(namespace["weights"].shape) == (2, 4, 10, 10)
    assert all(p.grad is not None for p in namespace["block"].attn.parameters())
