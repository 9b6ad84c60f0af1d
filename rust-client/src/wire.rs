//! The compressed flag of every message of a call, as it crossed the wire.
//!
//! tonic compresses and decompresses transparently and tells the caller
//! neither whether a response message arrived compressed nor whether a
//! request message left compressed. [`WireChannel`] wraps the channel; a
//! call that carries [`CallFlags`] in its request extensions gets its request
//! and response bodies read as they stream past, and the flag of each
//! message's 5-byte prefix recorded ([`grpc_interop::wire`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use grpc_interop::wire::{FrameFlagBody, FrameFlags};
use tokio::sync::Notify;
use tonic::body::Body;
use tonic::transport::Channel;
use tower_service::Service;

/// The flags of one call's messages: what it sent and what it received.
#[derive(Debug, Clone, Default)]
pub struct CallFlags {
    /// One flag per request message, in order.
    pub sent: FrameFlags,
    /// One flag per response message, in order.
    pub received: FrameFlags,
    /// Notified when the call's request is handed to the transport, which
    /// sends its headers: the call has begun on the wire.
    pub dispatched: Arc<Notify>,
}

impl CallFlags {
    /// Asks `request`'s call to record its flags into the returned value.
    pub fn record<T>(request: &mut tonic::Request<T>) -> CallFlags {
        let flags = CallFlags::default();
        request.extensions_mut().insert(flags.clone());
        flags
    }
}

/// A [`Channel`] that records message flags for calls carrying [`CallFlags`].
#[derive(Debug, Clone)]
pub struct WireChannel {
    inner: Channel,
}

impl WireChannel {
    /// Wraps `inner`.
    pub fn new(inner: Channel) -> Self {
        Self { inner }
    }
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<Body>, tonic::transport::Error>> + Send>>;

impl Service<http::Request<Body>> for WireChannel {
    type Response = http::Response<Body>;
    type Error = tonic::transport::Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let Some(flags) = request.extensions().get::<CallFlags>().cloned() else {
            return Box::pin(self.inner.call(request));
        };
        let request = request.map(|body| Body::new(FrameFlagBody::new(body, flags.sent.clone())));
        let response = self.inner.call(request);
        flags.dispatched.notify_one();
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| Body::new(FrameFlagBody::new(body, flags.received))))
        })
    }
}
