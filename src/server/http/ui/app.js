// The app page: every state of the view lives in the page's query string (the same parameters
// as /flamegraph/<app>.svg, plus `by` for the timeline and `search`), so a view can be pasted
// into a ticket. Names from the store are written with textContent only, never as markup.
"use strict";
(function () {
  const APP = decodeURIComponent(location.pathname.replace(/^\/app\//, ""));
  const enc = encodeURIComponent;
  const OPTIONS = ["title", "width", "minwidth", "inverted", "reverse", "colors", "hash", "include", "exclude", "lines", "max_depth"];
  const PAGE_ONLY = ["by", "search"];
  const RESERVED = new Set(["from", "to", "step", "normalize", "s", "x", "y", "type", ...PAGE_ONLY, ...OPTIONS]);
  const PALETTES = ["java", "hot", "mem", "io", "wakeup", "js", "perl", "python", "rust", "red", "green", "blue", "aqua", "yellow", "purple", "orange"];
  const UNITS = { ms: 1, s: 1e3, sec: 1e3, m: 6e4, min: 6e4, h: 36e5, d: 864e5, w: 6048e5 };
  const MAX_SERIES = 8;
  const $ = (id) => document.getElementById(id);

  let params = new URLSearchParams(location.search);
  let info = null;
  let timeline = null;
  let graphToken = 0;
  let timelineToken = 0;

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

  // A label's parameter name: `label.` in front when the name is also a parameter.
  function labelParam(k) { return RESERVED.has(k) || k.startsWith("base.") || k.startsWith("label.") ? "label." + k : k; }
  function isLabelParam(k) { return !RESERVED.has(k) && !k.startsWith("base."); }
  function labelName(p) { return p.startsWith("label.") ? p.slice(6) : p; }
  function selectionLabels() {
    const out = [];
    for (const [k, v] of params) if (isLabelParam(k)) out.push([labelName(k), v]);
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
  function iso(ms) { return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z"); }
  function shortTime(ms) { return new Date(ms).toISOString().slice(5, 16).replace("T", " "); }

  function showError(message) { text($("error"), message); $("error").classList.remove("hidden"); }
  function hideError() { $("error").classList.add("hidden"); }

  function writeUrl(push) {
    const qs = params.toString();
    history[push ? "pushState" : "replaceState"](null, "", location.pathname + (qs ? "?" + qs : ""));
    $("permalink").href = location.href;
  }
  function update(mutate, what) {
    mutate(params);
    writeUrl(true);
    refresh(what);
  }
  window.addEventListener("popstate", () => { params = new URLSearchParams(location.search); refresh("all"); });

  // ---- controls -------------------------------------------------------------------------

  function labelSelect(key, values, first, id) {
    const sel = make("select", { id: id, "aria-label": key, "data-label": key });
    for (const [value, label] of first) sel.append(make("option", { value: value }, label));
    const sorted = Object.entries(values).sort((a, b) => b[1].samples - a[1].samples || (a[0] < b[0] ? -1 : 1));
    for (const [value, stats] of sorted) sel.append(make("option", { value: value }, visible(value) + " (" + stats.samples + ")"));
    return sel;
  }

  // The profile type shown: the URL's, or the app's default.
  function currentType() {
    const name = params.get("type") || info.default_type;
    return info.types.find((t) => t.type === name) || { type: name, unit: "samples", total: 0 };
  }

  // A value in its unit as a person reads it: 1.23 s, 45.6 MiB, 1,234 samples.
  function human(v, unit) {
    if (unit === "bytes") {
      const steps = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
      let i = 0;
      while (v >= 1024 && i < steps.length - 1) { v /= 1024; i++; }
      return (i ? v.toPrecision(3) : String(v)) + " " + steps[i];
    }
    if (unit === "nanoseconds") {
      if (v >= 1e9) return (v / 1e9).toPrecision(3) + " s";
      if (v >= 1e6) return (v / 1e6).toPrecision(3) + " ms";
      if (v >= 1e3) return (v / 1e3).toPrecision(3) + " µs";
      return v + " ns";
    }
    return v.toLocaleString("en") + (unit === "count" ? "" : " " + unit);
  }

  // A type's total as a person reads it, with the time its samples stand for when known.
  function amount(t) {
    return human(t.total, t.unit) + (t.time_ns ? " (" + human(t.time_ns, "nanoseconds") + ")" : "");
  }

  function buildControls() {
    const type = $("type");
    for (const t of info.types) type.append(make("option", { value: t.type }, t.type + " · " + amount(t)));
    if (info.types.length === 0) type.append(make("option", { value: "cpu" }, "cpu · no samples yet"));
    const keys = Object.keys(info.labels).sort();
    const labels = $("labels"), baseLabels = $("base-labels"), by = $("by");
    for (const key of keys) {
      const wrap = make("label", {}, visible(key) + " ");
      const sel = labelSelect(key, info.labels[key], [["", "any"]], "label-" + key);
      sel.addEventListener("change", () => update((p) => {
        p.delete(labelParam(key));
        if (sel.value !== "") p.set(labelParam(key), sel.value);
      }, "all"));
      wrap.append(sel);
      labels.append(wrap);
      const bwrap = make("label", {}, visible(key) + " ");
      const bsel = labelSelect(key, info.labels[key], [["", "as selected"], ["*", "any"]], "base-label-" + key);
      bsel.addEventListener("change", () => { if ($("compare").checked) applyCompare(); });
      bwrap.append(bsel);
      baseLabels.append(bwrap);
      by.append(make("option", { value: key }, visible(key)));
    }
    if (keys.length === 0) labels.append(make("span", { class: "hint" }, "this app's samples have no labels"));
    const colors = $("opt-colors");
    colors.append(make("option", { value: "" }, "java (default)"));
    for (const p of PALETTES.slice(1)) colors.append(make("option", { value: p }, p));
    text($("app-name"), visible(APP));
    const t = currentType();
    text($("summary"), (t.unit === "samples" && !t.time_ns ? info.total_samples + " samples" : amount(t)) + " · " + info.unique_stacks + " stacks" +
      (info.last_seen_ms > 0 ? " · last sample " + iso(info.last_seen_ms) : ""));
    document.title = visible(APP) + " · stackd";
  }

  function fillControls() {
    $("type").value = currentType().type;
    $("from").value = params.get("from") || "";
    $("to").value = params.get("to") || "";
    for (const sel of $("labels").querySelectorAll("select")) sel.value = params.get(labelParam(sel.dataset.label)) || "";
    $("by").value = params.get("by") || "";
    const diff = isDiff();
    $("compare").checked = diff;
    if (diff) $("compare-box").open = true;
    $("base-from").value = params.get("base.from") || "";
    $("base-to").value = params.get("base.to") || "";
    for (const sel of $("base-labels").querySelectorAll("select")) {
      const key = sel.dataset.label;
      sel.value = params.get("base." + key) ?? params.get("base.label." + key) ?? "";
    }
    $("opt-colors").value = params.get("colors") || "";
    $("opt-hash").value = params.get("hash") || "";
    $("opt-inverted").checked = params.get("inverted") === "true";
    $("opt-reverse").checked = params.get("reverse") === "true";
    $("opt-lines-off").checked = params.get("lines") === "false";
    for (const k of ["include", "exclude", "max_depth", "minwidth"]) $("opt-" + k).value = params.get(k) || "";
    $("search").value = params.get("search") || "";
  }

  function applyRange(from, to) {
    update((p) => {
      p.delete("from"); p.delete("to");
      if (from) p.set("from", from);
      if (to) p.set("to", to);
    }, "all");
  }

  function applyCompare() {
    update((p) => {
      for (const k of Array.from(p.keys())) if (k.startsWith("base.")) p.delete(k);
      if (!$("compare").checked) return;
      if ($("base-from").value.trim()) p.set("base.from", $("base-from").value.trim());
      if ($("base-to").value.trim()) p.set("base.to", $("base-to").value.trim());
      for (const sel of $("base-labels").querySelectorAll("select")) {
        if (sel.value !== "") p.set("base." + labelParam(sel.dataset.label), sel.value);
      }
    }, "graph");
    if ($("compare").checked && !isDiff()) showError("Pick a baseline: a time range (or \"previous period\") or label values to compare with.");
  }

  function applyOptions() {
    update((p) => {
      const set = (k, v) => { p.delete(k); if (v) p.set(k, v); };
      set("colors", $("opt-colors").value);
      set("hash", $("opt-hash").value);
      set("inverted", $("opt-inverted").checked ? "true" : "");
      set("reverse", $("opt-reverse").checked ? "true" : "");
      set("lines", $("opt-lines-off").checked ? "false" : "");
      for (const k of ["include", "exclude", "max_depth", "minwidth"]) set(k, $("opt-" + k).value.trim());
    }, "graph");
  }

  function wire() {
    for (const b of document.querySelectorAll("#presets button")) {
      b.addEventListener("click", () => {
        const d = b.dataset.range;
        if (!d) return applyRange(null, null);
        const now = Date.now();
        applyRange(iso(parseTime("-" + d, now)), iso(now));
      });
    }
    $("apply-range").addEventListener("click", () => applyRange($("from").value.trim(), $("to").value.trim()));
    for (const id of ["from", "to"]) $(id).addEventListener("keydown", (e) => { if (e.key === "Enter") $("apply-range").click(); });
    $("by").addEventListener("change", () => update((p) => { p.delete("by"); if ($("by").value) p.set("by", $("by").value); }, "timeline"));
    $("type").addEventListener("change", () => update((p) => {
      p.delete("type");
      if ($("type").value !== info.default_type) p.set("type", $("type").value);
    }, "all"));
    $("compare").addEventListener("change", applyCompare);
    for (const id of ["base-from", "base-to"]) $(id).addEventListener("change", () => { if ($("compare").checked) applyCompare(); });
    $("previous-period").addEventListener("click", () => {
      const now = Date.now();
      const from = parseTime(params.get("from"), now), to = parseTime(params.get("to"), now) ?? now;
      if (from === null) return showError("Pick a time range first: the previous period is the same length, just before it.");
      $("base-from").value = iso(from - (to - from));
      $("base-to").value = iso(from);
      $("compare").checked = true;
      applyCompare();
    });
    for (const id of ["opt-colors", "opt-hash", "opt-inverted", "opt-reverse", "opt-lines-off"]) $(id).addEventListener("change", applyOptions);
    $("apply-options").addEventListener("click", applyOptions);
    $("search-go").addEventListener("click", () => runSearch($("search").value, true));
    $("search").addEventListener("keydown", (e) => { if (e.key === "Enter") runSearch($("search").value, true); });
    $("search-reset").addEventListener("click", resetGraph);
    window.addEventListener("resize", drawTimeline);
  }

  // ---- timeline -------------------------------------------------------------------------

  async function loadTimeline() {
    const token = ++timelineToken;
    const p = new URLSearchParams();
    for (const [k, v] of selectionLabels()) p.append(labelParam(k), v);
    if (params.get("by")) p.set("by", params.get("by"));
    if (params.get("type")) p.set("type", params.get("type"));
    const r = await fetch("/apps/" + enc(APP) + "/timeline?" + p);
    if (token !== timelineToken) return;
    timeline = r.ok ? await r.json() : null;
    if (!r.ok) showError(await r.text());
    drawTimeline();
  }

  function drawTimeline() {
    const box = $("timeline");
    box.replaceChildren();
    const legend = $("timeline-legend");
    legend.replaceChildren();
    if (!timeline) return;
    const W = Math.max(box.clientWidth, 200), H = Math.max(box.clientHeight, 60), top = 6, bottom = 16;
    const step = timeline.step_ms;
    let t0 = timeline.from_ms, t1 = timeline.to_ms;
    for (const s of timeline.series) for (const [t] of s.points) { t0 = Math.min(t0, t); t1 = Math.max(t1, t + step); }
    t1 = Math.max(t1, t0 + step);
    const n = Math.ceil((t1 - t0) / step);
    // Largest series first (the server's order); the rest as one.
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
    const x = (t) => ((t - t0) / (t1 - t0)) * W;
    const svg = svgEl("svg", { viewBox: "0 0 " + W + " " + H, "data-max": max, "data-steps": n });
    const bw = Math.max(W / n - (W / n > 3 ? 1 : 0), 0.5);
    for (const [i, values] of stacks) {
      let y = H - bottom;
      values.forEach((v, g) => {
        if (!v) return;
        const h = (v / max) * (H - top - bottom);
        y -= h;
        const r = svgEl("rect", { x: x(t0 + i * step), y: y, width: bw, height: h, class: groups[g].cls });
        r.append(text(svgEl("title"), groups[g].name + ": " + v + " samples at " + iso(t0 + i * step)));
        svg.append(r);
      });
    }
    for (const f of [0, 0.5, 1]) {
      const t = t0 + f * (t1 - t0);
      svg.append(text(svgEl("text", { x: f * W, y: H - 3, class: "axis", "text-anchor": f === 0 ? "start" : f === 1 ? "end" : "middle" }), shortTime(t) + (f === 1 ? " UTC" : "")));
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
    // Drag to pick a range, rounded out to whole steps.
    let start = null;
    const px = (e) => Math.min(Math.max(e.clientX - svg.getBoundingClientRect().left, 0), W);
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
      const t = (p) => t0 + (p / W) * (t1 - t0);
      applyRange(iso(Math.floor(t(a) / step) * step), iso(Math.ceil(t(b) / step) * step));
    };
    svg.addEventListener("mouseup", finish);
    svg.addEventListener("mouseleave", (e) => { if (start !== null) finish(e); });
    const unit = timeline.unit || "samples";
    const amount = unit === "samples" ? timeline.total + " samples" : human(timeline.total, unit);
    text($("timeline-info"), amount + " (" + timeline.type + ") in " + n + " steps of " + Math.round(step / 1000) + " s; tallest bar " + (unit === "samples" ? max : human(max, unit)));
    if (params.get("by")) {
      for (const g of groups) {
        const item = make("span");
        item.append(make("span", { class: "swatch " + g.cls }), document.createTextNode(g.name + " (" + g.total + ")"));
        legend.append(item);
      }
    }
  }

  // ---- flame graph ----------------------------------------------------------------------

  function graphQuery() {
    const p = new URLSearchParams();
    for (const [k, v] of params) if (!PAGE_ONLY.includes(k)) p.append(k, v);
    const qs = p.toString();
    return qs ? "?" + qs : "";
  }

  async function loadGraph() {
    const token = ++graphToken;
    const q = graphQuery();
    const url = "/flamegraph/" + enc(APP) + ".svg" + q;
    for (const ext of ["svg", "folded", "json"]) $("dl-" + ext).href = "/flamegraph/" + enc(APP) + "." + ext + q;
    $("dl-json").classList.toggle("hidden", isDiff());
    $("legend").classList.toggle("hidden", !isDiff());
    text($("matched"), "");
    const r = await fetch(url);
    if (token !== graphToken) return;
    if (!r.ok) {
      showError(await r.text());
      $("flame").classList.add("hidden");
      text($("total"), "");
      delete $("total").dataset.samples;
      return;
    }
    hideError();
    const frame = $("flame");
    frame.classList.remove("hidden");
    frame.onload = () => { if (token === graphToken) graphLoaded(); };
    // The same URL again: answered from the render cache.
    frame.src = url;
  }

  function graphLoaded() {
    const doc = $("flame").contentDocument;
    // The root frame's title: "all (1,234 samples, 100%)", the count (in the type's unit) as the
    // selection has it.
    let samples = null;
    for (const t of doc ? doc.querySelectorAll("#frames title") : []) {
      const m = /^all \(([\d,]+) [a-z]+, /.exec(t.textContent);
      if (m) { samples = Number(m[1].replace(/,/g, "")); break; }
    }
    const total = $("total");
    const unit = currentType().unit;
    if (samples === null) { text(total, ""); delete total.dataset.samples; } else {
      text(total, (unit === "samples" ? samples + " samples" : human(samples, unit)) + (isDiff() ? " (current selection)" : "") + " in view");
      total.dataset.samples = String(samples);
    }
    const term = params.get("search");
    // The graph's own script finishes drawing in a timeout of its own.
    if (term) setTimeout(() => runSearch(term, false), 0);
  }

  function flameWindow() {
    const w = $("flame").contentWindow;
    return w && typeof w.search === "function" ? w : null;
  }

  function clearSearch(w) {
    // The graph's script toggles: with a search shown, its prompt function resets it.
    if (w.searching) w.search_prompt();
  }

  function runSearch(term, remember) {
    const w = flameWindow();
    if (!w) return;
    clearSearch(w);
    term = (term || "").trim();
    if (remember) {
      params.delete("search");
      if (term) params.set("search", term);
      writeUrl(false);
    }
    if (!term) return text($("matched"), "");
    // Matched as the graph's own script matches it (search.js): a pattern that could make the
    // browser backtrack without end is taken as plain text, and the page says so.
    const plain = stackdPattern(term).literal ? " (as plain text)" : "";
    w.search(term);
    const m = $("flame").contentDocument.getElementById("matched");
    text($("matched"), (w.searching && m ? m.textContent.trim() : "no frame matches") + plain);
  }

  function resetGraph() {
    const w = flameWindow();
    if (w) { clearSearch(w); w.unzoom(); }
    $("search").value = "";
    text($("matched"), "");
    params.delete("search");
    writeUrl(false);
  }

  // ---- start ----------------------------------------------------------------------------

  function refresh(what) {
    fillControls();
    $("permalink").href = location.href;
    if (what === "all" || what === "timeline") loadTimeline();
    if (what === "all" || what === "graph") loadGraph();
  }

  async function start() {
    const r = await fetch("/apps/" + enc(APP));
    if (!r.ok) return showError(await r.text());
    info = await r.json();
    buildControls();
    wire();
    refresh("all");
  }
  start();
})();
