"""Explanation faithfulness and similar-item quality, through the exported
signatures themselves.

bench-quality calls `rows` on its full model (quality.json); `python -m
bench.scenarios` (`make bench-scenarios`) measures the pipeline's newest
pushed model the same way and writes bench/results/scenarios.json, so
quality.json stays one bench-quality run.

explanations: for eval users, `recommend_unseen`'s top 10 with their
  `because` item. A case is faithful when removing the because item from
  the history lowers that recommended item's score more than removing a
  random other history item (of those the model reads). For comparison,
  the same share for the explanation most systems show: the history item
  nearest to the recommended item in the candidate space. How varied the
  reasons are: distinct because items per list and the share of lists
  with a single one, for the model's explanations and for always naming
  the history item whose removal lowers the score most (1 faithful by
  construction; the model's with explanation_min_share 1).
watched_in_recommend: the same users' `recommend` top 10 (seen items
  kept; `serving_default` served them until 2026-12-05): the share of
  slots holding a film the user has already rated, and how many of those
  say `seen`.
similar_items: for every catalogue item, `similar_items`' top 10. Genre
  overlap@10 (share of neighbours sharing a genre with the item) against 10
  random items; co-watch@10 (share of neighbours that the item's training
  raters went on to rate in the eval period) against item-item
  co-occurrence on the training interactions (the classic "people who
  rated this also rated").
"""
import argparse
import json
import os
import sys
from typing import Dict, List, Sequence

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from trainer import contract  # noqa: E402
from trainer import features  # noqa: E402
from trainer import index  # noqa: E402
from trainer import item_item  # noqa: E402

K = 10


def _tensors(inputs: Dict[str, np.ndarray]) -> Dict[str, tf.Tensor]:
  return {k: tf.constant(v) for k, v in inputs.items()}


def _text(value) -> str:
  return value.decode() if isinstance(value, bytes) else str(value)


def eval_users(test, limit: int = 300, min_history: int = 2) -> List[Dict]:
  """Up to `limit` eval users, each as their last eval request (profile and
  history, oldest first) as a live service would send it."""
  raw = test.raw
  column = lambda key: raw[key].numpy().reshape(-1)  # noqa: E731
  histories = tf.RaggedTensor.from_sparse(raw[features.HISTORY]).numpy()
  last = {}
  for i, user in enumerate(column(features.USER_ID)):
    if len(histories[i]) >= min_history:
      last[_text(user)] = i
  return [{"user_id": user, "age": int(column(features.AGE)[i]),
           "gender": _text(column(features.GENDER)[i]),
           "occupation": _text(column(features.OCCUPATION)[i]),
           "history": [_text(h) for h in histories[i]]}
          for user, i in sorted(last.items())[:limit]]


def _top_k_by_user(signature, users: Sequence[Dict]):
  """(user, that user's outputs) for each of `users`: `signature`
  (recommend or recommend_unseen) on chunks of 50, top K, no rules."""
  for start in range(0, len(users), 50):
    chunk = users[start:start + 50]
    out = signature(**_tensors(contract.user_inputs(chunk)),
                    k=tf.constant(K),
                    **_tensors(contract.rule_inputs(len(chunk))))
    for u, user in enumerate(chunk):
      yield user, {key: value[u].numpy() for key, value in out.items()}


def explanation_row(module, users: Sequence[Dict],
                    settings: index.IndexSettings, seed: int = 0) -> Dict:
  """`settings`: the model's (IndexSettings): its history window, and its
  ranking stage's predicted rating and item-item term, which are part of
  the score a history item moves."""
  window, rerank_weight = settings.exclude_margin, settings.rerank_weight
  rng = np.random.default_rng(seed)
  faithful = nearest_faithful = cases = 0
  reasons = {"model": [], "strongest": []}  # distinct because per list
  for user, out in _top_k_by_user(module.recommend_unseen, users):
    recent = user["history"][-window:]
    items = [_text(i) for i in out[contract.ITEM_IDS] if i]
    because = [_text(b) for b in
               out[contract.BECAUSE_ITEM_IDS][:len(items)]]
    variants = [dict(user, history=recent[:j] + recent[j + 1:])
                for j in range(len(recent))] + [dict(user, history=recent)]
    queries = module.towers.query(**_tensors(
        contract.user_inputs(variants))).numpy()
    vectors = module.indexed_item_vectors(tf.constant(items)).numpy()
    scores = vectors @ queries.T  # [k, W + 1]: without item j; all
    if rerank_weight and items:
      pairs = np.broadcast_to(queries, (len(items), *queries.shape))
      scores = scores + rerank_weight * module.towers.rating(
          tf.constant(pairs.reshape(-1, queries.shape[1])),
          tf.constant(np.repeat(vectors, len(queries), axis=0))
      ).numpy().reshape(scores.shape)
    drop = scores[:, -1:] - scores[:, :-1] + item_item.served_parts(
        module, settings.item_item_weight, settings.item_item_decay, recent,
        items)
    history_vectors = module.indexed_item_vectors(
        tf.constant(recent)).numpy()
    nearest = np.argmax(vectors @ history_vectors.T, axis=1)
    if items:
      reasons["model"].append(len(set(because)))
      reasons["strongest"].append(len(set(np.argmax(drop, axis=1))))
    for r in range(len(items)):
      chosen = recent.index(because[r])
      for pick, count in ((chosen, "model"), (nearest[r], "nearest")):
        other = rng.choice([j for j in range(len(recent)) if j != pick])
        won = bool(drop[r, pick] > drop[r, other])
        if count == "model":
          faithful += won
        else:
          nearest_faithful += won
      cases += 1
  return {"name": "explanations", "faithful_share": faithful / cases,
          "nearest_item_faithful_share": nearest_faithful / cases,
          "reasons_per_list": float(np.mean(reasons["model"])),
          "single_reason_share": float(np.mean(
              np.equal(reasons["model"], 1))),
          "strongest_item_reasons_per_list": float(np.mean(
              reasons["strongest"])),
          "strongest_item_single_reason_share": float(np.mean(
              np.equal(reasons["strongest"], 1))),
          # Lists with 1, 2, ... K distinct reasons (the plot).
          "reasons_per_list_counts": {
              name: np.bincount(counts, minlength=K + 1)[1:].tolist()
              for name, counts in reasons.items()},
          "cases": cases, "users": len(users), "history_window": window}


def watched_row(module, users: Sequence[Dict]) -> Dict:
  """How much of `recommend`'s top K (seen items kept; what a caller that
  named no signature got until serving_default became recommend_unseen) is
  films the user has already rated, for the same eval users with their
  whole histories.
  Read from ids, so it holds for models exported before the `seen` reason;
  where the model gives reasons, how many of those slots say `seen`."""
  watched = said_seen = slots = 0
  per_user = []
  for user, out in _top_k_by_user(module.recommend, users):
    history = set(user["history"])
    items = [_text(i) for i in out[contract.ITEM_IDS] if i]
    reasons = [_text(r) for r in out[contract.REASON]]
    hits = [i for i, item in enumerate(items) if item in history]
    per_user.append(len(hits))
    watched += len(hits)
    said_seen += sum(reasons[i] == contract.REASON_SEEN for i in hits)
    slots += len(items)
  return {"name": "watched_in_recommend", "watched_share": watched / slots,
          "watched_per_list": float(np.mean(per_user)),
          "users_with_watched": float(np.mean(np.greater(per_user, 0))),
          "watched_said_seen": said_seen / watched if watched else None,
          "slots": slots, "users": len(users), "k": K}


def _neighbours(module, item_ids: Sequence[str], row_of: Dict[str, int]
                ) -> np.ndarray:
  """[N, K] catalogue rows of each item's similar_items (-1: none)."""
  tops = []
  for start in range(0, len(item_ids), 256):
    chunk = list(item_ids[start:start + 256])
    inputs = dict(contract.similar_inputs([{"item_id": i} for i in chunk]),
                  **contract.rule_inputs(len(chunk)))
    out = module.similar_items(**_tensors(inputs), k=tf.constant(K))
    tops.append([[row_of.get(_text(i), -1) for i in row]
                 for row in out[contract.ITEM_IDS].numpy()])
  return np.array(tops[0] if len(tops) == 1 else np.concatenate(tops))


def similar_items_row(module, train, test, item_ids: Sequence[str],
                      genres: Sequence[set], seed: int = 0) -> Dict:
  """train/test: validation.Interactions over catalogue rows."""
  rng = np.random.default_rng(seed)
  n = len(item_ids)
  row_of = {item: i for i, item in enumerate(item_ids)}
  top = _neighbours(module, item_ids, row_of)
  random_top = np.array([rng.choice(np.delete(np.arange(n), i), K,
                                    replace=False) for i in range(n)])

  def genre_overlap(neighbours):
    shares = [np.mean([bool(genres[i] & genres[j]) for j in row if j >= 0])
              for i, row in enumerate(neighbours) if genres[i]]
    return float(np.mean(shares))

  users = {u: i for i, u in enumerate(np.unique(np.concatenate(
      [train.users, test.users])))}

  def matrix(interactions):
    m = np.zeros([len(users), n], np.float32)
    keep = interactions.items >= 0
    m[[users[u] for u in interactions.users[keep]],
      interactions.items[keep]] = 1.0
    return m

  rated, later = matrix(train), matrix(test)
  together = rated.T @ rated
  np.fill_diagonal(together, -1.0)
  cooccurrence = np.argsort(-together, axis=1)[:, :K]
  # Items each item's training raters rated in the eval period.
  went_on = (rated.T @ later) > 0
  judged = [i for i in range(n) if went_on[i].any()]

  def co_watch(neighbours):
    return float(np.mean([np.mean([went_on[i, j] for j in neighbours[i]
                                   if j >= 0]) for i in judged]))

  return {"name": "similar_items", "genre_overlap@10": genre_overlap(top),
          "genre_overlap@10_random": genre_overlap(random_top),
          "co_watch@10": co_watch(top),
          "co_watch@10_cooccurrence": co_watch(cooccurrence),
          "items": n, "items_with_co_watch": len(judged)}


def rows(module, train, test, item_ids: Sequence[str],
         genres: Sequence[set], settings: index.IndexSettings) -> List[Dict]:
  """The rows for a RecommenderModule (or a loaded SavedModel) exported
  with `settings`."""
  users = eval_users(test)
  return [explanation_row(module, users, settings),
          watched_row(module, users),
          similar_items_row(module, train, test, item_ids, genres)]


def plot(row: Dict, path: str) -> None:
  """How many distinct reasons a list of K gets: the model's explanations
  against always naming the strongest history item, with faithful shares."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  counts = row["reasons_per_list_counts"]
  lists = sum(counts["model"])
  fig, ax = plt.subplots(figsize=(7, 3.8))
  x = np.arange(1, K + 1)
  for shift, name, label, colour in (
      (-0.2, "strongest", "strongest history item (faithful 1 by "
       f"construction): {row['strongest_item_reasons_per_list']:.2f} per "
       "list", "tab:grey"),
      (0.2, "model", f"the model's (faithful {row['faithful_share']:.3f}): "
       f"{row['reasons_per_list']:.2f} per list", "tab:blue")):
    ax.bar(x + shift, np.array(counts[name]) / lists, width=0.4,
           color=colour, label=label)
  ax.set_xticks(x)
  ax.set_xlabel(f"distinct 'because you watched' items in a top {K}")
  ax.set_ylabel(f"share of {lists} users' lists")
  ax.legend(fontsize=8)
  ax.set_title("How varied the reasons are", fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def merge_into(path: str, new_rows: List[Dict]) -> None:
  """Replaces the rows of the same names in quality.json (or adds them)."""
  names = {r["name"] for r in new_rows}
  existing = []
  if os.path.exists(path):
    with open(path) as f:
      existing = [r for r in json.load(f) if r["name"] not in names]
  at = next((i for i, r in enumerate(existing)
             if r["name"] == "validation"), len(existing))
  with open(path, "w") as f:
    json.dump(existing[:at] + new_rows + existing[at:], f, indent=1)


def main(argv=None) -> int:
  import tensorflow_text  # noqa: F401  (the exported tokenizer's ops)

  from pipeline import configs
  from pipeline import evaluation
  from trainer import item_embeddings
  from trainer import validation
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--output-dir", default="outputs")
  parser.add_argument("--model-base-path", default=None,
                      help="default: <output-dir>/serving/recommender")
  parser.add_argument("--results", default=os.path.join(
      os.path.dirname(os.path.abspath(__file__)), "results",
      "scenarios.json"))
  args = parser.parse_args(argv)
  config = configs.PipelineConfig(output_dir=os.path.abspath(args.output_dir))
  version = contract.latest_version_dir(args.model_base_path or
                                        config.serving_model_dir)
  examples = evaluation.latest_output(config.pipeline_root,
                                      "MovieLensExampleGen", "examples")
  split = lambda s: tf.io.gfile.glob(  # noqa: E731
      os.path.join(examples, f"Split-{s}", "*"))
  catalog = item_embeddings.read_catalog(split("items")[0])
  item_ids = [_text(i) for i in catalog[features.ITEM_ID].numpy().reshape(-1)]
  genres = [{_text(g) for g in row if g} for row in tf.sparse.to_dense(
      catalog[features.GENRES], "").numpy()]
  row_of = {item: i for i, item in enumerate(item_ids)}
  train = validation.Interactions.read(split("train"), row_of)
  test = validation.Interactions.read(split("eval"), row_of)
  module = tf.saved_model.load(version)
  settings = index.IndexSettings.read(version)
  print(f"measuring {version}", flush=True)
  # The pushed model, named relative to the checkout (results are committed).
  new_rows = [dict(row, model=os.path.relpath(version)) for row in
              rows(module, train, test, item_ids, genres, settings)]
  for row in new_rows:
    print(json.dumps(row))
  merge_into(args.results, new_rows)
  picture = os.path.splitext(args.results)[0] + "_explanations.png"
  plot(new_rows[0], picture)
  print(f"merged into {args.results}; plot {picture}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
