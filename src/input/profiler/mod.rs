//! statsd-jvm-profiler (Etsy's agent, as Spark and Flink users run it): the same metric names
//! over statsd ([`statsd`]) and over InfluxDB line protocol ([`influx`]), decoded by [`names`].
//! Both reporters name their origin with the agent's `prefix`, which `--prefix-labels` may
//! split into an app and labels ([`Prefixes`]).

pub mod influx;
pub mod names;
pub mod statsd;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::config::PrefixTemplate;
use crate::ingest::{truncated, REJECT_LOG_INTERVAL};
use crate::store::SourceSpec;

pub use names::encode_stack;

/// The `--prefix-labels` template, and the rate limit of its mismatch warning.
#[derive(Debug)]
pub struct Prefixes {
    template: Option<PrefixTemplate>,
    /// When a prefix mismatch was last logged, and how many were not logged since.
    warned: Mutex<Option<std::time::Instant>>,
    unlogged: AtomicU64,
}

impl Prefixes {
    pub fn new(template: Option<PrefixTemplate>) -> Self {
        Prefixes { template, warned: Mutex::new(None), unlogged: AtomicU64::new(0) }
    }

    /// App and labels from an agent prefix: the template's `app` names the app (the whole
    /// prefix does without a template, or when the prefix does not fit it).
    pub fn split(&self, prefix: &str) -> SourceSpec {
        let mut spec = SourceSpec::new(prefix.to_string(), Vec::new());
        let Some(template) = &self.template else {
            return spec;
        };
        match template.apply(prefix) {
            Some(pairs) => {
                for (name, value) in pairs {
                    if name == "app" {
                        spec.app = value.to_string();
                    } else {
                        spec.labels.push((name.to_string(), value.to_string()));
                    }
                }
            }
            None => self.mismatch(prefix),
        }
        spec
    }

    /// A prefix that does not fit the template: logged at most once a minute, with how many
    /// were not logged (each origin is resolved once, but there may be many origins).
    fn mismatch(&self, prefix: &str) {
        let mut last = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        let unlogged = self.unlogged.fetch_add(1, Ordering::Relaxed);
        if last.is_some_and(|t| t.elapsed() < REJECT_LOG_INTERVAL) {
            return;
        }
        *last = Some(std::time::Instant::now());
        self.unlogged.store(0, Ordering::Relaxed);
        tracing::warn!(prefix = %truncated(prefix, 200), not_logged_before = unlogged, "prefix does not fit --prefix-labels; the whole prefix names the app (logged at most once a minute)");
    }
}

/// Test harness shared by the inputs' unit tests: a small in-memory store behind every input.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use crate::config::PrefixTemplate;
    use crate::ingest::Ingest;
    use crate::input::Inputs;
    use crate::metrics::Metrics;
    use crate::store::{Limits, Query, Store};

    pub fn inputs(template: Option<&str>) -> Inputs {
        let store =
            Arc::new(Store::new(Limits { max_apps: 5, max_stacks_per_app: 100, ..Limits::default() }, std::time::Duration::from_secs(60)));
        let ingest = Arc::new(Ingest::new(store, Metrics::new()));
        Inputs::new(ingest, template.map(|t| PrefixTemplate::parse(t).expect("template")))
    }

    /// The app's profile as folded lines, through the renderer stackd serves it with.
    pub fn folded(i: &Inputs, app: &str) -> Vec<String> {
        let store = &i.ingest.store;
        let a = store.app(app).unwrap_or_else(|| panic!("no app {app}"));
        let profile = store.query(&a, &Query::default()).expect("readable").expect("profile");
        crate::render::folded(&store.resolve(&profile)).lines().map(str::to_string).collect()
    }
}
