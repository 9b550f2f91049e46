//! Pure wire parsers, one module per wire format: no I/O and no meaning (which agent a name
//! belongs to is an input's business, see [`crate::input`]). Every parser borrows from its input
//! and fails line by line.

pub mod ap_html;
pub mod influx;
pub mod jfr;
pub mod pprof;
pub mod pyroscope;
pub mod statsd;
