"""TF Serving warm-up records: one PredictionLog per exported signature.

TF Serving replays `assets.extra/tf_serving_warmup_requests` when it loads a
version, so the first real request does not pay for graph tracing and table
initialisation. Requests are built with the same protocol code clients use.
"""
import os
from typing import Dict, Iterable

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from serving import protocol
from trainer import features

WARMUP_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"


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
  users = protocol.user_inputs([
      {"user_id": "1", "age": 30, "gender": "F", "occupation": "writer",
       "history": [item_id]}, {}])
  k = np.int32(10)
  return {
      features.RECOMMEND_SIGNATURE: dict(users, k=k),
      "serving_default": dict(users, k=k),
      features.RECOMMEND_UNSEEN_SIGNATURE: dict(users, k=k),
      features.RANK_SIGNATURE: dict(users, item_ids=np.array(
          [[item_id, "unknown-item"]] * 2, object)),
      features.SEARCH_SIGNATURE: {"query": np.array(["space adventure", ""],
                                                    object), "k": k},
      features.PERSONALIZED_SEARCH_SIGNATURE: dict(
          users, query=np.array(["space adventure", ""], object), k=k),
      features.EMBED_ITEMS_SIGNATURE: {
          features.ITEM_ID: np.array(["new-item"], object),
          features.TITLE: np.array(["A New Movie"], object),
          features.YEAR: np.array([1998], np.int64),
          features.GENRES: np.array([["Comedy", "Drama"]], object)},
      features.EVAL_SIGNATURE: {"examples": np.array([_example(item_id)],
                                                     object)},
  }


def write_warmup(export_dir: str, model_name: str, signatures: Iterable[str],
                 item_id: str) -> str:
  inputs = warmup_inputs(item_id)
  path = os.path.join(export_dir, WARMUP_DIR, WARMUP_FILE)
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.TFRecordWriter(path) as writer:
    for name in signatures:
      log = prediction_log_pb2.PredictionLog(
          predict_log=prediction_log_pb2.PredictLog(
              request=protocol.predict_request(model_name, name, inputs[name])))
      writer.write(log.SerializeToString())
  return path


def read_warmup(export_dir: str):
  path = os.path.join(export_dir, WARMUP_DIR, WARMUP_FILE)
  return [prediction_log_pb2.PredictionLog.FromString(r.numpy())
          for r in tf.data.TFRecordDataset(path)]
