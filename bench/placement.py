"""`make bench-placement`: where the full model's cold-start lead over its
no-text ablation comes from.

Where an item without an id row (new since training) goes is one of two
things text changes (the other: history_id_dropout reads hidden history
items from their text in training, so the two models no longer rank warm
items alike). This bench isolates placement: every placement is scored
from one trained model, share 0 at scale 1 standing for no_text's way of
placing new items. The full model puts a new item at a mix of where its
text puts it and the unknown-id row's vector
(TrainerConfig.new_item_text_share), times new_item_score_scale; no_text
at the unknown-id row alone (share 0), scale 1. This trains
bench-quality's full config once on the fit window (scored on the
validation window) and once on the training period (scored on eval), and
scores every placement from that one model:
  boosted: each share at the config's served scale (chosen on
    validation) and at scales from 1 up to 1.3; share 0 above scale 1 is
    no_text's own placement, boosted.
  slots: new items keep the positions no_text gives them and the text mix
    only decides which new item fills which: text as an ordering of new
    items and nothing else.
  no_text (--no-text): the no-text model trained on the same window with
    the same seed, and how far its query vectors and its known items'
    vectors lie from the full model's. Where text cannot reach the user
    tower (history_id_dropout 0), both are 0: the two models differ only
    in where they put new items, and the share-0 row at scale 1 is
    no_text's row to the digit.
Rows are in retrieval's order, without the exported ranking stage
(TrainerConfig.rerank_weight), as new-item serving is chosen;
bench-quality's rows of ours include the stage.
--set FIELD=VALUE trains the full config with those changes (e.g.
history_id_dropout=0.1, the one-seed choice); --name names the files.
Writes bench/results/placement.json and placement.png (by default).
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

SHARES = (0.0, 0.25, 1.0)
SCALES = (1.0, 1.02, 1.05, 1.1, 1.2, 1.3)
COLUMNS = ("recall@10", "recall@50", "recall@100", "ndcg@10")
NAME = "placement"


def scales_for(config) -> List[float]:
  """SCALES plus the config's own (served) new-item scale, in order: the
  table then holds the placement the Trainer serves (e.g. 0.97, below
  the boosts)."""
  return sorted({config.new_item_score_scale, *SCALES})


def in_slots(query: np.ndarray, slotted: np.ndarray, ordered: np.ndarray,
             new_rows: np.ndarray, seen) -> np.ndarray:
  """[n, N] scores: warm columns query . slotted; among the new items a
  user has not seen, the k-th best by `ordered` gets the k-th best score
  any of them has by `slotted`, so the new items hold exactly the
  positions `slotted` gives them."""
  scores = query @ slotted.T
  cols = np.flatnonzero(new_rows)
  slots = scores[:, cols]
  order = query @ ordered[cols].T
  unseen = seen[:, cols].toarray() == 0
  slots = np.where(unseen, slots, -np.inf)
  order = np.where(unseen, order, -np.inf)
  best_first = -np.sort(-slots, axis=1)
  filled = np.empty_like(slots)
  np.put_along_axis(filled, np.argsort(-order, axis=1, kind="stable"),
                    best_first, 1)
  scores[:, cols] = filled
  return scores


def measured(family: str, share: float, scale: float, scores: np.ndarray,
             queries, seen, cold: np.ndarray) -> Dict:
  """One table row: the warm columns over all interactions, new items'
  recall over the `cold` ones."""
  every = validation.evaluate(scores, queries, seen)
  new = validation.evaluate(scores, queries, seen, cold)
  return {"family": family, "share": share, "scale": scale,
          **{k: every[k] for k in COLUMNS},
          "cold_recall@50": new["recall@50"],
          "cold_recall@100": new["recall@100"],
          "cold_interactions": int(cold.sum())}


def score_placements(result: Dict, queries, seen,
                     scales: List[float]) -> List[Dict]:
  placements, new_rows = result["placements"], result["new_rows"]
  cold = queries.on_items(new_rows)
  unknown = validation.new_item_candidates(placements, new_rows, 0.0, 1.0)
  rows = []

  def row(family, share, scale, scores):
    rows.append(measured(family, share, scale, scores, queries, seen, cold))

  for share in SHARES:
    for scale in scales:
      candidates = validation.new_item_candidates(placements, new_rows,
                                                  share, scale)
      row("boosted", share, scale, result["query"] @ candidates.T)
    if share > 0:
      mixed = validation.new_item_candidates(placements, new_rows, share, 1.0)
      row("slots", share, 1.0, in_slots(result["query"], unknown, mixed,
                                        new_rows, seen))
  return rows


def against_no_text(full: Dict, no_text: Dict, queries, seen) -> Dict:
  """no_text's row (share 0, scale 1: how it serves new items) and the
  largest gaps between its vectors and the full model's: of the users'
  query vectors and of the known items' candidate vectors."""
  known = ~full["new_rows"]
  return {**measured("no_text", 0.0, 1.0, no_text["scores"], queries, seen,
                     queries.on_items(full["new_rows"])),
          "query_max_abs_gap": float(np.abs(full["query"] -
                                            no_text["query"]).max()),
          "known_item_max_abs_gap": float(np.abs(
              full["candidates"][known] -
              no_text["candidates"][known]).max())}


def print_table(window: str, rows: List[Dict]) -> None:
  print(f"\n{window}: {rows[0]['cold_interactions']} interactions with "
        f"new items")
  print(f"{'placement':<24}" + "".join(f"{k:>11}" for k in COLUMNS) +
        f"{'cold r@50':>11}{'cold r@100':>11}")
  for r in rows:
    name = ("no_text" if r["family"] == "no_text" else
            f"{r['family']} {r['share']:g} x{r['scale']:g}")
    print(f"{name:<24}" + "".join(
        f"{r[k]:>11.4f}" for k in (*COLUMNS, "cold_recall@50",
                                   "cold_recall@100")))
    if r["family"] == "no_text":
      print(f"  no_text vs full: query vectors differ by at most "
            f"{r['query_max_abs_gap']:.2e}, known items' vectors by "
            f"{r['known_item_max_abs_gap']:.2e}")


def plot(results: Dict[str, List[Dict]], path: str, served) -> None:
  """served: the config's (share, scale), marked on each panel."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, len(results), figsize=(11, 4.2))
  for ax, (window, rows) in zip(axes, results.items()):
    for share, colour in zip(SHARES, ("tab:grey", "tab:blue", "tab:orange")):
      line = [r for r in rows if r["family"] == "boosted"
              and r["share"] == share]
      ax.plot([r["cold_recall@100"] for r in line],
              [r["recall@10"] for r in line], "o-", color=colour,
              markersize=4,
              label=f"share {share:g}, scale {line[0]['scale']:g} … 1.3"
              + (" (the unknown-id row)" if share == 0 else ""))
      for r in line:
        if (r["share"], r["scale"]) == tuple(served):
          ax.annotate(f"served ({r['share']:g}, x{r['scale']:g})",
                      (r["cold_recall@100"], r["recall@10"]),
                      fontsize=7, xytext=(3, 5), textcoords="offset points")
      for r in rows:
        if r["family"] == "no_text" and share == 0:
          ax.plot(r["cold_recall@100"], r["recall@10"], "s", color="black",
                  markerfacecolor="none", markersize=9, label="no_text")
        if r["family"] == "slots" and r["share"] == share:
          ax.plot(r["cold_recall@100"], r["recall@10"], "x", color=colour,
                  markersize=8,
                  label=f"share {share:g} in the unknown-id row's slots")
    ax.set_title(f"{window} (one model, seen excluded)", fontsize=9)
    ax.set_xlabel("new items' recall@100")
    ax.set_ylabel("recall@10, all interactions")
    ax.grid(alpha=0.3)
  axes[0].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  print(f"plot: {path}")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  quality.add_setup_arguments(parser)
  parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                      help="train the full config with these changes")
  parser.add_argument("--no-text", action="store_true",
                      help="also train no_text and compare its vectors")
  parser.add_argument("--name", default=NAME,
                      help="bench/results/NAME.json and NAME.png")
  args = parser.parse_args(argv)
  config = seeds.chosen_config()
  if args.set:
    _, config = seeds.compared(config, args.set)
  path = os.path.join(quality.RESULTS, f"{args.name}.json")
  setup = quality.prepare(args.output_dir, args.steps, args.batch_size)
  results = {}
  for window, train, queries, seen in (
      ("validation", setup.fit, setup.held_out, setup.seen_held_out),
      ("eval", setup.train, setup.test, setup.seen_test)):
    print(f"training on the {window} split's training interactions",
          flush=True)
    result = quality.run_ours(setup.bench, {"config": config}, train,
                              queries, seen)
    results[window] = score_placements(result, queries, seen,
                                       scales_for(config))
    if args.no_text:
      print(f"training no_text on the {window} split's training "
            "interactions", flush=True)
      no_text = quality.run_ours(
          setup.bench, {"config": seeds.chosen_config("no_text")}, train,
          queries, seen)
      results[window].append(against_no_text(result, no_text, queries, seen))
    print_table(window, results[window])
  with open(path, "w") as f:
    json.dump({"config": dataclasses.asdict(config), "steps": args.steps,
               "changes": args.set, **results}, f, indent=1)
  plot(results, path.replace(".json", ".png"),
       (config.new_item_text_share, config.new_item_score_scale))
  return 0


if __name__ == "__main__":
  sys.exit(main())
