"""run_fn: the TFX Trainer entry point. Reads as a table of contents."""
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

from trainer import export
from trainer import features
from trainer import item_embeddings
from trainer import preprocessing
from trainer import scann_tuning
from trainer import towers
from trainer.config import CATALOG_PATTERN_KEY, ITEM_EMBEDDINGS_KEY
from trainer.config import TEXT_ENCODER_DIR_KEY
from trainer.config import TrainerConfig
from trainer.distribution import is_chief, make_strategy
from trainer.model import RecommenderModel, item_probability
from trainer.text_tower import FineTunedTop, ItemTextEncoder, TextEncoder
from trainer.text_tower import lower_states


class ProgressLogger(tf.keras.callbacks.Callback):
  """Logs step, loss and examples/s every `every` steps (fit's bar is silent
  inside a TFX component log)."""

  def __init__(self, batch_size: int, total_steps: int, every: int = 50):
    super().__init__()
    self._batch, self._total, self._every = batch_size, total_steps, every

  def on_train_begin(self, logs=None):
    self._start = self._last = time.time()

  def on_train_batch_end(self, batch, logs=None):
    step = batch + 1
    if step % self._every and step != self._total:
      return
    now = time.time()
    rate = self._every * self._batch / max(now - self._last, 1e-9)
    self._last = now
    logging.info("train step %d/%d  loss %.4f  rmse %.3f  %.0f examples/s",
                 step, self._total, logs.get("loss", float("nan")),
                 logs.get("rmse", float("nan")), rate)


def _input_fn(files: List[str], data_accessor, tft_output, batch_size: int,
              shuffle: bool, repeat: bool) -> tf.data.Dataset:
  """Raw examples -> batches of transformed features (label included)."""
  dataset = data_accessor.tf_dataset_factory(
      files, tfxio.TensorFlowDatasetOptions(
          batch_size=batch_size, shuffle=shuffle,
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


def text_table(vocabulary: List[str], catalog_ids: List[str],
               catalog_vectors: np.ndarray) -> np.ndarray:
  """Catalogue rows (vectors, token states, masks) by vocabulary index; OOV
  (last row) and unknowns are 0."""
  row = {item: i for i, item in enumerate(catalog_ids)}
  table = np.zeros([len(vocabulary) + preprocessing.OOV_BUCKETS,
                    *catalog_vectors.shape[1:]], catalog_vectors.dtype)
  for index, item in enumerate(vocabulary):
    if item in row:
      table[index] = catalog_vectors[row[item]]
  return table


def text_tables(vectors: Dict[str, np.ndarray], catalog_ids: List[str],
                tft_output: tft.TFTransformOutput, search_queries: str):
  """Catalogue-row vectors -> (full-text table by vocabulary index, [one
  search-query table by vocabulary index per kind in `search_queries`])."""
  vocabulary = item_vocabulary(tft_output)
  kinds = item_embeddings.parse_kinds(search_queries)
  tables = {k: text_table(vocabulary, catalog_ids, vectors[k])
            for k in {"item_text", *kinds}}
  return tables["item_text"], [tables[k] for k in kinds]


def item_vocabulary(tft_output: tft.TFTransformOutput) -> List[str]:
  return [v.decode() for v in
          tft_output.vocabulary_by_name(features.ITEM_VOCAB)]


def fine_tuning_states(encoder: TextEncoder, catalog: Dict[str, tf.Tensor],
                       layers: int):
  """Token states of every catalogue item's text below the top `layers`
  blocks, and their masks, by catalogue row (computed once per run)."""
  return lower_states(encoder,
                      item_embeddings.catalog_texts(catalog, "item_text"),
                      skip_top=layers)


def fine_tuned_top_vectors(top: FineTunedTop, states: np.ndarray,
                           mask: np.ndarray, batch: int = 256) -> np.ndarray:
  return np.concatenate([top(states[i:i + batch], mask[i:i + batch]).numpy()
                         for i in range(0, len(states), batch)])


def build_model(config: TrainerConfig, tft_output: tft.TFTransformOutput,
                text_vectors_by_index: Optional[np.ndarray] = None,
                search_query_tables: Sequence[np.ndarray] = (),
                fine_tuned_text=None) -> RecommenderModel:
  items = item_vocabulary(tft_output)
  freq = {}
  with tf.io.gfile.GFile(
      tft_output.vocabulary_file_by_name(features.ITEM_FREQ_VOCAB)) as f:
    for line in f:
      count, item = line.rstrip("\n").split(" ", 1)
      freq[item] = int(float(count))
  return RecommenderModel(
      config,
      num_users=tft_output.vocabulary_size_by_name(features.USER_VOCAB),
      num_occupations=tft_output.vocabulary_size_by_name(
          features.OCCUPATION_VOCAB),
      item_probability=item_probability(freq, items),
      text_table=text_vectors_by_index,
      search_query_tables=search_query_tables,
      fine_tuned_text=fine_tuned_text)


def evaluate_in_process(module: export.RecommenderModule,
                        files: List[str], max_examples: int = 20000
                        ) -> Dict[str, float]:
  """Recall@100 and RMSE on the eval split, logged beside training.

  The Evaluator computes the blessing metrics; this is the same signature run
  here so the training log shows quality without waiting for it.
  """
  dataset = tf.data.TFRecordDataset(files, "GZIP").take(max_examples).batch(2048)
  hits, squared, n = 0.0, 0.0, 0
  for batch in dataset:
    out = module.evaluate(batch)
    labels = tf.io.parse_example(batch, {
        features.RATING: features.raw_feature_spec()[features.RATING]})
    hits += float(tf.reduce_sum(out[features.EVAL_HIT_OUTPUT]))
    err = out[features.EVAL_RATING_OUTPUT] - tf.reshape(
        labels[features.RATING], [-1])
    squared += float(tf.reduce_sum(err * err))
    n += int(batch.shape[0])
  return {"recall@100": hits / max(n, 1), "rmse": (squared / max(n, 1)) ** 0.5,
          "examples": n}


def run_fn(fn_args: tfx.components.FnArgs) -> None:
  """Load data, build the model, fit, index the catalogue, export."""
  config = TrainerConfig.from_custom_config(fn_args.custom_config)
  logging.info("Trainer config: %s", json.dumps(config.to_dict()))
  tft_output = tft.TFTransformOutput(fn_args.transform_output)
  train = _input_fn(fn_args.train_files, fn_args.data_accessor, tft_output,
                    config.batch_size, shuffle=True, repeat=True)

  catalog = item_embeddings.read_catalog(
      fn_args.custom_config[CATALOG_PATTERN_KEY])
  catalog_ids = item_embeddings.catalog_ids(catalog)
  encoder, catalog_text_vectors = None, np.zeros([len(catalog_ids), 1],
                                                 np.float32)
  table, query_tables = None, []
  if config.use_text:
    # The exported towers encode new text in-graph, so the encoder is loaded
    # even when the catalogue's vectors come from ItemTextEmbedder.
    encoder = TextEncoder(fn_args.custom_config[TEXT_ENCODER_DIR_KEY],
                          config.text_max_length)
    vectors = item_embeddings.load_or_encode(
        fn_args.custom_config.get(ITEM_EMBEDDINGS_KEY), encoder, catalog,
        item_embeddings.needed_kinds(config.search_queries))
    catalog_text_vectors = vectors["item_text"]
    table, query_tables = text_tables(vectors, catalog_ids, tft_output,
                                      config.search_queries)
  finetune = config.use_text and config.text_finetune_layers > 0
  if finetune:
    states, masks = fine_tuning_states(encoder, catalog,
                                       config.text_finetune_layers)

  with make_strategy(config.distribution).scope():
    fine_tuned = None
    if finetune:
      top = FineTunedTop(encoder.encoder, config.text_finetune_layers)
      vocabulary = item_vocabulary(tft_output)
      fine_tuned = (text_table(vocabulary, catalog_ids, states),
                    text_table(vocabulary, catalog_ids, masks), top)
    model = build_model(config, tft_output, table, query_tables, fine_tuned)
    model.compile(optimizer=tf.keras.optimizers.Adam(config.learning_rate))
  steps = fn_args.train_steps
  start = time.time()
  model.fit(train, epochs=1, steps_per_epoch=steps, verbose=0,
            callbacks=[ProgressLogger(config.batch_size, steps)])
  seconds = time.time() - start
  logging.info("trained %d steps in %.1fs (%.0f examples/s)", steps, seconds,
               steps * config.batch_size / max(seconds, 1e-9))

  if not is_chief():
    logging.info("non-chief worker: training done, the chief exports")
    return
  tft_layer = tft_output.transform_features_layer()
  # The candidate tower reads the item text as trained: fine-tuned if so.
  item_text_encoder, candidate_text = encoder, catalog_text_vectors
  if finetune:
    item_text_encoder = ItemTextEncoder(encoder, top)
    candidate_text = fine_tuned_top_vectors(top, states, masks)
  vectors = candidate_vectors(model, tft_layer, catalog, candidate_text)
  item_ids = catalog[features.ITEM_ID].numpy().reshape(-1)
  scann = scann_tuning.resolve(len(item_ids), config.scann_num_leaves,
                               config.scann_leaves_to_search,
                               config.scann_reordering)
  if config.export_scann:
    logging.info("ScaNN twin for %d items: %s", len(item_ids), scann)

  def exported(kind: str) -> export.RecommenderModule:
    return export.RecommenderModule(
        model, tft_layer, text_encoder=encoder,
        item_text_encoder=item_text_encoder, item_ids=item_ids,
        titles=catalog[features.TITLE].numpy().reshape(-1),
        item_vectors=vectors, max_k=config.max_k,
        item_text_vectors=catalog_text_vectors if config.use_text else None,
        text_match_weight=config.search_text_match,
        personalization_weight=config.search_personalization,
        index=export.make_index(kind, vectors[:-1], item_ids, config.max_k,
                                scann.num_leaves, scann.leaves_to_search,
                                scann.reordering))

  module = exported("brute_force")
  metrics = evaluate_in_process(
      module, [f for p in fn_args.eval_files for f in tf.io.gfile.glob(p)])
  logging.info("eval on %d examples: recall@100 %.4f  rmse %.4f",
               metrics["examples"], metrics["recall@100"], metrics["rmse"])
  export.save(module, fn_args.serving_model_dir)
  if config.export_scann:
    # The ScaNN twin: same signatures, approximate index, needs ScaNN ops.
    export.save(exported("scann"),
                fn_args.serving_model_dir.rstrip("/") + export.SCANN_SUFFIX)
  with tf.io.gfile.GFile(os.path.join(fn_args.model_run_dir,
                                      "metrics.json"), "w") as f:
    f.write(json.dumps(dict(metrics, train_seconds=seconds, steps=steps)))
  logging.info("exported to %s", fn_args.serving_model_dir)
