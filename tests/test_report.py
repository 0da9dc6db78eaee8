"""The report page, read as a reader would: the smoke profile built by make into a temporary folder, opened in
a real headless Chromium (Debian's, through its chromedriver), every image loaded, every local link
resolving, one ledger row per claim."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory):
    """``make report PROFILE=smoke`` into a temporary folder and result cache: sweeps, notebooks, ledger, page."""
    out = tmp_path_factory.mktemp("report")
    env = {**subprocess_env(), "RESULTS_DIR": str(out / "results")}
    stamp = out / "installed"  # this interpreter already has the project: make's install step has nothing to do
    stamp.touch()
    done = subprocess.run(["make", "report", "PROFILE=smoke", f"PYTHON={sys.executable}", f"STAMP={stamp}",
                           f"FIG_DIR={out / 'smoke'}", "WORKERS=2"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return out / "smoke" / "index.html"


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


def test_the_smoke_report_in_a_real_browser(smoke_report, tmp_path):
    if not _browser():
        pytest.skip("Debian's chromium and chromium-driver are not installed and could not be installed here")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not look for a driver to download
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
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


def test_malformed_report_inputs_are_left_out_with_one_warning_each(tmp_path, capsys):
    from paper_figs import make_ledger, report

    sweeps, theory = tmp_path / "figs", tmp_path / "verdicts"
    sweeps.mkdir()
    theory.mkdir()
    (sweeps / "heads.csv").write_bytes(b"\xff\xfe not text")
    (sweeps / "memory.csv").write_text("")  # no columns
    (sweeps / "stability.csv").write_text("model.attention.name,task.seq_len,train.lr,status,learned\n"
                                          "relu,abc,x,finished,1\n")  # non-numeric cells
    (theory / "variance.json").write_text("[" * 100_000)
    (theory / "rank.json").write_text('{"claim": 1}')
    speed = sweeps / "speed.json"
    speed.write_text('{"kernels": "none"}')
    evidence = make_ledger.gather(sweeps, theory, speed)
    err = capsys.readouterr().err
    assert err.count("left out") == 5 and "Traceback" not in err
    assert set(evidence.sweeps) == {"stability"} and evidence.theory == [] and evidence.speed == []
    text = make_ledger.render(evidence, "quick")  # every claim still gets a row
    assert text.count("**not run**") + text.count("**inconclusive**") >= len(CLAIMS) - 1
    assert not report._is_maps({"tokens": [1, 2], "maps": [[[[0.5, "x"], [0.1, 0.2]]]]})
    assert not report._is_maps({"tokens": [1], "maps": [[[[0.5]]] * 100]})
    assert report._is_maps({"tokens": [1, 2], "maps": [[[[0.5, 0.0], [0.1, 0.2]]]]})


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
