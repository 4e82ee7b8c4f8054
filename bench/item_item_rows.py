"""`make bench-item-item`: the item-item term above 10,000 items.

Up to `item_item_dense_items` (10,000) items the term's matrix is dense
[N, N]; above, each row keeps its `item_item_row_entries` strongest entries
(item_item.PrunedRows), and above item_item.MAX_ITEMS EASE is fit over the
10,000 most-rated items. Two questions, side by side in one run:

  quality  what pruning costs, on ML-100K's split as bench-quality makes
           it (a pipeline run of the defaults in its own root, trained
           from scratch, cached), seen items excluded: the term
           alone (ease_recency at the Trainer's L2 and decay) on the
           validation window (fit on the fit window) and the eval period,
           dense against 25 ... 400 entries per row; and the pushed model
           as served, its `evaluate` signature (what the Evaluator runs)
           on the eval period, as pushed (dense) and re-exported with its
           matrix pruned;
  scale    what it costs to fit and serve: synthetic catalogues of 10,000
           (dense and pruned), 20,000 and 50,000 items (Zipf popularity,
           200 ratings per user), the fit's seconds and the exported
           matrix's bytes, and the in-graph term (item_item.ServedMatrix,
           what the SavedModel runs) for 300 candidates at batch 1 and 64
           with 50-item histories, p50 milliseconds.
Prints both tables, writes bench/results/item_item_rows.json and
item_item_rows.png.
"""
import argparse
import dataclasses
import json
import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from trainer import item_item  # noqa: E402
from trainer import validation  # noqa: E402
from trainer.config import TrainerConfig  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
ENTRIES = (25, 50, 100, 200, 400)
COLUMNS = ("recall@10", "recall@50", "recall@100", "ndcg@10")


def quality_rows(output_dir: str, config: TrainerConfig):
  """The term alone, dense and pruned, on both windows of bench-quality's
  split."""
  from bench import quality
  # Never warm-started (the pipeline's default on a re-run): the served
  # rows measure the defaults' model, the demo's.
  setup = quality.prepare(output_dir, 400, 1024,
                          dataclasses.replace(config, warm_start=False))
  num_items = setup.bench.num_items
  windows = (("validation", setup.fit, setup.held_out, setup.seen_held_out),
             ("eval", setup.train, setup.test, setup.seen_test))
  rows = []
  for window, fit, queries, seen in windows:
    dense = item_item.trained_matrix(fit.users, fit.items, num_items,
                                     config.item_item_l2)
    for entries in (None, *ENTRIES):
      matrix = dense if entries is None else item_item.prune_rows(dense,
                                                                  entries)
      scores = item_item.scores(matrix, queries.histories,
                                config.item_item_decay)
      metrics = validation.evaluate(scores, queries, seen)
      rows.append(dict(window=window, model="the term alone",
                       row_entries=entries or num_items,
                       dense=entries is None,
                       **{c: round(metrics[c], 4) for c in COLUMNS}))
      print(f"quality: {rows[-1]}", flush=True)
  return rows


def served_rows(output_dir: str, entries_grid):
  """The pushed model's eval metrics from its own `evaluate` signature,
  dense as pushed and re-exported with each row pruned to `entries_grid`
  entries (the catalogue refresh's export, the towers and index alike)."""
  import glob
  import tempfile

  from pipeline import catalog_refresh
  from pipeline import configs
  from pipeline import evaluation
  from serving import local_model
  from trainer import contract
  from trainer import index

  config = configs.PipelineConfig(output_dir=os.path.abspath(output_dir))
  base = contract.latest_version_dir(config.serving_model_dir)
  pushed = local_model.PushedModel(base)
  settings = index.IndexSettings.read(base)
  items, _ = catalog_refresh.read_items(os.path.abspath("data/ml-100k"))
  vectors, text_vectors, _ = catalog_refresh.embed_changed(pushed.loaded,
                                                           items)
  dense = item_item.served_matrix(pushed.loaded)
  ids = pushed.loaded.catalog_ids.numpy()
  files = glob.glob(os.path.join(evaluation.latest_output(
      config.pipeline_root, "MovieLensExampleGen", "examples"),
                                 "Split-eval", "*"))
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    for entries in (None, *entries_grid):
      model = pushed
      if entries:
        matrix = item_item.remap(item_item.prune_rows(dense, entries), ids,
                                 np.array([i.item_id for i in items], object))
        path = os.path.join(tmp, str(entries))
        catalog_refresh.export_items(pushed.loaded, items, vectors,
                                     text_vectors, settings, path,
                                     matrix=matrix)
        model = local_model.PushedModel(path)
      hits = {key: [] for key in (contract.EVAL_HIT, contract.EVAL_HIT_AT_10,
                                  contract.EVAL_NDCG_AT_10)}
      for batch in tf.data.TFRecordDataset(files, "GZIP").batch(512):
        out = model.loaded.signatures[contract.EVALUATE](examples=batch)
        for key in hits:
          hits[key].append(out[key].numpy().reshape(-1))
      means = {key: float(np.concatenate(v).mean()) for key, v in hits.items()}
      rows.append(dict(window="eval", model="pushed, as served",
                       row_entries=entries or len(ids), dense=not entries,
                       **{"recall@10": round(means[contract.EVAL_HIT_AT_10], 4),
                          "recall@100": round(means[contract.EVAL_HIT], 4),
                          "ndcg@10": round(means[contract.EVAL_NDCG_AT_10],
                                           4)}))
      print(f"served: {rows[-1]}", flush=True)
  return rows


def synthetic(num_items: int, users: int, per_user: int, rng):
  """(users, items) pairs: Zipf popularity (exponent 1), each user
  `per_user` distinct items."""
  cdf = np.cumsum(1.0 / np.arange(1, num_items + 1))
  draws = np.searchsorted(cdf / cdf[-1], rng.random((users, per_user)))
  pairs = [(u, i) for u in range(users) for i in np.unique(draws[u])]
  users_, items = np.array(pairs).T
  return users_, np.minimum(items, num_items - 1)


def term_latency(matrix, num_items: int, batch: int, rng,
                 repeats: int) -> float:
  """p50 ms of the exported model's term (ServedMatrix.term) for 300
  candidates per user with 50-item histories."""
  served = item_item.ServedMatrix(matrix)

  @tf.function
  def term(history, candidates):
    weights = tf.fill(tf.shape(history), 0.85)
    return tf.gather(served.term(history, weights), candidates, batch_dims=1)

  history = tf.constant(rng.integers(0, num_items, (batch, 50)), tf.int64)
  candidates = tf.constant(rng.integers(0, num_items, (batch, 300)),
                           tf.int64)
  term(history, candidates)  # traced outside the timed part
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    term(history, candidates).numpy()
    times.append((time.perf_counter() - start) * 1000)
  return round(float(np.percentile(times, 50)), 2)


def scale_rows(sizes, users: int, per_user: int, row_entries: int,
               repeats: int):
  rng = np.random.default_rng(0)
  rows = []
  for num_items in sizes:
    pairs = synthetic(num_items, users, per_user, rng)
    variants = ((("dense", None), ("pruned", row_entries))
                if num_items <= item_item.MAX_ITEMS else
                (("pruned", row_entries),))
    for kind, entries in variants:
      start = time.perf_counter()
      matrix = item_item.trained_matrix(*pairs, num_items, 800.0, pruned=(
          item_item.Pruning(0, entries) if entries else item_item.Pruning()))
      seconds = time.perf_counter() - start
      size = (matrix.columns.nbytes * 2 + matrix.values.nbytes
              if isinstance(matrix, item_item.PrunedRows)  # int64 in-graph
              else matrix.nbytes)
      row = dict(items=num_items, interactions=len(pairs[0]), matrix=kind,
                 row_entries=entries or num_items,
                 fit_seconds=round(seconds, 1),
                 matrix_mb=round(size / 2**20, 1))
      for batch in (1, 64):
        row[f"term_p50_ms_batch_{batch}"] = term_latency(
            matrix, num_items, batch, rng, repeats)
      rows.append(row)
      print(f"scale: {row}", flush=True)
      del matrix
  return rows


def plot(quality, scale, path: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
  alone = [r for r in quality if r["model"] == "the term alone"]
  for window, style in (("validation", "-"), ("eval", "--")):
    rows = [r for r in alone if r["window"] == window and not r["dense"]]
    dense = next(r for r in alone if r["window"] == window and r["dense"])
    for metric, colour in (("recall@10", "C0"), ("recall@100", "C1")):
      left.plot([r["row_entries"] for r in rows], [r[metric] for r in rows],
                style, marker="o", color=colour, label=f"{window} {metric}")
      left.axhline(dense[metric], color=colour, linestyle=style, alpha=0.3)
  left.set(xscale="log", xlabel="entries kept per row",
           ylabel="recall, seen excluded",
           title="ML-100K, the term alone (faint: dense)")
  left.legend(fontsize=7)
  labels = [f"{r['items'] // 1000}k {r['matrix']}" for r in scale]
  x = np.arange(len(scale))
  right.bar(x - 0.2, [r["term_p50_ms_batch_1"] for r in scale], 0.4,
            label="batch 1")
  right.bar(x + 0.2, [r["term_p50_ms_batch_64"] for r in scale], 0.4,
            label="batch 64")
  right.set_xticks(x, labels)
  right.set(ylabel="term p50 ms (300 candidates)",
            title="in-graph term cost, synthetic catalogues")
  right.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=110)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--output-dir", default="outputs/bench_item_item",
                      help="its pipeline run's output folder (cached)")
  parser.add_argument("--sizes", default="10000,20000,50000")
  parser.add_argument("--users", type=int, default=20000)
  parser.add_argument("--per-user", type=int, default=200)
  parser.add_argument("--repeats", type=int, default=30)
  args = parser.parse_args(argv)
  config = TrainerConfig()
  quality = quality_rows(args.output_dir, config)
  quality += served_rows(args.output_dir, (config.item_item_row_entries, 50))
  scale = scale_rows([int(s) for s in args.sizes.split(",")], args.users,
                     args.per_user, config.item_item_row_entries,
                     args.repeats)
  os.makedirs(RESULTS, exist_ok=True)
  with open(os.path.join(RESULTS, "item_item_rows.json"), "w") as f:
    json.dump({"quality": quality, "scale": scale}, f, indent=1)
  print("\n| model | window | entries per row | " + " | ".join(COLUMNS) +
        " |")
  for r in quality:
    entries = "dense" if r["dense"] else r["row_entries"]
    print(f"| {r['model']} | {r['window']} | {entries} | " + " | ".join(
        f"{r[c]:.4f}" if c in r else "" for c in COLUMNS) + " |")
  print("\n| items | interactions | matrix | entries per row | fit s | MB "
        "| term p50 ms, batch 1 | batch 64 |")
  for r in scale:
    print(f"| {r['items']:,} | {r['interactions']:,} | {r['matrix']} | "
          f"{r['row_entries']:,} | {r['fit_seconds']} | {r['matrix_mb']} | "
          f"{r['term_p50_ms_batch_1']} | {r['term_p50_ms_batch_64']} |")
  plot(quality, scale, os.path.join(RESULTS, "item_item_rows.png"))
  return 0


if __name__ == "__main__":
  sys.exit(main())
