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
reverse, for a full config that has it on. Another, `full_new_items`, gives
items new since training their text neighbours' part of the item-item
term (quality.NEW_ITEMS_SHARE; TrainerConfig.item_item_new_items), or
`full_without_new_items` takes it away from a config that has it.

Beside them, the strongest peer (bench-quality's ease_recency, closed
form: one value per window) and each model's recall@10 and NDCG@10 over
it, seed by seed: whether the issue's "1.10x the best peer" holds beyond
the one seed bench-quality trains.

Each model is measured on two windows (--windows): the eval period
(trained on the whole training period) and the validation window
bench-quality chooses on (trained on its fit window), so that a gap that
goes one way on one and the other way on the other can be told from noise.
Seeds do not measure which users happen to be in a window; per window,
a paired bootstrap over users and seeds (bench/bootstrap.py) gives each
gap to no_text a 95% interval and the share of resamples in which the
model is level or ahead.

Ours are scored as served: retrieval's top 100, then the ranking stage at
the config's rerank_weight (quality.json's configs predate it and take the
Trainer's default; bench/results/quality_seeds.json's rows from before
2026-12-04's ranking stage are in retrieval's order).

Writes bench/results/quality_seeds.json, quality_seeds.png and each run's
per-interaction ranks (quality_seeds_ranks.npz, for other bootstraps).
"""
import argparse
import dataclasses
import json
import os
import sys
from typing import Dict, List, Tuple

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402

from bench import bootstrap  # noqa: E402
from bench import quality  # noqa: E402
from trainer import validation  # noqa: E402
from trainer.config import TrainerConfig  # noqa: E402

COLUMNS = ("recall@10", "recall@50", "recall@100", "ndcg@10")
COLD_COLUMNS = ("recall@50", "recall@100")  # recall@10 is 0 for all
# Every key a run row reports, in table order.
KEYS = COLUMNS + tuple(f"cold_{c}" for c in COLD_COLUMNS)
NAME = "quality_seeds"
WINDOWS = ("eval", "validation")
# The strongest peer on the table (bench-quality), measured beside ours on
# each window with the L2 and decay bench-quality chose for it; the same
# for every seed (closed form).
PEER = "ease_recency"


@dataclasses.dataclass
class Window:
  """Where a model is trained and what it is measured on."""
  name: str
  train: object           # validation.Interactions
  queries: object         # validation.Interactions
  seen: object            # csr [len(queries), num_items]
  cold: np.ndarray        # [len(queries)] the item is new to `train`


def window(setup: quality.Setup, name: str) -> Window:
  if name == "eval":
    return Window(name, setup.train, setup.test, setup.seen_test, setup.cold)
  new = validation.new_item_rows(setup.fit, setup.bench.num_items)
  return Window(name, setup.fit, setup.held_out, setup.seen_held_out,
                setup.held_out.on_items(new))


def chosen_params(name: str) -> Dict:
  """bench-quality's params of row `name`, as its validation chose them."""
  with open(os.path.join(quality.RESULTS, "quality.json")) as f:
    rows = json.load(f)
  return next(r for r in rows if r["name"] == name)["params"]


def chosen_config(name: str = "full") -> TrainerConfig:
  """bench-quality's config of row `name` (full: new-item share and scale
  included; no_text: its own history_id_dropout)."""
  return TrainerConfig(**chosen_params(name)["config"])


def peer_ratios(runs: List[Dict], peer: str = PEER) -> Dict:
  """Per model of ours: its recall@10 and NDCG@10 over the peer's, seed by
  seed (the peer is closed-form: one value), and the smallest; the issue's
  "recall@10 at least 1.10x the best peer" asks whether one seed's
  bench-quality run could have gone under."""
  peer_row = next(r for r in runs if r["name"] == peer)
  out = {}
  for name in dict.fromkeys(r["name"] for r in runs):
    if name == peer:
      continue
    rows = sorted((r for r in runs if r["name"] == name),
                  key=lambda r: r["seed"])
    out[name] = {k: {"per_seed": [r[k] / peer_row[k] for r in rows],
                     "min": min(r[k] / peer_row[k] for r in rows),
                     "mean": float(np.mean([r[k] / peer_row[k]
                                            for r in rows]))}
                 for k in ("recall@10", "ndcg@10")}
  return out


def compared(full: TrainerConfig, changes: List[str]
             ) -> Tuple[str, TrainerConfig]:
  """The third model's name and config: `full` with FIELD=VALUE changes."""
  config = full.with_changes(changes)
  changed = [change.partition("=")[0] for change in changes]
  name = "full_" + "_".join(
      f"{k}_{getattr(config, k)}" for k in changed
      if not isinstance(getattr(config, k), bool) or getattr(config, k))
  return name, config


def train(setup: quality.Setup, at: Window, config: TrainerConfig,
          seed: int) -> Dict:
  return quality.run_ours(setup.bench, {"config": config, "seed": seed},
                          at.train, at.queries, at.seen)


def seen_excluded_ranks(at: Window, result: Dict) -> np.ndarray:
  """[len(at.queries)] each interaction's rank in a run_ours `result`'s
  served list (its ranking stage included), seen items excluded."""
  return validation.ranks(validation.served_top(
      result["scores"], at.seen, result.get("ranking")), at.queries.items)


def measure(at: Window, rank: np.ndarray) -> Dict:
  """The row's columns from seen_excluded_ranks: on all interactions and
  (cold_) on those with items new to training."""
  warm = validation.per_interaction(rank)
  cold = validation.per_interaction(rank[at.cold])
  return {**{c: float(warm[c].mean()) for c in COLUMNS},
          **{f"cold_{c}": float(cold[c].mean()) for c in COLD_COLUMNS}}


def user_bootstrap(ranks: Dict[Tuple[str, int], np.ndarray], at: Window
                   ) -> Dict:
  """Per model other than no_text: bootstrap.paired_gap against no_text
  over the window's users and the seeds, for every KEYS column (the cold_
  ones on the cold interactions' users)."""
  names = list(dict.fromkeys(name for name, _ in ranks))
  seeds = sorted({seed for _, seed in ranks})
  out = {}
  for name in names:
    if name == "no_text":
      continue
    out[name] = {}
    for prefix, mask, columns in (("", np.ones(len(at.cold), bool), COLUMNS),
                                  ("cold_", at.cold, COLD_COLUMNS)):
      per_seed = lambda n: [  # noqa: E731
          {c: validation.per_interaction(ranks[(n, s)][mask])[c]
           for c in columns} for s in seeds]
      gaps = bootstrap.paired_gap(per_seed(name), per_seed("no_text"),
                                  at.queries.users[mask])
      out[name].update({prefix + c: g for c, g in gaps.items()})
  return out


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


def print_table(title: str, summary: Dict) -> None:
  print(f"\n{title}\n{'':<26}" + "".join(f"{k:>20}" for k in KEYS))
  for name, cols in summary["models"].items():
    print(f"{name:<26}" + "".join(
        f"{cols[k]['mean']:>12.4f} ±{cols[k]['sd']:.4f}" for k in KEYS))
  for name, diff in summary["minus_no_text"].items():
    print(f"{name + ' - no_text':<26}" + "".join(
        f"{diff[k]['mean']:>+20.4f}" for k in KEYS))
    print(f"{'  seeds ahead or equal':<26}" + "".join(
        f"{diff[k]['ahead_or_equal']:>14} of {diff[k]['seeds']}"
        for k in KEYS))
    gaps = summary["bootstrap"][name]
    print(f"{'  95% users and seeds':<26}" + "".join(
        f"{gaps[k]['low']:>+11.4f} ..{gaps[k]['high']:+.4f}" for k in KEYS))
    print(f"{'  resamples ahead or equal':<26}" + "".join(
        f"{gaps[k]['share_ahead_or_equal']:>20.0%}" for k in KEYS))
  for name, ratios in summary["over_" + PEER].items():
    print(f"{name + ' / ' + PEER:<26}" + "  ".join(
        f"{k} " + " ".join(f"{r:.3f}" for r in ratio["per_seed"]) +
        f" (min {ratio['min']:.3f})" for k, ratio in ratios.items()))


def plot(summaries: Dict[str, Dict], path: str) -> None:
  """Per window (a row of panels): each model's gap to no_text, seed by seed
  (dots), the seed mean (bar) and its 95% interval over resamples of
  users and seeds (line); warm and cold columns on their own scales (cold
  gaps rest on ~130-210 interactions and are ten times wider)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  groups = (COLUMNS, tuple(f"cold_{c}" for c in COLD_COLUMNS))
  fig, axes = plt.subplots(
      len(summaries), 2, figsize=(10, 3.8 * len(summaries)), squeeze=False,
      sharey="col", gridspec_kw={"width_ratios": [2, 1]})
  colours = ("tab:blue", "tab:purple", "tab:orange", "tab:green", "tab:red",
             "tab:brown")
  for row, (window_name, summary) in zip(axes, summaries.items()):
    models = list(summary["minus_no_text"].items())
    width = 0.6 / len(models)
    for ax, keys in zip(row, groups):
      for j, (name, diff) in enumerate(models):
        colour = colours[j % len(colours)]
        for i, k in enumerate(keys):
          x = i - 0.3 + width * (j + 0.5)
          seeds = diff[k]["per_seed"]
          ax.scatter([x] * len(seeds), seeds, color=colour, s=14, zorder=3,
                     label=f"{name}: one seed" if i == 0 else None)
          ax.plot([x - width / 2, x + width / 2], [diff[k]["mean"]] * 2,
                  color=colour, linewidth=2.5)
          gap = summary["bootstrap"][name][k]
          ax.plot([x, x], [gap["low"], gap["high"]], color=colour, alpha=0.5,
                  linewidth=1.2, label="95% over users and seeds"
                  if i == 0 and j == 0 else None)
      ax.axhline(0.0, color="grey", linewidth=1)
      ax.set_xticks(range(len(keys)))
      ax.set_xticklabels(keys, fontsize=8)
      ax.grid(alpha=0.3)
    row[0].set_title(f"{window_name} window ({summary['users']} users), seen "
                     "excluded; bars: seed means", fontsize=9)
    row[1].set_title("items new to training", fontsize=9)
    row[0].set_ylabel("model - no_text (paired by seed)")
    row[0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  print(f"plot: {path}")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  quality.add_setup_arguments(parser)
  parser.add_argument("--seeds", type=int, default=5)
  parser.add_argument("--windows", nargs="+", choices=WINDOWS,
                      default=list(WINDOWS))
  parser.add_argument("--name", default=NAME,
                      help="results file names: NAME.json, NAME.png, "
                      "NAME_ranks.npz under bench/results")
  parser.add_argument("--compare", nargs="*", metavar="FIELD=VALUE",
                      default=["item_text_for=every_item",
                               "text_in_history=False"],
                      help="TrainerConfig changes that make the third model "
                      "(none: no third model)")
  args = parser.parse_args(argv)
  full = chosen_config()
  models = [("full", full), ("no_text", chosen_config("no_text"))]
  if args.compare:
    models.append(compared(full, args.compare))
  setup = quality.prepare(args.output_dir, args.steps, args.batch_size)
  runs, summaries, ranks = [], {}, {}
  for window_name in args.windows:
    at = window(setup, window_name)
    window_ranks = {}
    peer_rank = seen_excluded_ranks(at, quality.run_ease_recency(
        setup.bench, chosen_params(PEER), at.train, at.queries, at.seen))
    for seed in range(1, args.seeds + 1):
      window_ranks[(PEER, seed)] = peer_rank
      runs.append({"window": window_name, "name": PEER, "seed": seed,
                   **measure(at, peer_rank), "examples_per_second": None})
      for name, config in models:
        result = train(setup, at, config, seed)
        scored = [(name, result)]
        if name == "full" and config.can_read_history_text():
          scored.append(quality.history_text_other_way(
              setup.bench, config, result, at.queries))
        if name == "full" and config.use_text and config.item_item_weight:
          scored.append(quality.new_items_other_way(
              setup.bench, config, result, at.train, at.queries))
        for scored_name, scored_result in scored:
          rank = seen_excluded_ranks(at, scored_result)
          window_ranks[(scored_name, seed)] = rank
          row = {"window": window_name, "name": scored_name, "seed": seed,
                 **measure(at, rank),
                 "examples_per_second": result["examples_per_second"]}
          runs.append(row)
          print(f"{window_name} seed {seed} {scored_name:<8} " + "  ".join(
              f"{k} {v:.4f}" for k, v in row.items()
              if isinstance(v, float)), flush=True)
    summaries[window_name] = {
        **summarise([r for r in runs if r["window"] == window_name]),
        "bootstrap": user_bootstrap(window_ranks, at),
        "over_" + PEER: peer_ratios(
            [r for r in runs if r["window"] == window_name]),
        "users": int(len(np.unique(at.queries.users))),
        "interactions": int(len(at.queries))}
    ranks.update({f"{window_name}/{n}/{s}": r
                  for (n, s), r in window_ranks.items()})
    ranks[f"{window_name}/users"] = at.queries.users.astype("S")
    ranks[f"{window_name}/cold"] = at.cold
    print_table(f"{window_name} window ({summaries[window_name]['users']} "
                f"users, {len(at.queries)} interactions)",
                summaries[window_name])
  path = os.path.join(quality.RESULTS, args.name + ".json")
  with open(path, "w") as f:
    json.dump({"config": quality._changed(full), "steps": args.steps,
               "bootstrap_resamples": bootstrap.RESAMPLES, "runs": runs,
               "windows": summaries}, f, indent=1)
  np.savez_compressed(path.replace(".json", "_ranks.npz"), **ranks)
  plot(summaries, path.replace(".json", ".png"))
  return 0


if __name__ == "__main__":
  sys.exit(main())
