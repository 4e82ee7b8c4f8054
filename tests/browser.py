"""Headless Chromium (Debian's chromium + chromium-driver) for page tests.

`make test` installs both where it may (root with apt-get, as CI on a fresh
machine); elsewhere the browser tests skip and say why.
"""
import os
import shutil
import tempfile

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
# As the machine notes say: no sandbox as root, and nothing that reaches
# for the network (this machine has none beyond the package registries).
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1200,1100")


def chromium():
  """A selenium Chrome driver on Debian's Chromium; skips the test when the
  browser or its driver is not installed."""
  missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(p)]
  if missing:
    pytest.skip(f"{', '.join(missing)} not installed (apt-get install "
                "chromium chromium-driver; `make test` does it as root)")
  from selenium import webdriver
  from selenium.webdriver.chrome.service import Service
  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  profile = tempfile.mkdtemp(prefix="chromium-profile-")
  for flag in FLAGS + (f"--user-data-dir={profile}",):
    options.add_argument(flag)
  driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
  driver.profile_dir = profile
  return driver


def close(driver) -> None:
  driver.quit()
  shutil.rmtree(driver.profile_dir, ignore_errors=True)
