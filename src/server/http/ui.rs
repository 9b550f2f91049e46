//! The explorer: the index of apps (`/`), one page per app (`/app/<app>`: timeline, time range,
//! label pickers, the flame graph drawn in the page from `/flamegraph/<app>.tree`, the top
//! functions, the sandwich, compare), samples over time as JSON (`/apps/<app>/timeline`), the
//! setup page (`/setup`), pages for what is not found, and the pages' scripts and style
//! (`/ui/…`), all served from the binary. Pages hold no data of their own: the script reads
//! `/apps/<app>`, the timeline and the tree, and writes every name it shows as text, never as
//! markup.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::read::{percent_encode, Selection};
use super::{AppState, HttpError};
use crate::now_ms;
use crate::store::{App, Query as StoreQuery, Timeline};

/// Pages load nothing but what stackd serves, and run no inline script: app, label and frame
/// names are attacker-controlled.
const CSP: &str =
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'";

/// Most points a timeline has when no `step` is asked for.
const TIMELINE_POINTS: i64 = 600;

/// Points of an index sparkline: the app's last hour of activity.
const SPARK_POINTS: i64 = 30;
const SPARK_SPAN_MS: i64 = 3_600_000;

fn page(title: &str, body: String) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width, initial-scale=1\">\
<title>{title}</title><link rel=icon href=\"data:,\"><link rel=stylesheet href=\"/ui/style.css\"></head>\n{body}</html>\n",
        title = html_escape(title)
    );
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP)),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ],
        html,
    )
        .into_response()
}

/// `GET /ui/<file>`: the explorer's script and style, compiled into the binary.
pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "app.js" => (include_str!("ui/app.js"), "text/javascript; charset=utf-8"),
        "search.js" => (crate::render::SEARCH_JS, "text/javascript; charset=utf-8"),
        "index.js" => (include_str!("ui/index.js"), "text/javascript; charset=utf-8"),
        "setup.js" => (include_str!("ui/setup.js"), "text/javascript; charset=utf-8"),
        "style.css" => (include_str!("ui/style.css"), "text/css; charset=utf-8"),
        _ => return HttpError::Plain(StatusCode::NOT_FOUND, format!("no such file {file:?}")).into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: every app with its last activity, samples, stacks and a sparkline of its last hour,
/// most recently active first, with a filter box.
pub async fn index(State(state): State<Arc<AppState>>) -> Response {
    let store = Arc::clone(&state.store);
    let rows = tokio::task::spawn_blocking(move || {
        // An app's last sample, gauge or engine metric (the store keeps it as `last_seen_ms`).
        let mut apps: Vec<(Arc<App>, crate::store::AppInfo)> = store.apps().into_iter().map(|app| (Arc::clone(&app), app.info())).collect();
        apps.sort_by(|a, b| b.1.last_seen_ms.cmp(&a.1.last_seen_ms).then_with(|| a.1.name.cmp(&b.1.name)));
        let mut rows = String::new();
        for (app, info) in apps {
            let last = info.last_seen_ms;
            let link = percent_encode(&info.name);
            let name = html_escape(&info.name);
            // The script rewrites it as "3 min ago"; the exact time stays in its title.
            let seen = if last > 0 {
                let at = crate::rfc3339_ms(last);
                format!("<time datetime=\"{at}\" title=\"{at}\">{at}</time>")
            } else {
                "never".to_string()
            };
            if info.total_samples == 0 {
                rows.push_str(&format!(
                    "<tr data-name=\"{filter}\"><td><a class=app href=\"/app/{link}\">{name}</a> <span class=badge title=\"this app sends metrics but no stack samples\">metrics only</span></td>\
<td>{seen}</td><td class=num>0</td><td class=num>0</td><td></td><td><a href=\"/app/{link}\">its metrics</a></td></tr>\n",
                    filter = html_escape(&info.name.to_lowercase()),
                ));
                continue;
            }
            let spark = sparkline(&store, &app, info.last_seen_ms);
            rows.push_str(&format!(
                "<tr data-name=\"{filter}\"><td><a class=app href=\"/app/{link}\">{name}</a></td><td>{seen}</td>\
<td class=num>{samples}</td><td class=num>{stacks}</td><td>{spark}</td>\
<td><a href=\"/flamegraph/{link}.svg\">svg</a> <a href=\"/flamegraph/{link}.folded\">folded</a> <a href=\"/flamegraph/{link}.json\">json</a></td></tr>\n",
                filter = html_escape(&info.name.to_lowercase()),
                samples = info.total_samples,
                stacks = info.unique_stacks,
            ));
        }
        rows
    })
    .await
    .unwrap_or_default();
    let rows = if rows.is_empty() {
        "<tr class=empty><td colspan=6>No profiles yet. <a href=\"/setup\">Send profiles to stackd</a>: statsd-jvm-profiler agents, \
JFR recordings, Pyroscope clients, Spark's and Flink's own metrics.</td></tr>\n"
            .to_string()
    } else {
        rows
    };
    page(
        "stackd",
        format!(
            "<body class=index><header><h1>stackd</h1><input id=filter type=search placeholder=\"filter apps\" aria-label=\"filter apps\" autofocus></header>\n\
<table id=apps>\n<thead><tr><th>app</th><th>last seen</th><th class=num>samples</th><th class=num>stacks</th><th>last hour</th><th>flame graph</th></tr></thead>\n<tbody>\n{rows}</tbody></table>\n\
<p id=nomatch class=hidden>No app matches the filter.</p>\n\
<footer><a href=\"/setup\">send profiles</a> · <a href=\"/apps\">/apps</a> (JSON) · <a href=\"/flink\">/flink</a> (Flink pollers) · <a href=\"/metrics\">/metrics</a></footer>\n\
<script src=\"/ui/index.js\"></script></body>\n"
        ),
    )
}

/// A small SVG line of the app's samples over its last hour of activity.
fn sparkline(store: &crate::store::Store, app: &App, last_ms: i64) -> String {
    let from = last_ms - SPARK_SPAN_MS;
    let step = (SPARK_SPAN_MS / SPARK_POINTS).max(store.bucket_ms());
    let query = StoreQuery { from_ms: Some(from), to_ms: Some(last_ms.saturating_add(1)), labels: Vec::new(), profile: app.default_type() };
    let Ok(Some(timeline)) = store.timeline(app, &query, None, step) else { return String::new() };
    let step = timeline.step_ms;
    let first = from.div_euclid(step) * step;
    let n = ((last_ms.div_euclid(step) * step - first) / step + 1).clamp(1, 10 * SPARK_POINTS) as usize;
    let mut values = vec![0u64; n];
    for s in &timeline.series {
        for (at, c) in &s.points {
            if let Some(v) = usize::try_from((at - first) / step).ok().and_then(|i| values.get_mut(i)) {
                *v = v.saturating_add(*c);
            }
        }
    }
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let (w, h) = (120.0, 24.0);
    let dx = if n > 1 { w / (n - 1) as f64 } else { w };
    let points: Vec<String> =
        values.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", i as f64 * dx, h - 1.0 - (*v as f64 / max) * (h - 2.0))).collect();
    format!(
        "<svg class=spark width=120 height=24 viewBox=\"0 0 120 24\" role=img aria-label=\"samples over the last hour of activity\"><polyline fill=none stroke=\"#c0392b\" stroke-width=1.5 points=\"{}\"/></svg>",
        points.join(" ")
    )
}

/// `GET /app/<app>`: the explorer page of one app (the script fills it).
pub async fn app_page(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Response {
    let Some(app) = state.store.app(&name) else {
        return not_found_page(&state, &format!("No app named \u{201c}{}\u{201d}", name), Some(&name));
    };
    // The script takes the app's name from the page's path, exactly.
    page(
        &format!("{} · stackd", app.name),
        format!(
            "<body class=app>\n{}<script src=\"/ui/search.js\"></script><script src=\"/ui/app.js\"></script></body>\n",
            include_str!("ui/app.html")
        ),
    )
}

/// A 404 page for a person: what was not found, the closest app names, and the way home.
pub fn not_found_page(state: &AppState, heading: &str, near: Option<&str>) -> Response {
    let mut body = format!(
        "<body class=notfound><header><a href=\"/\" class=home>stackd</a></header>\n<main class=message><h1>{}</h1>\n",
        html_escape(heading)
    );
    if let Some(name) = near {
        let names: Vec<String> = state.store.apps().iter().map(|a| a.name.to_string()).collect();
        let close = closest(name, &names, 5);
        if close.is_empty() {
            body.push_str("<p>No app has a name close to it.</p>\n");
        } else {
            body.push_str("<p>Apps with a close name:</p>\n<ul class=suggestions>\n");
            for c in close {
                body.push_str(&format!("<li><a href=\"/app/{}\">{}</a></li>\n", percent_encode(c), html_escape(c)));
            }
            body.push_str("</ul>\n");
        }
    }
    body.push_str("<p><a href=\"/\">All apps</a> · <a href=\"/setup\">How to send profiles to stackd</a></p></main></body>\n");
    let mut r = page("Not found · stackd", body);
    *r.status_mut() = StatusCode::NOT_FOUND;
    r
}

/// Up to `n` of `names` closest to `name`: those containing it (or contained in it) first,
/// then by edit distance (case ignored), only those within half the name's length.
fn closest<'a>(name: &str, names: &'a [String], n: usize) -> Vec<&'a str> {
    let lower = name.to_lowercase();
    let want: Vec<char> = lower.chars().collect();
    let mut scored: Vec<(usize, &str)> = names
        .iter()
        .filter_map(|candidate| {
            let other = candidate.to_lowercase();
            let contains = !want.is_empty() && (other.contains(&lower) || lower.contains(&other));
            let d = if contains { 0 } else { edit_distance(&want, &other.chars().collect::<Vec<_>>()) };
            (d <= want.len().max(4) / 2).then_some((d, candidate.as_str()))
        })
        .collect();
    scored.sort();
    scored.into_iter().take(n).map(|(_, c)| c).collect()
}

/// Levenshtein distance, in one row.
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// `GET /setup`: how to send each kind of profile to this stackd (the page fills in its own
/// address).
pub async fn setup() -> Response {
    page(
        "Send profiles to stackd",
        format!("<body class=setup>\n{}<script src=\"/ui/setup.js\"></script></body>\n", include_str!("ui/setup.html")),
    )
}

/// `GET /apps/<app>/timeline?from=…&to=…&<label>=<value>…&by=<label>&step=<duration>`: samples
/// per step (by default at most 600 steps over the range, whole buckets), in total or per value
/// of the label `by`.
pub async fn timeline(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Json<serde_json::Value>, HttpError> {
    let app =
        state.store.app(&name).ok_or_else(|| HttpError::Plain(StatusCode::NOT_FOUND, format!("no data for app {name:?}; see /apps")))?;
    let bad = |m: String| HttpError::Plain(StatusCode::BAD_REQUEST, m);
    let now = now_ms();
    let mut selection = Selection::default();
    let (mut by, mut step) = (None, None);
    for (k, v) in params {
        match k.as_str() {
            "by" => by = Some(v).filter(|v| !v.is_empty()),
            "step" => {
                let d = humantime::parse_duration(&v).map_err(|e| bad(format!("invalid step={v:?}: {e}; a duration like 1m or 1h")))?;
                step = Some(i64::try_from(d.as_millis()).unwrap_or(i64::MAX).max(1));
            }
            k => selection.take(k, v, now).map_err(bad)?,
        }
    }
    selection.check("").map_err(bad)?;
    let query = selection.query(app.default_type());
    let bucket = state.store.bucket_ms();
    // The span the steps cover: the range asked for, or the app's samples.
    let info = app.info();
    let first_seen = info.labels.values().flat_map(|v| v.values()).filter(|s| s.samples > 0).map(|s| s.first_seen_ms).min();
    let span_from = query.from_ms.or(first_seen).unwrap_or(now);
    let span_to = query.to_ms.unwrap_or_else(|| now.max(info.last_seen_ms));
    let step = match step {
        Some(s) if s < bucket => {
            return Err(bad(format!("invalid step: at least the bucket width, {} ms (--bucket)", bucket)));
        }
        Some(s) => s,
        None => {
            let per = ((span_to - span_from).max(1) + TIMELINE_POINTS - 1) / TIMELINE_POINTS;
            ((per + bucket - 1) / bucket).max(1) * bucket
        }
    };
    let store = Arc::clone(&state.store);
    let q = query.clone();
    let by_label = by.clone();
    let result: Result<Option<Timeline>, crate::store::StoreError> =
        tokio::task::spawn_blocking(move || store.timeline(&app, &q, by_label.as_deref(), step))
            .await
            .map_err(|e| HttpError::Plain(StatusCode::INTERNAL_SERVER_ERROR, format!("timeline task failed: {e}")))?;
    let timeline = result
        .map_err(|e| HttpError::Plain(StatusCode::SERVICE_UNAVAILABLE, format!("the stored samples cannot be read ({e})")))?
        .ok_or_else(|| {
            let labels = selection.describe_labels();
            HttpError::Plain(
                StatusCode::NOT_FOUND,
                format!("no data for app {name:?} with {labels}; see /apps/<app> for the labels it has"),
            )
        })?;
    let total = timeline.series.iter().fold(0u64, |t, s| t.saturating_add(s.total));
    Ok(Json(serde_json::json!({
        "app": name,
        "from_ms": span_from.div_euclid(timeline.step_ms) * timeline.step_ms,
        "to_ms": span_to,
        "bucket_ms": timeline.bucket_ms,
        "step_ms": timeline.step_ms,
        "by": by,
        "type": query.profile,
        "unit": query.profile.unit(),
        "total": total,
        "series": timeline.series,
    })))
}

/// Text for HTML: markup escaped, and characters that would change how the page reads (bidi
/// overrides and isolates, controls, non-characters) shown as `<U+202E>` instead of acting.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{fffe}' | '\u{ffff}' => {
                out.push_str(&format!("&lt;U+{:04X}&gt;", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("&lt;U+{:04X}&gt;", c as u32)),
            c => out.push(c),
        }
    }
    out
}
