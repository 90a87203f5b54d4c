// The explainer page: the edge's core (Wasm, built by wasm-pack) decides.
import init, { OffloadExplainer, parseHeaders } from "/assets/offload_browser.js";

const $ = (id) => document.getElementById(id);
const result = $("result");
let explainer = null;
let configText = null;

function explainerFor(text) {
  if (explainer && text === configText) return explainer;
  explainer?.free();
  explainer = new OffloadExplainer(text);
  configText = text;
  return explainer;
}

// Explain one case (the JSON the core takes); returns the decision as JSON.
// Also what the browser tests call, for a table of cases.
window.offloadExplain = (caseJson, configToml) => explainerFor(configToml ?? $("config").value).explain(caseJson);

const labels = {
  outcome: "Decision", reason: "Why", route: "Route", upstream: "Upstream", forwarded: "Sent upstream as",
  cache_key: "Cache key", ttl: "TTL (s)", freshness_lifetime: "Freshness lifetime (s)", freshness_source: "Freshness from",
  stale_while_revalidate: "stale-while-revalidate (s)", stale_if_error: "stale-if-error (s)", status: "Status to the viewer",
  cache_status: "Cache-Status sent", next_cache_status: "Cache-Status of the next request", error: "Edge error",
};
const verdicts = {
  "stored": "Stored: the next viewer gets it from the edge.",
  "not-stored": "Not stored: every viewer goes to the origin.",
  "bypass": "Bypass: the cache is not consulted.",
  "edge-answer": "The edge answers itself; nothing goes upstream.",
};

function show(decision) {
  $("verdict").textContent = verdicts[decision.outcome] ?? decision.outcome;
  const dl = $("facts");
  dl.replaceChildren();
  for (const [k, label] of Object.entries(labels)) {
    const v = decision[k];
    if (v === null || v === undefined) continue;
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    dd.textContent = String(v);
    dd.dataset.field = k;
    dl.append(dt, dd);
  }
  result.dataset.state = "done";
  result.dataset.outcome = decision.outcome;
}

function explainForm() {
  try {
    const req = JSON.parse(parseHeaders($("request-headers").value));
    const resp = JSON.parse(parseHeaders($("response-headers").value));
    const c = {
      method: $("method").value.trim() || "GET",
      url: new URL($("url").value, location.origin).href,
      request_headers: req.fields,
      status: resp.status ?? 200,
      response_headers: resp.fields,
      now_ms: Date.now(),
    };
    show(JSON.parse(window.offloadExplain(JSON.stringify(c))));
  } catch (err) {
    $("verdict").textContent = `Cannot explain: ${err.message ?? err}`;
    $("facts").replaceChildren();
    result.dataset.state = "error";
  }
}

async function fetchThroughEdge() {
  const url = new URL($("url").value, location.origin);
  try {
    const resp = await fetch(url, { method: $("method").value.trim() || "GET", cache: "no-store" });
    const lines = [`HTTP/1.1 ${resp.status} ${resp.statusText}`];
    resp.headers.forEach((v, k) => lines.push(`${k}: ${v}`));
    $("response-headers").value = lines.join("\n");
    explainForm();
  } catch (err) {
    $("verdict").textContent = `Fetch failed: ${err.message}`;
  }
}

$("explain-form").addEventListener("submit", (e) => { e.preventDefault(); explainForm(); });
$("fetch").addEventListener("click", fetchThroughEdge);

try {
  await init({ module_or_path: "/assets/offload_browser_bg.wasm" });
  document.body.dataset.wasm = "ready";
  explainForm();
} catch (err) {
  document.body.dataset.wasm = "error";
  $("verdict").textContent = `The WebAssembly core did not load: ${err.message ?? err}`;
  result.dataset.state = "error";
}
