"""Screenshot an HTML file (a taskgraph report) in headless Chromium, and fail on console errors.

    python scripts/screenshot.py docs/figures/quickstart-report.html docs/figures/quickstart-report.png

Uses Playwright with the system Chromium (Debian: apt-get install -y chromium); no browser download.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def main(html: str, png: str, width: int = 1280) -> int:
    from playwright.sync_api import sync_playwright

    browser_path = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
                        None)
    if browser_path is None:
        print("no Chromium found: apt-get install -y chromium", file=sys.stderr)
        return 2
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=browser_path, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(Path(html).resolve().as_uri(), wait_until="load")
        page.screenshot(path=png, full_page=True)
        browser.close()
    for error in errors:
        print(f"console error: {error}", file=sys.stderr)
    print(f"wrote {png}" + (f" ({len(errors)} console errors)" if errors else ""))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
