"""The wire contract of the exported model: what callers send and get back.

The Trainer exports signatures with these names and inputs; the client, the
local server, the warm-up records, the pusher and the tests all read them
from here. This module imports nothing of ours, so the model side (trainer/)
and the serving side (serving/) both depend on it and never on each other.

It follows TF Serving's own contract: PredictRequest protos, the
`serving_default` key and a model base path of integer-named versions.
"""
import os
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

# Raw fields. Signature inputs carry the same names as the raw features
# ExampleGen writes (trainer/features.py re-exports them), because the
# exported graph applies Transform to exactly what a caller sends.
USER_ID = "user_id"
AGE = "age"
GENDER = "gender"
OCCUPATION = "occupation"
# A user's earlier items, oldest first; "" pads a batch to one width.
HISTORY = "history_item_ids"
ITEM_ID = "item_id"
TITLE = "title"
YEAR = "year"
GENRES = "genres"
# Inputs that are not raw features.
K = "k"
QUERY = "query"
ITEM_IDS = "item_ids"
EXAMPLES = "examples"

# Signatures.
# TF Serving's default key: recommend_unseen, since nobody re-rates a film
# (a caller that wants watched items back asks `recommend`).
SERVING_DEFAULT = "serving_default"
RECOMMEND = "recommend"
RECOMMEND_UNSEEN = "recommend_unseen"
# The same top k without the why outputs, for callers that show no reasons:
# explaining re-runs the query tower once per history item the model reads
# (B x H rows), which costs more than the recommendation itself.
RECOMMEND_FAST = "recommend_fast"
RECOMMEND_UNSEEN_FAST = "recommend_unseen_fast"
RANK = "rank"
SEARCH = "search"
# search re-ordered for one user (the same user inputs as recommend).
PERSONALIZED_SEARCH = "personalized_search"
EMBED_ITEMS = "embed_items"
EVALUATE = "evaluate"
# Item ids -> their nearest items in the candidate space (the item page).
SIMILAR_ITEMS = "similar_items"

# Outputs. Top-k signatures return item_ids, titles and scores [B, k].
TITLES = "titles"
SCORES = "scores"
VECTORS = "vectors"  # embed_items: [B, d]
# Why each returned item [B, k]: a history item whose removal lowers that
# item's score (leave-one-out through the model's own query tower) most, or
# at least explanation_min_share as much when it explains fewer items above
# (trainer/explanation.py), and a reason code. Rows with fewer eligible
# items than k (business rules) end with "" ids.
BECAUSE_ITEM_IDS = "because_item_ids"
BECAUSE_TITLES = "because_titles"
REASON = "reason"
REASON_HISTORY = "history"  # because_item_ids says which history item
REASON_PROFILE = "profile"  # empty history: the profile alone
REASON_SEEN = "seen"        # already in the history (recommend, which
                            # keeps seen items): because_* names the item
REASON_TEXT = "text"        # search: the query text (because_*: a
                            # history item that raised it, as above)
# evaluate (read by TFMA): predicted rating and where the rated item lands
# among the catalogue's top EVAL_TOP_K, seen (history) items excluded: in the
# top 100 (the blessing metric), in the top 10, and its NDCG@10 gain. Their
# means over the eval set are recall@100, recall@10 and NDCG@10.
EVAL_RATING = "rating"
EVAL_HIT = "hit_at_100"
EVAL_HIT_AT_10 = "hit_at_10"
EVAL_NDCG_AT_10 = "ndcg_at_10"
EVAL_TOP_K = 100
# What the mean of each retrieval output is called in reports.
RETRIEVAL_METRIC_NAMES = {EVAL_HIT: "recall@100", EVAL_HIT_AT_10: "recall@10",
                          EVAL_NDCG_AT_10: "ndcg@10"}

# Serving defaults, as tensorflow_model_server's flags.
MODEL_NAME = "recommender"
DEFAULT_GRPC_PORT = 8500
DEFAULT_REST_PORT = 8501
# Larger requests get RESOURCE_EXHAUSTED.
DEFAULT_MAX_REQUEST_BYTES = 16 << 20
# Rows (the batch dimension) one request may carry; more: RESOURCE_EXHAUSTED.
DEFAULT_MAX_REQUEST_ROWS = 1024
# TF Serving replays these PredictionLogs when it loads a version.
WARMUP_PATH = os.path.join("assets.extra", "tf_serving_warmup_requests")
# The ScaNN twin (same signatures, approximate index, needs ScaNN ops) lives
# beside the stock model with this suffix: the Trainer's export folder and
# the pushed model base path alike (`recommender_scann`).
SCANN_SUFFIX = "_scann"

# Input specs of the signatures (batched on axis 0).
USER_INPUTS = {
    USER_ID: tf.TensorSpec([None], tf.string, USER_ID),
    AGE: tf.TensorSpec([None], tf.int64, AGE),
    GENDER: tf.TensorSpec([None], tf.string, GENDER),
    OCCUPATION: tf.TensorSpec([None], tf.string, OCCUPATION),
    HISTORY: tf.TensorSpec([None, None], tf.string, HISTORY),
}
K_INPUT = tf.TensorSpec([], tf.int32, K)
QUERY_INPUT = tf.TensorSpec([None], tf.string, QUERY)
ITEM_INPUTS = {
    ITEM_ID: tf.TensorSpec([None], tf.string, ITEM_ID),
    TITLE: tf.TensorSpec([None], tf.string, TITLE),
    YEAR: tf.TensorSpec([None], tf.int64, YEAR),
    GENRES: tf.TensorSpec([None, None], tf.string, GENRES),
}
ITEM_IDS_INPUT = tf.TensorSpec([None, None], tf.string, ITEM_IDS)
# similar_items: one item per row; title/year/genres place an item the model
# has never seen (optional for catalogue items).
SIMILAR_INPUTS = {
    ITEM_IDS: tf.TensorSpec([None], tf.string, ITEM_IDS),
    TITLE: ITEM_INPUTS[TITLE], YEAR: ITEM_INPUTS[YEAR],
    GENRES: ITEM_INPUTS[GENRES]}

# Business rules, accepted by every top-k signature (recommend,
# recommend_unseen, search, personalized_search, similar_items). Empty means
# no rule: a [B, 0] id/genre list, a 0 year bound.
EXCLUDE = "exclude_item_ids"   # [B, E] ids never returned ("" pads)
ALLOWED_GENRES = "allowed_genres"  # [B, G] any of these genres ("" pads)
MIN_YEAR = "min_year"          # [B] int64, release year >= this
MAX_YEAR = "max_year"          # [B] int64, release year <= this
RULE_INPUTS = {
    EXCLUDE: tf.TensorSpec([None, None], tf.string, EXCLUDE),
    ALLOWED_GENRES: tf.TensorSpec([None, None], tf.string, ALLOWED_GENRES),
    MIN_YEAR: tf.TensorSpec([None], tf.int64, MIN_YEAR),
    MAX_YEAR: tf.TensorSpec([None], tf.int64, MAX_YEAR),
}
# Inputs a caller of `recsys serve` may leave out (the server fills the
# empty value, so clients written before the rules existed keep working).
# Stock TF Serving requires every input: our client always sends them.
_OPTIONAL = {SIMILAR_ITEMS: frozenset({TITLE, YEAR, GENRES})}


def optional_inputs(signature: str) -> frozenset:
  """Input names `signature` may be called without."""
  return frozenset(RULE_INPUTS) | _OPTIONAL.get(signature, frozenset())


def empty_input(spec: tf.TensorSpec, batch: int) -> np.ndarray:
  """The "no value" of an optional input for `batch` rows: "" or 0 per
  row, and no columns for a list input."""
  shape = [batch] + [0] * (spec.shape.rank - 1)
  if spec.dtype == tf.string:
    return np.full(shape, "", object)
  return np.zeros(shape, spec.dtype.as_numpy_dtype)


def complete_inputs(signature: str, specs: Mapping[str, tf.TensorSpec],
                    inputs: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
  """`inputs` plus the empty value of each optional input of `signature`
  that its `specs` declare and `inputs` lack (batch size from the batched
  inputs given). Inputs a model does not declare are never added, so this
  also serves models exported before an optional input existed."""
  missing = [n for n in sorted(optional_inputs(signature))
             if n in specs and n not in inputs]
  if not missing:
    return dict(inputs)
  batch = next((np.shape(v)[0] for n, v in inputs.items()
                if n in specs and specs[n].shape.rank and np.ndim(v)), 0)
  return dict(inputs, **{n: empty_input(specs[n], batch) for n in missing})


def rule_inputs(batch: int, exclude: Optional[Sequence] = None,
                genres: Optional[Sequence[str]] = None,
                years: Tuple[int, int] = (0, 0)) -> Dict[str, np.ndarray]:
  """The same rules for each of `batch` rows: ids never to return, allowed
  genres (any of them), an inclusive (min, max) release year (0: open)."""
  def rows(values):
    values = [str(v) for v in (values or [])]
    return np.array([values] * batch, object).reshape(batch, len(values))
  return {EXCLUDE: rows(exclude), ALLOWED_GENRES: rows(genres),
          MIN_YEAR: np.full([batch], int(years[0] or 0), np.int64),
          MAX_YEAR: np.full([batch], int(years[1] or 0), np.int64)}
EXAMPLES_INPUT = tf.TensorSpec([None], tf.string, EXAMPLES)


def scann_twin(path: str) -> str:
  """Where the ScaNN twin of the model at `path` lives."""
  return path.rstrip("/") + SCANN_SUFFIX


def user_inputs(users: Sequence[Mapping]) -> Dict[str, np.ndarray]:
  """Users as dicts (user_id, age, gender, occupation, history) -> the
  recommend/rank signature inputs; histories are padded with ""."""
  histories = [[str(h) for h in (u.get("history") or [])] for u in users]
  width = max([len(h) for h in histories] + [1])
  return {
      USER_ID: np.array([str(u.get("user_id", "")) for u in users], object),
      AGE: np.array([int(u.get("age") or 0) for u in users], np.int64),
      GENDER: np.array([str(u.get("gender", "")) for u in users], object),
      OCCUPATION: np.array([str(u.get("occupation", "")) for u in users],
                           object),
      HISTORY: np.array([h + [""] * (width - len(h)) for h in histories],
                        object),
  }


def item_inputs(items: Sequence[Mapping]) -> Dict[str, np.ndarray]:
  """Items as dicts (item_id, title, year, genres) -> embed_items inputs;
  genre lists are padded with ""."""
  genres = [[str(g) for g in (i.get("genres") or [])] for i in items]
  width = max([len(g) for g in genres] + [1])
  return {
      ITEM_ID: np.array([str(i.get("item_id", "")) for i in items], object),
      TITLE: np.array([str(i.get("title", "")) for i in items], object),
      YEAR: np.array([int(i.get("year") or 0) for i in items], np.int64),
      GENRES: np.array([g + [""] * (width - len(g)) for g in genres], object),
  }


def similar_inputs(items: Sequence[Mapping]) -> Dict[str, np.ndarray]:
  """Items as dicts (item_id, and for a new item title, year, genres) ->
  similar_items inputs (without k and rules)."""
  inputs = item_inputs(items)
  inputs[ITEM_IDS] = inputs.pop(ITEM_ID)
  return inputs


def search_inputs(queries: Sequence, k: int,
                  users: Optional[Sequence[Mapping]] = None
                  ) -> Tuple[str, Dict[str, np.ndarray]]:
  """(signature, inputs) for `search`, or `personalized_search` when users
  (one per query) are given; no rules (see rule_inputs).

  Raises:
    ValueError: when users are given but not one per query.
  """
  inputs = {QUERY: np.array(list(queries), object), K: np.int32(k)}
  if users is None:
    return SEARCH, inputs
  if len(users) != len(queries):
    raise ValueError(f"{len(queries)} queries but {len(users)} users")
  return PERSONALIZED_SEARCH, dict(inputs, **user_inputs(users))


def _with_rules(inputs: Dict[str, np.ndarray], rows: int,
                rules: Optional[Mapping]) -> Dict[str, np.ndarray]:
  if rules:
    inputs.update(rule_inputs(rows, **rules))
  return inputs


def recommend_signature(exclude_seen: bool = True, explain: bool = True,
                        served: Optional[Iterable[str]] = None) -> str:
  """The top-k signature for these options. Without `explain`, the fast
  one, unless `served` (the model's signature names) lacks it: a model
  exported before it existed answers with reasons, which callers may
  ignore."""
  explained = RECOMMEND_UNSEEN if exclude_seen else RECOMMEND
  fast = RECOMMEND_UNSEEN_FAST if exclude_seen else RECOMMEND_FAST
  if explain or (served is not None and fast not in served):
    return explained
  return fast


def recommend_request(users: Sequence[Mapping], k: int,
                      exclude_seen: bool = True,
                      rules: Optional[Mapping] = None,
                      explain: bool = True,
                      served: Optional[Iterable[str]] = None
                      ) -> Tuple[str, Dict[str, np.ndarray]]:
  """(signature, inputs) for top k per user; `rules`: rule_inputs'
  keyword arguments, the same for every row; `explain`, `served`: as
  recommend_signature."""
  name = recommend_signature(exclude_seen, explain, served)
  return name, _with_rules(dict(user_inputs(users), k=np.int32(k)),
                           len(users), rules)


def search_request(queries: Sequence, k: int,
                   users: Optional[Sequence[Mapping]] = None,
                   rules: Optional[Mapping] = None
                   ) -> Tuple[str, Dict[str, np.ndarray]]:
  """search_inputs plus rules."""
  name, inputs = search_inputs(queries, k, users)
  return name, _with_rules(inputs, len(queries), rules)


def similar_request(items: Sequence, k: int,
                    rules: Optional[Mapping] = None
                    ) -> Tuple[str, Dict[str, np.ndarray]]:
  """(similar_items, inputs) for items given as ids or as dicts (item_id
  and, for an item the model has never seen, title/year/genres)."""
  items = [i if isinstance(i, Mapping) else {"item_id": i} for i in items]
  return SIMILAR_ITEMS, _with_rules(
      dict(similar_inputs(items), k=np.int32(k)), len(items), rules)


def predict_request(model_name: str, signature: str,
                    inputs: Mapping[str, np.ndarray],
                    version: Optional[int] = None,
                    version_label: Optional[str] = None
                    ) -> predict_pb2.PredictRequest:
  """A PredictRequest for `signature`; `version` or a `version_label`
  ("stable", "canary": the server's model config maps it) pins a version,
  neither means the newest."""
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model_name
  request.model_spec.signature_name = signature
  if version is not None:
    request.model_spec.version.value = version
  elif version_label:
    request.model_spec.version_label = version_label
  for key, value in inputs.items():
    request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
  return request


def versions(model_base_path: str) -> List[int]:
  """The integer-named version folders TF Serving would serve, ascending."""
  if not tf.io.gfile.exists(model_base_path):
    return []
  return sorted(int(n.strip("/")) for n in tf.io.gfile.listdir(model_base_path)
                if n.strip("/").isdigit())


def latest_version_dir(model_base_path: str) -> str:
  """Path of the highest version folder (the one TF Serving serves).

  Raises:
    FileNotFoundError: when no version has been pushed there.
  """
  found = versions(model_base_path)
  if not found:
    raise FileNotFoundError(
        f"No model version under {model_base_path!r}: run `recsys pipeline "
        "run` first (and check that the Evaluator blessed the model).")
  return os.path.join(model_base_path, str(found[-1]))
