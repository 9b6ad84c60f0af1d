//! polyglot-grpc-interop: plays every gRPC client against every gRPC server.
//!
//! The crate holds the Rust bindings of `proto/` (used by `rust-server` and
//! `rust-client` too), the case catalogue, and the runner behind the
//! `interop` binary.

pub mod cases;
pub mod pb;
