"""`make screenshots`: the README's pictures of the explorer page and of the
latest run report, taken in headless Chromium from the pushed model and the
ML Metadata store of `outputs/` (run `make demo` first).

Writes bench/results/screenshot_explorer.png and screenshot_report.png.
"""
import argparse
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

import browser  # noqa: E402  (tests/browser.py: the same Chromium set-up)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from pipeline import configs  # noqa: E402
from pipeline import report  # noqa: E402
from serving import explorer  # noqa: E402
from serving import server as server_lib  # noqa: E402
from trainer import contract  # noqa: E402

RESULTS = os.path.join(os.path.dirname(__file__), "results")


def _wait(driver, css):
  WebDriverWait(driver, 60).until(
      lambda d: d.find_elements(By.CSS_SELECTOR, css))


def explorer_page(driver, config: configs.PipelineConfig, user: str,
                  query: str) -> str:
  server = server_lib.Server(
      contract.MODEL_NAME, config.serving_model_dir, grpc_port=0,
      rest_port=0, poll_seconds=3600,
      explorer_data=explorer.ExplorerData(config.data_dir)).start()
  try:
    driver.get(f"http://127.0.0.1:{server.rest_port}/#user={user}")
    _wait(driver, "#recommendations li")
    driver.find_element(By.ID, "query").send_keys(query)
    driver.find_element(By.ID, "personal").click()
    driver.find_element(By.CSS_SELECTOR, "#search-form button").click()
    _wait(driver, "#results li")
    driver.find_elements(By.CSS_SELECTOR, "#recommendations button.item")[
        0].click()
    _wait(driver, "#similar li")
    driver.set_window_size(1200, 1500)
    path = os.path.join(RESULTS, "screenshot_explorer.png")
    driver.save_screenshot(path)
    return path
  finally:
    server.stop()


def report_page(driver, config: configs.PipelineConfig) -> str:
  page = report.write(config.output_dir, config.metadata_path)
  driver.set_window_size(1100, 3800)
  driver.get("file://" + os.path.abspath(page))
  path = os.path.join(RESULTS, "screenshot_report.png")
  driver.save_screenshot(path)
  return path


def main(argv=None) -> int:
  # No options; --help says what it does instead of starting it.
  argparse.ArgumentParser(
      description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
  config = configs.PipelineConfig()
  config = configs.PipelineConfig(
      output_dir=os.path.abspath(config.output_dir),
      data_dir=os.path.abspath(config.data_dir))
  os.makedirs(RESULTS, exist_ok=True)
  driver = browser.chromium()
  try:
    print(explorer_page(driver, config, user="1", query="space adventure"))
    print(report_page(driver, config))
  finally:
    browser.close(driver)
  return 0


if __name__ == "__main__":
  sys.exit(main())
