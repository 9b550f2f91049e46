//! Sockets: the statsd UDP receive loop and the HTTP server.

pub mod http;
pub mod udp;
