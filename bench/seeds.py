"""`make bench-seeds`: is the full model's gap to its no-text ablation more
than seed noise?

bench-quality compares one training run of each model. Its full and no_text
rows differ by a few interactions in 8,838 on the warm columns, and its
cold-start rows rest on 126 interactions, so one seed cannot say which is
ahead. This trains both, as bench-quality's full row was chosen (read
from bench/results/quality.json: config, new-item share and scale), with
several seeds (weights and data order; seed 1 is bench-quality's own run)
on the same split, and reports each column's mean, spread and the paired
difference full - no_text per seed. A third model changes the full one's
config (--compare FIELD=VALUE ...; by default bench-quality's
full_text_every_item ablation, text added to every item's id row, whose
one-run lead over no_text on warm columns only several seeds can confirm
or not).

A fourth row scores the full model of each seed a second way, without
training again: `full_history_text` reads an item in a user's history that
has no id row (new since training) from its text (the text map's vector,
where the candidate side already places such an item) instead of the one
unknown-id row every new item shares, as the exported model does with
TrainerConfig.new_item_history_text; `full_without_history_text` is the
reverse, for a full config that has it on.

Writes bench/results/quality_seeds.json and quality_seeds.png.
"""
import argparse
import dataclasses
import json
import os
import sys
from typing import Dict, List, Tuple

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402

from bench import quality  # noqa: E402
from trainer import validation  # noqa: E402
from trainer.config import TrainerConfig  # noqa: E402

COLUMNS = ("recall@10", "recall@50", "recall@100", "ndcg@10")
COLD_COLUMNS = ("recall@50", "recall@100")  # recall@10 is 0 for all
# Every key a run row reports, in table order.
KEYS = COLUMNS + tuple(f"cold_{c}" for c in COLD_COLUMNS)
PATH = os.path.join(quality.RESULTS, "quality_seeds.json")


def chosen_config(name: str = "full") -> TrainerConfig:
  """bench-quality's config of row `name` (full: new-item share and scale
  included; no_text: its own history_id_dropout)."""
  with open(os.path.join(quality.RESULTS, "quality.json")) as f:
    rows = json.load(f)
  row = next(r for r in rows if r["name"] == name)
  return TrainerConfig(**row["params"]["config"])


def compared(full: TrainerConfig, changes: List[str]
             ) -> Tuple[str, TrainerConfig]:
  """The third model's name and config: `full` with FIELD=VALUE changes
  (values parsed as the field's current value's type)."""
  values = {}
  for change in changes:
    field, _, text = change.partition("=")
    current = getattr(full, field)  # AttributeError names a bad field
    values[field] = (text == "True" if isinstance(current, bool)
                     else type(current)(text))
  name = "full_" + "_".join(f"{k}_{v}" for k, v in values.items()
                            if not isinstance(v, bool) or v)
  return name, dataclasses.replace(full, **values)


def train(setup: quality.Setup, config: TrainerConfig, seed: int) -> Dict:
  return quality.run_ours(setup.bench, {"config": config, "seed": seed},
                          setup.train, setup.test, setup.seen_test)


def measure(setup: quality.Setup, scores: np.ndarray) -> Dict:
  warm = validation.evaluate(scores, setup.test, setup.seen_test)
  cold = validation.evaluate(scores, setup.test, setup.seen_test, setup.cold)
  return {**{c: warm[c] for c in COLUMNS},
          **{f"cold_{c}": cold[c] for c in COLD_COLUMNS}}


def summarise(runs: List[Dict]) -> Dict:
  """Per model and column: mean and sample sd over seeds; per model other
  than no_text and column, the paired differences model - no_text."""
  names = list(dict.fromkeys(r["name"] for r in runs))
  by = {name: sorted((r for r in runs if r["name"] == name),
                     key=lambda r: r["seed"]) for name in names}
  out = {"models": {}, "minus_no_text": {}}
  for name, rows in by.items():
    out["models"][name] = {
        k: {"mean": float(np.mean([r[k] for r in rows])),
            "sd": float(np.std([r[k] for r in rows], ddof=1))
            if len(rows) > 1 else 0.0} for k in KEYS}
  for name in names:
    if name == "no_text":
      continue
    out["minus_no_text"][name] = {}
    for k in KEYS:
      diffs = [m[k] - n[k] for m, n in zip(by[name], by["no_text"])]
      out["minus_no_text"][name][k] = {
          "per_seed": diffs, "mean": float(np.mean(diffs)),
          "ahead_or_equal": int(sum(d >= 0 for d in diffs)),
          "seeds": len(diffs)}
  return out


def print_table(summary: Dict) -> None:
  print(f"\n{'':<26}" + "".join(f"{k:>20}" for k in KEYS))
  for name, cols in summary["models"].items():
    print(f"{name:<26}" + "".join(
        f"{cols[k]['mean']:>12.4f} ±{cols[k]['sd']:.4f}" for k in KEYS))
  for name, diff in summary["minus_no_text"].items():
    print(f"{name + ' - no_text':<26}" + "".join(
        f"{diff[k]['mean']:>+20.4f}" for k in KEYS))
    print(f"{'  seeds ahead or equal':<26}" + "".join(
        f"{diff[k]['ahead_or_equal']:>14} of {diff[k]['seeds']}"
        for k in KEYS))


def plot(summary: Dict, path: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(8.5, 4))
  models = list(summary["minus_no_text"].items())
  width = 0.6 / len(models)
  colours = ("tab:blue", "tab:purple", "tab:orange", "tab:green")
  for j, (name, diff) in enumerate(models):
    for i, k in enumerate(KEYS):
      x = i - 0.3 + width * (j + 0.5)
      seeds = diff[k]["per_seed"]
      ax.scatter([x] * len(seeds), seeds, color=colours[j % len(colours)], s=14,
                 zorder=3, label=f"{name}: one seed" if i == 0 else None)
      ax.plot([x - width / 2, x + width / 2], [diff[k]["mean"]] * 2,
              color=colours[j % len(colours)], linewidth=2.5)
  ax.axhline(0.0, color="grey", linewidth=1)
  ax.set_xticks(range(len(KEYS)))
  ax.set_xticklabels(KEYS, fontsize=8)
  ax.set_ylabel("model - no_text (paired by seed)")
  ax.set_title("eval period, seen excluded; bars: means; cold_: the "
               "interactions with items new since training", fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  print(f"plot: {path}")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  quality.add_setup_arguments(parser)
  parser.add_argument("--seeds", type=int, default=5)
  parser.add_argument("--compare", nargs="+", metavar="FIELD=VALUE",
                      default=["item_text_for=every_item",
                               "text_in_history=False"],
                      help="TrainerConfig changes that make the third model")
  args = parser.parse_args(argv)
  full = chosen_config()
  setup = quality.prepare(args.output_dir, args.steps, args.batch_size)
  runs = []
  for seed in range(1, args.seeds + 1):
    for name, config in (
        ("full", full),
        ("no_text", chosen_config("no_text")),
        compared(full, args.compare)):
      result = train(setup, config, seed)
      scored = [(name, result["scores"])]
      if name == "full" and config.can_read_history_text():
        scored.append(quality.history_text_other_way(
            setup.bench, config, result, setup.test))
      for scored_name, scores in scored:
        row = {"name": scored_name, "seed": seed, **measure(setup, scores),
               "examples_per_second": result["examples_per_second"]}
        runs.append(row)
        print(f"seed {seed} {scored_name:<8} " + "  ".join(
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
