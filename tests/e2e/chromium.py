"""Headless Chromium (Debian's ``chromium`` and ``chromium-driver``) driven by Selenium, trusting the
local cloud's CA the way a person's browser would: through an NSS database, never by ignoring
certificate errors.

Chromium on Linux reads user-added roots from ``$HOME/.pki/nssdb``; each browser gets a fresh home
with a database that holds only the local CA (``certutil`` from ``libnss3-tools``), and a fresh
profile. Screenshots go to ``tmp/artifacts/<name>/`` in the checkout.

The browser's zone is pinned (``TZ``), and so is its date when a run pins one (``--today``): the pages
then see the same "today" as the service and the local cloud (``tests.kit.stack_now``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.kit import stack_now, stack_offset

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tmp" / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1440,1000",
)
# Run before any page script: JavaScript's clock (new Date(), Date.now()) reads the stack's clock. Dates
# built from explicit values are untouched, and Date() called as a function keeps the machine's time.
PINNED_DATE_SCRIPT = """
(() => {
  const offset = %d;
  const MachineDate = Date;
  class StackDate extends MachineDate {
    constructor(...args) { if (args.length === 0) { super(MachineDate.now() + offset); } else { super(...args); } }
    static now() { return MachineDate.now() + offset; }
  }
  globalThis.Date = StackDate;
})();
"""


def require_chromium() -> None:
    """Skip (with the reason) only when the browser is genuinely not installed here."""
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if shutil.which("certutil") is None:
        missing.append("certutil (libnss3-tools)")
    if missing:
        pytest.skip(f"headless Chromium is not installed ({', '.join(missing)}); scripts/bootstrap installs it as root")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed: run scripts/bootstrap")


def trusting_home(home: Path, ca_cert: Path) -> Path:
    """A home directory whose NSS database trusts ``ca_cert`` to identify web sites, and nothing else."""
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True, capture_output=True)
    subprocess.run(
        ["certutil", "-A", "-d", f"sql:{nssdb}", "-n", "Local Microsoft cloud CA", "-t", "C,,", "-i", str(ca_cert)],
        check=True,
        capture_output=True,
    )
    return home


class Shots:
    """Numbered screenshots of one test, under tmp/artifacts/<name>/."""

    def __init__(self, driver: Any, name: str) -> None:
        self.driver = driver
        # A run pinned to another date (--today) keeps its own screenshots (scripts/test runs January and July).
        pinned = abs(stack_offset()) > timedelta(seconds=1)
        self.folder = ARTIFACTS / (f"{name}-{stack_now().date()}" if pinned else name)
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self.count = 0

    def take(self, label: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{label}.png"
        self.driver.save_screenshot(str(path))
        print(f"screenshot: {path}")
        return path


@contextmanager
def chromium(tmp_path: Path, *, ca_cert: Path, time_zone: str = "America/New_York") -> Iterator[Any]:
    """A fresh headless Chromium (new profile, new NSS database) driven by Selenium."""
    require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    home = trusting_home(tmp_path / "home", ca_cert)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'profile'}")
    env = {**os.environ, "HOME": str(home), "TZ": time_zone}
    # Giving the driver's path keeps Selenium Manager from looking for (and downloading) one.
    service = Service(CHROMEDRIVER, env=env)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(60)
    offset = stack_offset()
    if abs(offset) > timedelta(seconds=1):
        script = PINNED_DATE_SCRIPT % (offset // timedelta(milliseconds=1))
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": script})
    try:
        yield driver
    finally:
        driver.quit()
