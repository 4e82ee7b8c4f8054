"""`make bench-rerank`: how much the ranking stage should weigh.

The exported model retrieves the top `rerank_depth` eligible items by the
two towers' cosine and orders them by cosine + rerank_weight x the rating
head's predicted rating (TrainerConfig.rerank_weight;
export.RecommenderModule). Retrieval is trained on what a user watches
next, the rating head on how much they like what they watch, so the second
can break the first's near-ties. This trains bench-quality's full config
(read from bench/results/quality.json, as bench-seeds does) with seeds
1..N on both windows: the fit window scored on the validation window,
which chooses the weight (best mean recall@10 over the seeds), and the
training period scored on the eval period, which reports it. Every weight
is scored from the same models, so the differences between weights are
paired and free of seed noise. With --no-text the no-text ablation is
trained and swept the same way.

Writes bench/results/rerank.json and rerank.png.
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
from bench import seeds  # noqa: E402
from trainer import validation  # noqa: E402

WEIGHTS = (0.0, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05)
COLUMNS = ("recall@10", "recall@50", "recall@100", "ndcg@10", "mrr",
           "coverage@10")
SELECT_BY = "recall@10"
NAME = "rerank"


def sweep(result: Dict, at: seeds.Window, weights, depth: int
          ) -> List[Dict]:
  """Each weight's metrics on `at` for one run_ours `result`
  (validation.rerank_sweep, as the Tuner chooses the weight)."""
  stage = validation.RankingStage(result["model"], result["query"],
                                  result["candidates"], 0.0, depth)
  rows = validation.rerank_sweep(stage, result["scores"], at.seen,
                                 at.queries.items, weights)
  return [{"weight": row["weight"], **{c: row[c] for c in COLUMNS}}
          for row in rows]


def mean_by_weight(runs: List[Dict], window: str, model: str) -> List[Dict]:
  """Per weight, each column's mean over the seeds of (window, model)."""
  chosen = [r for r in runs if r["window"] == window and r["model"] == model]
  out = []
  for weight in sorted({r["weight"] for r in chosen}):
    same = [r for r in chosen if r["weight"] == weight]
    out.append({"weight": weight, "seeds": len(same),
                **{c: float(np.mean([r[c] for r in same]))
                   for c in COLUMNS}})
  return out


def paired_gains(runs: List[Dict], window: str, model: str, weight: float
                 ) -> Dict:
  """Per column: each seed's value at `weight` minus at 0, and in how
  many seeds it is at least level."""
  def at(w):
    return {r["seed"]: r for r in runs if r["window"] == window and
            r["model"] == model and r["weight"] == w}
  on, off = at(weight), at(0.0)
  out = {}
  for c in COLUMNS:
    gains = [on[s][c] - off[s][c] for s in sorted(on)]
    out[c] = {"mean": float(np.mean(gains)), "per_seed": gains,
              "seeds_level_or_ahead": int(sum(g >= 0 for g in gains))}
  return out


def plot(summary: Dict, path: str, chosen: float) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, 2, figsize=(10, 4))
  for ax, column in zip(axes, ("recall@10", "ndcg@10")):
    for (window, model), rows in summary.items():
      base = rows[0][column]
      ax.plot([r["weight"] for r in rows],
              [r[column] - base for r in rows], "o-", markersize=4,
              label=f"{model}, {window}")
    ax.axvline(chosen, color="grey", linestyle=":", label=f"chosen {chosen}")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_xlabel("rerank_weight (x predicted rating, added to the cosine)")
    ax.set_ylabel(f"{column} gain over retrieval's order")
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=7)
  fig.suptitle("Ranking stage over retrieval's top 100, seen excluded; "
               "mean over seeds",
               fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  print(f"plot: {path}")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  quality.add_setup_arguments(parser)
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--weights", type=float, nargs="*",
                      default=list(WEIGHTS))
  parser.add_argument("--depth", type=int, default=100)
  parser.add_argument("--no-text", action="store_true",
                      help="also sweep the no-text ablation")
  parser.add_argument("--name", default=NAME)
  args = parser.parse_args(argv)
  weights = sorted(set(args.weights) | {0.0})
  models = [("full", seeds.chosen_config())]
  if args.no_text:
    models.append(("no_text", seeds.chosen_config("no_text")))
  setup = quality.prepare(args.output_dir, args.steps, args.batch_size)
  runs = []
  for window_name in ("validation", "eval"):
    at = seeds.window(setup, window_name)
    for seed in range(1, args.seeds + 1):
      for model, config in models:
        print(f"{window_name} seed {seed}: training {model}", flush=True)
        result = seeds.train(setup, at, config, seed)
        for row in sweep(result, at, weights, args.depth):
          runs.append({"window": window_name, "model": model, "seed": seed,
                       **row})
          print(f"  weight {row['weight']:<6g}" + "".join(
              f" {c} {row[c]:.4f}" for c in COLUMNS), flush=True)
  summary = {(w, m): mean_by_weight(runs, w, m)
             for w in ("validation", "eval") for m, _ in models}
  chosen = max(summary[("validation", "full")],
               key=lambda r: r[SELECT_BY])["weight"]
  gains = {f"{w}/{m}": paired_gains(runs, w, m, chosen)
           for w in ("validation", "eval") for m, _ in models}
  print(f"\nchosen on validation ({SELECT_BY}, mean of {args.seeds} "
        f"seeds): rerank_weight {chosen}")
  print(f"{'window/model':<20}{'weight':>8}" +
        "".join(f"{c:>13}" for c in COLUMNS))
  for (window, model), rows in summary.items():
    for r in rows:
      if r["weight"] in (0.0, chosen):
        print(f"{window + '/' + model:<20}{r['weight']:>8g}" +
              "".join(f"{r[c]:>13.4f}" for c in COLUMNS))
  for key, gain in gains.items():
    print(f"{key}: gain at {chosen} " + ", ".join(
        f"{c} {g['mean']:+.4f} ({g['seeds_level_or_ahead']}/{args.seeds} "
        f"seeds level or ahead)" for c, g in gain.items()))
  path = os.path.join(quality.RESULTS, f"{args.name}.json")
  with open(path, "w") as f:
    json.dump({"config": dataclasses.asdict(models[0][1]),
               "steps": args.steps, "depth": args.depth,
               "select_by": SELECT_BY, "chosen_weight": chosen,
               "gains_at_chosen": gains,
               "mean": {f"{w}/{m}": rows for (w, m), rows in summary.items()},
               "runs": runs}, f, indent=1)
  plot(summary, path.replace(".json", ".png"), chosen)
  return 0


if __name__ == "__main__":
  sys.exit(main())
