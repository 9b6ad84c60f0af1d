//! polyglot-grpc-interop: plays every gRPC client against every gRPC server.
//!
//! The crate holds the Rust bindings of `proto/` (used by `rust-server` and
//! `rust-client` too), the case catalogue, and the runner behind the
//! `interop` binary: implementation manifests ([`manifest`]), the selection
//! of cells ([`select`]), backends that run processes or containers
//! ([`backend`]), the matrix ([`runner`]) and its reports ([`report`]).

pub mod app;
pub mod backend;
pub mod cases;
pub mod collect;
pub mod manifest;
pub mod model;
pub mod pb;
pub mod process;
pub mod report;
pub mod runner;
pub mod select;
