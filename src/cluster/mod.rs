//! Scale-out (docs/scale-out.md): nodes that share object storage. [`objects`] is the object
//! store (S3 or a directory); [`sigv4`] signs S3 requests.

pub mod objects;
pub mod segment;
pub mod sigv4;
