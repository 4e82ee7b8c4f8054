"""TF Serving warm-up records: one PredictionLog per exported signature.

TF Serving replays `assets.extra/tf_serving_warmup_requests` when it loads a
version, so the first real request does not pay for graph tracing and table
initialisation. Requests are built with the same contract code clients use.
"""
import os
from typing import Dict, Iterable

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from trainer import contract
from trainer import features


def _example(item_id: str) -> bytes:
  feats = {
      features.USER_ID: [b"1"], features.ITEM_ID: [item_id.encode()],
      features.GENDER: [b"M"], features.OCCUPATION: [b"writer"],
      features.TITLE: [b"Warm-up"], features.GENRES: [b"Drama"],
      features.HISTORY: [item_id.encode()]}
  proto = {k: tf.train.Feature(bytes_list=tf.train.BytesList(value=v))
           for k, v in feats.items()}
  for key in (features.TIMESTAMP, features.AGE, features.YEAR):
    proto[key] = tf.train.Feature(int64_list=tf.train.Int64List(value=[1]))
  proto[features.RATING] = tf.train.Feature(
      float_list=tf.train.FloatList(value=[4.0]))
  return tf.train.Example(features=tf.train.Features(
      feature=proto)).SerializeToString()


def warmup_inputs(item_id: str) -> Dict[str, Dict[str, np.ndarray]]:
  """Representative inputs for every signature the trainer may export."""
  users = contract.user_inputs([
      {"user_id": "1", "age": 30, "gender": "F", "occupation": "writer",
       "history": [item_id]}, {}])
  # Every input is sent, as stock TF Serving requires: no rules on the
  # first row, a genre and year filter on the second.
  rules = {contract.EXCLUDE: np.array([[""], [item_id]], object),
           contract.ALLOWED_GENRES: np.array([[""], ["Drama"]], object),
           contract.MIN_YEAR: np.array([0, 1990], np.int64),
           contract.MAX_YEAR: np.array([0, 1999], np.int64)}
  top_k = dict(users, **{contract.K: np.int32(10)}, **rules)
  queries = np.array(["space adventure", ""], object)
  return {
      contract.RECOMMEND: top_k,
      contract.SERVING_DEFAULT: top_k,
      contract.RECOMMEND_UNSEEN: top_k,
      contract.RECOMMEND_FAST: top_k,
      contract.RECOMMEND_UNSEEN_FAST: top_k,
      contract.RANK: dict(users, **{contract.ITEM_IDS: np.array(
          [[item_id, "unknown-item"]] * 2, object)}),
      contract.SEARCH: dict(contract.search_inputs(queries, 10)[1], **rules),
      contract.PERSONALIZED_SEARCH: dict(contract.search_inputs(
          queries, 10, [{"user_id": "1", "history": [item_id]}, {}])[1],
          **rules),
      contract.SIMILAR_ITEMS: dict(contract.similar_inputs([
          {"item_id": item_id}, {"item_id": "new-item", "title": "A New Movie",
                                 "year": 1998, "genres": ["Comedy"]}]),
          **{contract.K: np.int32(10)}, **rules),
      contract.EMBED_ITEMS: contract.item_inputs([
          {"item_id": "new-item", "title": "A New Movie", "year": 1998,
           "genres": ["Comedy", "Drama"]}]),
      contract.EVALUATE: {contract.EXAMPLES: np.array([_example(item_id)],
                                                      object)},
  }


def write_warmup(export_dir: str, model_name: str, signatures: Iterable[str],
                 item_id: str) -> str:
  inputs = warmup_inputs(item_id)
  path = os.path.join(export_dir, contract.WARMUP_PATH)
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.TFRecordWriter(path) as writer:
    for name in signatures:
      log = prediction_log_pb2.PredictionLog(
          predict_log=prediction_log_pb2.PredictLog(
              request=contract.predict_request(model_name, name, inputs[name])))
      writer.write(log.SerializeToString())
  return path


def read_warmup(export_dir: str):
  path = os.path.join(export_dir, contract.WARMUP_PATH)
  return [prediction_log_pb2.PredictionLog.FromString(r.numpy())
          for r in tf.data.TFRecordDataset(path)]
