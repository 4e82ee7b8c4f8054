"""`make demo` / `recsys demo`: fetch, run the pipeline, show what it made."""
import glob
import os
import re
import time
from typing import List, Optional, Tuple

from absl import logging

from pipeline import configs
from pipeline import data
from pipeline import local_runner
from trainer import contract

# A few real users of different profiles, plus one the model has never seen.
DEMO_USERS = (
    {"user_id": "1", "age": 24, "gender": "M", "occupation": "technician"},
    {"user_id": "42", "age": 30, "gender": "M", "occupation": "administrator"},
    {"user_id": "405", "age": 22, "gender": "F", "occupation": "healthcare"},
    {"user_id": "new-user", "age": 35, "gender": "F", "occupation": "writer",
     "history": ["50", "172", "181"]},
)

DEMO_QUERIES = ("Star Wars", "animated children's film", "scary horror movie")
# Item pages: Star Wars, Toy Story, and a film the model has never seen.
DEMO_ITEMS = ("50", "1", {"item_id": "new-film", "title": "Galactic Rebels",
                          "year": 1998, "genres": ["Sci-Fi", "Action"]})


def recent_histories(data_dir: str, users, until: Optional[int],
                     n: int = 10) -> List[dict]:
  """`users` with each known user's last n rated items (up to `until`,
  oldest first) as their history: what a live service would send."""
  from components.movielens_example_gen import layouts
  layout = layouts.detect_layout(data_dir)
  rows, _ = layouts.read_rows(data_dir, layout.interactions)
  wanted = {u["user_id"] for u in users if not u.get("history")}
  rated = {}
  for row in sorted(rows, key=lambda r: r.timestamp):
    if row.user_id in wanted and (until is None or row.timestamp <= until):
      rated.setdefault(row.user_id, []).append(row.item_id)
  return [dict(u, history=u.get("history") or rated.get(u["user_id"],
                                                         [])[-n:])
          for u in users]


def latest_output(pipeline_root: str, component: str, name: str) -> str:
  dirs = glob.glob(os.path.join(pipeline_root, component, name, "*"))
  dirs = [d for d in dirs if os.path.basename(d).isdigit()]
  if not dirs:
    raise FileNotFoundError(f"{component} has produced no {name} yet")
  return max(dirs, key=lambda d: int(os.path.basename(d)))


def evaluation_rows(pipeline_root: str) -> Tuple[List[Tuple], Optional[bool]]:
  """(slice, output, metric, value) rows from the latest Evaluator run,
  and whether that run blessed the model."""
  import tensorflow_model_analysis as tfma
  evaluation = latest_output(pipeline_root, "Evaluator", "evaluation")
  blessing = latest_output(pipeline_root, "Evaluator", "blessing")
  blessed = os.path.exists(os.path.join(blessing, "BLESSED"))
  rows = []
  # With a baseline model, metrics are kept per model name.
  result = tfma.load_eval_result(evaluation, model_name=tfma.CANDIDATE_KEY)
  if not result.slicing_metrics:
    result = tfma.load_eval_result(evaluation)
  for slice_key, per_output in result.slicing_metrics:
    name = ", ".join(f"{k}={v}" for k, v in slice_key) or "overall"
    for output, by_sub in per_output.items():
      for sub_key, metrics in by_sub.items():
        for metric, value in sorted(metrics.items()):
          v = value.get("doubleValue")
          if v is not None:
            rows.append((name, output, _metric_name(output, metric, sub_key),
                         v))
  rows.sort(key=lambda r: (r[0] != "overall", r[0], r[1], r[2]))
  return rows, blessed


def _metric_name(output: str, metric: str, sub_key: str) -> str:
  """Readable names: the mean of hit_at_100 is recall@100 (and so on);
  NDCG gets its k."""
  if (output in contract.RETRIEVAL_METRIC_NAMES and
      metric == "mean_prediction"):
    return contract.RETRIEVAL_METRIC_NAMES[output]
  k = re.search(r"(\d+)", sub_key or "")
  return f"{metric}@{k.group(1)}" if k and metric == "ndcg" else metric


def format_table(rows: List[Tuple], blessed: Optional[bool]) -> str:
  lines = [f"{'slice':<14} {'output':<11} {'metric':<26} {'value':>9}",
           "-" * 63]
  for name, output, metric, value in rows:
    lines.append(f"{name:<14} {output:<11} {metric:<26} {value:>9.4f}")
  lines.append(f"Evaluator verdict: {'BLESSED' if blessed else 'NOT blessed'}")
  return "\n".join(lines)


def main(config: configs.PipelineConfig) -> int:
  from serving import local_model
  start = time.time()
  data.fetch_movielens(config.data_dir)
  if config.trainer.use_text:
    data.fetch_text_encoder(config.text_encoder_dir)
  local_runner.run(config)
  print("\n=== Evaluation (time-split eval set) ===")
  rows, blessed = evaluation_rows(config.pipeline_root)
  print(format_table(rows, blessed))
  if not blessed:
    logging.error("The model was not blessed, so nothing new was pushed.")
  try:
    contract.latest_version_dir(config.serving_model_dir)
  except FileNotFoundError as e:
    print(f"\nNothing to serve: {e}")
    return 1
  # Serve the pushed model over TF Serving's gRPC protocol and ask it as a
  # client would.
  from serving import client as client_lib
  from serving import server as server_lib
  server = server_lib.Server(contract.MODEL_NAME, config.serving_model_dir,
                             grpc_port=0, rest_port=None).start()
  try:
    address = f"127.0.0.1:{server.grpc_port}"
    remote = client_lib.RecommenderClient(address, contract.MODEL_NAME)
    version = remote.status()[0]["version"]
    print(f"\n=== Recommendations over gRPC from {address} "
          f"(model {contract.MODEL_NAME}, version {version}) ===")
    users = recent_histories(config.data_dir, DEMO_USERS, config.train_until)
    for user, result in zip(users, remote.recommend(users, k=10,
                                                    exclude_seen=True)):
      print(local_model.format_explained(user["user_id"], result))
    print("\n=== Similar items over gRPC (the item page) ===")
    for item, result in zip(DEMO_ITEMS, remote.similar(DEMO_ITEMS, k=5)):
      name = item if isinstance(item, str) else f"new {item['title']!r}"
      print(f"  item {name}: " + "; ".join(result["titles"]))
    if config.trainer.use_text:
      print("\n=== Search over gRPC (free text, same index) ===")
      for query, result in zip(DEMO_QUERIES, remote.search(DEMO_QUERIES, k=5)):
        print(f"  {query!r}: " + "; ".join(result["titles"]))
      fan = DEMO_USERS[0]
      print(f"\n=== The same search, personalised for user {fan['user_id']} "
            "===")
      for query, result in zip(DEMO_QUERIES, remote.search(
          DEMO_QUERIES, k=5, users=[fan] * len(DEMO_QUERIES))):
        print(f"  {query!r}: " + "; ".join(result["titles"]))
  finally:
    server.stop()
  print(f"\nDemo finished in {time.time() - start:.0f}s")
  return 0 if blessed else 1
