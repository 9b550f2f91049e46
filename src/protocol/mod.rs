//! Pure parsers, one module per wire format. No I/O; every parser borrows from its input and
//! fails line by line.

pub mod influx;
pub mod jvm;
pub mod statsd;
