// The app page. Every state of the view lives in the page's query string (the selection as
// /flamegraph/<app>.tree takes it, plus page-only parameters: `by`, `search`, `zoom`, `orient`,
// `sandwich`, `live`, `tz`, `sort`), so a view can be pasted into a ticket, and each change of
// view is one step of the browser's history. The flame graph is drawn here from the `.tree`
// answer (levels of the merged call tree, every function's self and total, the sandwich of a
// function). Names from the store are written with textContent only, never as markup.
"use strict";
(function () {
  const APP = decodeURIComponent(location.pathname.replace(/^\/app\//, ""));
  const OPTIONS = ["title", "width", "minwidth", "inverted", "reverse", "colors", "hash", "include", "exclude", "lines", "max_depth"];
  const PAGE_ONLY = ["by", "search", "zoom", "orient", "sandwich", "live", "tz", "sort"];
  const RESERVED = new Set(["from", "to", "step", "normalize", "s", "x", "y", "type", "focus", ...PAGE_ONLY, ...OPTIONS]);
  const UNITS = { ms: 1, s: 1e3, sec: 1e3, m: 6e4, min: 6e4, h: 36e5, d: 864e5, w: 6048e5 };
  const TYPE_NAMES = {
    cpu: "On-CPU", off_cpu: "Off-CPU", wall: "Wall clock", alloc_bytes: "Allocated bytes", alloc_objects: "Allocated objects",
    lock_ns: "Lock wait time", lock_count: "Lock waits", inuse_bytes: "In-use bytes", inuse_objects: "In-use objects",
  };
  const MAX_SERIES = 8;
  const ROW = 18;
  const TABLE_ROWS = 200;
  const LIVE_MS = 10000;
  const $ = (id) => document.getElementById(id);

  let params = new URLSearchParams(location.search);
  let info = null;
  let timeline = null;
  let baseTimeline = null;
  let rangeTimeline = null; // the selected range's, for the breakdown
  let data = null; // the .tree answer shown, with derived arrays
  let sandwichData = null;
  let graphToken = 0, timelineToken = 0, sandwichToken = 0;
  let comparePending = false;
  let liveTimer = null;

  // ---- small helpers ------------------------------------------------------------------------

  // Characters that would change how a name reads (controls, bidi overrides) shown as <U+XXXX>.
  function visible(s) {
    return String(s).replace(/[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufffe\uffff]/g,
      (c) => "<U+" + c.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0") + ">");
  }
  function text(el, s) { el.textContent = s; return el; }
  function make(tag, attrs, content) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
    if (content !== undefined) el.textContent = content;
    return el;
  }
  const SVG_NS = "http://www.w3.org/2000/svg";
  function svgEl(tag, attrs) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
    return el;
  }
  // A query component as people read it: commas, colons and `!` left as they are.
  function enc(s) { return encodeURIComponent(s).replace(/%2C/g, ",").replace(/%3A/g, ":"); }
  function query(p) {
    const parts = [];
    for (const [k, v] of p) parts.push(enc(k) + "=" + enc(v));
    return parts.join("&");
  }

  // A label's parameter: `label.` in front when the name is also a parameter; `!` after when
  // negated (`executor!=driver`).
  function labelParam(k) { return RESERVED.has(k) || k.startsWith("base.") || k.startsWith("label.") || k.endsWith("!") ? "label." + k : k; }
  function isLabelParam(k) { return !RESERVED.has(k) && !k.startsWith("base."); }
  // [name, negated] of a label parameter.
  function labelOf(p) {
    const neg = p.endsWith("!");
    if (neg) p = p.slice(0, -1);
    return [p.startsWith("label.") ? p.slice(6) : p, neg];
  }
  // The selection's matchers: name → {values, negate}.
  function matchers() {
    const out = new Map();
    for (const [k, v] of params) {
      if (!isLabelParam(k)) continue;
      const [name, negate] = labelOf(k);
      out.set(name, { values: v.split(","), negate: negate });
    }
    return out;
  }
  function isDiff() { for (const k of params.keys()) if (k.startsWith("base.")) return true; return false; }

  function parseTime(t, now) {
    if (t === null || t === undefined || t.trim() === "") return null;
    t = t.trim();
    if (t === "now") return now;
    const rel = /^(?:now)?-\s*(\d+(?:\.\d+)?)\s*(ms|sec|s|min|m|h|d|w)$/.exec(t);
    if (rel) return now - Number(rel[1]) * UNITS[rel[2]];
    if (/^\d+$/.test(t)) return t.length <= 10 ? Number(t) * 1000 : Number(t);
    const d = Date.parse(t);
    return isNaN(d) ? null : d;
  }
  function isRelative(t) { return !t || /^(now)?-|^now$/.test(t.trim()); }
  function iso(ms) { return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z"); }
  function local() { return params.get("tz") === "local"; }
  // A time as the page shows it: UTC or the browser's zone.
  function showTime(ms, short) {
    if (!local()) return short ? new Date(ms).toISOString().slice(5, 16).replace("T", " ") : iso(ms);
    const d = new Date(ms), pad = (n) => String(n).padStart(2, "0");
    const s = (short ? "" : d.getFullYear() + "-") + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + pad(d.getHours()) + ":" + pad(d.getMinutes());
    return short ? s : s + ":" + pad(d.getSeconds());
  }
  function zoneName() { return local() ? "local time" : "UTC"; }

  function showError(message) { text($("error"), message); $("error").classList.remove("hidden"); }
  function hideError() { $("error").classList.add("hidden"); }
  let loads = 0;
  function loading(delta) { loads += delta; $("loading").classList.toggle("hidden", loads <= 0); }

  // ---- units ----------------------------------------------------------------------------------

  // The profile type shown: the URL's, or the app's default.
  function currentType() {
    const name = params.get("type") || info.default_type;
    return info.types.find((t) => t.type === name) || { type: name, unit: "samples", total: 0 };
  }
  function typeName(t) { return (TYPE_NAMES[t] ? TYPE_NAMES[t] + " (" + t + ")" : t); }
  // Nanoseconds one sample stands for, when the type says.
  function period() { const t = currentType(); return t.time_ns && t.total ? t.time_ns / t.total : null; }

  // A value in its unit as a person reads it: 1.23 s, 45.6 MiB, 1,234 samples.
  function human(v, unit) {
    if (unit === "bytes") {
      const steps = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
      let i = 0;
      while (v >= 1024 && i < steps.length - 1) { v /= 1024; i++; }
      return (i ? v.toPrecision(3) : String(Math.round(v))) + " " + steps[i];
    }
    if (unit === "nanoseconds") {
      if (v >= 1e9) return (v / 1e9).toPrecision(3) + " s";
      if (v >= 1e6) return (v / 1e6).toPrecision(3) + " ms";
      if (v >= 1e3) return (v / 1e3).toPrecision(3) + " µs";
      return Math.round(v) + " ns";
    }
    return Math.round(v).toLocaleString("en") + (unit === "count" ? "" : " " + unit);
  }
  // A value of the shown type: in its unit, with the time samples stand for when known.
  function amount(v) {
    const unit = currentType().unit, p = period();
    return human(v, unit) + (unit === "samples" && p ? " ≈ " + human(v * p, "nanoseconds") : "");
  }
  function typeAmount(t) { return human(t.total, t.unit) + (t.time_ns ? " ≈ " + human(t.time_ns, "nanoseconds") : ""); }
  function pct(v, of) { return of > 0 ? (100 * v / of).toFixed(2) + "%" : "–"; }
  function pp(v) { return (v >= 0 ? "+" : "") + v.toFixed(2) + " pp"; }

  // ---- history ------------------------------------------------------------------------------

  function writeUrl(push) {
    const qs = query(params);
    const url = location.pathname + (qs ? "?" + qs : "");
    if (url !== location.pathname + location.search) history[push ? "pushState" : "replaceState"](null, "", url);
    $("permalink").href = location.href;
  }
  function update(mutate, what) {
    mutate(params);
    writeUrl(true);
    refresh(what);
  }
  window.addEventListener("popstate", () => { params = new URLSearchParams(location.search); refresh("all"); });

  // ---- controls -----------------------------------------------------------------------------

  // A label's picker: values with samples as checkboxes, "exclude" to negate, "any" to clear.
  function labelPicker(key, values) {
    const box = make("details", { class: "picker", "data-label": key });
    const summary = make("summary", { id: "label-" + key });
    box.append(summary);
    const panel = make("div", { class: "panel" });
    const neg = make("label", { class: "negate" });
    const negBox = make("input", { type: "checkbox", "data-negate": key });
    neg.append(negBox, document.createTextNode(" exclude the ticked values"));
    panel.append(neg);
    const sorted = Object.entries(values).filter(([, s]) => s.samples > 0)
      .sort((a, b) => b[1].samples - a[1].samples || (a[0] < b[0] ? -1 : 1));
    for (const [value, stats] of sorted) {
      const row = make("label", { class: "value" });
      const cb = make("input", { type: "checkbox", value: value });
      row.append(cb, document.createTextNode(" " + visible(value) + " "), make("span", { class: "hint" }, "(" + stats.samples.toLocaleString("en") + ")"));
      panel.append(row);
    }
    const any = make("button", { type: "button" }, "any value");
    panel.append(any);
    box.append(panel);
    const apply = () => update((p) => {
      p.delete(labelParam(key)); p.delete(labelParam(key) + "!");
      const ticked = Array.from(panel.querySelectorAll("label.value input:checked")).map((c) => c.value).sort();
      if (ticked.length) p.set(labelParam(key) + (negBox.checked ? "!" : ""), ticked.join(","));
    }, "all");
    panel.addEventListener("change", apply);
    any.addEventListener("click", () => { for (const c of panel.querySelectorAll("input")) c.checked = false; apply(); box.open = false; });
    return box;
  }

  function baseSelect(key, values) {
    const sel = make("select", { id: "base-label-" + key, "aria-label": "baseline " + key, "data-label": key });
    sel.append(make("option", { value: "" }, "as selected"), make("option", { value: "*" }, "any"));
    for (const [value, stats] of Object.entries(values)) if (stats.samples > 0) sel.append(make("option", { value: value }, visible(value)));
    return sel;
  }

  function buildControls() {
    const type = $("type");
    for (const t of info.types) type.append(make("option", { value: t.type }, typeName(t.type) + " · " + typeAmount(t)));
    const keys = Object.keys(info.labels).filter((k) => Object.values(info.labels[k]).some((s) => s.samples > 0)).sort();
    for (const key of keys) {
      $("labels").append(labelPicker(key, info.labels[key]));
      const bwrap = make("label", {}, visible(key) + " ");
      const bsel = baseSelect(key, info.labels[key]);
      bsel.addEventListener("change", () => { if ($("compare").checked) applyCompare(); });
      bwrap.append(bsel);
      $("base-labels").append(bwrap);
      $("by").append(make("option", { value: key }, visible(key)));
    }
    if (keys.length === 0) $("labels").append(make("span", { class: "hint" }, "this app's samples have no labels"));
    text($("app-name"), visible(APP));
    document.title = visible(APP) + " · stackd";
  }

  function fillSummary() {
    const t = currentType();
    text($("summary"), typeName(t.type) + ": " + typeAmount(t) + " · " + info.unique_stacks.toLocaleString("en") + " stacks" +
      (info.last_seen_ms > 0 ? " · last sample " + showTime(info.last_seen_ms) + " " + zoneName() : ""));
  }

  function fillControls() {
    $("type").value = currentType().type;
    $("from").value = params.get("from") || "";
    $("to").value = params.get("to") || "";
    const m = matchers();
    for (const box of $("labels").querySelectorAll("details.picker")) {
      const key = box.dataset.label, sel = m.get(key);
      for (const cb of box.querySelectorAll("label.value input")) cb.checked = !!sel && sel.values.includes(cb.value);
      box.querySelector("input[data-negate]").checked = !!sel && sel.negate;
      text(box.querySelector("summary"), visible(key) + ": " + (sel ? (sel.negate ? "not " : "") + sel.values.map(visible).join(", ") : "any"));
      box.querySelector("summary").classList.toggle("set", !!sel);
    }
    $("by").value = params.get("by") || "";
    const diff = isDiff();
    $("compare").checked = diff || comparePending;
    if (diff) $("compare-box").open = true;
    $("base-from").value = params.get("base.from") || "";
    $("base-to").value = params.get("base.to") || "";
    for (const sel of $("base-labels").querySelectorAll("select")) {
      const key = sel.dataset.label;
      sel.value = params.get("base." + key) ?? params.get("base.label." + key) ?? "";
    }
    $("opt-reverse").checked = params.get("reverse") === "true";
    $("opt-lines-off").checked = params.get("lines") === "false";
    for (const k of ["include", "exclude", "max_depth"]) $("opt-" + k).value = params.get(k) || "";
    $("search").value = params.get("search") || "";
    $("orient").value = params.get("orient") === "flame" ? "flame" : "";
    $("live").checked = params.get("live") === "1";
    $("tz").value = local() ? "local" : "";
    for (const b of document.querySelectorAll("#presets button")) {
      b.classList.toggle("active", (b.dataset.range ? "-" + b.dataset.range : "") === (params.get("from") || "") && !params.get("to"));
    }
    fillSummary();
  }

  function applyRange(from, to) {
    update((p) => {
      p.delete("from"); p.delete("to"); p.delete("zoom");
      if (from) p.set("from", from);
      if (to) p.set("to", to);
    }, "all");
  }

  function applyCompare() {
    const hint = $("compare-hint");
    hint.classList.add("hidden");
    const wanted = $("compare").checked;
    const before = isDiff();
    for (const k of Array.from(params.keys())) if (k.startsWith("base.")) params.delete(k);
    params.delete("zoom");
    if (wanted) {
      if ($("base-from").value.trim()) params.set("base.from", $("base-from").value.trim());
      if ($("base-to").value.trim()) params.set("base.to", $("base-to").value.trim());
      for (const sel of $("base-labels").querySelectorAll("select")) {
        if (sel.value !== "") params.set("base." + labelParam(sel.dataset.label), sel.value);
      }
    }
    // Ticked with no baseline yet: it stays ticked and says what to pick; the graph stays.
    comparePending = wanted && !isDiff();
    writeUrl(true);
    if (before || isDiff()) refresh("all"); else fillControls();
    if (comparePending) {
      text(hint, "Pick the baseline: a time range (\"previous period\" takes the one just before), or label values. The graph stays as it is until then.");
      hint.classList.remove("hidden");
    }
  }

  function previousPeriod() {
    const now = Date.now();
    const from = parseTime(params.get("from"), now), to = parseTime(params.get("to"), now) ?? now;
    if (from === null) {
      const hint = $("compare-hint");
      text(hint, "Pick a time range first (a preset or a drag on the timeline): the previous period is as long, just before it.");
      hint.classList.remove("hidden");
      return;
    }
    $("base-from").value = iso(from - (to - from));
    $("base-to").value = iso(from);
    $("compare").checked = true;
    applyCompare();
  }

  function applyOptions() {
    update((p) => {
      const set = (k, v) => { p.delete(k); if (v) p.set(k, v); };
      set("reverse", $("opt-reverse").checked ? "true" : "");
      set("lines", $("opt-lines-off").checked ? "false" : "");
      for (const k of ["include", "exclude", "max_depth"]) set(k, $("opt-" + k).value.trim());
      p.delete("zoom");
    }, "graph");
  }

  function setLive(on) {
    clearInterval(liveTimer);
    liveTimer = on ? setInterval(() => refresh("live"), LIVE_MS) : null;
  }

  function wire() {
    for (const b of document.querySelectorAll("#presets button")) {
      // Presets stay relative: a permalink of "last 15 minutes" shows the last 15 minutes.
      b.addEventListener("click", () => applyRange(b.dataset.range ? "-" + b.dataset.range : null, null));
    }
    $("apply-range").addEventListener("click", () => applyRange($("from").value.trim(), $("to").value.trim()));
    for (const id of ["from", "to"]) $(id).addEventListener("keydown", (e) => { if (e.key === "Enter") $("apply-range").click(); });
    $("by").addEventListener("change", () => update((p) => { p.delete("by"); if ($("by").value) p.set("by", $("by").value); }, "timeline"));
    $("type").addEventListener("change", () => update((p) => {
      p.delete("type"); p.delete("zoom"); p.delete("sandwich");
      if ($("type").value !== info.default_type) p.set("type", $("type").value);
    }, "all"));
    $("compare").addEventListener("change", applyCompare);
    for (const id of ["base-from", "base-to"]) $(id).addEventListener("change", () => { if ($("compare").checked) applyCompare(); });
    $("previous-period").addEventListener("click", previousPeriod);
    for (const id of ["opt-reverse", "opt-lines-off"]) $(id).addEventListener("change", applyOptions);
    $("apply-options").addEventListener("click", applyOptions);
    $("search").addEventListener("input", () => { params.delete("search"); if ($("search").value.trim()) params.set("search", $("search").value.trim()); writeUrl(false); highlight(); fillTable(); });
    $("search-reset").addEventListener("click", () => update((p) => { p.delete("search"); p.delete("zoom"); }, "view"));
    $("orient").addEventListener("change", () => update((p) => { p.delete("orient"); if ($("orient").value) p.set("orient", "flame"); }, "view"));
    $("live").addEventListener("change", () => update((p) => {
      p.delete("live");
      if ($("live").checked) { p.set("live", "1"); if (!isRelative(p.get("to") || "")) p.delete("to"); }
    }, "all"));
    $("tz").addEventListener("change", () => update((p) => { p.delete("tz"); if ($("tz").value) p.set("tz", "local"); }, "timeline"));
    $("sandwich-close").addEventListener("click", () => update((p) => p.delete("sandwich"), "view"));
    window.addEventListener("resize", () => { drawTimeline(); drawAll(); });
  }

  // ---- timeline -----------------------------------------------------------------------------

  function selectionQuery(base) {
    const p = new URLSearchParams();
    for (const [k, v] of params) {
      if (PAGE_ONLY.includes(k) || OPTIONS.includes(k) || k.startsWith("base.")) continue;
      p.append(k, v);
    }
    if (!base) return p;
    // The baseline: the selection with base.* put in (`*` drops a label).
    for (const [k, v] of params) {
      if (!k.startsWith("base.")) continue;
      const name = k.slice(5);
      if (name === "from" || name === "to") { p.set(name, v); continue; }
      const [label] = labelOf(name);
      p.delete(labelParam(label)); p.delete(labelParam(label) + "!");
      if (v !== "*") p.set(name, v);
    }
    return p;
  }

  // A timeline of the selection: the chart's covers the whole run (the range is drawn on it);
  // the breakdown's covers the selected range, or the baseline's.
  async function fetchTimeline(kind) {
    const p = selectionQuery(kind === "base");
    if (kind === "chart") { p.delete("from"); p.delete("to"); }
    if (params.get("by")) p.set("by", params.get("by"));
    const r = await fetch("/apps/" + encodeURIComponent(APP) + "/timeline?" + query(p));
    if (!r.ok) return { error: await r.text() };
    return r.json();
  }

  async function loadTimeline() {
    const token = ++timelineToken;
    loading(1);
    try {
      const by = !!params.get("by");
      const ranged = by && (params.get("from") || params.get("to"));
      const [chart, now, base] = await Promise.all([
        fetchTimeline("chart"), ranged ? fetchTimeline("now") : null, by && isDiff() ? fetchTimeline("base") : null]);
      if (token !== timelineToken) return;
      if (chart.error) { timeline = null; showError(chart.error); } else timeline = chart;
      rangeTimeline = now && !now.error ? now : timeline;
      baseTimeline = base && !base.error ? base : null;
      drawTimeline();
    } finally { loading(-1); }
  }

  function drawTimeline() {
    const box = $("timeline");
    box.replaceChildren();
    if (!timeline) return;
    const W = Math.max(box.clientWidth, 200), H = Math.max(box.clientHeight, 60), top = 8, bottom = 16, left = 88;
    const step = timeline.step_ms;
    let t0 = timeline.from_ms, t1 = timeline.to_ms;
    for (const s of timeline.series) for (const [t] of s.points) { t0 = Math.min(t0, t); t1 = Math.max(t1, t + step); }
    t1 = Math.max(t1, t0 + step);
    const n = Math.max(1, Math.ceil((t1 - t0) / step));
    const shown = timeline.series.slice(0, MAX_SERIES);
    const rest = timeline.series.slice(MAX_SERIES);
    const groups = shown.map((s, i) => ({ name: s.value === undefined ? "samples" : (s.value === "" ? "(none)" : visible(s.value)), total: s.total, cls: "c" + i, points: s.points }));
    if (rest.length) groups.push({ name: rest.length + " more", total: rest.reduce((a, s) => a + s.total, 0), cls: "c8", points: rest.flatMap((s) => s.points) });
    const stacks = new Map();
    for (let g = 0; g < groups.length; g++) {
      for (const [t, c] of groups[g].points) {
        const i = Math.floor((t - t0) / step);
        if (!stacks.has(i)) stacks.set(i, new Array(groups.length).fill(0));
        stacks.get(i)[g] += c;
      }
    }
    let max = 1;
    for (const v of stacks.values()) max = Math.max(max, v.reduce((a, b) => a + b, 0));
    const plotW = W - left;
    const x = (t) => left + ((t - t0) / (t1 - t0)) * plotW;
    const svg = svgEl("svg", { viewBox: "0 0 " + W + " " + H, "data-max": max, "data-steps": n });
    // A few steps are bars of sensible width in the middle of their steps, not walls.
    const full = plotW / n;
    const bw = Math.min(48, Math.max(full - (full > 3 ? 1 : 0), 0.5));
    const offset = (full - bw) / 2;
    const unit = timeline.unit || "samples";
    const stepText = human(step * 1e6, "nanoseconds").replace(/\.0+ /, " ");
    for (const [i, values] of stacks) {
      let y = H - bottom;
      values.forEach((v, g) => {
        if (!v) return;
        const h = (v / max) * (H - top - bottom);
        y -= h;
        const r = svgEl("rect", { x: x(t0 + i * step) + offset, y: y, width: bw, height: h, class: groups[g].cls });
        r.append(text(svgEl("title"), groups[g].name + ": " + human(v, unit) + " in the " + stepText + " from " + showTime(t0 + i * step) + " " + zoneName()));
        svg.append(r);
      });
    }
    // y axis: the tallest bar and the unit per step.
    svg.append(svgEl("line", { x1: left - 2, x2: left - 2, y1: top, y2: H - bottom, class: "axis-line" }));
    svg.append(text(svgEl("text", { x: left - 6, y: top + 8, class: "axis", "text-anchor": "end" }), human(max, unit).replace(/ samples$/, "")));
    svg.append(text(svgEl("text", { x: left - 6, y: H - bottom, class: "axis", "text-anchor": "end" }), "0"));
    svg.append(text(svgEl("text", { x: 2, y: (H - bottom + top) / 2 + 4, class: "axis unit" }), (unit === "samples" ? "samples" : unit === "nanoseconds" ? "time" : unit) + " / " + stepText));
    for (const f of [0, 0.5, 1]) {
      const t = t0 + f * (t1 - t0);
      svg.append(text(svgEl("text", { x: left + f * plotW, y: H - 3, class: "axis", "text-anchor": f === 0 ? "start" : f === 1 ? "end" : "middle" }), showTime(t, true) + (f === 1 ? " " + zoneName() : "")));
    }
    const now = Date.now();
    const sf = parseTime(params.get("from"), now), st = parseTime(params.get("to"), now);
    const sel = svgEl("rect", { class: "selection", y: 0, height: H, x: 0, width: 0 });
    if (sf !== null || st !== null) {
      const a = x(Math.max(sf ?? t0, t0)), b = x(Math.min(st ?? t1, t1));
      sel.setAttribute("x", Math.min(a, b)); sel.setAttribute("width", Math.max(Math.abs(b - a), 1));
    } else sel.classList.add("hidden");
    svg.append(sel);
    box.append(svg);
    let start = null;
    const px = (e) => Math.min(Math.max(e.clientX - svg.getBoundingClientRect().left, left), W);
    svg.addEventListener("mousedown", (e) => { start = px(e); e.preventDefault(); });
    svg.addEventListener("mousemove", (e) => {
      if (start === null) return;
      const p = px(e);
      sel.classList.remove("hidden");
      sel.setAttribute("x", Math.min(start, p)); sel.setAttribute("width", Math.abs(p - start));
    });
    const finish = (e) => {
      if (start === null) return;
      const a = Math.min(start, px(e)), b = Math.max(start, px(e));
      start = null;
      if (b - a < 3) return drawTimeline();
      const t = (p) => t0 + ((p - left) / plotW) * (t1 - t0);
      applyRange(iso(Math.floor(t(a) / step) * step), iso(Math.ceil(t(b) / step) * step));
    };
    svg.addEventListener("mouseup", finish);
    svg.addEventListener("mouseleave", (e) => { if (start !== null) finish(e); });
    text($("timeline-info"), human(timeline.total, unit) + " (" + timeline.type + ") in " + n + (n === 1 ? " step of " : " steps of ") + stepText);
    drawBreakdown();
  }

  // The tag breakdown: each value of the `by` label with its share (and, comparing, the
  // baseline's share and the change in percentage points).
  function drawBreakdown() {
    const table = $("breakdown");
    table.replaceChildren();
    const by = params.get("by");
    const tl = rangeTimeline;
    table.classList.toggle("hidden", !by || !tl);
    if (!by || !tl) return;
    const unit = tl.unit || "samples";
    const base = new Map();
    let baseTotal = 0;
    if (baseTimeline) for (const s of baseTimeline.series) { base.set(s.value, s.total); baseTotal += s.total; }
    const head = make("tr");
    for (const h of ["", visible(by), "amount", "share"].concat(baseTimeline ? ["baseline share", "change"] : [])) head.append(make("th", { class: h === "" || h === visible(by) ? "" : "num" }, h));
    const thead = make("thead"); thead.append(head);
    const body = make("tbody");
    tl.series.forEach((s, i) => {
      const tr = make("tr", { "data-value": s.value, "data-total": String(s.total) });
      // The chart's colour of this value (the chart orders values over the whole run).
      const ci = timeline ? timeline.series.findIndex((x) => x.value === s.value) : i;
      const sw = make("td"); sw.append(make("span", { class: "swatch c" + (ci < 0 ? 8 : Math.min(ci, 8)) }));
      tr.append(sw, make("td", {}, s.value === "" ? "(none)" : visible(s.value)), make("td", { class: "num" }, human(s.total, unit)),
        make("td", { class: "num share", "data-share": String(s.total / Math.max(tl.total, 1)) }, pct(s.total, tl.total)));
      if (baseTimeline) {
        const b = base.get(s.value) || 0;
        tr.append(make("td", { class: "num" }, pct(b, baseTotal)), make("td", { class: "num" }, pp(100 * (s.total / Math.max(tl.total, 1) - b / Math.max(baseTotal, 1)))));
      }
      body.append(tr);
    });
    table.append(thead, body);
  }

  // ---- the tree -----------------------------------------------------------------------------

  // FNV-1a of a string, for paths in the URL.
  function fnv(s, h) {
    h = h === undefined ? 0x811c9dc5 : h;
    for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 16777619) >>> 0; }
    return h >>> 0;
  }

  // Per level: typed arrays of start, total, self, name, parent (and the baseline's total and
  // self), and each node's path hash (its names from the root, for `zoom=` in the URL).
  function prepare(tree, names, diff) {
    const width = diff ? 7 : 5;
    const levels = [];
    let prev = null;
    for (const flat of tree.levels) {
      const n = flat.length / width;
      const L = { n: n, start: new Float64Array(n), total: new Float64Array(n), self: new Float64Array(n), name: new Uint32Array(n),
        btotal: diff ? new Float64Array(n) : null, bself: diff ? new Float64Array(n) : null, parent: new Int32Array(n), hash: new Uint32Array(n) };
      for (let i = 0; i < n; i++) {
        const o = i * width;
        L.start[i] = flat[o]; L.total[i] = flat[o + 1]; L.self[i] = flat[o + 2]; L.name[i] = flat[o + 3];
        if (diff) { L.btotal[i] = flat[o + 5]; L.bself[i] = flat[o + 6]; }
        L.parent[i] = prev ? flat[o + 4] : -1;
        L.hash[i] = fnv("\u0001" + names[L.name[i]], prev ? prev.hash[L.parent[i]] : undefined);
      }
      levels.push(L);
      prev = L;
    }
    return levels;
  }

  function findZoom(levels, z) {
    const m = /^(\d+)-([0-9a-f]+)$/.exec(z || "");
    if (!m) return null;
    const l = Number(m[1]), h = parseInt(m[2], 16) >>> 0;
    if (l >= levels.length) return null;
    for (let i = 0; i < levels[l].n; i++) if (levels[l].hash[i] === h) return { l: l, i: i };
    return null;
  }

  // ---- drawing ------------------------------------------------------------------------------

  function hue(name) {
    const h = fnv(name);
    if (/^(java|javax|jdk|sun|scala)[./]/.test(name)) return "hsl(" + (90 + (h % 50)) + ",55%," + (55 + (h >> 8) % 15) + "%)";
    if (/\[k\]$|_\[k\]$/.test(name)) return "hsl(" + (25 + (h % 15)) + ",80%," + (60 + (h >> 8) % 12) + "%)";
    if (/^[a-z_][a-z0-9_]*(::|\(|$)/.test(name) && !name.includes(".")) return "hsl(" + (45 + (h % 15)) + ",75%," + (55 + (h >> 8) % 12) + "%)";
    return "hsl(" + (0 + (h % 40)) + ",70%," + (60 + (h >> 8) % 14) + "%)";
  }
  // Red for a frame whose share of the whole grew, blue for one that shrank, the deeper the more
  // (full at 20 percentage points); changes under 0.05 pp are left pale.
  function diffColor(now, nowTotal, base, baseTotal) {
    const a = nowTotal > 0 ? now / nowTotal : 0, b = baseTotal > 0 ? base / baseTotal : 0;
    const d = a - b;
    if (Math.abs(d) < 0.0005) return "rgb(238,238,238)";
    const k = Math.min(1, Math.sqrt(Math.abs(d) / 0.2)) * 0.8 + 0.1;
    const c = Math.round(255 - 175 * k);
    return d > 0 ? "rgb(255," + c + "," + c + ")" : "rgb(" + c + "," + c + ",255)";
  }

  // Draw one tree into `box`. opts: {levels, names, total, baseTotal, diff, down (roots on top),
  // zoom {l,i} or null, match (Set of "l:i" to mark), id (for events)}.
  function draw(box, opts) {
    const W = Math.max(box.clientWidth, 300);
    const levels = opts.levels;
    let zl = 0, zx = 0, zw = levels.length ? levels[0].total[0] : 0;
    if (opts.zoom) { zl = opts.zoom.l; zx = levels[zl].start[opts.zoom.i]; zw = levels[zl].total[opts.zoom.i]; }
    const scale = zw > 0 ? W / zw : 0;
    const frames = [];
    let depth = 0;
    for (let l = 0; l < levels.length; l++) {
      const L = levels[l];
      let any = false;
      for (let i = 0; i < L.n; i++) {
        const s = L.start[i], t = L.total[i];
        if (t <= 0) continue;
        let x, w;
        if (l < zl) {
          if (!(s <= zx && s + t >= zx + zw)) continue;
          x = 0; w = W;
        } else {
          if (s + t <= zx || s >= zx + zw) continue;
          x = (s - zx) * scale; w = t * scale;
          if (w < 0.5) continue;
        }
        frames.push([l, i, x, w]);
        any = true;
      }
      if (any) depth = l + 1;
    }
    const H = depth * ROW;
    box.style.height = H + "px";
    const frag = document.createDocumentFragment();
    for (const [l, i, x, w] of frames) {
      const L = levels[l];
      const name = opts.names[L.name[i]];
      const el = document.createElement("div");
      el.className = "f" + (l < zl ? " above" : "") + (opts.match && opts.match.has(l * 1048576 + i) ? " match" : "");
      const y = opts.down ? l * ROW : H - (l + 1) * ROW;
      el.style.cssText = "left:" + x.toFixed(1) + "px;top:" + y + "px;width:" + Math.max(w - 0.5, 0.5).toFixed(1) + "px;background:" +
        (opts.diff ? diffColor(L.total[i], opts.total, L.btotal[i], opts.baseTotal) : hue(name));
      el.dataset.l = l; el.dataset.i = i; el.dataset.total = L.total[i];
      el.title = visible(name);
      if (w >= 22) el.textContent = el.title;
      frag.append(el);
    }
    box.replaceChildren(frag);
    box.dataset.depth = String(depth);
    box.dataset.frames = String(frames.length);
  }

  // The frame element under an event, as [level, index].
  function frameOf(e) {
    const el = e.target.closest ? e.target.closest(".f") : null;
    return el ? [Number(el.dataset.l), Number(el.dataset.i)] : null;
  }

  function describe(d, l, i, where) {
    const L = d.levels[l];
    const name = d.names[L.name[i]];
    const row = $("details");
    row.replaceChildren();
    row.append(make("strong", { class: "name" }, visible(name)));
    const fig = (label, v, cls) => { const s = make("span", { class: cls || "" }); s.append(make("span", { class: "hint" }, label + " "), document.createTextNode(v)); return s; };
    row.append(fig("total", amount(L.total[i]) + " · " + pct(L.total[i], d.total) + " of all", "total"), fig("self", amount(L.self[i]) + " · " + pct(L.self[i], d.total), "self"));
    if (d.diff) {
      const scaleB = d.baseTotal > 0 ? d.total / d.baseTotal : 0;
      row.append(fig("baseline", amount(L.btotal[i] * scaleB) + " scaled · " + pct(L.btotal[i], d.baseTotal)),
        fig("change", pp(100 * (L.total[i] / Math.max(d.total, 1) - L.btotal[i] / Math.max(d.baseTotal, 1)))));
    }
    if (where === "graph" && l > 0) {
      const b = make("button", { type: "button", id: "to-sandwich" }, "sandwich view");
      b.addEventListener("click", () => openSandwich(name));
      row.append(b);
    }
  }

  function wireGraph(box, getData, where) {
    box.addEventListener("mouseover", (e) => {
      const f = frameOf(e); const d = getData();
      if (!f || !d) return;
      describe(d, f[0], f[1], where);
    });
    box.addEventListener("click", (e) => {
      const f = frameOf(e); const d = getData();
      if (!f || !d || where !== "graph") return;
      const [l, i] = f;
      update((p) => {
        p.delete("zoom");
        if (l > 0) p.set("zoom", l + "-" + d.levels[l].hash[i].toString(16));
      }, "view");
    });
  }

  // Matches of the search term: the set of nodes, and the share of all they cover (a node under
  // a matching node is not counted twice).
  function searchMatches(d) {
    const term = (params.get("search") || "").trim();
    if (!term || !d) return null;
    const pattern = stackdPattern(term);
    const matchName = new Uint8Array(d.names.length);
    for (let n = 0; n < d.names.length; n++) matchName[n] = pattern.re.test(d.names[n]) ? 1 : 2;
    const set = new Set();
    let covered = 0;
    let prevCovered = null;
    for (let l = 0; l < d.levels.length; l++) {
      const L = d.levels[l];
      const cov = new Uint8Array(L.n);
      for (let i = 0; i < L.n; i++) {
        const hit = matchName[L.name[i]] === 1 && l > 0;
        const under = prevCovered && L.parent[i] >= 0 ? prevCovered[L.parent[i]] : 0;
        if (hit) set.add(l * 1048576 + i);
        if (hit && !under) covered += L.total[i];
        cov[i] = hit || under ? 1 : 0;
      }
      prevCovered = cov;
    }
    return { set: set, covered: covered, literal: pattern.literal, count: set.size };
  }

  function highlight() {
    if (!data) return;
    const m = searchMatches(data);
    drawGraph(m);
    if (!m) return text($("matched"), "");
    text($("matched"), m.count ? "matched " + pct(m.covered, data.total) + " (" + amount(m.covered) + ")" + (m.literal ? " (as plain text)" : "") : "no frame matches" + (m.literal ? " (as plain text)" : ""));
    $("matched").dataset.covered = String(m.covered);
  }

  function drawGraph(m) {
    if (!data) return;
    if (m === undefined) m = searchMatches(data);
    const zoom = findZoom(data.levels, params.get("zoom"));
    draw($("flame"), { levels: data.levels, names: data.names, total: data.total, baseTotal: data.baseTotal, diff: data.diff,
      down: params.get("orient") !== "flame", zoom: zoom, match: m ? m.set : null });
    if (zoom) describe(data, zoom.l, zoom.i, "graph");
  }

  function drawAll() {
    drawGraph();
    if (sandwichData) drawSandwich();
  }

  // ---- the functions table ----------------------------------------------------------------

  const COLUMNS = [
    { key: "name", title: "Function" },
    { key: "self", title: "Self", num: true },
    { key: "selfp", title: "Self %", num: true },
    { key: "total", title: "Total", num: true },
    { key: "totalp", title: "Total %", num: true },
  ];
  const DIFF_COLUMNS = [
    { key: "dself", title: "Self change", num: true },
    { key: "dselfpp", title: "Self Δ pp", num: true },
    { key: "dtotal", title: "Total change", num: true },
    { key: "dtotalpp", title: "Total Δ pp", num: true },
  ];

  function rowValues(d, r) {
    const v = { id: r[0], name: d.names[r[0]], self: r[1], total: r[2], selfp: r[1] / Math.max(d.total, 1), totalp: r[2] / Math.max(d.total, 1) };
    if (d.diff) {
      const sb = d.baseTotal > 0 ? d.total / d.baseTotal : 0;
      v.bself = r[3]; v.btotal = r[4];
      v.dself = r[1] - r[3] * sb; v.dtotal = r[2] - r[4] * sb;
      v.dselfpp = 100 * (r[1] / Math.max(d.total, 1) - r[3] / Math.max(d.baseTotal, 1));
      v.dtotalpp = 100 * (r[2] / Math.max(d.total, 1) - r[4] / Math.max(d.baseTotal, 1));
    }
    return v;
  }

  function fillTable() {
    const table = $("functions");
    const head = table.querySelector("thead tr"), body = table.querySelector("tbody");
    head.replaceChildren(); body.replaceChildren();
    if (!data) return;
    const cols = data.diff ? COLUMNS.concat(DIFF_COLUMNS) : COLUMNS;
    const sortParam = params.get("sort") || (data.diff ? "-dselfpp" : "-self");
    const desc = sortParam.startsWith("-"), key = sortParam.replace(/^-/, "");
    for (const c of cols) {
      const th = make("th", { class: (c.num ? "num " : "") + "sortable" + (c.key === key ? " sorted" : ""), "data-key": c.key }, c.title + (c.key === key ? (desc ? " ▼" : " ▲") : ""));
      th.addEventListener("click", () => update((p) => {
        const next = c.key === key ? (desc ? c.key : "-" + c.key) : (c.num ? "-" : "") + c.key;
        p.set("sort", next);
      }, "table"));
      head.append(th);
    }
    head.append(make("th", {}, ""));
    const term = (params.get("search") || "").trim();
    const re = term ? stackdPattern(term).re : null;
    let rows = data.functions.map((r) => rowValues(data, r));
    if (re) rows = rows.filter((r) => re.test(r.name));
    rows.sort((a, b) => {
      const x = a[key], y = b[key];
      const c = typeof x === "string" ? (x < y ? -1 : x > y ? 1 : 0) : x - y;
      return (desc ? -c : c) || (a.name < b.name ? -1 : 1);
    });
    const frag = document.createDocumentFragment();
    for (const r of rows.slice(0, TABLE_ROWS)) {
      const tr = make("tr", { "data-name": r.name });
      tr.append(make("td", { class: "fn" }, visible(r.name)),
        make("td", { class: "num", "data-value": String(r.self) }, amount(r.self)), make("td", { class: "num" }, pct(r.self, data.total)),
        make("td", { class: "num", "data-value": String(r.total) }, amount(r.total)), make("td", { class: "num" }, pct(r.total, data.total)));
      if (data.diff) {
        const signed = (v) => (v >= 0 ? "+" : "−") + amount(Math.abs(v));
        tr.append(make("td", { class: "num" + (r.dself > 0 ? " grew" : r.dself < 0 ? " shrank" : "") }, signed(r.dself)), make("td", { class: "num" }, pp(r.dselfpp)),
          make("td", { class: "num" + (r.dtotal > 0 ? " grew" : r.dtotal < 0 ? " shrank" : "") }, signed(r.dtotal)), make("td", { class: "num" }, pp(r.dtotalpp)));
      }
      const act = make("td");
      const sw = make("button", { type: "button", class: "link" }, "sandwich");
      sw.addEventListener("click", (e) => { e.stopPropagation(); openSandwich(r.name); });
      act.append(sw);
      tr.append(act);
      tr.addEventListener("click", () => focusFunction(r.name));
      frag.append(tr);
    }
    body.append(frag);
    text($("functions-info"), data.functionsCount.toLocaleString("en") + " functions" + (data.functions.length < data.functionsCount ? " (the " + data.functions.length.toLocaleString("en") + " heaviest by self listed)" : "") +
      " · self: where the samples were taken; total: with what it called · click a row to mark it in the graph");
    text($("functions-more"), rows.length > TABLE_ROWS ? (rows.length - TABLE_ROWS).toLocaleString("en") + " more rows: narrow them with the search box" : (re && !rows.length ? "no function matches the search" : ""));
  }

  // Mark a function in the graph (the search box takes its exact name) and bring it into view.
  function focusFunction(name) {
    const exact = "^" + name.replace(/[.*+?^${}()|[\]\\\/]/g, "\\$&") + "$";
    update((p) => { p.set("search", exact); p.delete("zoom"); }, "view");
    const first = $("flame").querySelector(".f.match");
    if (first) first.scrollIntoView({ block: "nearest" });
  }

  // ---- the sandwich ---------------------------------------------------------------------------

  let sandwichOpened = false;
  function openSandwich(name) { update((p) => p.set("sandwich", name), "view"); }

  async function loadSandwich() {
    const name = params.get("sandwich");
    $("sandwich").classList.toggle("hidden", !name);
    $("sandwich-close").classList.toggle("hidden", !name);
    $("flame").classList.toggle("hidden", !!name);
    if (!name) { sandwichData = null; return; }
    const token = ++sandwichToken;
    // A sandwich newly shown is scrolled to where its two graphs meet.
    sandwichOpened = !sandwichData || sandwichData.name !== name;
    const p = graphParams();
    p.set("focus", name);
    loading(1);
    try {
      const r = await fetch("/flamegraph/" + encodeURIComponent(APP) + ".tree?" + query(p));
      if (token !== sandwichToken) return;
      if (!r.ok) { showError(await r.text()); return; }
      const a = await r.json();
      const diff = a.base_total !== undefined;
      sandwichData = {
        name: name, names: a.names, total: a.total, baseTotal: a.base_total || 0, diff: diff,
        callers: prepare(a.focus.callers, a.names, diff), callees: prepare(a.focus.callees, a.names, diff),
      };
      drawSandwich();
    } finally { loading(-1); }
  }

  function drawSandwich() {
    const s = sandwichData;
    const root = s.callees.length ? s.callees[0].total[0] : 0;
    text($("sandwich-title"), "Sandwich of " + visible(s.name) + ": " + amount(root) + " total (" + pct(root, s.total) + ")");
    $("sandwich-title").dataset.total = String(root);
    for (const [id, levels, down] of [["callers", s.callers, false], ["callees", s.callees, true]]) {
      draw($(id), { levels: levels, names: s.names, total: s.total, baseTotal: s.baseTotal, diff: s.diff, down: down, zoom: null, match: null });
    }
    if (sandwichOpened) {
      // Where the two meet (the function itself) in the middle of the window.
      sandwichOpened = false;
      const meet = $("callers").getBoundingClientRect().bottom + window.scrollY;
      window.scrollTo(0, Math.max(0, meet - window.innerHeight / 2));
    }
  }

  // ---- loading the graph --------------------------------------------------------------------

  function graphParams() {
    const p = new URLSearchParams();
    for (const [k, v] of params) if (!PAGE_ONLY.includes(k)) p.append(k, v);
    return p;
  }

  async function loadGraph() {
    const token = ++graphToken;
    const p = graphParams();
    const q = query(p);
    const svg = new URLSearchParams(p);
    if (params.get("orient") !== "flame") svg.set("inverted", "true");
    $("dl-svg").href = "/flamegraph/" + encodeURIComponent(APP) + ".svg?" + query(svg);
    for (const ext of ["folded", "json"]) $("dl-" + ext).href = "/flamegraph/" + encodeURIComponent(APP) + "." + ext + (q ? "?" + q : "");
    $("dl-json").classList.toggle("hidden", isDiff());
    $("legend").classList.toggle("hidden", !isDiff());
    loading(1);
    $("flame").classList.add("stale");
    try {
      const r = await fetch("/flamegraph/" + encodeURIComponent(APP) + ".tree" + (q ? "?" + q : ""));
      if (token !== graphToken) return;
      if (!r.ok) {
        showError(await r.text());
        data = null;
        $("flame").replaceChildren();
        $("flame").style.height = "0";
        text($("total"), ""); delete $("total").dataset.samples;
        fillTable();
        return;
      }
      const a = await r.json();
      if (token !== graphToken) return;
      hideError();
      const diff = a.base_total !== undefined;
      data = {
        names: a.names, total: a.total, baseTotal: a.base_total || 0, diff: diff, levels: prepare(a.tree, a.names, diff),
        functions: a.functions, functionsCount: a.functions_count, nodes: a.tree.nodes, shown: a.tree.shown,
      };
      const total = $("total");
      text(total, amount(a.total) + (diff ? " (current selection; baseline " + amount(a.base_total) + ")" : "") + " in view");
      total.dataset.samples = String(a.total);
      const cut = $("cut-note");
      cut.classList.toggle("hidden", a.tree.shown >= a.tree.nodes);
      text(cut, "The " + a.tree.shown.toLocaleString("en") + " widest of " + a.tree.nodes.toLocaleString("en") + " frames are drawn; the table below counts all of them.");
      drawView();
      // When the page first showed a graph (ms since navigation), for tests and the curious.
      if (!document.body.dataset.ready) document.body.dataset.ready = String(Math.round(performance.now()));
    } finally {
      if (token === graphToken) $("flame").classList.remove("stale");
      loading(-1);
    }
  }

  // Redraw what depends only on page state (zoom, search, orientation, sort, sandwich).
  function drawView() {
    highlight();
    fillTable();
    if (params.get("orient") === "flame" && !params.get("sandwich") && $("flame").dataset.depth) {
      // Roots at the bottom: bring them into view.
      const box = $("flame");
      const bottom = box.getBoundingClientRect().bottom + window.scrollY;
      if (bottom > window.scrollY + window.innerHeight) window.scrollTo(0, bottom - window.innerHeight + 8);
    }
  }

  // ---- metrics-only apps ----------------------------------------------------------------------

  async function showMetricsOnly() {
    for (const id of ["controls", "timeline-box", "compare-box", "options-box", "graph-bar", "flame", "functions-box"]) $(id).classList.add("hidden");
    $("metrics-only").classList.remove("hidden");
    const link = "/metrics?app=" + encodeURIComponent(APP);
    $("metrics-link").href = link;
    text($("summary"), "metrics only" + (info.last_seen_ms > 0 ? " · last seen " + showTime(info.last_seen_ms) + " " + zoneName() : ""));
    const r = await fetch(link);
    const body = r.ok ? await r.text() : "";
    const families = [];
    for (const line of body.split("\n")) {
      const m = /^# HELP (\S+) (.*)$/.exec(line);
      if (m) families.push([m[1], m[2]]);
    }
    const series = body.split("\n").filter((l) => l && !l.startsWith("#")).length;
    text($("metrics-summary"), families.length + " metric families, " + series + " series, scraped by Prometheus from /metrics:");
    for (const [name, help] of families) {
      const li = make("li");
      li.append(make("code", {}, name), document.createTextNode(" " + help));
      $("families").append(li);
    }
  }

  // ---- start --------------------------------------------------------------------------------

  function refresh(what) {
    fillControls();
    $("permalink").href = location.href;
    setLive(params.get("live") === "1");
    if (what === "table") return fillTable();
    if (what === "view") { drawView(); loadSandwich(); return; }
    if (what === "all" || what === "timeline" || what === "live") loadTimeline();
    if (what === "all" || what === "graph" || what === "live") { loadGraph(); loadSandwich(); }
  }

  async function start() {
    loading(1);
    try {
      const r = await fetch("/apps/" + encodeURIComponent(APP));
      if (!r.ok) return showError(await r.text());
      info = await r.json();
    } finally { loading(-1); }
    buildControls();
    if (!info.types.length) return showMetricsOnly();
    wire();
    wireGraph($("flame"), () => data, "graph");
    wireGraph($("callers"), () => sandwichData && { ...sandwichData, levels: sandwichData.callers }, "sandwich");
    wireGraph($("callees"), () => sandwichData && { ...sandwichData, levels: sandwichData.callees }, "sandwich");
    refresh("all");
  }
  start();
})();
