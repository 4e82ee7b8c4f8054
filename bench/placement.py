"""`make bench-placement`: where the full model's cold-start lead over its
no-text ablation comes from, and whether text places unseen items better
than the unknown-id row.

Where an item without an id row (new since training) goes is one of two
things text changes (the other: history_id_dropout reads hidden history
items from their text in training, so the two models no longer rank warm
items alike). This bench isolates placement: every placement is scored
from one trained model, share 0 at scale 1 standing for no_text's way of
placing new items. The full model puts a new item at a mix of where its
text puts it and the unknown-id row's vector
(TrainerConfig.new_item_text_share), times new_item_score_scale; no_text
at the unknown-id row alone (share 0), scale 1. Every list is scored as
the exported model serves it: the towers' cosine plus the item-item term,
then the ranking stage (TrainerConfig.rerank_weight), as bench-quality's
rows of ours are. bench-quality's full config is trained once per window:
  validation: on the fit window, scored on the validation window (its
    new items: the newest release wave, held out of the fit window);
  eval: on the training period, scored on eval (126 interactions with
    items first rated in eval);
  hidden (--hidden-share, a tenth by default): on the training period
    with a random share of its rated items hidden, as if released after
    it (their ratings dropped, their ids unknown in every history),
    scored on eval; "new items" there are the hidden ones, films of every
    age and popularity with about seven times the eval's cold
    interactions, where the unknown-id row's prior (new releases are
    watched now) does not apply and only an item's content can place it.
Each window's placements:
  boosted: each share at the config's served scale and at scales 0.9 to
    1.1; share 0 at scale 1 is no_text's own placement.
  slots: new items keep the positions no_text gives them and the text mix
    only decides which new item fills which: text as an ordering of new
    items and nothing else.
  no_text (--no-text): the no-text model trained on the same window with
    the same seed, and how far its query vectors and its known items'
    vectors lie from the full model's. Where text cannot reach the user
    tower (history_id_dropout 0), both are 0: the two models differ only
    in where they put new items, and the share-0 row at scale 1 is
    no_text's row to the digit.
--set FIELD=VALUE trains the full config with those changes (e.g.
history_id_dropout=0.1, the one-seed choice); --seed trains with another
seed (1 by default); --name names the files.
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

from bench import bootstrap  # noqa: E402
from bench import quality  # noqa: E402
from bench import seeds  # noqa: E402
from trainer import validation  # noqa: E402

SHARES = (0.0, 0.25, 0.5, 1.0)
SCALES = (0.9, 0.95, 1.0, 1.05, 1.1)
COLUMNS = ("recall@10", "recall@50", "recall@100", "ndcg@10")
NAME = "placement"
HIDDEN_SHARE = 0.1
HIDDEN_SEED = 13


def scales_for(config) -> List[float]:
  """SCALES plus the config's own (served) new-item scale, in order: the
  table then holds the placement the Trainer serves (e.g. 0.97, between
  the grid's points)."""
  return sorted({config.new_item_score_scale, *SCALES})


def in_slots(query: np.ndarray, slotted: np.ndarray, ordered: np.ndarray,
             new_rows: np.ndarray, seen, extra=0.0) -> np.ndarray:
  """[n, N] scores: query . slotted (+ `extra` [n, N], the item-item
  term); among the new items a user has not seen, the k-th best by
  `ordered` gets the k-th best score any of them has by those scores, so
  the new items hold exactly the positions `slotted` gives them."""
  scores = query @ slotted.T + extra
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


def hidden_items(train, num_items: int, share: float,
                 seed: int = HIDDEN_SEED) -> np.ndarray:
  """[num_items] bool: a random `share` of the items rated in `train`
  (fixed seed: every run hides the same ones)."""
  rated = np.flatnonzero(~validation.new_item_rows(train, num_items))
  picked = np.random.default_rng(seed).choice(
      rated, size=int(round(share * len(rated))), replace=False)
  out = np.zeros(num_items, bool)
  out[picked] = True
  return out


def measured(family: str, share: float, scale: float, top: np.ndarray,
             queries, cold: np.ndarray, num_items: int) -> Dict:
  """One table row from the served lists `top` [n, 100]: the warm columns
  over all interactions, new items' recall over the `cold` ones."""
  every = validation.ranking_metrics(top, queries.items, num_items)
  new = validation.ranking_metrics(top[cold], queries.items[cold],
                                   num_items)
  return {"family": family, "share": share, "scale": scale,
          **{k: every[k] for k in COLUMNS},
          "cold_recall@50": new["recall@50"],
          "cold_recall@100": new["recall@100"],
          "cold_interactions": int(cold.sum())}


def served(config, result: Dict, candidates: np.ndarray,
           scores: np.ndarray, seen) -> np.ndarray:
  """[n, 100] the lists the exported model would serve with these
  candidate vectors and retrieval scores: seen items excluded, then the
  config's ranking stage."""
  ranking = validation.RankingStage.of(config, result["model"],
                                       result["query"], candidates)
  return validation.served_top(scores, seen, ranking)


def gaps_to(rank: np.ndarray, base: np.ndarray, users: np.ndarray,
            cold: np.ndarray) -> Dict[str, Dict[str, float]]:
  """Per column, the gap of the lists with per-interaction ranks `rank`
  over those with `base` (share 0, scale 1: no_text's placement) and its
  95% interval over resamples of the window's users (bench.bootstrap):
  the warm columns over all interactions, new items' recall@100 over the
  `cold` ones."""
  ours, theirs = (validation.per_interaction(r) for r in (rank, base))
  every = bootstrap.paired_gap([{k: ours[k] for k in COLUMNS}],
                               [{k: theirs[k] for k in COLUMNS}], users)
  new = bootstrap.paired_gap(
      [{"cold_recall@100": ours["recall@100"][cold]}],
      [{"cold_recall@100": theirs["recall@100"][cold]}], users[cold])
  return {k: {"gap": v["gap"], "low": v["low"], "high": v["high"]}
          for k, v in {**every, **new}.items()}


def score_placements(result: Dict, queries, seen, scales: List[float],
                     config, cold: np.ndarray) -> List[Dict]:
  """Every placement's row, each with its gaps to no_text's placement
  (share 0, scale 1) and their intervals."""
  placements, new_rows = result["placements"], result["new_rows"]
  term = result["item_item"]
  num_items = len(new_rows)
  unknown = validation.new_item_candidates(placements, new_rows, 0.0, 1.0)
  rows, ranks = [], []

  def row(family, share, scale, candidates, scores):
    top = served(config, result, candidates, scores, seen)
    rows.append(measured(family, share, scale, top, queries, cold,
                         num_items))
    ranks.append(validation.ranks(top, queries.items))

  for share in SHARES:
    for scale in scales:
      candidates = validation.new_item_candidates(placements, new_rows,
                                                  share, scale)
      row("boosted", share, scale, candidates,
          result["query"] @ candidates.T + term)
    if share > 0:
      mixed = validation.new_item_candidates(placements, new_rows, share, 1.0)
      row("slots", share, 1.0, mixed,
          in_slots(result["query"], unknown, mixed, new_rows, seen, term))
  base = next(rank for r, rank in zip(rows, ranks) if r["family"] ==
              "boosted" and (r["share"], r["scale"]) == (0.0, 1.0))
  for r, rank in zip(rows, ranks):
    r["gaps"] = gaps_to(rank, base, queries.users, cold)
  return rows


def against_no_text(full: Dict, no_text: Dict, queries, seen,
                    cold: np.ndarray) -> Dict:
  """no_text's row (share 0, scale 1: how it serves new items; its own
  ranking stage if it has one) and the largest gaps between its vectors
  and the full model's: of the users' query vectors and of the known
  items' candidate vectors."""
  known = ~full["new_rows"]
  top = validation.served_top(no_text["scores"], seen,
                              no_text.get("ranking"))
  return {**measured("no_text", 0.0, 1.0, top, queries, cold,
                     len(known)),
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
  print(f"\n{window}: gap to no_text's placement (share 0, x1), 95% "
        f"interval over the window's users")
  for r in rows:
    if "gaps" not in r:
      continue
    name = f"{r['family']} {r['share']:g} x{r['scale']:g}"
    print(f"{name:<18}" + "".join(
        f" {k.replace('recall', 'r')} {g['gap']:+.4f} "
        f"({g['low']:+.4f}…{g['high']:+.4f})"
        for k, g in r["gaps"].items()) + f"  {verdict(r['gaps'])}")


def verdict(gaps: Dict[str, Dict[str, float]]) -> str:
  """What the issue asks of text against no_text, for one placement:
  "level or ahead" when no warm column is behind and new items are ahead;
  "within noise" when no warm column is behind beyond its interval and new
  items are ahead beyond theirs; else ""."""
  warm = [gaps[k] for k in COLUMNS]
  cold = gaps["cold_recall@100"]
  if all(g["gap"] >= 0 for g in warm) and cold["gap"] > 0:
    return "level or ahead"
  if all(g["high"] >= 0 for g in warm) and cold["low"] > 0:
    return "within noise"
  return ""


def plot(results: Dict[str, List[Dict]], path: str, served_at) -> None:
  """served_at: the config's (share, scale), marked on each panel."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, len(results), figsize=(5.2 * len(results), 4.4),
                           squeeze=False)
  colours = ("tab:grey", "tab:blue", "tab:green", "tab:orange")
  for ax, (window, rows) in zip(axes[0], results.items()):
    for share, colour in zip(SHARES, colours):
      line = [r for r in rows if r["family"] == "boosted"
              and r["share"] == share]
      ax.plot([r["cold_recall@100"] for r in line],
              [r["recall@10"] for r in line], "o-", color=colour,
              markersize=4,
              label=f"share {share:g}, scale {line[0]['scale']:g} … "
              f"{line[-1]['scale']:g}"
              + (" (the unknown-id row)" if share == 0 else ""))
      for r in line:
        if (r["share"], r["scale"]) == tuple(served_at):
          ax.annotate(f"served ({r['share']:g}, x{r['scale']:g})",
                      (r["cold_recall@100"], r["recall@10"]),
                      fontsize=7, xytext=(3, 5), textcoords="offset points")
        if (r["share"], r["scale"]) == (0.0, 1.0):
          ax.annotate("no_text's placement",
                      (r["cold_recall@100"], r["recall@10"]),
                      fontsize=7, xytext=(3, -10), textcoords="offset points")
      for r in rows:
        if r["family"] == "no_text" and share == 0:
          ax.plot(r["cold_recall@100"], r["recall@10"], "s", color="black",
                  markerfacecolor="none", markersize=9, label="no_text")
        if r["family"] == "slots" and r["share"] == share:
          ax.plot(r["cold_recall@100"], r["recall@10"], "x", color=colour,
                  markersize=8,
                  label=f"share {share:g} in the unknown-id row's slots")
    ax.set_title(f"{window}: one model, as served, seen excluded\n"
                 f"({rows[0]['cold_interactions']} new-item interactions)",
                 fontsize=9)
    ax.set_xlabel("new items' recall@100")
    ax.set_ylabel("recall@10, all interactions")
    ax.grid(alpha=0.3)
  axes[0][0].legend(fontsize=6)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  print(f"plot: {path}")


WINDOWS = ("validation", "eval", "hidden")


def windows(setup, names, hidden_share: float, hidden_seed: int):
  """(name, training interactions, queries, seen, new items' rows or None:
  the items new to the model) for each window in `names`; the hidden
  window's new items are the hidden ones alone."""
  out = []
  if "validation" in names:
    out.append(("validation", setup.fit, setup.held_out,
                setup.seen_held_out, None))
  if "eval" in names:
    out.append(("eval", setup.train, setup.test, setup.seen_test, None))
  if "hidden" in names and hidden_share:
    hidden = hidden_items(setup.train, setup.bench.num_items, hidden_share,
                          hidden_seed)
    print(f"hiding {int(hidden.sum())} of the training period's rated "
          f"items ({hidden_share:g}, draw {hidden_seed})", flush=True)
    out.append((f"hidden {hidden_share:g}",
                setup.train.with_items_new(hidden, drop=True),
                setup.test.with_items_new(hidden, drop=False),
                setup.seen_test, hidden))
  return out


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  quality.add_setup_arguments(parser)
  parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                      help="train the full config with these changes")
  parser.add_argument("--no-text", action="store_true",
                      help="also train no_text and compare its vectors")
  parser.add_argument("--hidden-share", type=float, default=HIDDEN_SHARE,
                      help="share of the training period's rated items "
                      "hidden for the third window (0: no such window)")
  parser.add_argument("--hidden-seed", type=int, default=HIDDEN_SEED,
                      help="which random draw of items to hide")
  parser.add_argument("--windows", nargs="*", default=list(WINDOWS),
                      choices=WINDOWS, help="the windows to train and score")
  parser.add_argument("--seed", type=int, default=1,
                      help="training seed (weights and data order) of "
                      "every model trained")
  parser.add_argument("--name", default=NAME,
                      help="bench/results/NAME.json and NAME.png")
  args = parser.parse_args(argv)
  config = seeds.chosen_config()
  if args.set:
    _, config = seeds.compared(config, args.set)
  path = os.path.join(quality.RESULTS, f"{args.name}.json")
  setup = quality.prepare(args.output_dir, args.steps, args.batch_size)
  results = {}
  for window, train, queries, seen, new in windows(
      setup, args.windows, args.hidden_share, args.hidden_seed):
    print(f"training on the {window} window's training interactions",
          flush=True)
    result = quality.run_ours(setup.bench, {"config": config,
                                            "seed": args.seed}, train,
                              queries, seen)
    cold = queries.on_items(result["new_rows"] if new is None else new)
    results[window] = score_placements(result, queries, seen,
                                       scales_for(config), config, cold)
    if args.no_text:
      print(f"training no_text on the {window} window's training "
            "interactions", flush=True)
      no_text = quality.run_ours(
          setup.bench, {"config": seeds.chosen_config("no_text"),
                        "seed": args.seed}, train, queries, seen)
      results[window].append(against_no_text(result, no_text, queries, seen,
                                             cold))
    print_table(window, results[window])
  with open(path, "w") as f:
    json.dump({"config": dataclasses.asdict(config), "steps": args.steps,
               "changes": args.set, "hidden_share": args.hidden_share,
               "hidden_seed": args.hidden_seed, "seed": args.seed,
               **results}, f, indent=1)
  plot(results, path.replace(".json", ".png"),
       (config.new_item_text_share, config.new_item_score_scale))
  return 0


if __name__ == "__main__":
  sys.exit(main())
