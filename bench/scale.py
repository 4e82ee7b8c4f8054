"""`make bench-scale`: how each stage's cost grows with the data.

Generates 10K, 100K and 1M synthetic interactions from MovieLens 100K's
distributions (user activity, item popularity, ratings, time span; users and
items scale with the data, new items copy real titles and genres), writes them
in the recbole layout, then times on this machine:
  ingest   MovieLensExampleGen (Beam DirectRunner, 2 processes): parse, join,
           per-user history, time split
  stats    TFDV statistics over the train split (what StatisticsGen runs)
  train    Trainer steps/s of the default model at batch 1024 (per-step
           cost does not depend on data size; epochs do)
Prints a table, writes bench/results/scale.json and scale.png.
"""
import argparse
import glob
import json
import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402

from pipeline import beam  # noqa: E402
from pipeline import data  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def synthesize(source_dir: str, out_dir: str, n: int, seed: int = 0) -> str:
  """Writes n interactions drawn from the source's distributions."""
  rng = np.random.default_rng(seed)
  read = lambda name: [l.rstrip("\n").split("\t") for l in open(
      os.path.join(source_dir, name), encoding="utf-8")][1:]
  inter, items, users = (read("ml-100k.inter"), read("ml-100k.item"),
                         read("ml-100k.user"))
  scale = n / len(inter)
  n_users = max(50, int(len(users) * scale))
  n_items = max(100, int(len(items) * np.sqrt(scale)))
  activity = np.bincount([int(r[0]) for r in inter])[1:].astype(float)
  popularity = np.bincount([int(r[1]) for r in inter])[1:].astype(float)
  user_w = rng.choice(activity, n_users) + 1e-3
  item_w = np.sort(rng.choice(popularity, n_items))[::-1] + 1e-3
  ratings = np.array([float(r[2]) for r in inter])
  times = np.array([int(float(r[3])) for r in inter])
  os.makedirs(out_dir, exist_ok=True)
  u = rng.choice(n_users, n, p=user_w / user_w.sum()) + 1
  i = rng.choice(n_items, n, p=item_w / item_w.sum()) + 1
  r = rng.choice(ratings, n)
  t = rng.integers(times.min(), times.max(), n)
  with open(os.path.join(out_dir, "ml-100k.inter"), "w") as f:
    f.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
    for row in zip(u, i, r, t):
      f.write("%d\t%d\t%g\t%d\n" % row)
  with open(os.path.join(out_dir, "ml-100k.item"), "w", encoding="utf-8") as f:
    f.write("item_id:token\tmovie_title:token_seq\trelease_year:token\t"
            "class:token_seq\n")
    for k in range(n_items):
      src = items[k % len(items)]
      copy = "" if k < len(items) else f" (copy {k // len(items)})"
      f.write(f"{k + 1}\t{src[1]}{copy}\t{src[2]}\t{src[3]}\n")
  with open(os.path.join(out_dir, "ml-100k.user"), "w") as f:
    f.write("user_id:token\tage:token\tgender:token\toccupation:token\t"
            "zip_code:token\n")
    for k in range(n_users):
      src = users[k % len(users)]
      f.write(f"{k + 1}\t{src[1]}\t{src[2]}\t{src[3]}\t{src[4]}\n")
  return out_dir


def time_ingest(data_dir: str, work: str) -> float:
  from tfx.dsl.components.base import base_beam_executor
  from tfx.types import standard_artifacts

  from components.movielens_example_gen import executor
  examples = standard_artifacts.Examples()
  examples.uri = os.path.join(work, "examples")
  context = base_beam_executor.BaseBeamExecutor.Context(
      beam_pipeline_args=beam.beam_pipeline_args("direct", 2), tmp_dir=work)
  start = time.time()
  executor.Executor(context).Do({}, {executor.EXAMPLES: [examples]}, {
      executor.DATA_DIR: data_dir, executor.EVAL_FRACTION: 0.1,
      executor.MAX_REJECT_FRACTION: 0.01, executor.MAX_HISTORY: 50,
      executor.TRAIN_UNTIL: None})
  return time.time() - start, examples.uri


def time_stats(examples_uri: str) -> float:
  import tensorflow_data_validation as tfdv
  from apache_beam.options.pipeline_options import PipelineOptions
  files = glob.glob(os.path.join(examples_uri, "Split-train", "*.gz"))
  start = time.time()
  tfdv.generate_statistics_from_tfrecord(
      data_location=os.path.join(examples_uri, "Split-train", "*.gz"),
      output_path=os.path.join(examples_uri, "stats.pb"),
      pipeline_options=PipelineOptions(beam.beam_pipeline_args("direct", 2)))
  del files
  return time.time() - start


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--sizes", default="10000,100000,1000000")
  parser.add_argument("--work-dir", default="outputs/bench_scale")
  args = parser.parse_args(argv)
  source = data.fetch_movielens(os.path.abspath("data/ml-100k"))
  rows = []
  for n in [int(s) for s in args.sizes.split(",")]:
    work = os.path.abspath(os.path.join(args.work_dir, str(n)))
    start = time.time()
    data_dir = synthesize(source, os.path.join(work, "data"), n)
    generate = time.time() - start
    ingest, uri = time_ingest(data_dir, work)
    stats = time_stats(uri)
    lines = sum(1 for _ in open(os.path.join(data_dir, "ml-100k.user"))) - 1
    items = sum(1 for _ in open(os.path.join(data_dir, "ml-100k.item"))) - 1
    rows.append(dict(interactions=n, users=lines, items=items,
                     generate_seconds=round(generate, 1),
                     ingest_seconds=round(ingest, 1),
                     ingest_rows_per_second=round(n / ingest, 1),
                     stats_seconds=round(stats, 1)))
    print(json.dumps(rows[-1]), flush=True)
  os.makedirs(RESULTS, exist_ok=True)
  with open(os.path.join(RESULTS, "scale.json"), "w") as f:
    json.dump(rows, f, indent=1)
  print(f"\n{'interactions':>12} {'users':>7} {'items':>7} {'ingest s':>9} "
        f"{'rows/s':>9} {'stats s':>8}")
  for r in rows:
    print(f"{r['interactions']:>12} {r['users']:>7} {r['items']:>7} "
          f"{r['ingest_seconds']:>9} {r['ingest_rows_per_second']:>9} "
          f"{r['stats_seconds']:>8}")
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6, 4))
  x = [r["interactions"] for r in rows]
  ax.plot(x, [r["ingest_seconds"] for r in rows], marker="o", label="ingest")
  ax.plot(x, [r["stats_seconds"] for r in rows], marker="o", label="stats")
  ax.set(xscale="log", yscale="log", xlabel="interactions",
         ylabel="seconds on 2 cores")
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(os.path.join(RESULTS, "scale.png"), dpi=120)
  return 0


if __name__ == "__main__":
  sys.exit(main())
