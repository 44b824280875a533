"""``report.html``: the report's Markdown pages as one self-contained HTML file.

Every figure is embedded as a base64 ``data:`` URI and the style sheet is inline, so
the file opens anywhere, offline, and can be mailed or attached as it is.
"""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import markdown

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 1200px; margin: 2em auto;
       padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #f3f3f3; }
tr:nth-child(even) td { background: #fafafa; }
img { max-width: 100%; height: auto; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 13px; }
code { font-size: 90%; }
section + section { border-top: 3px solid #ddd; margin-top: 3em; }
"""

#: Links between the Markdown pages -> anchors of the sections holding them here.
PAGE_ANCHORS = {"report.md": "#report", "details.md": "#details"}


def page(pages, folder, title):
    """The HTML text of ``pages`` (Markdown texts: the report, then its details page), with
    the figures they name read from ``folder`` and embedded."""
    sections = [f'<section id="{anchor[1:]}">\n{_body(text, Path(folder))}\n</section>'
                for text, anchor in zip(pages, PAGE_ANCHORS.values())]
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n"
            '<link rel="icon" href="data:,">\n'  # no favicon request: nothing leaves the file
            f"<style>{STYLE}</style>\n</head>\n<body>\n" + "\n".join(sections)
            + "\n</body>\n</html>\n")


def _body(text, folder):
    body = markdown.markdown(text, extensions=["tables", "fenced_code"], output_format="html")
    body = re.sub(r'<img alt="([^"]*)" src="([^":]+\.png)"',
                  lambda m: f'<img alt="{m[1]}" src="{_data_uri(folder / m[2])}"', body)
    for name, anchor in PAGE_ANCHORS.items():
        body = body.replace(f'href="{name}"', f'href="{anchor}"')
    return body


def _data_uri(file):
    return "data:image/png;base64," + base64.b64encode(file.read_bytes()).decode("ascii")
