"""One offline page per profile: the ledger, a card per claim with its figures, runs and notebook, and a
gallery of trained attention maps.

    python -m paper_figs.report --profile quick --figures paper_figs/quick --theory paper_figs/theory \\
        --results results --out paper_figs/quick/index.html

Plain HTML and CSS written from Python (no script, nothing fetched): images
and links are relative to the page, and every run a card cites is copied
beside it (``runs/<key>.json``) so the page still shows its evidence when
its folder is moved. The verdicts are the ledger's: the same evidence
through the same judges (:mod:`paper_figs.claims`).
"""

from __future__ import annotations

import datetime
import html
import json
import os
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import synthetic
from experiments import cli, untrusted
from experiments.atomic import atomic_path, atomic_write_text, why
from experiments.cache import git_revision
from paper_figs import make_ledger, settings
from paper_figs._rows import value, variant
from paper_figs.claims import CLAIMS, VERDICTS

# What each claim rests on: the sweeps whose runs it reads, the figures it is read from, its notebook.
# (tests/test_report.py checks that every claim is here and every figure is one make builds.)
EVIDENCE: dict[str, dict[str, Any]] = {
    "R1": dict(sweeps=["heads"], figures=["heads.png"]),
    "R2": dict(sweeps=["stability"], figures=["stability.png"]),
    "R3": dict(sweeps=["alignment_aer"], figures=["alignment_aer.png"]),
    "R4": dict(sweeps=[], figures=["speed.png"]),
    "R5": dict(sweeps=["heads"], figures=["heads.png"]),
    "R6": dict(sweeps=["heads"], figures=["heads.png"]),
    "R7": dict(sweeps=["alignment_aer"], figures=["alignment_aer.png"]),
    "S1": dict(notebook="variance"),
    "S2": dict(sweeps=["memory"], figures=["memory.png"], notebook="variance"),
    "S3": dict(sweeps=["memory"], figures=["memory.png"]),
    "S3b": dict(sweeps=["memory"], figures=["memory.png"]),
    "S4": dict(sweeps=["stability"], figures=["stability.png"]),
    "S5": dict(sweeps=["long_context"], figures=["long_context.png"]),
    "S6": dict(sweeps=["memory"], figures=["memory.png"]),
    "D1": dict(sweeps=["mqar_pairs"], figures=["mqar_pairs.png"]),
    "D2": dict(notebook="separation"),
    "K1": dict(notebook="rank"),
    "K2": dict(sweeps=["mqar_width"], figures=["mqar_width.png"], notebook="capacity"),
    "K3": dict(notebook="rank_collapse"),
    "Q1": dict(notebook="gradients"),
    "H1": dict(notebook="injectivity"),
    "SCALE": dict(notebook="variance"),
    "B1": dict(notebook="fading"),
    "B2": dict(sweeps=["length_gen"], figures=["length_gen.png"]),
    "B3": dict(sweeps=["sinks"], figures=["sinks.png"]),
    "B4": dict(notebook="gradients"),
    "B5": dict(sweeps=["sinks"], figures=["sinks.png"]),
}
THEORY_FIGURES = {"variance": "variance_vs_n.png", "rank": "rank_vs_scale.png"}  # others: <notebook>.png
# The sweeps the gallery looks in, in order: the first whose seed-0 runs recorded maps, on its task with the most
# variants (one task's runs share one test set: one example, every variant's heads). The sinks sweep's runs show
# dormant rows and first-token sinks where their length allows maps (quick); the length sweep's, otherwise.
GALLERY_SWEEPS = ("sinks", "length_gen")
COLORS = {"reproduced": "#1a7f37", "partly": "#9a6700", "not reproduced": "#cf222e", "inconclusive": "#57606a",
          "not run": "#8c959f"}
STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #1f2328; }
table { border-collapse: collapse; width: 100%; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #d0d7de; padding: 4px 6px; text-align: left; vertical-align: top; font-size: 13px; }
th { background: #f6f8fa; }
.verdict { color: white; border-radius: 4px; padding: 1px 6px; white-space: nowrap; font-weight: 600; }
.card { border: 1px solid #d0d7de; border-radius: 6px; padding: 0.5em 1.2em 1em; margin: 1.5em 0; }
.card img, .gallery img { max-width: 100%; border: 1px solid #eaeef2; margin: 4px 0; }
.counts span { margin-right: 1.2em; }
code { background: #f6f8fa; padding: 1px 4px; border-radius: 3px; }
details { margin: 0.5em 0; }
"""


def esc(text: Any) -> str:
    return html.escape(str(text), quote=True)


def badge(verdict: str) -> str:
    return f'<span class="verdict" style="background:{COLORS.get(verdict, "#57606a")}">{esc(verdict)}</span>'


def rel(path: Path, page: Path) -> str:
    return Path(os.path.relpath(path, page.parent)).as_posix()


KEY = re.compile(r"[0-9a-f]{16,64}")


def result_file(results: Path, row: dict[str, str]) -> Path | None:
    """Where a CSV row's result is, or None for a row whose task or key could name a path elsewhere."""
    task, key = row.get("task.name", ""), row.get("key", "")
    if task not in synthetic.names() or not KEY.fullmatch(key):
        return None
    return results / task / f"{key[:16]}.json"


def copy_run(results: Path, row: dict[str, str], runs_dir: Path) -> str | None:
    """Copy a run's result beside the page (re-serialised: only a JSON object is copied); its file name.

    Only a plain file inside the results folder is read (:mod:`experiments.untrusted`): a result path that
    is a symlink, a FIFO or huge, or a row naming a path, is listed without a copy.
    """
    source = result_file(results, row)
    if source is None:
        return None
    try:
        data = untrusted.read_json(source, root=results)
    except untrusted.Untrusted:
        return None
    if not isinstance(data, dict):
        return None
    data.pop("curve", None)  # in the cache; the card needs the config and the final metrics
    if isinstance(data.get("final"), dict):
        data["final"].pop("probe_maps", None)  # drawn in the gallery
    target = runs_dir / source.name
    atomic_write_text(target, json.dumps(data, sort_keys=True) + "\n")
    return target.name


def run_table(rows: list[dict[str, str]], results: Path, page: Path) -> str:
    runs_dir = page.parent / "runs"
    lines = ["<table><tr><th>key</th><th>run</th><th>variant</th><th>seed</th><th>status</th><th>steps</th>"
             "<th>final accuracy</th><th>learned</th></tr>"]
    for row in rows:
        copied = copy_run(results, row, runs_dir)
        key = esc(row.get("key", "")[:16])
        cell = f'<a href="runs/{esc(copied)}"><code>{key}</code></a>' if copied else f"<code>{key}</code> (no result)"
        accuracy = value(row, "test_accuracy")
        lines.append(f"<tr><td>{cell}</td><td>{esc(row.get('run_id', ''))}</td><td>{esc(variant(row))}</td>"
                     f"<td>{esc(row.get('train.seed', ''))}</td><td>{esc(row.get('status', ''))}</td>"
                     f"<td>{esc(row.get('steps_run', ''))}</td><td>{accuracy:.3f}</td>"
                     f"<td>{'yes' if row.get('learned') == '1' else 'no'}</td></tr>")
    return "\n".join(lines) + "</table>"


def reproduce(claim_id: str, profile: str, figures: Path, notebooks: Path) -> str:
    evidence = EVIDENCE[claim_id]
    targets = [f"{figures.as_posix()}/{sweep}.csv" for sweep in evidence.get("sweeps", [])]
    if claim_id == "R4":
        targets.append(f"{figures.as_posix()}/speed.json")
    if evidence.get("notebook"):
        targets.append(f"{notebooks.as_posix()}/{evidence['notebook']}.html")
    return f"make {' '.join(targets)} PROFILE={profile}"


def card(claim, ours: str, verdict: str, evidence, args, page: Path) -> str:
    spec = EVIDENCE[claim.id]
    parts = [f'<div class="card" id="{esc(claim.id)}"><h3>{esc(claim.id)}: {esc(claim.claim)} {badge(verdict)}</h3>',
             "<table>",
             f"<tr><th>source</th><td>{esc(claim.source)}</td></tr>",
             f"<tr><th>the paper</th><td>{esc(claim.paper)}</td></tr>",
             f"<tr><th>ours</th><td>{esc(ours)}</td></tr>",
             f"<tr><th>criterion</th><td>{esc(claim.criterion)}</td></tr></table>"]
    setting_rows = settings.CARDS[claim.id].table(evidence) if claim.id in settings.CARDS else []
    if setting_rows:
        parts.append(f"<p>setting ({esc(settings.CARDS[claim.id].reads)}):</p><table class=\"setting\">"
                     "<tr><th>factor</th><th>paper</th><th>ours</th><th>why ours differs</th></tr>"
                     + "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in setting_rows)
                     + "</table>")
    for name in spec.get("figures", []):
        path = args.figures / name
        if path.exists():
            parts.append(f'<img src="{esc(rel(path, page))}" alt="{esc(name)}">')
        else:
            parts.append(f"<p>figure {esc(name)} not built</p>")
    if spec.get("notebook"):
        notebook = args.theory / f"{spec['notebook']}.html"
        figure = args.theory / THEORY_FIGURES.get(spec["notebook"], f"{spec['notebook']}.png")
        if figure.exists():
            parts.append(f'<img src="{esc(rel(figure, page))}" alt="{esc(figure.name)}">')
        if notebook.exists():
            parts.append(f'<p>derivation: <a href="{esc(rel(notebook, page))}">{esc(notebook.name)}</a></p>')
    rows = [r for sweep in spec.get("sweeps", []) for r in evidence.sweeps.get(sweep, [])]
    if rows:
        parts.append(f"<details><summary>{len(rows)} runs this card rests on</summary>"
                     f"{run_table(rows, args.results, page)}</details>")
    parts.append(f"<p>reproduce: <code>{esc(reproduce(claim.id, args.profile, args.figures, args.theory))}</code>"
                 "</p></div>")
    return "\n".join(parts)


MAX_GALLERY_CELLS = 64  # layers x heads of one variant's row of the gallery; more is no result this project wrote


def _is_maps(probe: Any) -> bool:
    """Whether a result's ``probe_maps`` is what :func:`experiments.metrics.first_example_maps` writes: tokens,
    and [layer][head] square matrices of numbers no longer than the tokens."""
    if not isinstance(probe, dict) or not isinstance(probe.get("tokens"), list) or not isinstance(
            probe.get("maps"), list) or not probe["maps"]:
        return False
    length = len(probe["tokens"])
    if not all(isinstance(layer, list) for layer in probe["maps"]):
        return False
    heads = [head for layer in probe["maps"] for head in layer]
    if not heads or len(heads) > MAX_GALLERY_CELLS:
        return False
    return all(isinstance(head, list) and len(head) == length and all(
        isinstance(row, list) and len(row) == length and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                             for x in row) for row in head) for head in heads)


def gallery_maps(evidence, args) -> dict[str, Any]:
    """Every variant's probe maps (seed 0) from the first gallery sweep that has them, on its task with the
    most variants; empty if none has."""
    for sweep in GALLERY_SWEEPS:
        seeded = [r for r in evidence.sweeps.get(sweep, []) if r.get("train.seed") == "0"]
        by_task: dict[str, dict[str, Any]] = {}
        for task in sorted({r.get("task.name") for r in seeded}, key=str):
            by_task[task] = _maps_of([r for r in seeded if r.get("task.name") == task], args)
        best = max(by_task.values(), key=len, default={})
        if best:
            return best
    return {}


def _maps_of(rows: list[dict[str, str]], args) -> dict[str, Any]:
    maps = {}
    for row in rows:
        source = result_file(args.results, row)
        try:
            probe = untrusted.read_json(source, root=args.results)["final"]["probe_maps"]
        except (untrusted.Untrusted, KeyError, TypeError):  # Untrusted also covers a row naming no result
            continue
        if not _is_maps(probe):
            print(f"warning: {source}: probe_maps is not [layer][head][query][key] numbers; left out of the gallery",
                  file=sys.stderr)
            continue
        maps[variant(row)] = probe
    return maps


def gallery(evidence, args, page: Path) -> str:
    """One PNG of every variant's heads on the first test example of a gallery sweep's runs (seed 0)."""
    maps = gallery_maps(evidence, args)
    if not maps:
        return (f"<p>No attention maps in the results of the gallery sweeps ({', '.join(GALLERY_SWEEPS)}): their "
                "runs record maps only up to length 64.</p>")
    import numpy as np

    from paper_figs._plot import plt  # the figures' matplotlib: names read from a results folder drawn as text

    names = sorted(maps)
    heads = max(len(layer) for probe in maps.values() for layer in probe["maps"])
    layers = max(len(probe["maps"]) for probe in maps.values())
    fig, axes = plt.subplots(len(names), layers * heads, figsize=(1.6 * layers * heads, 1.6 * len(names)),
                             squeeze=False)
    for i, name in enumerate(names):
        for layer, weights in enumerate(maps[name]["maps"]):
            for head, matrix in enumerate(weights):
                ax = axes[i][layer * heads + head]
                ax.imshow(np.abs(np.asarray(matrix, dtype=float)), cmap="viridis", vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
                if i == 0:
                    ax.set_title(f"layer {layer} head {head}", fontsize=7)
                if layer == head == 0:
                    ax.set_ylabel(name, fontsize=7)
    fig.suptitle("|attention weight| on one test example (rows: queries, columns: keys; 0 to 1)", fontsize=8)
    fig.tight_layout()
    out = page.parent / "attention_gallery.png"
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    same = len({tuple(p["tokens"]) for p in maps.values()}) == 1
    return (f'<img src="{esc(out.name)}" alt="attention gallery"><p>{len(names)} variants, seed 0, '
            f"{'the same' if same else 'not the same'} test example for all.</p>")


def header(evidence, judged, args) -> str:
    counts = Counter(verdict for _, _, verdict in judged)
    all_rows = [r for rows in evidence.sweeps.values() for r in rows]
    seconds = sum(value(r, "wall_seconds") for r in all_rows if r.get("wall_seconds"))
    devices = sorted({r.get("device_name", "") for r in all_rows if r.get("device_name")})
    revision = git_revision()
    return (f"<h1>Softmax vs linear vs ReLU attention: {esc(args.profile)} profile</h1>"
            f"<p>{datetime.date.today().isoformat()} &middot; revision <code>{esc((revision['revision'] or '?')[:12])}"
            f"{' (modified)' if revision['dirty'] else ''}</code> &middot; device {esc(', '.join(devices) or '?')}"
            f" &middot; {len(all_rows)} runs, {seconds / 60:.1f} min of training</p>"
            '<p class="counts">' + "".join(f"<span>{badge(v)} {counts.get(v, 0)}</span>" for v in VERDICTS)
            + "</p>")


def ledger_table(judged) -> str:
    lines = ["<table><tr><th>id</th><th>claim</th><th>ours</th><th>verdict</th></tr>"]
    for claim, ours, verdict in judged:
        lines.append(f'<tr class="claim"><td><a href="#{esc(claim.id)}">{esc(claim.id)}</a></td>'
                     f"<td>{esc(claim.claim)}</td><td>{esc(ours)}</td><td>{badge(verdict)}</td></tr>")
    return "\n".join(lines) + "</table>"


def render(args) -> str:
    evidence = make_ledger.gather(args.figures, args.theory / "verdicts", args.figures / "speed.json")
    judged = [(claim, *claim.verdict(evidence)) for claim in CLAIMS]
    page = args.out
    cards = "\n".join(card(claim, ours, verdict, evidence, args, page) for claim, ours, verdict in judged)
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Attention claims: '
            f"{esc(args.profile)}</title><style>{STYLE}</style></head><body>"
            f"{header(evidence, judged, args)}<h2>Ledger</h2>{ledger_table(judged)}"
            f'<h2>Attention maps</h2><div class="gallery">{gallery(evidence, args, page)}</div>'
            f"<h2>Claims</h2>{cards}</body></html>\n")


def main(argv: list[str] | None = None) -> int:
    parser = cli.Parser(prog="python -m paper_figs.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", required=True)
    parser.add_argument("--figures", type=Path, required=True, help="folder of the sweep CSVs and figures")
    parser.add_argument("--theory", type=Path, required=True, help="folder of the notebooks (HTML, PNG, verdicts/)")
    parser.add_argument("--results", type=Path, default=Path(os.environ.get("RESULTS_DIR", "results")))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.out.is_dir():
        parser.error(f"--out {args.out} is a folder; name the HTML file to write")
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        probe = args.out.parent / f".{args.out.name}.writable"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        parser.error(f"--out {args.out}: its folder cannot be written ({error.strerror})")
    try:  # the page, the runs it copies and the gallery: a full disk or a folder planted at one ends here
        atomic_write_text(args.out, render(args))
    except OSError as error:
        print(f"error: {why(error)}", file=sys.stderr)
        return 2
    size = sum(p.stat().st_size for p in args.out.parent.rglob("*") if p.is_file())
    print(f"wrote {args.out} ({size / 2**20:.1f} MiB in its folder)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
