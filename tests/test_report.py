"""The report page, read as a reader would: the smoke profile built by make into a temporary folder (two of
its sweeps and every notebook; CI builds all of it with `make all PROFILE=smoke`), opened in a real headless
Chromium (Debian's, through its chromedriver), every image loaded, every local link resolving, one ledger row
per claim; and the notebook pages make built beside it, which fetch nothing and draw their math as MathML."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from helpers import subprocess_env

from paper_figs import report
from paper_figs.claims import CLAIMS

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1300,1800")
NOTEBOOKS = sorted(p.stem for p in (ROOT / "theory").glob("[!_]*.py"))


def test_every_claim_has_its_evidence_and_every_figure_is_built_by_make():
    assert set(report.EVIDENCE) == {c.id for c in CLAIMS}
    makefile = (ROOT / "Makefile").read_text()
    sweeps = next(line for line in makefile.splitlines() if line.startswith("SWEEPS :=")).split(":=")[1].split()
    built = {f"{name}.png" for name in sweeps} | {"speed.png", "attention_gallery.png"}
    notebooks = {p.stem for p in (ROOT / "theory").glob("*.py") if not p.name.startswith("_")}
    for claim_id, spec in report.EVIDENCE.items():
        assert set(spec.get("figures", [])) <= built, claim_id
        assert set(spec.get("sweeps", [])) <= set(sweeps), claim_id
        assert spec.get("notebook") is None or spec["notebook"] in notebooks, claim_id


def _browser():
    """Debian's chromium and chromedriver, installed when missing (as root, with apt-get); None if that fails."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()) and shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "install", "-y", "-q", "chromium", "chromium-driver"],
                        ["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium", "chromium-driver"]):
            try:
                subprocess.run(command, env=env, capture_output=True, timeout=600)
            except (OSError, subprocess.TimeoutExpired):
                break
            if CHROMIUM.exists() and CHROMEDRIVER.exists():
                break
    return CHROMIUM.exists() and CHROMEDRIVER.exists()


def _chromium(tmp_path):
    """A headless Chromium whose every network request is logged (``_requests``); skips the test without one."""
    if not _browser():
        pytest.skip("Debian's chromium and chromium-driver are not installed and could not be installed here")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not look for a driver to download
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))


def _requests(driver, page: Path) -> list[str]:
    """The URLs ``page`` requested since the last call (the browser's own pages, chrome://, left out)."""
    events = [json.loads(entry["message"])["message"] for entry in driver.get_log("performance")]
    return [e["params"]["request"]["url"] for e in events
            if e["method"] == "Network.requestWillBeSent" and e["params"].get("documentURL") == page.as_uri()]


# The sweeps the page is built from here: the gallery's (sinks) and the analysis page's (mqar_pairs). The other
# claims' rows say "not run"; the whole smoke pipeline, every sweep, is `make all PROFILE=smoke` (CI runs it).
REPORT_SWEEPS = "mqar_pairs sinks"


def _make_smoke(out: Path, target: str) -> None:
    """``make <target> PROFILE=smoke`` into ``out`` (figures, notebooks, result cache), with this interpreter."""
    env = {**subprocess_env(), "RESULTS_DIR": str(out / "results")}
    stamp = out / "installed"  # this interpreter already has the project: make's install step has nothing to do
    stamp.touch()
    done = subprocess.run(["make", target, "PROFILE=smoke", f"PYTHON={sys.executable}", f"STAMP={stamp}",
                           f"FIG_DIR={out / 'smoke'}", f"SWEEPS={REPORT_SWEEPS}", "WORKERS=2"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]


@pytest.fixture(scope="module")
def smoke_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("report")


@pytest.fixture(scope="module")
def smoke_notebooks(smoke_folder):
    """``make notebooks PROFILE=smoke``: every theory notebook executed through a Jupyter kernel and rendered by
    the Makefile's rules."""
    _make_smoke(smoke_folder, "notebooks")
    return sorted((smoke_folder / "smoke" / "theory").glob("*.html"))


def test_every_notebook_ran_through_a_kernel_and_its_claims_hold(smoke_notebooks):
    """Each executed notebook (fast Monte Carlo): its checks printed and passed, its verdicts written, each
    resting on checks of its own, and the figures it drew."""
    assert [p.stem for p in smoke_notebooks] == NOTEBOOKS
    for page in smoke_notebooks:
        notebook = json.loads(page.with_suffix(".ipynb").read_text())
        outputs = "".join("".join(o.get("text", ""))  # a stream's text: one string, or a list of lines
                          for cell in notebook["cells"] if cell["cell_type"] == "code" for o in cell.get("outputs", []))
        assert "verdicts:" in outputs and "ok " in outputs and "Traceback" not in outputs, page.name
        verdicts = json.loads((page.parent / "verdicts" / f"{page.stem}.json").read_text())
        assert verdicts and all(v["holds"] and v["checks"] >= 1 for v in verdicts), (page.name, verdicts)
    assert len(list(smoke_notebooks[0].parent.glob("*.png"))) >= len(NOTEBOOKS), "the notebooks drew no figures"


@pytest.fixture(scope="module")
def smoke_report(smoke_folder, smoke_notebooks):
    """``make report PROFILE=smoke`` into the same folder: sweeps, ledger and page (the notebooks are built)."""
    _make_smoke(smoke_folder, "report")
    return smoke_folder / "smoke" / "index.html"


def test_the_smoke_report_is_small_self_contained_and_cites_its_runs(smoke_report):
    folder = smoke_report.parent
    text = smoke_report.read_text()
    assert "<script" not in text and "http://" not in text and "https://" not in text
    runs = list((folder / "runs").glob("*.json"))
    assert runs and all(f'href="runs/{p.name}"' in text for p in runs)
    assert sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) < 5 * 2**20
    assert text.count('<tr class="claim">') == len(CLAIMS)
    assert (folder / "attention_gallery.png").exists(), "the gallery sweep's runs record their attention maps"
    notebooks = sorted(p.stem for p in (ROOT / "theory").glob("[!_]*.py"))
    verdicts = sorted(p.stem for p in (folder / "theory" / "verdicts").glob("*.json"))
    assert verdicts == notebooks, "each notebook writes its verdicts beside the figures, wherever FIG_DIR is"


def test_the_analysis_page_reads_the_profiles_results_as_a_table(smoke_report, smoke_folder):
    _make_smoke(smoke_folder, "analysis")  # docs/analysis.py, executed on the smoke sweeps' results
    text = (smoke_folder / "smoke" / "analysis.html").read_text()
    assert "<script" not in text and not re.search(r"""(src|href)=["']?https?:""", text)  # fetches nothing
    assert "data:image/png" in text  # the figure, inline
    assert "test_accuracy" in text and "softmax" in text and "Traceback" not in text


def test_the_smoke_report_in_a_real_browser(smoke_report, tmp_path):
    driver = _chromium(tmp_path)
    try:
        driver.get(smoke_report.as_uri())
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth]);")
        links = driver.execute_script("return Array.from(document.links).map(a => a.href);")
        ids = set(driver.execute_script("return Array.from(document.querySelectorAll('[id]')).map(e => e.id);"))
        rows = driver.execute_script("return document.querySelectorAll('tr.claim').length;")
        assert driver.save_screenshot(str(tmp_path / "report.png"))
    finally:
        driver.quit()
    assert images and all(complete and width > 0 for _, complete, width in images), images
    assert rows == len(CLAIMS)
    for href in links:
        url = urlparse(href)
        assert url.scheme == "file", href  # nothing leaves the folder for the network
        target = Path(unquote(url.path))
        if target == smoke_report:
            assert url.fragment in ids, href
        else:
            assert target.is_file(), href
    assert (tmp_path / "report.png").stat().st_size > 20_000


class _Attributes(HTMLParser):
    """Every tag, every attribute of every tag, and the text of every <style>."""

    def __init__(self):
        super().__init__()
        self.tags, self.attributes, self.styles, self._in_style = [], [], [], False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += [(tag, name, value or "") for name, value in attrs]
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)


def test_the_notebook_pages_name_nothing_outside(smoke_notebooks):
    """Not a src, href or any other attribute pointing at a server (namespace names aside, never fetched), nor a
    stylesheet's url() or @import: the pages make writes open offline."""
    assert [p.stem for p in smoke_notebooks] == NOTEBOOKS
    for page in smoke_notebooks:
        parsed = _Attributes()
        parsed.feed(page.read_text())
        outside = [(tag, name, value) for tag, name, value in parsed.attributes
                   if not name.startswith("xmlns") and re.match(r"\s*([a-z][a-z0-9+.-]*:)?//", value, re.I)]
        assert not outside, (page.name, outside)
        styles = "".join(parsed.styles) + "".join(v for _, name, v in parsed.attributes if name == "style")
        assert not re.search(r"@import|url\(\s*['\"]?([a-z][a-z0-9+.-]*:)?//", styles, re.I), page.name
        assert "script" not in parsed.tags and "math" in parsed.tags, page.name


def test_the_notebook_pages_in_a_real_browser_fetch_nothing_and_draw_their_math(smoke_notebooks, tmp_path):
    driver = _chromium(tmp_path)
    drawn, requests = {}, {}
    try:
        for page in smoke_notebooks:
            driver.get(page.as_uri())
            drawn[page.stem] = driver.execute_script(
                "return Array.from(document.querySelectorAll('math')).map(m => [m instanceof MathMLElement, "
                "m.getBoundingClientRect().width, m.getBoundingClientRect().height, "
                "m.closest('.jp-RenderedLatex') !== null]);")
            requests[page.stem] = _requests(driver, page)
    finally:
        driver.quit()
    for page in smoke_notebooks:
        assert requests[page.stem] and all(url.startswith(("file:", "data:")) for url in requests[page.stem]), \
            (page.name, requests[page.stem])
        math = drawn[page.stem]
        written = re.findall(r"<(?:[a-z0-9]+:)?math[\s>]", page.read_text())  # ns0:math is no MathML to a browser
        assert len(math) == len(written) > 0, page.name
        assert all(is_mathml and width > 0 and height > 0 for is_mathml, width, height, _ in math), page.name
    assert any(from_sympy for *_, from_sympy in drawn["variance"]), "sympy's results are typeset too"


MALFORMED = {  # one bad input each: (folder, file name, content)
    "csv not UTF-8": ("sweeps", "heads.csv", b"\xff\xfe not text"),
    "csv with no columns": ("sweeps", "memory.csv", b""),
    "verdicts nested too deep": ("theory", "variance.json", b"[" * 100_000),
    "verdicts of the wrong shape": ("theory", "rank.json", b'{"claim": 1}'),
    "speed report of the wrong shape": ("sweeps", "speed.json", b'{"kernels": "none"}'),
}
GOOD_STABILITY = b"model.attention.name,task.seq_len,train.lr,status,learned\nrelu,abc,x,finished,1\n"  # non-numeric


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_report_input_is_left_out_with_one_warning_and_the_ledger_builds(tmp_path, capsys, case):
    from paper_figs import make_ledger

    folders = {"sweeps": tmp_path / "figs", "theory": tmp_path / "verdicts"}
    for folder in folders.values():
        folder.mkdir()
    (folders["sweeps"] / "stability.csv").write_bytes(GOOD_STABILITY)  # non-numeric cells read as missing
    where, name, content = MALFORMED[case]
    (folders[where] / name).write_bytes(content)
    evidence = make_ledger.gather(folders["sweeps"], folders["theory"], folders["sweeps"] / "speed.json")
    err = capsys.readouterr().err
    assert err.count("left out") == 1 and name in err and "Traceback" not in err, err
    assert set(evidence.sweeps) == {"stability"} and evidence.theory == [] and evidence.speed == []
    text = make_ledger.render(evidence, "quick")  # every claim still gets a row
    assert text.count("**not run**") + text.count("**inconclusive**") >= len(CLAIMS) - 1


@pytest.mark.parametrize("probe, valid", [
    ({"tokens": [1, 2], "maps": [[[[0.5, "x"], [0.1, 0.2]]]]}, False),  # a string among the weights
    ({"tokens": [1], "maps": [[[[0.5]]] * 100]}, False),  # more heads than a gallery draws
    ({"tokens": [1, 2], "maps": [[[[0.5, 0.0, 0.1], [0.1, 0.2, 0.3]]]]}, False),  # not square
    ({"tokens": "12", "maps": []}, False),
    ({"tokens": [1, 2], "maps": [[[[0.5, 0.0], [0.1, 0.2]]]]}, True),
])
def test_the_gallery_reads_probe_maps_only_of_the_shape_a_run_writes(probe, valid):
    from paper_figs import report

    assert report._is_maps(probe) is valid


def test_a_variant_name_with_dollars_is_drawn_as_text(tmp_path):
    from paper_figs import plot_stability

    rows = [{"model.attention.name": "$\\frac{x$", "task.seq_len": "32", "train.lr": "0.003", "status": "finished",
             "test_accuracy": "0.5", "learned": "0", "chance": "0.25", "learned_threshold": "0.625", "train.seed": s,
             "profile": "quick"} for s in "012"]
    plot_stability.plot(rows, str(tmp_path / "s.png"))
    assert (tmp_path / "s.png").stat().st_size > 1000


def test_a_report_into_a_folder_it_cannot_write_is_one_line(tmp_path):
    blocked = tmp_path / "a_file"
    blocked.write_text("")  # --out inside a file: no folder can be made there, whoever runs it (root included)
    done = subprocess.run([sys.executable, "-m", "paper_figs.report", "--profile", "smoke", "--figures",
                           str(tmp_path), "--theory", str(tmp_path), "--out", str(blocked / "index.html")],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 2 and "cannot be written" in done.stderr and "Traceback" not in done.stderr
