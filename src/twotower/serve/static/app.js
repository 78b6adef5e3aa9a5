// The search page: asks /info which modes the index serves, sends the query to /search, and draws the hits
// as the terminal UI does (search/render.py). Every server string goes in through textContent, never as HTML.
"use strict";

const SNIPPET_CHARS = 260;
// As render.py: words too common to be worth highlighting.
const STOP_WORDS = new Set(("a an and are as at be by can do does for from has have how i in is it its of on or " +
  "that the their this to was were what when where which who why will with you your").split(" "));

const $ = (id) => document.getElementById(id);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function getJSON(path, options) {
  // From the origin, never the page's own URL: a page opened as http://user:key@host/ would make every relative
  // URL carry the credentials, which fetch() refuses. The browser sends the key it logged in with anyway.
  const response = await fetch(new URL(path, window.location.origin), options);
  const body = await response.json().catch(() => ({ detail: `${response.status} ${response.statusText}` }));
  if (!response.ok) throw new Error(body.detail || `${response.status} ${response.statusText}`);
  return body;
}

function queryTerms(query) {
  const words = query.toLowerCase().match(/[\p{L}\p{N}]+/gu) || [];
  return [...new Set(words.filter((w) => w.length > 1 && !STOP_WORDS.has(w)))];
}

function termPattern(terms) {
  if (!terms.length) return null;
  const escaped = [...terms].sort((a, b) => b.length - a.length).map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  // Plural and -ing/-ed forms count as the same word, as in the terminal.
  return new RegExp(`\\b(?:${escaped.join("|")})(?:s|es|ed|ing)?\\b`, "giu");
}

// A window of the text around its first query word, every query word in a <mark>.
function snippet(text, pattern) {
  let start = 0;
  if (text.length > SNIPPET_CHARS && pattern) {
    pattern.lastIndex = 0;
    const first = pattern.exec(text);
    if (first && first.index > SNIPPET_CHARS / 3) start = text.lastIndexOf(" ", first.index - SNIPPET_CHARS / 3) + 1;
  }
  let end = Math.min(text.length, start + SNIPPET_CHARS);
  if (end < text.length) end = Math.max(text.lastIndexOf(" ", end), start + SNIPPET_CHARS / 2);
  const body = (start ? "… " : "") + text.slice(start, end).trim() + (end < text.length ? " …" : "");
  const out = el("span", "passage");
  let last = 0;
  if (pattern) {
    pattern.lastIndex = 0;
    for (const match of body.matchAll(pattern)) {
      out.append(body.slice(last, match.index), el("mark", "", match[0]));
      last = match.index + match[0].length;
    }
  }
  out.append(body.slice(last));
  return out;
}

// As render.py's _score_style: the colour says where a score sits between this list's best and worst.
function scoreClass(score, top, bottom) {
  const spread = top - bottom;
  const position = spread <= 1e-9 ? 1 : (score - bottom) / spread;
  return position > 0.8 ? "s4" : position > 0.5 ? "s3" : position > 0.2 ? "s2" : "s1";
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function render(result, device) {
  $("shown-query").textContent = result.query;
  const warn = $("truncated");
  const notes = [];
  if (result.warning) notes.push(`⚠ ${result.warning}`);
  if (result.truncated) notes.push("⚠ the query is longer than the model reads; the rest was ignored");
  warn.textContent = notes.join("\n");
  warn.hidden = !notes.length;
  const list = $("results");
  list.replaceChildren();
  const scores = result.hits.map((h) => h.score);
  const pattern = termPattern(queryTerms(result.query));
  for (const hit of result.hits) {
    const item = el("li", "hit");
    item.append(
      el("span", "rank", String(hit.rank)),
      el("span", `score ${scoreClass(hit.score, Math.max(...scores), Math.min(...scores))}`, hit.score.toFixed(4)),
      el("span", "pid", hit.id),
      snippet(hit.text, pattern),
    );
    item.querySelector(".pid").title = hit.id;
    list.append(item);
  }
  if (!result.hits.length) list.append(el("li", "warn", "no documents found"));
  const t = result.timings_ms;
  const line = $("timings");
  // The stages this mode ran: BM25 and fusion only outside dense mode.
  const lexical = result.mode === "dense" ? [] : [
    "  ·  bm25 ", el("span", "t-bm25", `${t.bm25.toFixed(2)} ms`),
    ...(result.mode === "hybrid" ? ["  ·  fusion ", el("span", "t-fusion", `${t.fusion.toFixed(2)} ms`)] : []),
  ];
  line.replaceChildren(
    "encode ", el("span", "t-encode", `${t.encode.toFixed(2)} ms`),
    "  ·  search ", el("span", "t-search", `${t.search.toFixed(2)} ms`), ` on ${device}`,
    ...lexical,
    "  ·  fetch ", el("span", "t-fetch", `${t.fetch.toFixed(2)} ms`),
    "  ·  total ", el("span", "t-total", `${t.total.toFixed(2)} ms`),
  );
  $("panel").hidden = false;
}

function buildModes(modes) {
  const box = $("modes");
  box.replaceChildren();
  modes.forEach((mode, i) => {
    const label = el("label");
    const input = el("input");
    Object.assign(input, { type: "radio", name: "mode", value: mode, checked: i === 0 });
    label.append(input, el("span", "", mode));
    box.append(label);
  });
  // One mode is no choice: hide the switch.
  box.hidden = modes.length < 2;
}

async function main() {
  let info;
  try {
    info = await getJSON("/info");
  } catch (error) {
    $("index-info").textContent = "";
    showError(`cannot reach the index: ${error.message}`);
    return;
  }
  $("index-info").textContent =
    `${info.backend} ${info.index.kind} · ${info.documents.toLocaleString()} passages · ${info.index.dim}-d · ` +
    `${info.model.tower} (${info.model.checkpoint}) · ${info.device}`;
  buildModes(info.modes);
  $("search-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const query = $("query").value;
    const mode = (document.querySelector("input[name=mode]:checked") || { value: "dense" }).value;
    const params = new URLSearchParams({ q: query, k: $("k").value, mode });
    try {
      const result = await getJSON(`/search?${params}`);
      showError("");
      render(result, info.device);
    } catch (error) {
      $("panel").hidden = true;
      showError(error.message);
    }
  });
}

document.addEventListener("DOMContentLoaded", main);
