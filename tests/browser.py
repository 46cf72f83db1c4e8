"""Debian's Chromium, headless, driven by Playwright (pip's playwright, no browser download): load a page,
read what it rendered, keep a screenshot under test-artifacts/ (ignored by git).

Installed by `make test` (scripts/browser-ready.sh); without it the browser tests skip, except with CI=true.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from skips import unavailable

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("MLCI_TEST_ARTIFACTS") or ROOT / "test-artifacts")
WIDTH = 1280


def chromium_path() -> str | None:
    return os.environ.get("MLCI_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class Rendered:
    path: Path
    scroll_width: int
    images: list[dict]  # {"alt", "natural_width", "src_kind"}
    links: list[str]
    ids: set[str]
    text: str
    screenshot: Path

    def broken_links(self) -> list[str]:
        """Links whose target does not exist (relative files, #anchors on this page)."""
        broken = []
        for href in self.links:
            parsed = urlparse(href)
            if parsed.scheme in ("http", "https", "mailto"):
                continue
            if parsed.scheme == "file":
                target = Path(unquote(parsed.path))
            else:
                target = self.path.parent / unquote(parsed.path) if parsed.path else self.path
            if not target.is_file() or (parsed.fragment and target == self.path and parsed.fragment not in self.ids):
                broken.append(href)
        return broken


@pytest.fixture(scope="session")
def browser():
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if executable is None or sync_playwright is None:
        why = "no chromium (scripts/browser-ready.sh installs it)" if executable is None else "playwright is not installed"
        unavailable(why, "make test installs both (scripts/browser-ready.sh, the dev extra)")
    with sync_playwright() as driver:
        chrome = driver.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield chrome
        chrome.close()


def render(browser, path: Path, shot_name: str, *, width: int = WIDTH) -> Rendered:
    """Load the file at `width` px with scripts off (the pages need none) and read the rendered DOM."""
    context = browser.new_context(viewport={"width": width, "height": 900}, java_script_enabled=False)
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(path.resolve().as_uri(), wait_until="load")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / shot_name
    page.screenshot(path=str(screenshot), full_page=True)
    context.close()
    # Reading the DOM needs scripts: a second context evaluates, the page itself ran none.
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.goto(path.resolve().as_uri(), wait_until="load")
    facts = page.evaluate("""() => ({
        scroll: document.documentElement.scrollWidth,
        images: [...document.images].map(i => ({alt: i.alt, natural_width: i.naturalWidth,
                                                src_kind: i.src.split(':')[0]})),
        links: [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href')),
        ids: [...document.querySelectorAll('[id]')].map(e => e.id),
        text: document.body.innerText,
        scripts: document.scripts.length,
    })""")
    context.close()
    assert facts["scripts"] == 0, f"{path} carries JavaScript"
    outside = [url for url in requests if not url.startswith(("file:", "data:"))]
    assert not outside, f"{path} loads from outside: {outside}"
    return Rendered(path, facts["scroll"], facts["images"], facts["links"], set(facts["ids"]), facts["text"],
                    screenshot)
