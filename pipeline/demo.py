"""`make demo` / `recsys demo`: fetch, run the pipeline, show what it made."""
import time
from typing import List, Optional

from absl import logging

from pipeline import configs
from pipeline import data
from pipeline import evaluation
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


def main(config: configs.PipelineConfig) -> int:
  from serving import local_model
  start = time.time()
  data.fetch_movielens(config.data_dir)
  if config.trainer.use_text:
    data.fetch_text_encoder(config.text_encoder_dir)
  report_path = local_runner.run(config)
  print("\n=== Evaluation (time-split eval set) ===")
  rows, blessed = evaluation.evaluation_rows(config.pipeline_root)
  print(evaluation.format_table(rows, blessed))
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
  print("\n=== Look at it ===")
  if report_path:
    print(f"Run report: {report_path}")
  print("Explorer page: `make serve` (recsys serve), then open "
        f"{server_lib.explorer_url('127.0.0.1', contract.DEFAULT_REST_PORT)}")
  return 0 if blessed else 1
