"""The scale benchmark's generator writes valid data of the asked size."""
import importlib.util
import os

from movielens_fixtures import write_recbole

from components.movielens_example_gen import layouts

_spec = importlib.util.spec_from_file_location(
    "scale", os.path.join(os.path.dirname(os.path.dirname(__file__)), "bench",
                          "scale.py"))
scale = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(scale)


def test_synthesize_scales_users_items_and_rows(tmp_path):
  items = [(i, f"Movie {i}", 1990 + i % 9, "Drama Comedy")
           for i in range(1, 21)]
  users = [(u, 20 + u, "MF"[u % 2], "writer", "0") for u in range(1, 11)]
  inter = [(1 + k % 10, 1 + (k * 7) % 20, 1 + k % 5, 880000000 + k)
           for k in range(200)]
  source = write_recbole(str(tmp_path / "src"), inter, items, users)
  out = scale.synthesize(source, str(tmp_path / "out"), 2000)
  layout = layouts.detect_layout(out)
  rows = {}
  for name, table in layout.tables().items():
    lines = open(os.path.join(out, table.filename), "rb").read().splitlines()
    rows[name] = [table.parse(l) for l in lines[table.header_lines:]]
  assert len(rows["interactions"]) == 2000
  assert len(rows["users"]) >= 50 and len(rows["items"]) >= 100
  item_ids = {i.item_id for i in rows["items"]}
  user_ids = {u.user_id for u in rows["users"]}
  assert all(r.item_id in item_ids and r.user_id in user_ids
             for r in rows["interactions"])
