// synthmed web page: run list, run view (report tables + sample grids), generate form, classify form.
// Plain DOM code; every string from the server goes through textContent (never innerHTML).
"use strict";

const $ = (sel) => document.querySelector(sel);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function num(v, digits = 3) {
  return v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toFixed(digits);
}

function showError(message) {
  const box = $("#error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function api(path, options = {}) {
  const res = await fetch(path, options);
  if (!res.ok) {
    let detail = res.statusText;
    try {
      const body = await res.json();
      detail = typeof body.detail === "string" ? body.detail
        : (body.detail || []).map((d) => `${(d.loc || []).slice(1).join(".")}: ${d.msg}`).join("; ");
    } catch (e) { /* not JSON */ }
    const retry = res.headers.get("Retry-After");
    throw new Error(`${res.status}: ${detail}${retry ? ` (retry in ${retry} s)` : ""}`);
  }
  return res;
}

// -- run list ------------------------------------------------------------------------------------
async function showRuns() {
  $("#run-view").hidden = true;
  $("#runs-view").hidden = false;
  const runs = await (await api("/api/runs")).json();
  const body = $("#runs-table tbody");
  body.replaceChildren();
  for (const r of runs) {
    const link = r.status === "finished" ? el("a", { href: `#/run/${encodeURIComponent(r.name)}`, text: r.name })
      : el("span", { text: r.name });
    body.append(el("tr", { "data-run": r.name }, el("td", {}, link), el("td", { text: r.study || "" }),
      el("td", { text: r.dataset || "" }), el("td", { text: r.date || "" }), el("td", { text: r.status }),
      el("td", { class: "num", text: String(r.generators) }), el("td", { class: "num", text: String(r.classifiers) })));
  }
  $("#runs-empty").hidden = runs.length > 0;
}

// -- run view ------------------------------------------------------------------------------------
const state = { run: null, generators: [], classifiers: [], classNames: [] };

function summaryTable(metric, rows) {
  const head = el("tr", {}, ...["condition", "generator", "n seeds", "mean", "95 % CI", "Δ vs real"].map((h) => el("th", { text: h })));
  const table = el("table", { class: "summary", "data-metric": metric }, el("thead", {}, head));
  const body = el("tbody");
  for (const s of rows) {
    const ci = s.ci_low === null || s.ci_low === undefined ? "–" : `[${num(s.ci_low)}, ${num(s.ci_high)}]`;
    const d = s.vs_real ? (s.vs_real.mean_diff >= 0 ? "+" : "") + num(s.vs_real.mean_diff) : "–";
    body.append(el("tr", {}, el("td", { text: s.condition }), el("td", { text: s.generator }),
      el("td", { class: "num", text: String(s.n) }), el("td", { class: "num", text: num(s.mean) }),
      el("td", { class: "num", text: ci }), el("td", { class: "num", text: d })));
  }
  table.append(body);
  return table;
}

function renderReport(report) {
  const tables = $("#summary-tables");
  tables.replaceChildren();
  for (const metric of ["roc_auc", "macro_f1"]) {  // the lead metrics; the full set is in report.html
    const rows = (report.summaries || {})[metric];
    if (rows && rows.length) tables.append(el("h3", { text: metric }), summaryTable(metric, rows));
  }
  const fid = $("#fidelity-table");
  fid.replaceChildren();
  // one row per generator; each cell "synthetic vs real (real-vs-real floor)"
  const keys = ["fid", "kid_mean", "precision", "recall", "n_fake"];
  const frows = (report.fidelity || []).map((f) => {
    const overall = (f.data || {}).overall || {};
    const floor = (f.data || {}).floor || {};
    return el("tr", {}, el("td", { text: f.label }), el("td", { text: String(f.seed) }), ...keys.map((k) =>
      el("td", { class: "num", text: typeof floor[k] === "number" && k !== "n_fake"
        ? `${num(overall[k], 4)} (${num(floor[k], 4)})` : num(overall[k], k === "n_fake" ? 0 : 4) })));
  });
  if (frows.length) {
    fid.append(el("table", { id: "fidelity" }, el("thead", {}, el("tr", {}, ...["generator", "seed", ...keys]
      .map((h) => el("th", { text: h })))), el("tbody", {}, ...frows)),
    el("p", { class: "muted", text: "value vs the real test set (in brackets: the real-vs-real floor at the same size)" }));
  } else fid.append(el("p", { class: "muted", text: "No fidelity metrics in this run." }));
  const grids = $("#sample-grids");
  grids.replaceChildren();
  const rows = state.classNames.length ? ` — rows, top to bottom: ${state.classNames.join(", ")}` : " — one row per class";
  if (report.side_by_side) {  // a labelled figure: shown at its full width
    grids.append(el("figure", { class: "figure" }, el("img", { src: report.side_by_side, alt: "real vs generators" }),
      el("figcaption", { text: "real vs every generator, one row per class (labelled)" })));
  }
  for (const g of report.generators || []) {
    if (!g.samples) continue;
    grids.append(el("figure", { class: "figure grid" }, el("img", { src: g.samples, alt: `${g.label} samples` }),
      el("figcaption", { text: `${g.label} (${g.family}, seed ${g.seed})${rows}` })));
  }
}

// Clear everything a previous run left on the page, so an error never sits above stale tables.
function clearRunView() {
  for (const id of ["#summary-tables", "#fidelity-table", "#sample-grids", "#cls-conditions", "#cls-warnings"]) {
    $(id).replaceChildren();
  }
  $("#run-title").textContent = "";
  $("#run-meta").textContent = "";
  $("#cls-warnings").hidden = true;
}

function fillGenerators() {
  const sel = $("#gen-generator");
  sel.replaceChildren(...state.generators.map((g) => el("option", { value: g.id, text: `${g.id} (${g.family})` })));
  onGeneratorChange();
}

function currentGenerator() {
  return state.generators.find((g) => g.id === $("#gen-generator").value);
}

function onGeneratorChange() {
  const g = currentGenerator();
  $("#gen-class").replaceChildren(...(g ? g.classes : []).map((c) => el("option", { value: c, text: c })));
  for (const label of document.querySelectorAll("label.opt")) {
    const opt = label.dataset.option;
    label.hidden = !(g && g.options.includes(opt));
    const input = label.querySelector("input, select");
    input.value = "";
    if (input.tagName === "INPUT") input.placeholder = g && g.defaults[opt] !== undefined ? String(g.defaults[opt]) : "";
  }
}

function fillClassifiers() {
  const box = $("#cls-conditions");
  box.replaceChildren(el("legend", { text: "classifiers (first seed of the run)" }));
  const first = state.classifiers.length ? state.classifiers[0].seed : null;
  for (const c of state.classifiers.filter((x) => x.seed === first)) {
    box.append(el("label", {}, el("input", { type: "checkbox", name: "conditions", value: c.id, checked: "" }), ` ${c.id}`));
  }
}

async function showRun(name) {
  $("#runs-view").hidden = true;
  $("#run-view").hidden = true;  // shown once the run's facts have loaded
  $("#gen-output").hidden = true;
  $("#cls-output").hidden = true;
  clearRunView();
  state.run = name;
  const enc = encodeURIComponent(name);
  const [detail, gens, clfs] = await Promise.all([
    api(`/api/runs/${enc}`).then((r) => r.json()),
    api(`/api/runs/${enc}/generators`).then((r) => r.json()),
    api(`/api/runs/${enc}/classifiers`).then((r) => r.json()),
  ]);
  $("#run-title").textContent = name;
  $("#run-view").hidden = false;
  const man = detail.manifest;
  const ds = (man.config || {}).dataset || {};
  $("#run-meta").textContent = `study ${man.study} · ${ds.name} ${ds.size} px · seeds ${JSON.stringify(man.seeds)} · ` +
    `finished ${man.finished_at} · ${detail.results.length} result rows`;
  state.generators = gens;
  state.classNames = gens.length ? gens[0].classes : [];
  state.classifiers = clfs;
  fillGenerators();
  fillClassifiers();
  $("#summary-tables").replaceChildren(el("p", { class: "muted", text: "loading the report…" }));
  renderReport(await (await api(`/api/runs/${enc}/report`)).json());
}

// -- generate ------------------------------------------------------------------------------------
function generateBody(format) {
  const body = { run: state.run, generator: $("#gen-generator").value, class: $("#gen-class").value,
    n: Number($("#gen-n").value), seed: Number($("#gen-seed").value), format };
  for (const opt of ["steps", "guidance"]) {
    const input = $(`#gen-${opt}`);
    if (!input.closest("label").hidden && input.value !== "") body[opt] = Number(input.value);
  }
  for (const opt of ["sampler", "bn_stats"]) {  // choices: sent as given
    const select = $(`#gen-${opt}`);
    if (!select.closest("label").hidden && select.value !== "") body[opt] = select.value;
  }
  return body;
}

function filenameOf(res, fallback) {
  const m = /filename="([^"]+)"/.exec(res.headers.get("Content-Disposition") || "");
  return m ? m[1] : fallback;
}

async function generate(format) {
  showError("");
  const buttons = [$("#gen-submit"), $("#gen-zip")];
  buttons.forEach((b) => { b.disabled = true; });
  $("#gen-status").textContent = "generating…";
  const t0 = performance.now();
  try {
    const res = await api("/api/generate", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(generateBody(format)) });
    const blob = await res.blob();
    const url = URL.createObjectURL(blob);
    const name = filenameOf(res, `samples.${format}`);
    $("#gen-status").textContent = `${res.headers.get("X-Images")} images in ${((performance.now() - t0) / 1000).toFixed(1)} s`;
    if (format === "zip") {
      const a = el("a", { href: url, download: name });
      document.body.append(a);
      a.click();
      a.remove();
      return;
    }
    const img = $("#gen-image");
    img.onload = () => {
      $("#gen-size").textContent = `${img.naturalWidth}×${img.naturalHeight} px`;
      img.width = img.naturalWidth * 4;  // CSSOM size (allowed by the CSP), pixelated upscale
    };
    img.src = url;
    const link = $("#gen-download");
    link.href = url;
    link.download = name;
    $("#gen-output").hidden = false;
  } catch (e) {
    $("#gen-status").textContent = "";
    showError(e.message);
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

// -- classify ------------------------------------------------------------------------------------
async function classify() {
  showError("");
  const file = $("#cls-file").files[0];
  if (!file) { showError("choose a PNG or JPEG image first"); return; }
  const form = new FormData();
  form.append("file", file);
  form.append("run", state.run);
  for (const box of document.querySelectorAll("#cls-conditions input:checked")) form.append("conditions", box.value);
  $("#cls-submit").disabled = true;
  $("#cls-status").textContent = "classifying…";
  try {
    const out = await (await api("/api/classify", { method: "POST", body: form })).json();
    $("#cls-preview").src = URL.createObjectURL(file);
    const head = el("tr", {}, el("th", { text: "classifier" }), ...out.class_names.map((c) => el("th", { text: `P(${c})` })),
      el("th", { text: "predicted" }));
    $("#cls-table thead").replaceChildren(head);
    const rows = out.results.map((r) => el("tr", { class: "prob-row", "data-id": r.id }, el("td", { text: r.id }),
      ...out.class_names.map((c) => {
        const bar = el("span", { class: "bar" });
        bar.style.width = `${Math.round(60 * r.probabilities[c])}px`;
        return el("td", { class: "num" }, bar, num(r.probabilities[c]));
      }), el("td", { class: "pred", text: r.predicted })));
    $("#cls-table tbody").replaceChildren(...rows);
    const warn = $("#cls-warnings");
    warn.replaceChildren(...(out.warnings || []).map((w) => el("p", { text: `⚠ ${w}` })));
    warn.hidden = !(out.warnings || []).length;
    $("#cls-status").textContent = `input converted to ${out.image_shape.join("×")}`;
    $("#cls-output").hidden = false;
  } catch (e) {
    $("#cls-status").textContent = "";
    showError(e.message);
  } finally {
    $("#cls-submit").disabled = false;
  }
}

// -- routing -------------------------------------------------------------------------------------
async function route() {
  showError("");
  const m = /^#\/run\/(.+)$/.exec(location.hash);
  try {
    if (m) await showRun(decodeURIComponent(m[1])); else await showRuns();
  } catch (e) {  // the error alone: no half-loaded or previous run under it
    $("#run-view").hidden = true;
    $("#runs-view").hidden = true;
    clearRunView();
    showError(e.message);
  }
}

async function pollHealth() {
  try {
    const h = await (await api("/api/health")).json();
    $("#health").textContent = `${h.runs} runs · ${h.running} running · ${h.queued} queued`;
  } catch (e) { $("#health").textContent = "server unreachable"; }
}

document.addEventListener("DOMContentLoaded", () => {
  $("#gen-generator").addEventListener("change", onGeneratorChange);
  $("#generate-form").addEventListener("submit", (ev) => { ev.preventDefault(); generate("png"); });
  $("#gen-zip").addEventListener("click", () => generate("zip"));
  $("#classify-form").addEventListener("submit", (ev) => { ev.preventDefault(); classify(); });
  window.addEventListener("hashchange", route);
  route();
  pollHealth();
  setInterval(pollHealth, 10000);
});
