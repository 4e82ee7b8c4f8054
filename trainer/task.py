"""run_fn: the TFX Trainer entry point. Reads as a table of contents:
prepare the catalogue, build and fit the model, export it."""
import dataclasses
import json
import os
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_transform as tft
from absl import logging
from tfx import v1 as tfx
from tfx_bsl.public import tfxio

from trainer import catalog as catalog_lib
from trainer import contract
from trainer import export
from trainer import features
from trainer import index
from trainer import item_embeddings
from trainer import item_item
from trainer import scann_tuning
from trainer import serving_towers
from trainer import towers
from trainer import warm_start
from trainer.config import CATALOG_PATTERN_KEY
from trainer.config import ITEM_EMBEDDINGS_KEY
from trainer.config import RUN_METRICS_FILE
from trainer.config import TEXT_ENCODER_DIR_KEY
from trainer.config import TRAINING_CURVE_FILE
from trainer.config import TrainerConfig
from trainer.distribution import is_chief
from trainer.distribution import make_strategy
from trainer.model import RecommenderModel
from trainer.model import item_probability
from trainer.text_tower import FineTunedTop
from trainer.text_tower import ItemTextEncoder
from trainer.text_tower import TextEncoder

_xf = features.transformed_name


class ProgressLogger(tf.keras.callbacks.Callback):
  """Logs step, loss and examples/s every `every` steps (fit's bar is silent
  inside a TFX component log) and keeps about 100 points of that curve for
  the run report (`curve`, written to model_run_dir/training_curve.json)."""

  EVERY = 50

  def __init__(self, batch_size: int, total_steps: int, every: int = EVERY):
    super().__init__()
    self._batch, self._total, self._every = batch_size, total_steps, every
    self._point_every = max(1, total_steps // 100)
    self.curve: List[Dict[str, float]] = []

  def on_train_begin(self, logs=None):
    self._start = self._last = self._last_point = time.time()

  def on_train_batch_end(self, batch, logs=None):
    step = batch + 1
    loss = float(logs.get("loss", float("nan")))
    now = time.time()
    if step % self._point_every == 0 or step == self._total:
      since = step - (self.curve[-1]["step"] if self.curve else 0)
      self.curve.append({"step": step, "loss": loss, "examples_per_second":
                         since * self._batch / max(now - self._last_point,
                                                   1e-9)})
      self._last_point = now
    if step % self._every and step != self._total:
      return
    rate = self._every * self._batch / max(now - self._last, 1e-9)
    self._last = now
    logging.info("train step %d/%d  loss %.4f  rmse %.3f  %.0f examples/s",
                 step, self._total, loss, logs.get("rmse", float("nan")),
                 rate)


def _input_fn(files: List[str], data_accessor, tft_output, batch_size: int,
              shuffle: bool, repeat: bool,
              seed: Optional[int] = None) -> tf.data.Dataset:
  """Raw examples -> batches of transformed features (label included)."""
  dataset = data_accessor.tf_dataset_factory(
      files, tfxio.TensorFlowDatasetOptions(
          batch_size=batch_size, shuffle=shuffle, shuffle_seed=seed,
          num_epochs=None if repeat else 1, drop_final_batch=repeat),
      tft_output.raw_metadata.schema)
  tft_layer = tft_output.transform_features_layer()
  return dataset.map(tft_layer, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


def candidate_vectors(model: RecommenderModel, tft_layer,
                      catalog: Dict[str, tf.Tensor],
                      text_vectors: np.ndarray) -> np.ndarray:
  """[N + 1, d]: every catalogue item, then the unknown-item (OOV) vector.

  Catalogue items use their own cached text vectors (not the vocabulary
  table), so items nobody rated before the cutoff are still told apart.
  """
  n = int(catalog[features.ITEM_ID].shape[0])
  unknown = {features.ITEM_ID: tf.constant([[""]]),
             features.TITLE: tf.constant([[""]]),
             features.YEAR: tf.constant([[features.UNKNOWN_YEAR]], tf.int64),
             features.GENRES: tf.sparse.from_dense(tf.constant([[""]]))}
  vectors = []
  for raw, size, texts in ((catalog, n, text_vectors),
                           (unknown, 1, np.zeros_like(text_vectors[:1]))):
    transformed = dict(tft_layer(features.complete_raw_features(raw, size)))
    if model.config.use_text:
      transformed[towers.TEXT_VECTOR] = tf.constant(texts)
    vectors.append(model.candidate_tower(transformed).numpy())
  return np.concatenate(vectors, 0)


def fine_tuned_top_vectors(top: FineTunedTop, states: np.ndarray,
                           mask: np.ndarray, batch: int = 256) -> np.ndarray:
  return np.concatenate([top(states[i:i + batch], mask[i:i + batch]).numpy()
                         for i in range(0, len(states), batch)])


def build_model(config: TrainerConfig, tft_output: tft.TFTransformOutput,
                catalog: catalog_lib.Catalog,
                fine_tuned_text=None) -> RecommenderModel:
  """The model over Transform's vocabularies and the catalogue's text.

  Args:
    fine_tuned_text: (token states [N, T, H], masks [N, T]) by catalogue
      row and the FineTunedTop that runs over them, when fine-tuning.
  """
  freq = {}
  with tf.io.gfile.GFile(
      tft_output.vocabulary_file_by_name(features.ITEM_FREQ_VOCAB)) as f:
    for line in f:
      count, item = line.rstrip("\n").split(" ", 1)
      freq[item] = int(float(count))
  text_table, query_tables, fine_tuned = None, (), None
  if config.use_text:
    text_table, query_tables = catalog.text_tables(config.search_queries)
  if fine_tuned_text is not None:
    (states, masks), top = fine_tuned_text
    fine_tuned = (catalog.by_vocabulary(states), catalog.by_vocabulary(masks),
                  top)
  return RecommenderModel(
      config,
      num_users=tft_output.vocabulary_size_by_name(features.USER_VOCAB),
      num_occupations=tft_output.vocabulary_size_by_name(
          features.OCCUPATION_VOCAB),
      item_probability=item_probability(freq, catalog.vocabulary),
      text_table=text_table, search_query_tables=query_tables,
      fine_tuned_text=fine_tuned)


def evaluate_in_process(module: export.RecommenderModule,
                        files: List[str], max_examples: int = 20000
                        ) -> Dict[str, float]:
  """Recall@100 and RMSE on the eval split, logged beside training.

  The Evaluator computes the blessing metrics; this is the same signature run
  here so the training log shows quality without waiting for it.
  """
  dataset = tf.data.TFRecordDataset(files, "GZIP").take(max_examples).batch(
      2048)
  hits, squared, n = 0.0, 0.0, 0
  for batch in dataset:
    out = module.evaluate(batch)
    labels = tf.io.parse_example(batch, {
        features.RATING: features.raw_feature_spec()[features.RATING]})
    hits += float(tf.reduce_sum(out[contract.EVAL_HIT]))
    err = out[contract.EVAL_RATING] - tf.reshape(
        labels[features.RATING], [-1])
    squared += float(tf.reduce_sum(err * err))
    n += int(batch.shape[0])
  return {"recall@100": hits / max(n, 1), "rmse": (squared / max(n, 1)) ** 0.5,
          "examples": n}


def history_width(tft_output: tft.TFTransformOutput) -> int:
  """How many history items Transform keeps per example (--max-history)."""
  spec = tft_output.transformed_feature_spec()[_xf(features.HISTORY)]
  return int(spec.shape[0])


def start_from_base(model: RecommenderModel, train: tf.data.Dataset,
                    tft_output: tft.TFTransformOutput,
                    catalog: catalog_lib.Catalog,
                    base_model: Optional[str]) -> Optional[dict]:
  """Creates the model's variables, then copies the base model's weights
  into them (see warm_start.py); returns what was carried over."""
  model.build_variables(next(iter(train)))
  if not model.config.warm_start:
    logging.info("warm start off (--warm-start false); training from scratch")
    return None
  users = [v.decode() for v in
           tft_output.vocabulary_by_name(features.USER_VOCAB)]
  report = warm_start.maybe_warm_start(
      model, base_model, {features.USER_VOCAB: users,
                          features.ITEM_VOCAB: catalog.vocabulary},
      model.config.design(), model.config.warm_start_shrink)
  return dataclasses.asdict(report) if report else None


def learning_rate(config: TrainerConfig, warm_started: bool) -> float:
  """The optimizer's learning rate for this run."""
  return (config.warm_start_learning_rate if warm_started
          else config.learning_rate)


# What is left of the starting weights in the average at the end of a run:
# a short run averages faster rather than end near its random (or copied)
# start.
_START_WEIGHT_LEFT = 0.02


def make_optimizer(config: TrainerConfig, steps: int,
                   warm_started: bool = False) -> tf.keras.optimizers.Optimizer:
  """Adam at this run's learning rate, averaging the weights if configured
  (fit then leaves the model holding the average); the momentum is lowered
  for short runs so the start weighs at most 2% at the end."""
  averaging = (config.warm_start_weight_averaging if warm_started
               else config.weight_averaging)
  if not 0.0 <= averaging < 1.0:
    raise ValueError(f"weight_averaging must be in [0, 1), not {averaging}")
  momentum = min(averaging, _START_WEIGHT_LEFT ** (1.0 / max(steps, 1)))
  return tf.keras.optimizers.Adam(
      learning_rate(config, warm_started), use_ema=averaging > 0,
      ema_momentum=momentum)


def fit(model: RecommenderModel, train: tf.data.Dataset, steps: int,
        config: TrainerConfig, log_dir: str) -> float:
  """Trains `steps` steps, with TensorBoard logs in `log_dir`; returns the
  seconds it took."""
  start = time.time()
  progress = ProgressLogger(config.batch_size, steps)
  model.fit(train, epochs=1, steps_per_epoch=steps, verbose=0,
            callbacks=[progress,
                       tf.keras.callbacks.TensorBoard(
                           log_dir=log_dir, update_freq=ProgressLogger.EVERY,
                           write_graph=False, profile_batch=0)])
  seconds = time.time() - start
  logging.info("trained %d steps in %.1fs (%.0f examples/s)", steps, seconds,
               steps * config.batch_size / max(seconds, 1e-9))
  if is_chief():
    with tf.io.gfile.GFile(os.path.join(log_dir, TRAINING_CURVE_FILE),
                           "w") as f:
      f.write(json.dumps(progress.curve))
  return seconds


def export_models(model: RecommenderModel, tft_output: tft.TFTransformOutput,
                  catalog: catalog_lib.Catalog, config: TrainerConfig,
                  encoder: Optional[TextEncoder], fine_tuned_text,
                  serving_model_dir: str,
                  train_files: Sequence[str] = ()) -> export.RecommenderModule:
  """Indexes the catalogue and saves the stock (brute-force) SavedModel and,
  if configured, its ScaNN twin; returns the stock module. `train_files`
  (the training examples) feed the item-item term, when it is on."""
  tft_layer = tft_output.transform_features_layer()
  # The candidate tower reads the item text as trained: fine-tuned if so.
  item_text_encoder = encoder
  candidate_text = catalog.text.get("item_text",
                                    np.zeros([len(catalog), 1], np.float32))
  if fine_tuned_text is not None:
    (states, masks), top = fine_tuned_text
    item_text_encoder = ItemTextEncoder(encoder, top)
    candidate_text = fine_tuned_top_vectors(top, states, masks)
  vectors = candidate_vectors(model, tft_layer, catalog.raw, candidate_text)
  scann = scann_tuning.resolve(len(catalog), config.scann_num_leaves,
                               config.scann_leaves_to_search,
                               config.scann_reordering)
  settings = index.IndexSettings(
      max_k=config.max_k, exclude_margin=history_width(tft_output),
      text_match_weight=config.search_text_match,
      personalization_weight=config.search_personalization,
      explanation_min_share=config.explanation_min_share,
      rerank_weight=config.rerank_weight, rerank_depth=config.rerank_depth,
      scann_num_leaves=scann.num_leaves,
      scann_leaves_to_search=scann.leaves_to_search,
      scann_reordering=scann.reordering,
      scann_min_recall=config.scann_min_recall)
  matrix = None
  # New items borrow their text neighbours' part of the term, if configured.
  borrowing = item_item.new_item_borrowing(config,
                                           catalog.text.get("item_text"))
  if config.item_item_weight and train_files:
    matrix = item_item.fit(train_files, catalog.ids, config.item_item_l2,
                           *borrowing, item_item.pruning(config))
  logging.info("item-item term: %s", (
      "off" if not config.item_item_weight else
      "off (no training files given)" if not train_files else
      f"EASE over {len(catalog.ids)} items, weight "
      f"{config.item_item_weight}" + (
          f", each row's {config.item_item_row_entries} strongest entries"
          if isinstance(matrix, item_item.PrunedRows) else "")))
  settings = dataclasses.replace(
      settings, item_item_weight=(config.item_item_weight
                                  if matrix is not None else 0.0),
      item_item_decay=config.item_item_decay,
      item_item_depth=config.item_item_depth,
      item_item_new_items=borrowing.share,
      item_item_neighbours=borrowing.neighbours)
  stock = export.export_catalog(
      serving_towers.Towers(model, tft_layer, encoder, item_text_encoder,
                            history_text=config.new_item_history_text),
      catalog.ids, catalog.titles, catalog.years, catalog.genres, vectors,
      catalog.text.get("item_text"),
      settings, serving_model_dir, scann=config.export_scann,
      item_item=matrix)
  logging.info("exported to %s", serving_model_dir)
  return stock


def _scann_summary(serving_model_dir: str) -> Optional[dict]:
  """The exported twin's knobs and measured recall, for the run report."""
  settings = index.IndexSettings.read(serving_model_dir)
  if settings.scann_recall is None:
    return None
  return dict(settings.scann_recall,
              leaves_searched=settings.scann_leaves_to_search,
              leaves=settings.scann_num_leaves,
              reordering=settings.scann_reordering)


@dataclasses.dataclass
class TrainedRun:
  """What training hands to the export: the fitted model and what it was
  built from."""
  config: TrainerConfig
  model: RecommenderModel
  tft_output: tft.TFTransformOutput
  catalog: catalog_lib.Catalog
  encoder: Optional[TextEncoder]
  fine_tuned: Optional[tuple]
  warm_start: Optional[dict]
  seconds: float


def train(fn_args: tfx.components.FnArgs) -> TrainedRun:
  """Prepare the catalogue and its text, build the model (warm-started if a
  base is handed over) and fit it."""
  config = TrainerConfig.from_custom_config(
      fn_args.custom_config).with_hyperparameters(fn_args.hyperparameters)
  config.check()
  logging.info("Trainer config: %s", json.dumps(config.to_dict()))
  tf.keras.utils.set_random_seed(config.seed)
  if config.deterministic:
    tf.config.experimental.enable_op_determinism()
  tft_output = tft.TFTransformOutput(fn_args.transform_graph_path)
  # The exported towers encode new text in-graph, so the encoder is loaded
  # even when the catalogue's vectors come from ItemTextEmbedder.
  encoder = (TextEncoder(fn_args.custom_config[TEXT_ENCODER_DIR_KEY],
                         config.text_max_length) if config.use_text else None)
  catalog = catalog_lib.load(
      fn_args.custom_config[CATALOG_PATTERN_KEY], tft_output, encoder,
      item_embeddings.needed_kinds(config.search_queries),
      fn_args.custom_config.get(ITEM_EMBEDDINGS_KEY))
  layers = config.text_finetune_layers if config.use_text else 0
  states = catalog.fine_tuning_states(encoder, layers) if layers else None

  data = _input_fn(fn_args.train_files, fn_args.data_accessor, tft_output,
                   config.batch_size, shuffle=True, repeat=True,
                   seed=config.seed)

  with make_strategy(config.distribution).scope():
    fine_tuned = (states, FineTunedTop(encoder.encoder, layers)) if layers \
        else None
    model = build_model(config, tft_output, catalog, fine_tuned)
    warm = start_from_base(model, data, tft_output, catalog,
                           fn_args.base_model)
    model.compile(optimizer=make_optimizer(config, fn_args.train_steps,
                                           warm_started=warm is not None))
  seconds = fit(model, data, fn_args.train_steps, config,
                fn_args.model_run_dir)
  return TrainedRun(config, model, tft_output, catalog, encoder, fine_tuned,
                    warm, seconds)


def run_fn(fn_args: tfx.components.FnArgs) -> None:
  """Train, then (on the chief) export, evaluate in process and record."""
  run = train(fn_args)
  if not is_chief():
    logging.info("non-chief worker: training done, the chief exports")
    return

  module = export_models(run.model, run.tft_output, run.catalog, run.config,
                         run.encoder, run.fine_tuned,
                         fn_args.serving_model_dir,
                         [f for p in fn_args.train_files
                          for f in tf.io.gfile.glob(p)])
  # What the next period's warm start checks before copying weights.
  warm_start.write_design(fn_args.serving_model_dir, run.config.design())
  metrics = evaluate_in_process(
      module, [f for p in fn_args.eval_files for f in tf.io.gfile.glob(p)])
  logging.info("eval on %d examples: recall@100 %.4f  rmse %.4f",
               metrics["examples"], metrics["recall@100"], metrics["rmse"])
  with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir,
                                      RUN_METRICS_FILE), "w") as f:
    f.write(json.dumps(dict(metrics, train_seconds=run.seconds,
                            steps=fn_args.train_steps,
                            warm_start=run.warm_start,
                            config_changes=run.config.changes_from_defaults(),
                            scann=_scann_summary(fn_args.serving_model_dir))))
