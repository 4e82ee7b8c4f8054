// The explorer page: every answer comes from TF Serving's REST API
// (/v1/models/NAME:predict); /explorer/api/ only says who a user is.
// Text from the model or the data is always set as text (textContent,
// createTextNode), never parsed as HTML.
"use strict";

const K = 10;
const NEW_USER_ID = "explorer-new-user";
const state = { model: null, user: null, config: null };
const $ = (id) => document.getElementById(id);

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const child of children) {
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

// Text (never markup) into the element with this id, marked as an error
// or not.
function caption(id, text, isError) {
  $(id).textContent = text;
  $(id).classList.toggle("error", Boolean(isError));
}

function setStatus(text, isError) {
  caption("status", text, isError);
}

function showRequest(url, body) {
  const json = JSON.stringify(body);
  $("last-request").textContent =
    `curl -s -X POST ${location.origin}${url} \\\n  -d '${json}'`;
}

async function getJson(url) {
  const response = await fetch(url);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

// One predict call; returns {outputs, caption} or throws with the server's
// error message (TF Serving's {"error": ...}).
async function predict(signature, inputs) {
  const url = `/v1/models/${encodeURIComponent(state.model)}:predict`;
  const body = { signature_name: signature, inputs };
  showRequest(url, body);
  const started = performance.now();
  const response = await fetch(url, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body) });
  const ms = performance.now() - started;
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = `${signature}: ${answer.error || response.statusText}`;
    setStatus(message, true);
    throw new Error(message);
  }
  const version = response.headers.get("X-Model-Version") || "?";
  const caption = `${state.model} version ${version} · ${signature} · ` +
    `${ms.toFixed(1)} ms`;
  setStatus(`Last answer: ${caption}`);
  return { outputs: answer.outputs, caption };
}

function userInputs(user) {
  const history = user.history.map((h) => h.item_id);
  return {
    user_id: [user.user_id], age: [Number(user.age) || 0],
    gender: [user.gender || ""], occupation: [user.occupation || ""],
    history_item_ids: [history.length ? history : [""]],
  };
}

// Top-k outputs ([1, k] each) as list items: a clickable title, the score
// and, where the model gives one, why.
function renderItems(list, outputs) {
  list.replaceChildren();
  const ids = outputs.item_ids[0];
  ids.forEach((id, i) => {
    if (!id) return;  // rows end with "" when rules leave fewer than k
    const li = el("li", {},
      itemButton(id, outputs.titles[0][i]),
      " ", el("span", { className: "score" }, outputs.scores[0][i].toFixed(3)));
    const why = explanation(outputs, i);
    if (why) li.append(el("span", { className: "why" }, why));
    list.append(li);
  });
  if (!list.children.length) list.append(el("li", {}, "(nothing)"));
}

function explanation(outputs, i) {
  const reason = outputs.reason ? outputs.reason[0][i] : "";
  const because = outputs.because_titles ? outputs.because_titles[0][i] : "";
  if (reason === "seen") return "you have watched this before";
  if (reason === "history" && because) return `because you watched ${because}`;
  if (reason === "profile") return "for your profile (no history yet)";
  if (reason === "text") {
    return because ? `matches your words; your taste for ${because} moved it`
      : "matches your words";
  }
  return "";
}

function itemButton(id, title) {
  const button = el("button", { type: "button", className: "item" },
    title || `item ${id}`);
  button.dataset.itemId = id;
  button.addEventListener("click", () => showSimilar(id, title));
  return button;
}

async function showUser(user) {
  state.user = user;
  $("profile").textContent = user.user_id === NEW_USER_ID
    ? `New user: ${user.age}, ${user.gender}, ${user.occupation}`
    : `User ${user.user_id}: ${user.age}, ${user.gender}, ` +
      `${user.occupation} · ${user.ratings} ratings`;
  const history = $("history");
  history.replaceChildren();
  for (const h of user.history.slice(-20)) {
    const li = el("li", {}, itemButton(h.item_id, h.title));
    if (h.rating) li.append(" ", el("span", { className: "score" }, `★${h.rating}`));
    if (h.typed) li.append(el("span", { className: "why" }, `you typed “${h.typed}”`));
    history.append(li);
  }
  await recommend();
}

async function recommend() {
  if (!state.user) return;
  try {
    const { outputs, caption: text } = await predict(
      "recommend_unseen", { ...userInputs(state.user), k: K });
    renderItems($("recommendations"), outputs);
    caption("recs-caption", text);
  } catch (e) {
    caption("recs-caption", e.message, true);
  }
}

async function loadUser(userId) {
  try {
    const user = await getJson(
      `/explorer/api/users/${encodeURIComponent(userId)}`);
    await showUser(user);
  } catch (e) {
    $("profile").textContent = e.message;
    $("history").replaceChildren();
    $("recommendations").replaceChildren();
  }
}

// A typed title -> a catalogue item: the data's titles first, else the
// model's own search (top 1).
async function resolveTitle(typed) {
  const found = await getJson(
    `/explorer/api/items?q=${encodeURIComponent(typed)}`);
  if (found.items.length) return { ...found.items[0], typed };
  const { outputs } = await predict("search", { query: [typed], k: 1 });
  return { item_id: outputs.item_ids[0][0], title: outputs.titles[0][0],
           typed };
}

async function newUser(event) {
  event.preventDefault();
  const lines = $("new-titles").value.split("\n")
    .map((t) => t.trim()).filter(Boolean).slice(0, 50);
  const history = [];
  for (const line of lines) history.push(await resolveTitle(line));
  await showUser({
    user_id: NEW_USER_ID, age: Number($("new-age").value) || 0,
    gender: $("new-gender").value, occupation: $("new-occupation").value,
    history, ratings: history.length });
}

async function search(event) {
  if (event) event.preventDefault();
  const query = $("query").value.trim();
  if (!query) return;
  const personal = $("personal").checked && state.user;
  const inputs = { query: [query], k: K };
  try {
    const { outputs, caption: text } = personal
      ? await predict("personalized_search",
                      { ...inputs, ...userInputs(state.user) })
      : await predict("search", inputs);
    renderItems($("results"), outputs);
    caption("search-caption", `“${query}”` +
      (personal ? ` for user ${state.user.user_id}` : "") + ` · ${text}`);
  } catch (e) {
    caption("search-caption", e.message, true);
  }
}

async function showSimilar(id, title) {
  try {
    const { outputs, caption: text } = await predict(
      "similar_items", { item_ids: [id], k: K });
    renderItems($("similar"), outputs);
    caption("similar-caption", `Near ${title || id} · ${text}`);
  } catch (e) {
    caption("similar-caption", e.message, true);
  }
}

async function showVersion() {
  try {
    const status = await getJson(
      `/v1/models/${encodeURIComponent(state.model)}`);
    const versions = status.model_version_status
      .filter((v) => v.state === "AVAILABLE").map((v) => v.version);
    $("version").textContent = `serving version ${versions.join(", ")}`;
  } catch (e) {
    $("version").textContent = e.message;
  }
}

async function start() {
  state.config = await getJson("/explorer/api/config");
  const select = $("model");
  for (const name of state.config.models) select.append(el("option", {}, name));
  state.model = state.config.models[0];
  select.addEventListener("change", async () => {
    state.model = select.value;
    await showVersion();
    await recommend();
  });
  for (const id of state.config.sample_users) {
    $("sample-users").append(el("option", { value: id }));
  }
  if (!state.config.has_data) {
    $("profile").textContent = "No user data on this server " +
      "(--explorer-data): describe a new user instead.";
    $("new-user").open = true;
  }
  $("user-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = $("user-id").value.trim();
    if (id) loadUser(id);
  });
  $("new-user-form").addEventListener("submit", newUser);
  $("search-form").addEventListener("submit", search);
  await showVersion();
  const wanted = new URLSearchParams(location.hash.slice(1)).get("user");
  if (wanted) {
    $("user-id").value = wanted;
    await loadUser(wanted);
  }
  document.body.dataset.ready = "true";
}

start().catch((e) => setStatus(`Could not start: ${e.message}`, true));
