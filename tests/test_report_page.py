"""`crawl2model report`: the page for a run, checked in a real browser.

The run folder is the stages' report.json files copied from a real demo run
(trimmed, under tests/data/report/run/), the trainer's metrics.jsonl, and the
filter's histograms drawn here, so the test takes seconds instead of the
demo's minutes. Headless Chromium loads the page: every section must be in
the DOM and every image must decode.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from crawl2model.core.errors import InputError
from crawl2model.jobs.report import write_report

DATA = Path(__file__).parent / "data" / "report" / "run"
SECTIONS = ("funnel", "reasons", "dedup", "filter", "mix", "tokenizer", "training")
# On load, mark each image that decoded; --dump-dom then shows which did.
CHECK_IMAGES = """<script>
window.addEventListener("load", () => {
  for (const img of document.images) {
    if (img.complete && img.naturalWidth > 0) img.dataset.ok = "1";
  }
  document.body.dataset.loaded = "1";
});
</script>"""


def _chromium() -> str | None:
    return next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


def _browser(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    binary = _chromium()
    if binary is None:
        pytest.skip("no chromium binary (CI installs Debian's chromium)")
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=10000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)


def _svg(path: Path, title: str) -> None:
    import numpy as np

    from crawl2model.core.charts import Series, histogram_svg

    counts, edges = np.histogram([0.1, 0.2, 0.2, 0.5, 0.7], bins=5)
    path.write_text(histogram_svg(title, [Series("en (5)", counts, edges, "#1f77b4")], [(0.3, "#1f77b4")], False))


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(DATA, run)
    filtered = run / "filtered"
    for name in json.loads((filtered / "report.json").read_text())["plots"]:
        _svg(filtered / name, name)
    return run


def test_page_renders_every_section_and_image(run_dir: Path, tmp_path: Path) -> None:
    page = write_report(str(run_dir))
    assert page == run_dir / "report.html"
    text = page.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), "the page must not load anything external"
    assert "<script" not in text

    probe = tmp_path / "probe.html"
    probe.write_text(text.replace("</body>", CHECK_IMAGES + "</body>"))
    dom = _browser(tmp_path, "--dump-dom", probe.as_uri()).stdout
    assert 'data-loaded="1"' in dom, "the load handler never ran"
    for sid in SECTIONS:
        assert re.search(rf'<section id="{sid}"><h2>', dom), f"section {sid} missing"
    images = re.findall(r"<img\b[^>]*>", dom)
    # funnel x2, dedup, filter rules + 3 histograms, mix, vocab, loss, bits per byte, lr
    assert len(images) >= 12
    broken = [i[:120] for i in images if 'data-ok="1"' not in i]
    assert not broken, f"broken images: {broken}"
    assert "needs more than max_copies 4" in dom  # the remix fixture's unreachable target

    shot = tmp_path / "report.png"
    _browser(tmp_path, "--window-size=1200,4000", f"--screenshot={shot}", page.as_uri())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_stages_are_named_not_fatal(run_dir: Path, tmp_path: Path) -> None:
    for folder in ("filtered", "shards", "tokenizer", "tokens", "train"):
        shutil.rmtree(run_dir / folder)
    (run_dir / "deduped" / "report.json").rename(run_dir / "deduped" / "elsewhere.json")
    page = write_report(str(run_dir), str(tmp_path / "out" / "page.html")).read_text()
    for sid in SECTIONS:
        assert f'<section id="{sid}">' in page
    for stage in ("dedup", "filter", "remix", "train"):
        assert f"No {stage} stage in this run" in page
    assert "No tokenizer report in this run" in page


def test_text_is_escaped(run_dir: Path) -> None:
    report = run_dir / "documents" / "report.json"
    data = json.loads(report.read_text())
    data["removed_by_reason"] = {"<script>alert(1)</script>": 3}
    report.write_text(json.dumps(data))
    page = write_report(str(run_dir)).read_text()
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_library_raises_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no stage reports"):
        write_report(str(tmp_path))
    with pytest.raises(InputError, match="run folder not found"):
        write_report(str(tmp_path / "absent"))


@pytest.mark.parametrize("sub", ["", "absent"])
def test_cli_without_reports_exits_2_with_one_line(tmp_path: Path, sub: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "crawl2model", "report", str(tmp_path / sub)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("crawl2model report: error: "), proc.stderr
    assert not (tmp_path / "report.html").exists()
