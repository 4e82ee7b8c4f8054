"""`make bench-crash`: kill -9 the pipeline during the Trainer, re-run it,
and watch a live server throughout.

1. A first run on a slice of MovieLens (cached afterwards) pushes version 1;
   `recsys serve` serves it while a client sends requests non-stop.
2. A second run (more training steps, so the Trainer re-runs) is killed
   with SIGKILL a few seconds into the Trainer: no new version may appear,
   the server keeps answering.
3. The same run again: it completes (everything before the Trainer from
   cache: compare rerun_seconds with first_run_seconds), pushes, and the
   server swaps to the new version without a failed request.
Writes bench/results/crash.json. (A kill during the push itself is in the
test suite: test_a_push_killed_mid_way_leaves_nothing_a_server_would_load.)
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
RESULTS = os.path.join(REPO, "bench", "results")
SLICE_USERS = 200


def _pipeline(work: str, data: str, steps: int) -> subprocess.Popen:
  return subprocess.Popen(
      [sys.executable, "-m", "pipeline.cli", "pipeline", "run",
       "--data-dir", data, "--output-dir", os.path.join(work, "out"),
       "--text-encoder-dir", os.path.join(REPO, "data", "all-MiniLM-L6-v2"),
       "--train-steps", str(steps), "--max-history", "20",
       # The slice and few steps: gates as loose as the pipeline test's.
       "--min-recall-at-100", "0.05", "--max-rmse", "2.0",
       "--batch-size", "256"],
      cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _wait_for(path: str, text: str, proc, timeout: float = 900) -> bool:
  deadline = time.time() + timeout
  while time.time() < deadline and proc.poll() is None:
    if os.path.exists(path) and text in open(path, errors="replace").read():
      return True
    time.sleep(0.5)
  return False


def main(argv=None) -> int:
  # No options; --help says what it does instead of starting it.
  argparse.ArgumentParser(
      description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
  os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
  from pipeline import data as data_lib
  from serving import client as client_lib
  from serving import server as server_lib
  from trainer import contract
  work = tempfile.mkdtemp(prefix="crash-")
  data = data_lib.slice_users(
      data_lib.fetch_movielens(os.path.join(REPO, "data", "ml-100k")),
      os.path.join(work, "data"), SLICE_USERS)
  data_lib.fetch_text_encoder(os.path.join(REPO, "data", "all-MiniLM-L6-v2"))
  serving = os.path.join(work, "out", "serving", contract.MODEL_NAME)
  log = os.path.join(work, "out", "run.log")
  result = {}
  start = time.time()
  first = _pipeline(work, data, 60)
  result["first_run_status"] = first.wait()
  result["first_run_seconds"] = round(time.time() - start, 1)
  before = contract.versions(serving)
  print(f"first run: status {result['first_run_status']}, versions {before}",
        flush=True)

  server = server_lib.Server(contract.MODEL_NAME, serving, grpc_port=0,
                             rest_port=None, poll_seconds=0.5).start()
  client = client_lib.RecommenderClient(f"127.0.0.1:{server.grpc_port}")
  answers = {"ok": 0, "failed": 0, "versions": set()}
  stop = threading.Event()

  def load():
    while not stop.is_set():
      try:
        client.recommend([{"user_id": "1", "history": ["50"]}], k=5)
        answers["ok"] += 1
        answers["versions"].add(client.status()[0]["version"])
      except client_lib.ServingError:
        answers["failed"] += 1
      time.sleep(0.05)

  loader = threading.Thread(target=load)
  loader.start()
  try:
    with open(log, "a") as f:
      f.write("\n--- crash bench: second run ---\n")
    killed = _pipeline(work, data, 80)
    in_trainer = _wait_for(log, "Component RecommenderTrainer is running",
                           killed)
    time.sleep(5)
    result["still_running_at_kill"] = killed.poll() is None
    if result["still_running_at_kill"]:
      os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    result["killed_in_trainer"] = in_trainer
    result["versions_after_kill"] = contract.versions(serving)
    result["partial_dirs_after_kill"] = [
        n for n in os.listdir(serving) if not n.isdigit()]
    print(f"killed during the Trainer: versions "
          f"{result['versions_after_kill']}", flush=True)
    rerun_start = time.time()
    rerun = _pipeline(work, data, 80)
    result["rerun_status"] = rerun.wait()
    result["rerun_seconds"] = round(time.time() - rerun_start, 1)
    result["versions_after_rerun"] = contract.versions(serving)
    time.sleep(5)  # the server's poll picks the new version up
  finally:
    stop.set()
    loader.join()
    server.stop()
  result.update(requests_ok=answers["ok"], requests_failed=answers["failed"],
                versions_served=sorted(answers["versions"]))
  result["passed"] = bool(
      result["first_run_status"] == 0 and in_trainer and
      result["still_running_at_kill"] and
      result["versions_after_kill"] == before and
      not result["partial_dirs_after_kill"] and result["rerun_status"] == 0
      and len(result["versions_after_rerun"]) > len(before) and
      answers["failed"] == 0 and len(answers["versions"]) == 2)
  os.makedirs(RESULTS, exist_ok=True)
  with open(os.path.join(RESULTS, "crash.json"), "w") as f:
    json.dump(result, f, indent=1)
  print(json.dumps(result, indent=1))
  return 0 if result["passed"] else 1


if __name__ == "__main__":
  sys.exit(main())
