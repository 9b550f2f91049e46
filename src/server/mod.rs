//! Sockets: the statsd UDP receive loop and the HTTP server.

pub mod auth;
pub mod conn;
pub mod http;
pub mod udp;
