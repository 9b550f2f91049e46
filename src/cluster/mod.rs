//! Scale-out (docs/scale-out.md): nodes that share object storage. [`objects`] is the object
//! store (S3 or a directory); [`sigv4`] signs S3 requests.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

pub mod importer;
pub mod objects;
pub mod segment;
pub mod sigv4;
pub mod uploader;

/// The note that keeps the id a data dir's profiles were shared under.
const NODE_NOTE: &str = "cluster:node";

/// This node's id. A data dir keeps the id it was first shared under: without `--node-id` that
/// one, and a different `--node-id` is refused. Under another id this node would import its own
/// old segments as another node's, and count its own profiles twice. The first time it is
/// `--node-id`, or the host name.
pub fn node_id(store: &crate::store::Store, given: Option<&str>) -> anyhow::Result<String> {
    let kept = store.notes(NODE_NOTE).into_iter().find(|(k, _)| k == NODE_NOTE).map(|(_, v)| String::from_utf8_lossy(&v).into_owned());
    let id = match (kept, given) {
        (Some(kept), Some(given)) if kept != given => anyhow::bail!(
            "this data dir holds the profiles of node {kept:?}, not {given:?}: start it with --node-id {kept} (or without --node-id), or give node {given:?} an empty data dir; under another id this node would count its own profiles twice"
        ),
        (Some(kept), _) => kept,
        (None, Some(given)) => given.to_string(),
        (None, None) => {
            let host = nix::unistd::gethostname().map_err(|e| anyhow::anyhow!("cannot read the host name for the node id ({e}); give --node-id"))?;
            crate::config::parse_node_id(&host.to_string_lossy()).map_err(|e| anyhow::anyhow!("the host name does not make a node id: {e}; give --node-id"))?
        }
    };
    store.note(NODE_NOTE, id.as_bytes().to_vec());
    Ok(id)
}

/// How this node's sharing stands, for `GET /health` (`--object-store`).
#[derive(Debug, Default)]
pub struct Status {
    /// Flushes whose counts are in no segment yet.
    pub backlog: AtomicU64,
    /// When a segment last went up, and when the other nodes' were last read (Unix ms; 0: not
    /// yet).
    pub last_upload_ms: AtomicI64,
    pub last_import_ms: AtomicI64,
    /// The last failure to reach the object store, while it lasts (cleared by a success).
    pub error: Mutex<Option<String>>,
    /// Where, without credentials.
    pub store: String,
    pub node: String,
}

impl Status {
    pub fn new(store: String, node: String) -> Status {
        Status { store, node, ..Status::default() }
    }

    pub fn failed(&self, e: &anyhow::Error) {
        *self.error.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("{e:#}"));
    }

    fn succeeded(&self, at: &AtomicI64) {
        at.store(crate::now_ms(), Ordering::Relaxed);
        *self.error.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// `/health`'s `object_store` member; `warn` while the object store cannot be reached.
    pub fn health(&self) -> (bool, serde_json::Value) {
        let error = self.error.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let ms = |a: &AtomicI64| Some(a.load(Ordering::Relaxed)).filter(|t| *t > 0);
        (
            error.is_none(),
            serde_json::json!({
                "store": self.store,
                "node": self.node,
                "backlog": self.backlog.load(Ordering::Relaxed),
                "last_upload_ms": ms(&self.last_upload_ms),
                "last_import_ms": ms(&self.last_import_ms),
                "error": error,
            }),
        )
    }
}
