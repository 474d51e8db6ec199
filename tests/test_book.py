"""The smoke book builds with warnings as errors, and every chapter holds its figures."""

import re
import subprocess
import sys
from pathlib import Path

import yaml

from conftest import SHARED_FIXTURES


def test_smoke_book_builds_with_its_figures(smoke_book):
    root, _ = smoke_book
    jb = Path(sys.executable).with_name("jupyter-book")
    out = subprocess.run([str(jb), "build", str(root), "-W", "-n", "--keep-going"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    html = root / "_build" / "html"
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    chapters = [toc["root"]] + [c["file"] for c in toc["chapters"]]
    for chapter in chapters:
        page = html / f"{chapter}.html"
        assert page.is_file(), chapter
        text = page.read_text()
        if chapter.endswith("01_data"):
            images = re.findall(r'<img [^>]*src="([^"]+)"', text)
            # gallery, public, private, domain statistics, PCKh example; + real MPII crops where present
            expected = 5 + (SHARED_FIXTURES / "mpii-sample").is_dir()
            assert len(images) == expected, f"{chapter}: {len(images)} figures, expected {expected}"
            for src in images:
                if not src.startswith(("http", "data:")):
                    assert (page.parent / src).resolve().is_file(), src
            assert "PCKh" in text and "{glue" not in text, "an unresolved glue reference"
