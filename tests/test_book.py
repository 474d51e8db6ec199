"""The smoke book builds with warnings as errors, every chapter holds its figures, and a real
browser, offline, loads every chapter with every image, no console error, its formulas typeset
and no request to another host."""

import functools
import http.server
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from conftest import SHARED_FIXTURES

# figures each notebook chapter draws (01_data: one more where the real MPII sample is present)
FIGURES = {"01_data": 5 + (SHARED_FIXTURES / "mpii-sample").is_dir(), "02_dp_primer": 4, "10_run": 2,
           "20_baselines": 1, "21_epsilon_sweep": 1, "22_clip_norm": 1, "23_strategies": 1, "24_per_joint": 1,
           "25_paper_vs_ours": 3, "26_cost": 2, "27_guarantees": 2, "28_regime": 5, "29_audit": 1}


def _chapters(toc: dict) -> list[str]:
    files = [toc["root"]]
    for part in toc.get("parts", [{"chapters": toc.get("chapters", [])}]):
        files += [c["file"] for c in part["chapters"]]
    return files


@pytest.fixture(scope="module")
def built_book(smoke_book):
    root, _ = smoke_book
    jb = Path(sys.executable).with_name("jupyter-book")
    out = subprocess.run([str(jb), "build", str(root), "-W", "-n", "--keep-going"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return root


def test_smoke_book_builds_with_its_figures(built_book):
    html = built_book / "_build" / "html"
    chapters = _chapters(yaml.safe_load((built_book / "_toc.yml").read_text()))
    assert set(FIGURES) <= {Path(c).name for c in chapters}
    for chapter in chapters:
        page = html / f"{chapter}.html"
        assert page.is_file(), chapter
        text = page.read_text()
        assert "{glue" not in text and "Traceback" not in text, f"{chapter}: unresolved glue or an error"
        images = re.findall(r'<img [^>]*src="([^"]+)"', text)
        images = [s for s in images if "colab-badge" not in s]
        expected = FIGURES.get(Path(chapter).name, 0)
        assert len(images) == expected, f"{chapter}: {len(images)} figures, expected {expected}"
        for src in images:
            if not src.startswith(("http", "data:")):
                assert (page.parent / src).resolve().is_file(), src


def test_findings_are_stated_from_the_results(built_book):
    text = (built_book / "_build" / "html" / "book" / "25_paper_vs_ours.html").read_text()
    for n in range(1, 5):
        assert f"Finding {n} (" in text


# waits for MathJax to typeset the page (where the page loads it) and for every image
_SETTLE = """const done = arguments[arguments.length - 1];
const typeset = (window.MathJax && MathJax.startup && MathJax.startup.promise) || Promise.resolve();
const images = [...document.images].map(i => i.complete ? 0 : new Promise(r => { i.onload = i.onerror = r; }));
Promise.all([typeset, ...images]).then(() => done(), () => done());"""
# the text a reader sees, outside code blocks (a code cell may hold a backslash and a bracket)
_PROSE = """const body = document.body.cloneNode(true);
body.querySelectorAll('pre, code, script, style, mjx-container, mjx-assistive-mml').forEach(e => e.remove());
return body.textContent;"""
RAW_TEX = ("\\(", "\\[", "$$")


def test_a_browser_offline_typesets_every_formula_and_asks_no_other_host(built_book):
    """Every chapter, in Chromium with every host but the local server unresolvable: every image
    loads, no console error, no request leaves 127.0.0.1 (Chrome's performance log holds every request
    the page made), no raw TeX delimiter is left in the prose, and a page with math holds typeset
    math (MathJax's mjx-container elements)."""
    driver_path, browser = shutil.which("chromedriver"), shutil.which("chromium") or shutil.which("chromium-browser")
    if not (driver_path and browser):
        pytest.skip("Chromium and chromedriver are not installed here (.ci/run installs Debian's chromium and "
                    "chromium-driver)")
    import json
    import os
    from urllib.parse import urlparse
    os.environ.setdefault("SE_OFFLINE", "true")   # never let Selenium Manager look for drivers online
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    html = built_book / "_build" / "html"
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(html))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--no-first-run",
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):   # the network off
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    chapters = _chapters(yaml.safe_load((built_book / "_toc.yml").read_text()))
    with_math = 0
    try:
        for chapter in chapters:
            page = f"{chapter}.html"
            driver.get(f"http://127.0.0.1:{server.server_port}/{page}")
            driver.set_script_timeout(60)
            driver.execute_async_script(_SETTLE)
            images = driver.execute_script("return [...document.images].map(i => [i.src, i.naturalWidth])")
            local = [(src, w) for src, w in images if src.startswith("http://127.0.0.1")]
            assert len(local) == len(images), f"{page}: images from elsewhere {[s for s, _ in images]}"
            broken = [src for src, w in local if w == 0]
            assert not broken, f"{page}: images that did not load: {broken}"
            errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            assert not errors, f"{page}: console errors {errors}"
            requests = [m["params"]["request"]["url"] for e in driver.get_log("performance")
                        for m in [json.loads(e["message"])["message"]] if m["method"] == "Network.requestWillBeSent"]
            outside = sorted({u for u in requests if urlparse(u).scheme in ("http", "https", "ws", "wss")
                              and urlparse(u).hostname != "127.0.0.1"})
            assert requests and not outside, f"{page}: requests to other hosts {outside}"
            prose = driver.execute_script(_PROSE)
            raw = [d for d in RAW_TEX if d in prose]
            assert not raw, f"{page}: raw TeX delimiters {raw} in the text: {prose[prose.find(raw[0]) - 80:][:200]!r}"
            if driver.execute_script("return document.querySelectorAll('.math').length"):
                with_math += 1
                typeset = driver.execute_script("return document.querySelectorAll('mjx-container').length")
                assert typeset, f"{page}: math on the page, none of it typeset"
    finally:
        driver.quit()
        server.shutdown()
    assert with_math >= 2, "the primer and the regime chapter hold math"


def test_pages_show_no_papermill_plumbing_and_no_machine_path(built_book):
    from conftest import REPO
    html = built_book / "_build" / "html"
    for page in html.rglob("*.html"):
        text = page.read_text()
        for needle in (str(built_book), str(REPO), "# Parameters", "injected-parameters", "/tmp/"):
            assert needle not in text, f"{page.relative_to(html)} shows {needle!r}"


def test_tables_have_no_bare_range_index(built_book):
    """A pandas table in a page starts its body rows with a meaningful label, never 0, 1, 2, ..."""
    html = built_book / "_build" / "html"
    for page in html.rglob("*.html"):
        for table in re.findall(r'<table[^>]*class="dataframe[^"]*"[^>]*>.*?</table>', page.read_text(), re.S):
            heads = re.findall(r"<tbody>\s*<tr>\s*<th[^>]*>([^<]*)</th>", table)
            assert not heads or heads[0].strip() != "0", f"{page.name}: a table with a bare 0, 1, 2 index"
