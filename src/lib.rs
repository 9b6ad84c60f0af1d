//! polyglot-grpc-interop: plays every gRPC client against every gRPC server.
//!
//! The crate holds the Rust bindings of `proto/` (used by `rust-server` and
//! `rust-client` too), the case catalogue, and the runner behind the
//! `interop` binary: implementation manifests ([`manifest`]), the selection
//! of cells ([`select`]), backends that run processes or containers
//! ([`backend`]), the matrix ([`runner`]) and its reports ([`report`]).

#[cfg(feature = "runner")]
pub mod app;
#[cfg(feature = "runner")]
pub mod backend;
#[cfg(feature = "runner")]
pub mod baselines;
#[cfg(feature = "runner")]
pub mod bench;
pub mod cases;
#[cfg(feature = "runner")]
pub mod collect;
#[cfg(feature = "runner")]
pub mod h2spec;
#[cfg(feature = "runner")]
pub mod judge;
pub mod load;
#[cfg(feature = "runner")]
pub mod manifest;
#[cfg(feature = "runner")]
pub mod model;
#[cfg(feature = "runner")]
pub mod mutants;
pub mod pb;
#[cfg(feature = "runner")]
pub mod process;
#[cfg(feature = "runner")]
pub mod protocol;
#[cfg(feature = "runner")]
pub mod report;
#[cfg(feature = "runner")]
pub mod runner;
#[cfg(feature = "runner")]
pub mod select;
pub mod wire;
