"""The explorer page's own routes (serving/explorer.py) on a tiny folder:
users and histories, title look-up, static files, and what is refused.
The page itself is tested in a browser against a real model in
test_pipeline.py."""
import json

import pytest

from serving import explorer

INTER = ("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
         "1\t10\t5\t880000002\n1\t11\t3\t880000001\n2\t10\t4\t880000003\n"
         "1\t12\tbad\t880000004\n")
ITEMS = ("item_id:token\tmovie_title:token_seq\trelease_year:token\t"
         "class:token_seq\n10\tStar Wars\t1977\tAction Sci-Fi\n"
         "11\tStar Trek: First Contact\t1996\tSci-Fi\n"
         "12\tA New Star\t1998\tDrama\n")
USERS = ("user_id:token\tage:token\tgender:token\toccupation:token\t"
         "zip_code:token\n1\t24\tM\ttechnician\t85711\n"
         "2\t53\tF\tother\t94043\n")


@pytest.fixture()
def data(tmp_path):
  for name, text in (("ml-100k.inter", INTER), ("ml-100k.item", ITEMS),
                     ("ml-100k.user", USERS)):
    (tmp_path / name).write_text(text)
  return explorer.ExplorerData(str(tmp_path))


def _get(path, data, models=("recommender",)):
  status, kind, body = explorer.handle(path, data, list(models))
  return status, kind, body


def test_user_history_is_oldest_first_with_titles(data):
  status, kind, body = _get("/explorer/api/users/1", data)
  user = json.loads(body)
  assert status == 200 and kind == "application/json"
  assert (user["age"], user["gender"], user["occupation"]) == (
      24, "M", "technician")
  # The malformed rating row is skipped, the rest ordered by time.
  assert [h["item_id"] for h in user["history"]] == ["11", "10"]
  assert user["history"][1]["title"] == "Star Wars"
  assert user["ratings"] == 2


def test_unknown_user_and_missing_data_are_404_with_a_reason(data):
  status, _, body = _get("/explorer/api/users/nobody", data)
  assert status == 404 and "Unknown user" in json.loads(body)["error"]
  status, _, body = _get("/explorer/api/users/1", None)
  assert status == 404 and "--explorer-data" in json.loads(body)["error"]


def test_title_lookup_prefix_first_then_substring(data):
  _, _, body = _get("/explorer/api/items?q=star", data)
  found = [i["item_id"] for i in json.loads(body)["items"]]
  # Titles starting with it (alphabetical), then titles containing it.
  assert found == ["11", "10", "12"]
  _, _, body = _get("/explorer/api/items?q=" + "x" * 10000, data)
  assert json.loads(body)["items"] == []


def test_config_names_models_and_busiest_users_first(data):
  _, _, body = _get("/explorer/api/config", data, ["a", "b"])
  config = json.loads(body)
  assert config["models"] == ["a", "b"] and config["has_data"]
  assert config["sample_users"] == ["1", "2"]


def test_static_files_and_refused_paths(data):
  status, kind, body = _get("/", data)
  assert status == 200 and kind.startswith("text/html")
  assert b"/explorer/explorer.js" in body
  status, kind, _ = _get("/explorer/explorer.js", data)
  assert status == 200 and "javascript" in kind
  for path in ("/explorer/../setup.py", "/explorer/%2e%2e/setup.py",
               "/explorer/nope.html", "/explorer/api/unknown"):
    assert _get(path, data)[0] == 404, path
  # TF Serving's API is not the explorer's.
  assert explorer.handle("/v1/models/recommender", data, []) is None
