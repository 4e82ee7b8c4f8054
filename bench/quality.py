"""`make bench-quality`: side-by-side retrieval quality on the temporal split.

Runs the pipeline up to Transform (cached after the first time), then trains
and evaluates every row in this one process on the same split:
  popularity, tfrs_tutorial (id-only two towers, 32-d, the TFRS tutorial
  architecture), full, no_text, no_history, and the cold-start slice (eval
  interactions whose item never occurs in training) for full and the tutorial;
plus search sanity rows. Prints a table, writes bench/results/quality.json and
bench/results/quality_recall.png.
"""
import argparse
import dataclasses
import json
import os
import sys
import time
from typing import Dict, List

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_recommenders as tfrs  # noqa: E402
import tensorflow_transform as tft  # noqa: E402

from pipeline import configs  # noqa: E402
from pipeline import data  # noqa: E402
from pipeline import demo  # noqa: E402
from pipeline import local_runner  # noqa: E402
from trainer import catalog as catalog_lib  # noqa: E402
from trainer import export  # noqa: E402
from trainer import features  # noqa: E402
from trainer import item_embeddings  # noqa: E402
from trainer import task  # noqa: E402
from trainer.config import TrainerConfig  # noqa: E402
from trainer.text_tower import TextEncoder  # noqa: E402

_xf = features.transformed_name
KS = (10, 50, 100)
RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def dataset(files: List[str], tft_layer, batch: int, repeat: bool):
  ds = tf.data.TFRecordDataset(files, "GZIP")
  if repeat:
    ds = ds.shuffle(20000, seed=1).repeat()
  return (ds.batch(batch, drop_remainder=repeat)
          .map(lambda x: tf.io.parse_example(x, features.raw_feature_spec()))
          .map(tft_layer).prefetch(2))


class TutorialModel(tfrs.models.Model):
  """The TFRS basic-retrieval tutorial: user id and item id embeddings (32-d),
  dot product, in-batch softmax without corrections, Adagrad 0.1."""

  def __init__(self, num_users: int, num_items: int):
    super().__init__()
    self.user = tf.keras.layers.Embedding(num_users + 1, 32)
    self.item = tf.keras.layers.Embedding(num_items + 1, 32)
    self.task = tfrs.tasks.Retrieval()

  def query(self, inputs):
    return self.user(inputs[_xf(features.USER_ID)])

  def candidates(self, inputs):
    return self.item(inputs[_xf(features.ITEM_ID)])

  def compute_loss(self, inputs, training=False):
    return self.task(self.query(inputs), self.candidates(inputs),
                     compute_metrics=False)


# The benchmark's genre queries (the target is judged on these) ...
GENRE_QUERIES = {"Animation": "animated children's film",
                 "Horror": "scary horror movie", "Western": "western",
                 "Documentary": "documentary", "Musical": "musical",
                 "War": "war film", "Sci-Fi": "science fiction"}
# ... and a disjoint set, the one search_text_match's default was chosen on.
VALIDATION_GENRE_QUERIES = {
    "Romance": "romantic comedy", "Crime": "crime thriller",
    "Film-Noir": "film noir detective story", "Fantasy": "fantasy adventure",
    "Mystery": "mystery", "Action": "action movie", "Comedy": "funny comedy",
    "Children's": "movie for kids"}


class StepClock(tf.keras.callbacks.Callback):
  """Times the steps after the first `skip` (tracing, input start-up), so
  examples/s is the per-epoch rate."""

  def __init__(self, steps: int, skip: int = 20):
    super().__init__()
    self.steps, self.skip = steps, min(skip, steps - 1)

  def on_train_batch_end(self, batch, logs=None):
    if batch + 1 == self.skip:
      self.start = time.perf_counter()

  def on_train_end(self, logs=None):
    self.seconds = time.perf_counter() - self.start

  def examples_per_second(self, batch_size: int) -> float:
    return (self.steps - self.skip) * batch_size / self.seconds


def personalized_search_row(module, eval_batch, genres, row_of, weight,
                            users: int = 50) -> Dict:
  """The benchmark's genre queries for `users` eval users: is each page
  still on topic, and how much does taste re-order it versus plain search?"""
  history = tf.sparse.to_dense(eval_batch[features.HISTORY], "").numpy()
  column = lambda key: eval_batch[key].numpy().reshape(-1)[:users]  # noqa
  inputs = {features.USER_ID: column(features.USER_ID),
            features.AGE: column(features.AGE),
            features.GENDER: column(features.GENDER),
            features.OCCUPATION: column(features.OCCUPATION),
            features.HISTORY: history[:users]}
  precision, overlap, distinct = [], [], []
  for genre, query in GENRE_QUERIES.items():
    plain = module.search(tf.constant([query]), tf.constant(10))[
        "item_ids"].numpy()[0]
    top = module.personalized_search(
        query=tf.constant([query] * users), k=tf.constant(10),
        **{k: tf.constant(v) for k, v in inputs.items()})["item_ids"].numpy()
    for page in top:
      precision.append(np.mean([genre.encode() in genres[row_of[i.decode()]]
                                for i in page]))
      overlap.append(len(set(page) & set(plain)) / 10)
    distinct.append(len({tuple(p) for p in top}))
  return {"name": "search_genre_personalized",
          "precision@10": float(np.mean(precision)),
          "overlap@10_with_plain_search": float(np.mean(overlap)),
          "distinct_pages_per_query": float(np.mean(distinct)),
          "users": users, "personalization_weight": weight}


def ranking_metrics(top: np.ndarray, truth: np.ndarray, n_items: int
                    ) -> Dict[str, float]:
  """top [N, 100] catalogue rows, truth [N] row of the rated item (-1 none)."""
  hits = top == truth[:, None]
  rank = np.where(hits.any(1), hits.argmax(1) + 1, 0)
  out = {f"recall@{k}": float(((rank > 0) & (rank <= k)).mean()) for k in KS}
  out["ndcg@10"] = float(np.where((rank > 0) & (rank <= 10),
                                  1.0 / np.log2(rank + 1), 0.0).mean())
  out["mrr"] = float(np.where(rank > 0, 1.0 / np.maximum(rank, 1), 0).mean())
  out["coverage@10"] = float(len(np.unique(top[:, :10])) / n_items)
  out["examples"] = int(len(truth))
  return out


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--output-dir", default="outputs")
  parser.add_argument("--steps", type=int, default=400,
                      help="training steps for every learned row")
  parser.add_argument("--batch-size", type=int, default=1024)
  args = parser.parse_args(argv)

  config = configs.PipelineConfig(
      output_dir=os.path.abspath(args.output_dir),
      data_dir=os.path.abspath("data/ml-100k"),
      text_encoder_dir=os.path.abspath("data/all-MiniLM-L6-v2"),
      train_steps=args.steps)
  data.fetch_movielens(config.data_dir)
  data.fetch_text_encoder(config.text_encoder_dir)
  local_runner.run(config)  # cached after the first run
  examples = demo.latest_output(config.pipeline_root, "MovieLensExampleGen",
                                 "examples")
  tft_output = tft.TFTransformOutput(demo.latest_output(
      config.pipeline_root, "Transform", "transform_graph"))
  tft_layer = tft_output.transform_features_layer()
  split = lambda s: tf.io.gfile.glob(os.path.join(examples, f"Split-{s}", "*"))
  catalog = item_embeddings.read_catalog(
      os.path.join(examples, "Split-items", "*"))
  ids = [i.decode() for i in catalog[features.ITEM_ID].numpy().reshape(-1)]
  row_of = {item: i for i, item in enumerate(ids)}

  eval_raw = [tf.io.parse_example(b, features.raw_feature_spec()) for b in
              tf.data.TFRecordDataset(split("eval"), "GZIP").batch(4096)]
  eval_items = np.concatenate([b[features.ITEM_ID].numpy().reshape(-1)
                               for b in eval_raw])
  eval_ratings = np.concatenate([b[features.RATING].numpy().reshape(-1)
                                 for b in eval_raw])
  truth = np.array([row_of.get(i.decode(), -1) for i in eval_items])
  train_counts = np.zeros(len(ids))
  for b in tf.data.TFRecordDataset(split("train"), "GZIP").batch(8192):
    spec = {features.ITEM_ID: features.raw_feature_spec()[features.ITEM_ID]}
    for i in tf.io.parse_example(b, spec)[features.ITEM_ID].numpy().reshape(
        -1):
      train_counts[row_of[i.decode()]] += 1
  cold = train_counts[np.maximum(truth, 0)] == 0

  encoder = TextEncoder(config.text_encoder_dir)
  vectors = item_embeddings.encode_catalog(encoder, catalog)
  text_vectors = vectors["item_text"]
  items = catalog_lib.Catalog(raw=catalog,
                              vocabulary=catalog_lib.item_vocabulary(tft_output),
                              text=vectors)
  rows = []

  def record(name, top, timing, rmse=None, mask=None):
    m = mask if mask is not None else np.ones(len(truth), bool)
    seconds, per_second = timing
    r = dict(name=name, **ranking_metrics(top[m], truth[m], len(ids)),
             rmse=rmse, train_seconds=round(seconds, 1),
             examples_per_second=round(per_second, 1) if per_second else None)
    rows.append(r)
    print(f"{name:<26} recall@100 {r['recall@100']:.4f}", flush=True)

  pop_top = np.tile(np.argsort(-train_counts)[:100], (len(truth), 1))
  record("popularity", pop_top, (0.0, None))

  def fit(model):
    clock = StepClock(args.steps)
    start = time.time()
    model.fit(dataset(split("train"), tft_layer, args.batch_size, True),
              steps_per_epoch=args.steps, epochs=1, verbose=0,
              callbacks=[clock])
    return time.time() - start, clock.examples_per_second(args.batch_size)

  # Untimed warm-up: the first model a process trains pays one-off costs
  # (~50 s here) that are not part of any epoch.
  warm = task.build_model(TrainerConfig(batch_size=args.batch_size),
                          tft_output, items)
  warm.compile(optimizer=tf.keras.optimizers.Adam(0.01))
  warm.fit(dataset(split("train"), tft_layer, args.batch_size, True),
           steps_per_epoch=30, epochs=1, verbose=0)

  def top100(queries: np.ndarray, cands: np.ndarray) -> np.ndarray:
    return np.argsort(-(queries @ cands.T), axis=1)[:, :100]

  # TFRS tutorial.
  tut = TutorialModel(tft_output.vocabulary_size_by_name(features.USER_VOCAB),
                      tft_output.vocabulary_size_by_name(features.ITEM_VOCAB))
  tut.compile(optimizer=tf.keras.optimizers.Adagrad(0.1))
  seconds = fit(tut)
  cat_t = tft_layer(features.complete_raw_features(catalog, len(ids)))
  cands = tut.candidates(cat_t).numpy()
  q = np.concatenate([tut.query(tft_layer(b)).numpy() for b in eval_raw])
  top = top100(q, cands)
  record("tfrs_tutorial", top, seconds)
  tutorial_top, tutorial_seconds = top, seconds

  variants = {"full": TrainerConfig(),
              "no_text": TrainerConfig(use_text=False),
              "no_history": TrainerConfig(use_history=False)}
  for name, cfg in variants.items():
    cfg = dataclasses.replace(cfg, batch_size=args.batch_size)
    model = task.build_model(cfg, tft_output, items)
    model.compile(optimizer=tf.keras.optimizers.Adam(cfg.learning_rate))
    seconds = fit(model)
    cands = task.candidate_vectors(model, tft_layer, catalog,
                                   text_vectors)[:-1]
    qs, preds = [], []
    for b in eval_raw:
      t = model.with_text(tft_layer(b))
      query, _, rating = model(t)
      qs.append(query.numpy())
      preds.append(rating.numpy())
    top = top100(np.concatenate(qs), cands)
    rmse = float(np.sqrt(np.mean((np.concatenate(preds) - eval_ratings) ** 2)))
    record(name, top, seconds, rmse)
    if name == "full":
      record("full_cold_start", top, seconds, rmse, mask=cold)
      full_model = model
  record("tfrs_tutorial_cold_start", tutorial_top, tutorial_seconds, mask=cold)
  speed = {r["name"]: r["examples_per_second"] for r in rows
           if r.get("examples_per_second")}
  rows.append({"name": "text_tower_cost",
               "vs_no_text": round(speed["no_text"] / speed["full"], 2),
               "vs_tfrs_tutorial": round(speed["tfrs_tutorial"] /
                                         speed["full"], 2),
               "measure": "steady-state time per epoch, ratio"})

  # Search sanity, through the exported search logic itself (brute-force
  # index): exact titles and genre queries; also with the direct text match
  # off, to show what each half does.
  vectors_with_oov = task.candidate_vectors(full_model, tft_layer, catalog,
                                            text_vectors)
  item_ids = catalog[features.ITEM_ID].numpy().reshape(-1)
  titles = catalog[features.TITLE].numpy().reshape(-1)
  genres = tf.sparse.to_dense(catalog[features.GENRES], "").numpy()
  default = TrainerConfig()
  for suffix, match in (("", default.search_text_match), ("_tower_only", 0.0)):
    module = export.RecommenderModule(
        export.Towers(full_model, tft_layer, encoder), item_ids=item_ids,
        titles=titles,
        item_vectors=vectors_with_oov, max_k=100,
        index=export.make_index("brute_force", vectors_with_oov[:-1],
                                item_ids, 100, task.history_width(tft_output)),
        item_text_vectors=text_vectors, text_match_weight=match,
        personalization_weight=default.search_personalization)
    if not suffix:
      default_module = module
    found = np.concatenate([
        module.search(tf.constant(titles[i:i + 256]),
                      tf.constant(10))["item_ids"].numpy()
        for i in range(0, len(titles), 256)])
    hits = (found == item_ids[:, None]).any(1)
    rows.append({"name": "search_title" + suffix, "hit@10": float(hits.mean()),
                 "queries": len(ids), "text_match_weight": match})
    for name, queries in (
        ("search_genre", GENRE_QUERIES),
        ("search_genre_validation", VALIDATION_GENRE_QUERIES)):
      top = module.search(tf.constant(list(queries.values())),
                          tf.constant(10))["item_ids"].numpy()
      rows_of = [[row_of[i.decode()] for i in r] for r in top]
      precision = [np.mean([genre.encode() in genres[i] for i in r])
                   for genre, r in zip(queries, rows_of)]
      rows.append({"name": name + suffix,
                   "precision@10": float(np.mean(precision)),
                   "queries": len(queries), "text_match_weight": match})
  rows.append(personalized_search_row(default_module, eval_raw[0], genres,
                                      row_of, default.search_personalization))

  os.makedirs(RESULTS, exist_ok=True)
  with open(os.path.join(RESULTS, "quality.json"), "w") as f:
    json.dump(rows, f, indent=1)
  print_table(rows)
  plot(rows, os.path.join(RESULTS, "quality_recall.png"))
  return 0


def print_table(rows: List[Dict]) -> None:
  cols = ["recall@10", "recall@50", "recall@100", "ndcg@10", "mrr",
          "coverage@10", "rmse", "train_seconds", "examples_per_second"]
  widths = [max(12, len(c)) + 1 for c in cols]
  print(f"\n{'name':<26}" + "".join(f"{c:>{w}}" for c, w in zip(cols, widths)))
  for r in rows:
    if "recall@10" not in r:
      continue
    cells = [("" if r.get(c) is None else f"{r[c]:.4f}" if isinstance(
        r[c], float) and c not in ("train_seconds", "examples_per_second")
              else str(r[c])) for c in cols]
    print(f"{r['name']:<26}" + "".join(f"{c:>{w}}"
                                       for c, w in zip(cells, widths)))
  for r in rows:
    if "recall@10" not in r:
      print(f"{r['name']:<26} " + ", ".join(
          f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
          for k, v in r.items() if k != "name"))


def plot(rows: List[Dict], path: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(7, 4.5))
  for r in rows:
    if "recall@10" in r:
      ax.plot(KS, [r[f"recall@{k}"] for k in KS], marker="o", label=r["name"])
  ax.set_xlabel("k")
  ax.set_ylabel("recall@k (time-split eval, MovieLens 100K)")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  print(f"plot: {path}")


if __name__ == "__main__":
  sys.exit(main())
