//! What tonic's handler API does not expose, taken from the HTTP/2 exchange itself.
//!
//! * Whether each request message arrived compressed: tonic decompresses
//!   transparently, so [`FrameFlagBody`] (shared with the client, in
//!   `grpc_interop::wire`) reads the 5-byte gRPC message prefixes of the
//!   request body as it streams past and records one flag per message in
//!   [`RequestFrameFlags`], which rides in the request extensions to the handler.
//! * Trailing metadata on a successful call: tonic ends every successful
//!   response with trailers built from `Status::ok("")` and offers no way to add
//!   to them, so [`EchoMetadata`] appends `x-grpc-test-echo-trailing-bin` to the
//!   trailers frame of the response body (and echoes `x-grpc-test-echo-initial`
//!   into the response headers). A tonic error reply is trailers-only (one
//!   header block); with echoed metadata it is split into headers + trailers so
//!   each value lands where it belongs on error paths too.
//! * Which responses are compressed: tonic compresses every response message
//!   to a client that accepts gzip, per call and not per message, so
//!   [`EchoMetadata`] passes `grpc-accept-encoding` on to `UnaryCall` only,
//!   whose handler compresses when `response_compressed` asks.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
pub use grpc_interop::wire::{FrameFlagBody, FrameFlags as RequestFrameFlags, FrameScanner};
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::body::Body;
use tonic::server::NamedService;
use tower_service::Service;

/// Request header echoed back in the response headers.
pub const ECHO_INITIAL: HeaderName = HeaderName::from_static("x-grpc-test-echo-initial");
/// Request header echoed back in the response trailers.
pub const ECHO_TRAILING_BIN: HeaderName = HeaderName::from_static("x-grpc-test-echo-trailing-bin");

/// Status fields that belong in trailers when a trailers-only response is split.
const STATUS_HEADERS: [HeaderName; 3] = [
    HeaderName::from_static("grpc-status"),
    HeaderName::from_static("grpc-message"),
    HeaderName::from_static("grpc-status-details-bin"),
];

/// Response body wrapper that adds one header to the trailers frame.
#[derive(Debug)]
struct AppendTrailer {
    inner: Body,
    extra: Option<(HeaderName, HeaderValue)>,
}

impl HttpBody for AppendTrailer {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = &mut *self;
        let mut polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &mut polled
            && let Some(trailers) = frame.trailers_mut()
            && let Some((name, value)) = this.extra.take()
        {
            trailers.insert(name, value);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A body that is nothing but one trailers frame.
#[derive(Debug)]
struct TrailersOnly(Option<HeaderMap>);

impl HttpBody for TrailersOnly {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.take().map(|trailers| Ok(Frame::trailers(trailers))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_none()
    }
}

/// The one method whose responses may be compressed (on request).
const UNARY_CALL_PATH: &str = "/grpc.testing.TestService/UnaryCall";
const GRPC_ACCEPT_ENCODING: &str = "grpc-accept-encoding";

/// Tower wrapper around a generated tonic service: echoes the test metadata
/// and records request compression flags (see the module docs).
#[derive(Debug, Clone)]
pub struct EchoMetadata<S> {
    inner: S,
}

impl<S> EchoMetadata<S> {
    /// Wraps `inner`.
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S: NamedService> NamedService for EchoMetadata<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for EchoMetadata<S>
where
    S: Service<
            http::Request<FrameFlagBody<Body>>,
            Response = http::Response<Body>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let initial = request.headers().get(ECHO_INITIAL).cloned();
        let trailing = request.headers().get(ECHO_TRAILING_BIN).cloned();
        let flags = RequestFrameFlags::default();
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(flags.clone());
        // A response is compressed only when its request asks (UnaryCall's
        // response_compressed; the handler decides). tonic compresses every
        // message of any other call to a client that accepts gzip, so for
        // those the client's grpc-accept-encoding is not passed on and their
        // responses go uncompressed, as the spec's default is.
        if parts.uri.path() != UNARY_CALL_PATH {
            parts.headers.remove(GRPC_ACCEPT_ENCODING);
        }
        let request = http::Request::from_parts(parts, FrameFlagBody::new(body, flags));
        // The clone that was driven to readiness serves this call; a fresh clone stays behind.
        let fresh = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, fresh);
        Box::pin(async move {
            let response = ready.call(request).await?;
            Ok(echo(response, initial, trailing))
        })
    }
}

/// Puts the echoed values into the response: `initial` into the headers,
/// `trailing` into the trailers.
///
/// A tonic error reply is "trailers-only" (status in the one header block). When
/// anything is echoed it is split into a real header block (with the initial
/// value) and a trailers block (status and the trailing value), so a client sees
/// both kinds of metadata where they belong on error paths too.
fn echo(
    response: http::Response<Body>,
    initial: Option<HeaderValue>,
    trailing: Option<HeaderValue>,
) -> http::Response<Body> {
    if initial.is_none() && trailing.is_none() {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    if let Some(value) = initial {
        parts.headers.insert(ECHO_INITIAL, value);
    }
    let body = if parts.headers.contains_key(&STATUS_HEADERS[0]) {
        let mut trailers = HeaderMap::new();
        for name in STATUS_HEADERS {
            if let Some(value) = parts.headers.remove(&name) {
                trailers.insert(name, value);
            }
        }
        if let Some(value) = trailing {
            trailers.insert(ECHO_TRAILING_BIN, value);
        }
        Body::new(TrailersOnly(Some(trailers)))
    } else {
        Body::new(AppendTrailer {
            inner: body,
            extra: trailing.map(|value| (ECHO_TRAILING_BIN, value)),
        })
    };
    http::Response::from_parts(parts, body)
}
