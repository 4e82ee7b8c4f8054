"""`make bench-serving`: retrieval, gRPC end-to-end and hot-swap benchmarks.

Needs a pushed model (run `make demo` first). Writes
bench/results/serving.json and serving_retrieval.png / serving_grpc.png.

1. retrieval: ScaNN vs TF brute force vs exact NumPy at 10K/100K/1M
   candidates (the real catalogue's vectors plus synthetic ones drawn from a
   Gaussian fitted to them), top-100; single-query p50/p99 on one thread,
   batch throughput, recall@100 against exact.
2. grpc: `recommend` top-10 through the official PredictionService stub
   against `recsys serve`, at concurrency 1, 8, 32.
3. explain_cost: `recommend_unseen` (with reasons) against
   `recommend_unseen_fast` (without), in-process and over gRPC.
4. hot_swap: a new version is pushed while the load runs.
5. item_item_cost: the model re-exported with the item-item term on and
   off, `recommend_unseen(_fast)` in-process at batch 1 and 64.

`--only-explain-cost` runs 3 alone and updates only its part of the JSON;
`--only-item-item-cost` 5.
"""
import argparse
import functools
import gc
import json
import os
import sys
import threading
import time
from concurrent import futures

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_recommenders as tfrs  # noqa: E402

from components.atomic_pusher.executor import publish_version  # noqa: E402
from serving import batching  # noqa: E402
from serving import client as client_lib  # noqa: E402
from serving import local_model  # noqa: E402
from serving import server as server_lib  # noqa: E402
from trainer import contract
from trainer import index  # noqa: E402
from trainer import scann_tuning  # noqa: E402

BATCHING_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                             "serving", "deploy", "batching_parameters.txt")
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
K = 100
MIN_RECALL = scann_tuning.MIN_RECALL
LEAVES_PER_SQRT_N = 2
# Settings this close to the fastest p50 count as equally fast: one
# setting's p50 moves more than that between runs.
NEAR_FASTEST = 1.1
SCANN_SEARCH_SHARES = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
# 2000 and 4000: with the current model's vectors no setting reached the
# recall bar at 1M candidates with 1000 (0.89 at best, every leaf searched).
SCANN_REORDERING = (250, 1000, 2000, 4000)


def synthetic_catalogue(real: np.ndarray, n: int, rng) -> np.ndarray:
  extra = index.item_like_vectors(real, max(n - len(real), 0), rng)
  out = np.concatenate([real, extra])[:n].astype(np.float32)
  return out / np.linalg.norm(out, axis=1, keepdims=True)


def time_single(fn, queries, repeats):
  lat = []
  for q in queries[:repeats]:
    start = time.perf_counter()
    fn(q[None, :])
    lat.append((time.perf_counter() - start) * 1000)
  return float(np.percentile(lat, 50)), float(np.percentile(lat, 99))


def memory_bandwidth_gbps() -> float:
  a = np.ones(64 << 20, np.float32)
  start = time.perf_counter()
  for _ in range(5):
    a.sum()
  return 5 * a.nbytes / (time.perf_counter() - start) / 1e9


def _scann_settings(n: int):
  """The sweep: leaves ~ 2 sqrt(n); share of leaves searched x reordering."""
  leaves = max(2, round(LEAVES_PER_SQRT_N * np.sqrt(n)))
  for share in SCANN_SEARCH_SHARES:
    for reordering in SCANN_REORDERING:
      yield dict(num_leaves=leaves,
                 num_leaves_to_search=max(1, int(np.ceil(leaves * share))),
                 reordering=reordering, leaves_to_search_share=share)


def _scann_method(cands, ids, k, setting):
  """(query function, its row's parameters) of a ScaNN index built with
  `setting` over `cands`."""
  start = time.time()
  layer = tfrs.layers.factorized_top_k.ScaNN(
      k=k, num_leaves=setting["num_leaves"],
      num_leaves_to_search=setting["num_leaves_to_search"],
      num_reordering_candidates=max(setting["reordering"], k))
  layer.index(tf.constant(cands), ids)
  return (lambda q: layer(tf.constant(q))[1].numpy(),
          dict(setting, build_seconds=round(time.time() - start, 1)))


def bench_retrieval(real: np.ndarray, sizes, queries_n: int, repeats: int):
  rng = np.random.default_rng(0)
  bandwidth = memory_bandwidth_gbps()
  rows = []
  for n in sizes:
    cands = synthetic_catalogue(real, n, rng)
    queries = synthetic_catalogue(real, queries_n, rng)[::-1].copy()
    k = min(K, n)
    truth = index.exact_top_k(queries, cands, k)
    ids = tf.constant(np.arange(n).astype(str))
    brute = tfrs.layers.factorized_top_k.BruteForce(k=k)
    brute.index(tf.constant(cands), ids)
    floor_ms = cands.nbytes / (bandwidth * 1e9) * 1000
    methods = [
        ("numpy_exact", lambda: (lambda q: index.exact_top_k(q, cands, k), {})),
        ("brute_force",
         lambda: (lambda q: brute(tf.constant(q))[1].numpy(), {})),
    ] + [("scann", functools.partial(_scann_method, cands, ids, k, setting))
         for setting in _scann_settings(n)]
    for name, make in methods:
      # Built one at a time and dropped after: the sweep's ScaNN indexes of
      # 1M candidates do not fit in memory together.
      fn, params = make()
      fn(queries[:1])  # trace / warm
      p50, p99 = time_single(fn, queries, repeats)
      start = time.perf_counter()
      found = np.concatenate([fn(queries[i:i + 100])
                              for i in range(0, len(queries), 100)])
      qps = len(queries) / (time.perf_counter() - start)
      if found.dtype.kind not in "iu":  # TF returns identifiers as bytes
        found = np.vectorize(int)(found)
      recall = index.recall_at_k(found, truth, k)
      row = dict(method=name, candidates=n, p50_ms=round(p50, 3),
                 p99_ms=round(p99, 3), qps=round(qps, 1),
                 **{"recall@100": round(recall, 4)},
                 scan_floor_ms=round(floor_ms, 3), **params)
      rows.append(row)
      print(f"{name:<12} n={n:>8} p50 {p50:8.2f} ms  p99 {p99:8.2f} ms  "
            f"{qps:9.1f} q/s  recall@100 {recall:.3f}  "
            f"{json.dumps(params) if params else ''}", flush=True)
      del fn
      gc.collect()
    choose_scann(rows, n)
  return rows, bandwidth


def choose_scann(rows, n: int) -> None:
  """Marks the ScaNN row chosen at `n` candidates: among the settings with
  recall@100 >= MIN_RECALL and a p50 within NEAR_FASTEST of the fastest of
  them, the one with the highest recall. The fastest alone won by timing
  noise and left little recall to spare: a setting with 0.988 on the bench
  matched exact search's top 10 on only 80% for the test fixture's
  briefly trained model."""
  scann = [r for r in rows if r["method"] == "scann" and r["candidates"] == n]
  for r in scann:
    r.pop("chosen", None)
  good = [r for r in scann if r["recall@100"] >= MIN_RECALL]
  if not good:
    print(f"WARNING: no ScaNN setting reached recall@100 {MIN_RECALL} at "
          f"{n} candidates: scann_tuning.json gets no row for this size "
          f"and the Trainer will use the nearest other size's", flush=True)
    return
  fastest = min(r["p50_ms"] for r in good)
  near = [r for r in good if r["p50_ms"] <= fastest * NEAR_FASTEST]
  max(near, key=lambda r: (r["recall@100"], -r["p50_ms"]))["chosen"] = True


def write_tuning(rows) -> dict:
  """The chosen ScaNN setting per size -> trainer/scann_tuning.json, which
  the Trainer reads when exporting the ScaNN twin."""
  out = []
  for r in rows:
    if r["method"] == "scann" and r.get("chosen"):
      brute = next(b for b in rows if b["method"] == "brute_force"
                   and b["candidates"] == r["candidates"])
      out.append({"candidates": r["candidates"],
                  "leaves_per_sqrt_n": LEAVES_PER_SQRT_N,
                  "leaves_to_search_share": r["leaves_to_search_share"],
                  "reordering": r["reordering"],
                  "recall@100": r["recall@100"], "p50_ms": r["p50_ms"],
                  "brute_force_p50_ms": brute["p50_ms"]})
  table = {"written_by": "bench/serving_bench.py (make bench-serving)",
           "rule": f"highest recall@100 among settings with recall@100 >= "
                   f"{MIN_RECALL} vs exact and p50 within {NEAR_FASTEST}x "
                   f"the fastest of them",
           "rows": out}
  if out:
    with open(scann_tuning.TUNING_FILE, "w") as f:
      json.dump(table, f, indent=1)
  return table


def _load(address: str, requests_per_thread: int, concurrency: int, queue,
          signature: str = contract.RECOMMEND, history_length: int = 1):
  """Load generator, run in its own process so that it does not share the
  server's GIL: `concurrency` threads, each with its own channel, send
  top-10 requests of `signature` back to back, each user with
  `history_length` rated items; puts (latencies, errors, secs)."""
  users = [{"user_id": str(u),
            "history": [str(u + 1 + j) for j in range(history_length)]}
           for u in range(1, 200)]
  clients = [client_lib.RecommenderClient(address) for _ in range(concurrency)]
  latencies, errors = [], [0]
  lock = threading.Lock()

  def worker(i):
    c = clients[i]
    for j in range(requests_per_thread):
      request = dict(contract.user_inputs([users[(i * 7 + j) % len(users)]]),
                     k=np.int32(10))
      start = time.perf_counter()
      try:
        c.predict(signature, request)
      except client_lib.ServingError:
        with lock:
          errors[0] += 1
      with lock:
        latencies.append((time.perf_counter() - start) * 1000)

  for c in clients:  # Connect, and read the signature, outside the timing.
    c.status()
    c._specs(signature)
  start = time.perf_counter()
  with futures.ThreadPoolExecutor(concurrency) as pool:
    list(pool.map(worker, range(concurrency)))
  queue.put((latencies, errors[0], time.perf_counter() - start))


def bench_grpc(base_path: str, per_thread: int):
  """Unbatched and batched (serving/deploy/batching_parameters.txt) side by
  side; the load comes from a separate process."""
  import multiprocessing
  context = multiprocessing.get_context("spawn")
  rows = []
  for batched in (False, True):
    params = (batching.BatchingParameters.from_file(BATCHING_FILE)
              if batched else None)
    server = server_lib.Server(contract.MODEL_NAME, base_path, grpc_port=0,
                               rest_port=None, workers=32,
                               batching_parameters=params).start()
    address = f"127.0.0.1:{server.grpc_port}"
    try:
      for concurrency in (1, 8, 32):
        rows.append(dict(batching=batched, **_measure(
            context, address, per_thread, concurrency)))
        print(f"grpc: {rows[-1]}", flush=True)
    finally:
      server.stop()
  return rows


def _load_run(context, address: str, per_thread: int, concurrency: int,
              signature: str = contract.RECOMMEND,
              history_length: int = 1) -> tuple:
  """(latencies in ms, errors, seconds) of one load from a separate
  process."""
  queue = context.Queue()
  proc = context.Process(target=_load, args=(
      address, per_thread, concurrency, queue, signature, history_length))
  proc.start()
  result = queue.get(timeout=900)
  proc.join()
  return result


def _row(concurrency: int, runs) -> dict:
  """Throughput and latencies of load runs, pooled."""
  lat = [ms for run in runs for ms in run[0]]
  seconds = sum(run[2] for run in runs)
  return dict(concurrency=concurrency, requests=len(lat),
              qps=round(len(lat) / seconds, 1),
              p50_ms=round(float(np.percentile(lat, 50)), 2),
              p99_ms=round(float(np.percentile(lat, 99)), 2),
              errors=sum(run[1] for run in runs))


def _measure(context, address: str, per_thread: int,
             concurrency: int) -> dict:
  return _row(concurrency, [_load_run(context, address, per_thread,
                                      concurrency)])


EXPLAIN_HISTORY = 50  # history items a user sends: what the model reads
REASON_SIGNATURES = (contract.RECOMMEND_UNSEEN, contract.RECOMMEND_UNSEEN_FAST)


def bench_explain_cost(model, base_path: str, repeats: int,
                       per_thread: int):
  """What the reasons cost: recommend_unseen against recommend_unseen_fast
  on the pushed model, users with 50-item histories. In-process at batch 1
  and 64, the two called alternately so that both see the same machine;
  then over gRPC (unbatched `recsys serve`, load from another process) at
  concurrency 1 and 8, each signature's load run twice, in the order
  A B B A, and pooled."""
  import multiprocessing
  ids = [i.decode() for i in model.loaded.catalog_ids.numpy()]
  rng = np.random.default_rng(0)
  rows = []
  for batch in (1, 64):
    users = [{"user_id": str(u), "age": 30, "gender": "F",
              "occupation": "writer",
              "history": list(rng.choice(ids, EXPLAIN_HISTORY, False))}
             for u in range(1, batch + 1)]
    requests = {name: contract.recommend_request(
        users, 10, exclude_seen=True,
        explain=name == contract.RECOMMEND_UNSEEN)[1]
                for name in REASON_SIGNATURES}
    latencies = {name: [] for name in REASON_SIGNATURES}
    for name in REASON_SIGNATURES:  # Warm both outside the timed part.
      model.call(name, requests[name])
    for r in range(repeats):
      for name in REASON_SIGNATURES[::1 if r % 2 else -1]:
        start = time.perf_counter()
        model.call(name, requests[name])
        latencies[name].append((time.perf_counter() - start) * 1000)
    for name in REASON_SIGNATURES:
      rows.append(dict(where="in_process", signature=name, batch=batch,
                       p50_ms=round(float(np.percentile(latencies[name], 50)),
                                    2),
                       p99_ms=round(float(np.percentile(latencies[name], 99)),
                                    2)))
      print(f"explain cost: {rows[-1]}", flush=True)
  context = multiprocessing.get_context("spawn")
  server = server_lib.Server(contract.MODEL_NAME, base_path, grpc_port=0,
                             rest_port=None, workers=32).start()
  try:
    for concurrency in (1, 8):
      runs = {name: [] for name in REASON_SIGNATURES}
      for name in REASON_SIGNATURES + REASON_SIGNATURES[::-1]:
        runs[name].append(_load_run(
            context, f"127.0.0.1:{server.grpc_port}", per_thread,
            concurrency, name, EXPLAIN_HISTORY))
      for name in REASON_SIGNATURES:
        rows.append(dict(where="grpc", signature=name,
                         **_row(concurrency, runs[name])))
        print(f"explain cost: {rows[-1]}", flush=True)
  finally:
    server.stop()
  return rows


def bench_item_item_cost(model, data_dir: str, repeats: int):
  """What the item-item term costs a request: the pushed model's catalogue
  exported again by this code twice, the term on (the pushed model's
  matrix and settings; its index 300 deep) and off (100 deep), and
  recommend_unseen_fast and recommend_unseen called on both in-process,
  alternately, at batch 1 and 64 with 50-item histories."""
  import dataclasses
  import tempfile

  from pipeline import catalog_refresh
  settings = index.IndexSettings.read(model.path)
  if not settings.item_item_weight:
    print("item-item cost: the pushed model has no item-item term")
    return []
  items, _ = catalog_refresh.read_items(data_dir)
  vectors, text_vectors, _ = catalog_refresh.embed_changed(model.loaded,
                                                           items)
  ids = [i.item_id for i in items]
  rng = np.random.default_rng(0)
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    models = {}
    for term, weight in (("on", settings.item_item_weight), ("off", 0.0)):
      catalog_refresh.export_items(
          model.loaded, items, vectors, text_vectors,
          dataclasses.replace(settings, item_item_weight=weight),
          os.path.join(tmp, term))
      models[term] = local_model.PushedModel(os.path.join(tmp, term))
    for batch in (1, 64):
      users = [{"user_id": str(u), "age": 30, "gender": "F",
                "occupation": "writer",
                "history": list(rng.choice(ids, EXPLAIN_HISTORY, False))}
               for u in range(1, batch + 1)]
      for name in REASON_SIGNATURES:
        request = contract.recommend_request(
            users, 10, exclude_seen=True,
            explain=name == contract.RECOMMEND_UNSEEN)[1]
        latencies = {term: [] for term in models}
        for m in models.values():  # Warm both outside the timed part.
          m.call(name, request)
        for r in range(repeats):
          for term in (("on", "off") if r % 2 else ("off", "on")):
            start = time.perf_counter()
            models[term].call(name, request)
            latencies[term].append((time.perf_counter() - start) * 1000)
        for term, times in latencies.items():
          rows.append(dict(signature=name, batch=batch, item_item=term,
                           p50_ms=round(float(np.percentile(times, 50)), 2),
                           p99_ms=round(float(np.percentile(times, 99)), 2)))
          print(f"item-item cost: {rows[-1]}", flush=True)
  return rows


def bench_hot_swap(base_path: str, tmp_base: str):
  """Copies the newest version under a new number while load runs."""
  import shutil
  latest = contract.latest_version_dir(base_path)
  shutil.rmtree(tmp_base, ignore_errors=True)
  version = int(os.path.basename(publish_version(
      latest, tmp_base, int(os.path.basename(latest)))))
  server = server_lib.Server(contract.MODEL_NAME, tmp_base, grpc_port=0,
                             rest_port=None, poll_seconds=0.5).start()
  address = f"127.0.0.1:{server.grpc_port}"
  c = client_lib.RecommenderClient(address)
  users = [{"user_id": str(u)} for u in range(1, 50)]
  seen_new = []
  stop = threading.Event()
  failures, count = [0], [0]

  def load():
    while not stop.is_set():
      try:
        c.recommend([users[count[0] % len(users)]], k=10)
      except client_lib.ServingError:
        failures[0] += 1
      count[0] += 1

  threads = [threading.Thread(target=load) for _ in range(4)]
  try:
    for t in threads:
      t.start()
    time.sleep(2)
    pushed = time.time()
    new = int(os.path.basename(publish_version(latest, tmp_base, version + 1)))
    while time.time() - pushed < 120:
      status = c.status()[0]
      if status["version"] == new and status["state"] == "AVAILABLE":
        seen_new.append(time.time() - pushed)
        break
      time.sleep(0.05)
    time.sleep(2)
  finally:
    stop.set()
    for t in threads:
      t.join()
    server.stop()
  row = dict(requests=count[0], failed=failures[0],
             seconds_to_new_version=round(seen_new[0], 2) if seen_new else None)
  print(f"hot swap: {row}", flush=True)
  return row


def plot(retrieval, grpc_rows):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for method in ("numpy_exact", "brute_force", "scann"):
    rows = [r for r in retrieval if r["method"] == method and (
        method != "scann" or r.get("chosen"))]
    ax.plot([r["candidates"] for r in rows], [r["p50_ms"] for r in rows],
            marker="o", label=f"{method} p50" + (
                " (chosen setting)" if method == "scann" else ""))
  floor = sorted({(r["candidates"], r["scan_floor_ms"]) for r in retrieval})
  ax.plot([f[0] for f in floor], [f[1] for f in floor], "k--",
          label="exact-scan memory floor")
  ax.set(xscale="log", yscale="log", xlabel="candidates",
         ylabel="single-query latency (ms), top-100")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(os.path.join(RESULTS, "serving_retrieval.png"), dpi=120)
  fig, ax = plt.subplots(figsize=(6, 4))
  for batched in (False, True):
    rows = [r for r in grpc_rows if r["batching"] == batched]
    conc = [r["concurrency"] for r in rows]
    label = "batching" if batched else "no batching"
    style = "-" if batched else ":"
    ax.plot(conc, [r["p50_ms"] for r in rows], style, marker="o",
            label=f"p50, {label}")
    ax.plot(conc, [r["p99_ms"] for r in rows], style, marker="s",
            label=f"p99, {label}")
  ax.axhline(50, color="k", lw=0.8, ls="--", label="p99 target at c=8")
  ax.set(xscale="log", xlabel="concurrency", ylabel="recommend latency (ms)")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(os.path.join(RESULTS, "serving_grpc.png"), dpi=120)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--output-dir", default="outputs")
  parser.add_argument("--sizes", default="catalogue,10000,100000,1000000",
                      help="candidate counts; 'catalogue' = the real one")
  parser.add_argument("--queries", type=int, default=1000)
  parser.add_argument("--single-query-repeats", type=int, default=200)
  parser.add_argument("--requests-per-thread", type=int, default=100)
  parser.add_argument("--explain-repeats", type=int, default=100)
  parser.add_argument("--rechoose", action="store_true",
                      help="measure nothing: choose the ScaNN settings "
                      "again from serving.json's rows (after the rule "
                      "changed) and rewrite the tuning table and plots")
  parser.add_argument("--only-explain-cost", action="store_true",
                      help="measure only what the reasons cost and update "
                      "that part of serving.json")
  parser.add_argument("--only-item-item-cost", action="store_true",
                      help="measure only what the item-item term costs and "
                      "update that part of serving.json")
  parser.add_argument("--data-dir", default="data/ml-100k",
                      help="the catalogue the item-item cost re-exports")
  args = parser.parse_args(argv)
  path = os.path.join(RESULTS, "serving.json")
  if args.rechoose:
    with open(path) as f:
      result = json.load(f)
    for n in sorted({r["candidates"] for r in result["retrieval"]}):
      choose_scann(result["retrieval"], n)
    result["scann_tuning"] = write_tuning(result["retrieval"])
    plot(result["retrieval"], result["grpc"])
    with open(path, "w") as f:
      json.dump(result, f, indent=1)
    print(json.dumps(result["scann_tuning"], indent=1))
    return 0
  base = os.path.join(os.path.abspath(args.output_dir), "serving",
                      contract.MODEL_NAME)
  model = local_model.load_latest(base)
  os.makedirs(RESULTS, exist_ok=True)
  if args.only_item_item_cost:
    earlier = {}
    if os.path.exists(path):
      with open(path) as f:
        earlier = json.load(f)
    result = dict(earlier, item_item_cost=bench_item_item_cost(
        model, args.data_dir, args.explain_repeats))
    with open(path, "w") as f:
      json.dump(result, f, indent=1)
    print(json.dumps(result["item_item_cost"], indent=1))
    return 0
  explain = bench_explain_cost(model, base, args.explain_repeats,
                               args.requests_per_thread)
  if args.only_explain_cost:
    earlier = {}
    if os.path.exists(path):
      with open(path) as f:
        earlier = json.load(f)
    result = dict(earlier, explain_cost=explain)
  else:
    real = model.loaded.item_vectors.numpy()[:-1]
    retrieval, bandwidth = bench_retrieval(
        real, [len(real) if s == "catalogue" else int(s)
               for s in args.sizes.split(",")], args.queries,
        args.single_query_repeats)
    grpc_rows = bench_grpc(base, args.requests_per_thread)
    hot = bench_hot_swap(base, os.path.join(os.path.abspath(args.output_dir),
                                            "bench_hot_swap", "recommender"))
    result = {"retrieval": retrieval, "scann_tuning": write_tuning(retrieval),
              "grpc": grpc_rows, "explain_cost": explain, "hot_swap": hot,
              "item_item_cost": bench_item_item_cost(
                  model, args.data_dir, args.explain_repeats),
              "memory_bandwidth_gbps": round(bandwidth, 2)}
    plot(retrieval, grpc_rows)
  with open(path, "w") as f:
    json.dump(result, f, indent=1)
  print(json.dumps(result, indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())
