//! Scale-out (docs/scale-out.md): nodes that share object storage. [`objects`] is the object
//! store (S3 or a directory); [`sigv4`] signs S3 requests.

pub mod importer;
pub mod objects;
pub mod segment;
pub mod sigv4;
pub mod uploader;

/// This node's id: `--node-id`, or the host name.
pub fn node_id(given: Option<&str>) -> anyhow::Result<String> {
    if let Some(id) = given {
        return Ok(id.to_string());
    }
    let host =
        nix::unistd::gethostname().map_err(|e| anyhow::anyhow!("cannot read the host name for the node id ({e}); give --node-id"))?;
    let host = host.to_string_lossy();
    crate::config::parse_node_id(&host).map_err(|e| anyhow::anyhow!("the host name does not make a node id: {e}; give --node-id"))
}
