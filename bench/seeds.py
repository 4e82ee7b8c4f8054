"""`make bench-seeds`: is the full model's gap to its no-text ablation more
than seed noise?

bench-quality compares one training run of each model. Its full and no_text
rows differ by a few interactions in 8,838 on the warm columns, and its
cold-start rows rest on 126 interactions, so one seed cannot say which is
ahead. This trains both, as bench-quality's full row was chosen (read from
bench/results/quality.json: config and new-item scale), with several seeds
(weights and data order; seed 1 is bench-quality's own run) on the same
split, and reports each column's mean, spread and the paired difference
full - no_text per seed. Writes bench/results/quality_seeds.json and
quality_seeds.png.
"""
import argparse
import dataclasses
import json
import os
import sys
from typing import Dict, List

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402

from bench import quality  # noqa: E402
from trainer import validation  # noqa: E402
from trainer.config import TrainerConfig  # noqa: E402

COLUMNS = ("recall@10", "recall@50", "recall@100", "ndcg@10")
COLD_COLUMNS = ("recall@50", "recall@100")  # recall@10 is 0 for all
PATH = os.path.join(quality.RESULTS, "quality_seeds.json")


def chosen_config() -> TrainerConfig:
  """bench-quality's full model, new-item scale included."""
  with open(os.path.join(quality.RESULTS, "quality.json")) as f:
    rows = json.load(f)
  full = next(r for r in rows if r["name"] == "full")
  return TrainerConfig(**full["params"]["config"])


def measure(setup: quality.Setup, config: TrainerConfig, seed: int) -> Dict:
  result = quality.run_ours(setup.bench, {"config": config, "seed": seed},
                            setup.train, setup.test, setup.seen_test)
  warm = validation.evaluate(result["scores"], setup.test, setup.seen_test)
  cold = validation.evaluate(result["scores"], setup.test, setup.seen_test,
                             setup.cold)
  return {**{c: warm[c] for c in COLUMNS},
          **{f"cold_{c}": cold[c] for c in COLD_COLUMNS}}


def summarise(runs: List[Dict]) -> Dict:
  """Per model and column: mean and sample sd over seeds; per column, the
  paired full - no_text differences."""
  keys = list(COLUMNS) + [f"cold_{c}" for c in COLD_COLUMNS]
  by = {name: [r for r in runs if r["name"] == name]
        for name in ("full", "no_text")}
  out = {"models": {}, "full_minus_no_text": {}}
  for name, rows in by.items():
    out["models"][name] = {
        k: {"mean": float(np.mean([r[k] for r in rows])),
            "sd": float(np.std([r[k] for r in rows], ddof=1))
            if len(rows) > 1 else 0.0} for k in keys}
  for k in keys:
    diffs = [f[k] - n[k] for f, n in zip(by["full"], by["no_text"])]
    out["full_minus_no_text"][k] = {
        "per_seed": diffs, "mean": float(np.mean(diffs)),
        "full_ahead_or_equal": int(sum(d >= 0 for d in diffs)),
        "seeds": len(diffs)}
  return out


def print_table(summary: Dict) -> None:
  keys = list(summary["full_minus_no_text"])
  print(f"\n{'':<22}" + "".join(f"{k:>20}" for k in keys))
  for name, cols in summary["models"].items():
    print(f"{name:<22}" + "".join(
        f"{cols[k]['mean']:>12.4f} ±{cols[k]['sd']:.4f}" for k in keys))
  diff = summary["full_minus_no_text"]
  print(f"{'full - no_text':<22}" + "".join(
      f"{diff[k]['mean']:>+20.4f}" for k in keys))
  print(f"{'full >= no_text':<22}" + "".join(
      f"{diff[k]['full_ahead_or_equal']:>14} of {diff[k]['seeds']}"
      for k in keys))


def plot(summary: Dict, path: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  diff = summary["full_minus_no_text"]
  keys = list(diff)
  fig, ax = plt.subplots(figsize=(8, 3.8))
  for i, k in enumerate(keys):
    seeds = diff[k]["per_seed"]
    ax.scatter([i] * len(seeds), seeds, color="tab:blue", zorder=3,
               label="one seed" if i == 0 else None)
    ax.plot([i - 0.25, i + 0.25], [diff[k]["mean"]] * 2, color="black",
            linewidth=2, label="mean" if i == 0 else None)
  ax.axhline(0.0, color="grey", linewidth=1)
  ax.set_xticks(range(len(keys)))
  ax.set_xticklabels(keys, fontsize=8)
  ax.set_ylabel("full - no_text (paired by seed)")
  ax.set_title("eval period, seen excluded; cold_: the 126 interactions "
               "with items new since training", fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  print(f"plot: {path}")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--output-dir", default="outputs")
  parser.add_argument("--seeds", type=int, default=5)
  parser.add_argument("--steps", type=int, default=400)
  parser.add_argument("--batch-size", type=int, default=1024)
  args = parser.parse_args(argv)
  full = chosen_config()
  setup = quality.prepare(args.output_dir, args.steps, args.batch_size)
  runs = []
  for seed in range(1, args.seeds + 1):
    for name, config in (("full", full),
                         ("no_text", dataclasses.replace(full,
                                                         use_text=False))):
      row = {"name": name, "seed": seed, **measure(setup, config, seed)}
      runs.append(row)
      print(f"seed {seed} {name:<8} " + "  ".join(
          f"{k} {v:.4f}" for k, v in row.items()
          if isinstance(v, float)), flush=True)
  summary = summarise(runs)
  with open(PATH, "w") as f:
    json.dump({"config": quality._changed(full), "steps": args.steps,
               "runs": runs, **summary}, f, indent=1)
  print_table(summary)
  plot(summary, PATH.replace(".json", ".png"))
  return 0


if __name__ == "__main__":
  sys.exit(main())
