"""`make bench-soak`: mixed traffic against `recsys serve` while a new
version is pushed every minute.

The server runs as its own process (`recsys serve --versions-to-keep 1`),
so its resident memory is its own; the load runs in another process, 8
threads by default, each with its own channel, sending `recommend`,
`search` and `rank` in turn. Every minute the pushed model is published
again as the next version (AtomicPusher's atomic publish): the server
loads it, swaps, and unloads the old one. Writes bench/results/soak.json
({"requests", "errors", "swaps", "minutes": [{"minute", "p50_ms",
"p99_ms", "rss_mb", "requests", "errors"}]}) and soak.png.
"""
import argparse
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
RESULTS = os.path.join(REPO, "bench", "results")
USERS = [{"user_id": str(u), "history": [str(u + 1), str(u + 7)]}
         for u in range(1, 300)]
QUERIES = ["space adventure", "romantic comedy", "war film", "Star Wars",
           "scary horror movie", "animated children's film"]


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def rss_mb(pid: int) -> float:
  with open(f"/proc/{pid}/status") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) / 1024
  return float("nan")


def _load(address: str, seconds: float, concurrency: int, queue) -> None:
  """Load generator process: puts (time, latency_ms, ok) tuples, then None."""
  os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
  from serving import client as client_lib
  end = time.time() + seconds
  records, lock = [], threading.Lock()

  def worker(i: int) -> None:
    client = client_lib.RecommenderClient(address, timeout=30)
    j = i
    while time.time() < end:
      kind = j % 3
      user = USERS[(j * 7 + i) % len(USERS)]
      start = time.perf_counter()
      ok = True
      try:
        if kind == 0:
          client.recommend([user], k=10, exclude_seen=True)
        elif kind == 1:
          client.search([QUERIES[j % len(QUERIES)]], k=10)
        else:
          from trainer import contract
          client.predict(contract.RANK, dict(
              contract.user_inputs([user]), item_ids=np.array(
                  [["1", "50", "181", "no-such-item"]], object)))
      except client_lib.ServingError as e:
        ok = False
        print(f"request failed: {e}", flush=True)
      with lock:
        records.append((time.time(), (time.perf_counter() - start) * 1000,
                        ok))
      j += concurrency

  threads = [threading.Thread(target=worker, args=(i,))
             for i in range(concurrency)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  queue.put(records)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--output-dir", default="outputs")
  parser.add_argument("--minutes", type=float, default=10.0)
  parser.add_argument("--concurrency", type=int, default=8)
  parser.add_argument("--push-every", type=float, default=60.0,
                      help="seconds between pushes")
  args = parser.parse_args(argv)
  from components.atomic_pusher.executor import publish_version
  from serving import client as client_lib
  from trainer import contract
  source = contract.latest_version_dir(
      os.path.join(args.output_dir, "serving", contract.MODEL_NAME))
  workdir = tempfile.mkdtemp(prefix="soak-")
  base = os.path.join(workdir, contract.MODEL_NAME)
  publish_version(source, base, 1)
  port = _free_port()
  server = subprocess.Popen(
      [sys.executable, "-m", "pipeline.cli", "serve", "--model-base-path",
       base, "--port", str(port), "--rest-api-port", str(_free_port()),
       "--versions-to-keep", "1", "--poll-seconds", "1"], cwd=REPO,
      stdout=subprocess.DEVNULL, stderr=open(os.path.join(workdir,
                                                          "server.log"), "w"))
  address = f"127.0.0.1:{port}"
  try:
    probe = client_lib.RecommenderClient(address, timeout=5)
    deadline = time.time() + 300
    while time.time() < deadline:
      try:
        if probe.status():
          break
      except client_lib.ServingError:
        time.sleep(1)
    seconds = args.minutes * 60
    queue = multiprocessing.get_context("spawn").Queue()
    load = multiprocessing.get_context("spawn").Process(
        target=_load, args=(address, seconds, args.concurrency, queue))
    start = time.time()
    load.start()
    memory, swaps, version = [], 0, 1
    next_push = start + args.push_every
    next_sample = start
    while time.time() < start + seconds:
      now = time.time()
      if now >= next_sample:
        memory.append((now - start, rss_mb(server.pid)))
        next_sample += 10
      if now >= next_push:
        version += 1
        publish_version(source, base, version)
        swaps += 1
        next_push += args.push_every
        print(f"  pushed version {version} at {now - start:.0f}s, server "
              f"RSS {rss_mb(server.pid):.0f} MB", flush=True)
      time.sleep(0.5)
    records = queue.get()
    load.join()
    states = probe.status()
  finally:
    server.terminate()
    server.wait(timeout=60)
  return report(records, memory, swaps, start, states, args)


def report(records, memory, swaps, start, states, args) -> int:
  minutes = []
  for m in range(int(np.ceil(args.minutes))):
    window = [(lat, ok) for t, lat, ok in records
              if m * 60 <= t - start < (m + 1) * 60]
    rss = [mb for t, mb in memory if m * 60 <= t < (m + 1) * 60]
    # rss_mb: at the minute's end, between swaps (what stays resident);
    # rss_peak_mb: the minute's peak, when a new version is loaded beside
    # the old one (TF Serving's availability-preserving swap does the same).
    if not window:
      continue
    latencies = np.array([lat for lat, _ in window])
    minutes.append({"minute": m + 1,
                    "p50_ms": round(float(np.percentile(latencies, 50)), 2),
                    "p99_ms": round(float(np.percentile(latencies, 99)), 2),
                    "rss_mb": round(float(rss[-1]), 1) if rss else None,
                    "rss_peak_mb": round(float(max(rss)), 1) if rss else None,
                    "requests": len(window),
                    "errors": sum(not ok for _, ok in window)})
  result = {"requests": len(records),
            "errors": sum(not ok for _, _, ok in records), "swaps": swaps,
            "concurrency": args.concurrency, "push_every_s": args.push_every,
            "final_versions": states, "minutes": minutes,
            "rss_samples": [[round(t, 1), round(mb, 1)] for t, mb in memory]}
  after_swap = [m["rss_mb"] for m in minutes
                if m["minute"] > args.push_every / 60 and m["rss_mb"]]
  if after_swap:
    result["rss_growth_after_first_swap"] = round(
        max(after_swap) / after_swap[0], 3)
    peaks = [m["rss_peak_mb"] for m in minutes
             if m["minute"] > args.push_every / 60 and m["rss_peak_mb"]]
    result["rss_peak_growth_after_first_swap"] = round(
        max(peaks) / after_swap[0], 3)
  os.makedirs(RESULTS, exist_ok=True)
  with open(os.path.join(RESULTS, "soak.json"), "w") as f:
    json.dump(result, f, indent=1)
  print(f"{'minute':>6} {'requests':>9} {'errors':>7} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'RSS MB':>8} {'peak MB':>8}")
  for m in minutes:
    print(f"{m['minute']:>6} {m['requests']:>9} {m['errors']:>7} "
          f"{m['p50_ms']:>8.1f} {m['p99_ms']:>8.1f} "
          f"{m['rss_mb'] or float('nan'):>8.0f} "
          f"{m['rss_peak_mb'] or float('nan'):>8.0f}")
  print(f"requests {result['requests']}, errors {result['errors']}, swaps "
        f"{swaps}, RSS growth after the first swap "
        f"{result.get('rss_growth_after_first_swap')} (peaks "
        f"{result.get('rss_peak_growth_after_first_swap')})")
  plot(minutes, os.path.join(RESULTS, "soak.png"))
  return 0 if result["errors"] == 0 else 1


def plot(minutes, path: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  x = [m["minute"] for m in minutes]
  fig, (lat, mem) = plt.subplots(2, 1, figsize=(7, 5.5), sharex=True)
  lat.plot(x, [m["p50_ms"] for m in minutes], marker="o", label="p50")
  lat.plot(x, [m["p99_ms"] for m in minutes], marker="o", label="p99")
  lat.set_ylabel("latency ms")
  lat.legend()
  lat.grid(alpha=0.3)
  mem.plot(x, [m["rss_mb"] for m in minutes], marker="o", color="tab:red",
           label="end of minute")
  mem.plot(x, [m["rss_peak_mb"] for m in minutes], marker=".",
           color="tab:orange", linestyle="--", label="peak (during a swap)")
  mem.set_ylabel("server RSS MB")
  mem.legend()
  mem.set_xlabel("minute (a new version pushed every minute)")
  mem.grid(alpha=0.3)
  fig.suptitle("Soak: mixed recommend/search/rank, concurrency 8")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  print(f"plot: {path}")


if __name__ == "__main__":
  sys.exit(main())
