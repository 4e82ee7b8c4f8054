"""The explorer page of `recsys serve`: static files and the little it needs
besides TF Serving's REST API.

The page (serving/explorer_static/) asks the model through the same
/v1/models/... REST API any client uses; this module only serves the files
and what a model cannot know: who a user is and what they rated (read from
the MovieLens folder given by --explorer-data), and catalogue titles to pick
a new user's watched films from. No data folder: the page still searches and
takes new users, resolving typed titles with the model's own search.
"""
import bisect
import json
import mimetypes
import os
import re
import urllib.parse
from typing import Dict, List, Optional, Tuple

from absl import logging

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "explorer_static")
# Most recent rated items a page request sends as the history (the
# pipeline's default --max-history).
HISTORY_SENT = 50
MAX_QUERY_CHARS = 200
_STATIC_NAME = re.compile(r"^[a-z_]+\.(html|js|css)$")
# (status, content type, body)
Response = Tuple[int, str, bytes]
# Only our own files run in the page: no inline script, nothing from
# elsewhere (a title is data, never markup).
HEADERS = {"Content-Security-Policy": "default-src 'self'; "
           "img-src 'self' data:", "Cache-Control": "no-cache",
           "X-Content-Type-Options": "nosniff"}


class ExplorerData:
  """Users, their ratings (oldest first) and catalogue titles, from a
  MovieLens folder in any layout ExampleGen reads."""

  def __init__(self, data_dir: str):
    from components.movielens_example_gen import layouts
    layout = layouts.detect_layout(data_dir)
    users, _ = layouts.read_rows(data_dir, layout.users)
    items, _ = layouts.read_rows(data_dir, layout.items)
    interactions, rejected = layouts.read_rows(data_dir, layout.interactions)
    self.data_dir = data_dir
    self.users = {u.user_id: u for u in users}
    self.items = {i.item_id: i for i in items}
    self.rated: Dict[str, List] = {}
    for row in sorted(interactions, key=lambda r: r.timestamp):
      self.rated.setdefault(row.user_id, []).append(row)
    self._titles = sorted((i.title.lower(), i.item_id) for i in items)
    logging.info("Explorer: %d users, %d items, %d ratings from %s "
                 "(%d rows skipped)", len(self.users), len(self.items),
                 len(interactions), data_dir, len(rejected))

  def user(self, user_id: str) -> Optional[Dict]:
    profile = self.users.get(user_id)
    if profile is None and user_id not in self.rated:
      return None
    rated = self.rated.get(user_id, [])
    return {
        "user_id": user_id,
        "age": profile.age if profile else 0,
        "gender": profile.gender if profile else "",
        "occupation": profile.occupation if profile else "",
        "history": [{"item_id": r.item_id, "rating": r.rating,
                     "timestamp": r.timestamp,
                     "title": self._title(r.item_id)}
                    for r in rated[-HISTORY_SENT:]],
        "ratings": len(rated),
    }

  def find_items(self, query: str, limit: int = 10) -> List[Dict]:
    """Catalogue items whose title starts with, then contains, `query`."""
    query = query.strip().lower()[:MAX_QUERY_CHARS]
    if not query:
      return []
    start = bisect.bisect_left(self._titles, (query, ""))
    found = []
    for title, item_id in self._titles[start:]:
      if not title.startswith(query) or len(found) >= limit:
        break
      found.append(item_id)
    for title, item_id in self._titles:
      if len(found) >= limit:
        break
      if query in title and item_id not in found:
        found.append(item_id)
    return [{"item_id": i, "title": self._title(i)} for i in found]

  def sample_users(self, n: int = 12) -> List[str]:
    """Users with the most ratings first (their pages say the most)."""
    ranked = sorted(self.rated, key=lambda u: (-len(self.rated[u]), u))
    return ranked[:n]

  def _title(self, item_id: str) -> str:
    item = self.items.get(item_id)
    return item.title if item else ""


def handle(path: str, data: Optional[ExplorerData],
           models: List[str]) -> Optional[Response]:
  """The explorer's answer to GET `path`, or None when the path is not
  the explorer's (then it is TF Serving's REST API)."""
  url = urllib.parse.urlsplit(path)
  query = urllib.parse.parse_qs(url.query)
  route = url.path
  if route in ("/", "/explorer", "/explorer/"):
    return _static("index.html")
  if not route.startswith("/explorer/"):
    return None
  name = route[len("/explorer/"):]
  if name == "api/config":
    return _json(200, {
        "models": models, "has_data": data is not None,
        "data_dir": data.data_dir if data else None,
        "sample_users": data.sample_users() if data else [],
        "history_sent": HISTORY_SENT})
  if name.startswith("api/users/"):
    user_id = urllib.parse.unquote(name[len("api/users/"):])
    if data is None:
      return _json(404, {"error": "No user data: start `recsys serve` with "
                         "--explorer-data DIR (a MovieLens folder)."})
    user = data.user(user_id)
    if user is None:
      return _json(404, {"error": f"Unknown user {user_id[:80]!r}"})
    return _json(200, user)
  if name == "api/items":
    text = (query.get("q") or [""])[0]
    return _json(200, {"items": data.find_items(text) if data else []})
  if _STATIC_NAME.match(name):
    return _static(name)
  return _json(404, {"error": f"No such explorer page: {name[:80]!r}"})


def _static(name: str) -> Response:
  path = os.path.join(STATIC_DIR, name)
  if not os.path.isfile(path):
    return _json(404, {"error": f"No such explorer file: {name}"})
  with open(path, "rb") as f:
    body = f.read()
  kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
  return 200, f"{kind}; charset=utf-8", body


def _json(status: int, body) -> Response:
  return status, "application/json", json.dumps(body).encode()
