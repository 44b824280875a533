"""report.html in a real browser (Debian's Chromium through Playwright): the page loads,
every image decodes, and the console stays free of errors.

CI installs Chromium (see .ci/run); without it these tests fail with the install step,
they are never skipped.
"""
import shutil

import numpy as np

from fastmlp.harness import html, plots, report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
INSTALL = "apt-get install -y chromium (Debian), as .ci/run does"


def open_in_chromium(file):
    """``(image states, console errors)``: ``[(alt, complete, naturalWidth)]`` per image."""
    assert CHROMIUM, f"no chromium on PATH: {INSTALL}"
    from playwright.sync_api import sync_playwright

    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(file.as_uri(), wait_until="load")
            images = page.evaluate("Array.from(document.images).map("
                                   "i => [i.alt, i.complete, i.naturalWidth])")
            title = page.title()
        finally:
            browser.close()
    return images, errors, title


def figure_page(tmp_path, text):
    """``report.html`` for a Markdown page ``text`` with one real figure, ``curve.png``."""
    plots.batch_losses({"sgd": list(np.linspace(2, 0.1, 40))}, tmp_path / "curve.png", "t")
    file = tmp_path / "report.html"
    file.write_text(html.page([text, "# details\n\n[back](report.md)\n"], tmp_path, "test"))
    return file


def test_a_page_with_a_figure_and_a_table_loads_clean(tmp_path):
    file = figure_page(tmp_path, "# r\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n![curve](curve.png)\n"
                                 "\n[details](details.md)\n")
    (tmp_path / "curve.png").unlink()  # self-contained: the figure is inside the file
    text = file.read_text()
    assert "<table>" in text and 'href="#details"' in text and 'href="#report"' in text
    images, errors, title = open_in_chromium(file)
    assert title == "test" and errors == []
    assert images == [["curve", True, 720]]  # 8 inches at 90 dpi


def test_the_check_catches_a_broken_image_and_a_script_error(tmp_path):
    file = figure_page(tmp_path, "![curve](curve.png)\n")
    broken = file.read_text().replace("base64,", "base64,AAAA", 1)
    file.write_text(broken.replace("</body>", "<script>console.error('boom')</script></body>"))
    images, errors, _ = open_in_chromium(file)
    assert images[0][2] == 0 and "boom" in errors


def test_the_quick_report_html_opens_in_chromium(tmp_path):
    path = report.run(tmp_path / "r", quick=True, progress=False, only=["numpy"])
    file = path.parent / "report.html"
    markdown_images = sum(page.read_text().count("![") for page in
                          (path, path.parent / "details.md"))
    images, errors, title = open_in_chromium(file)
    assert title == "fastmlp report" and errors == []
    assert len(images) == markdown_images >= 10
    assert all(complete and width > 0 for _, complete, width in images), images
    assert "src=\"data:image/png;base64," in file.read_text() and ".png\"" not in \
        file.read_text()
