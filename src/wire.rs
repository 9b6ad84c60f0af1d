//! The gRPC message framing on the wire, below what tonic shows: every
//! message of a request or response body has a 5-byte prefix, byte 0 the
//! compressed flag and bytes 1..5 the big-endian length. The Rust server reads
//! the flags of request bodies and the Rust client those of response bodies,
//! since tonic decompresses transparently and does not say.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

/// Length of the prefix in front of every gRPC message: flag byte + u32 length.
pub const PREFIX_LEN: usize = 5;

/// Incremental parser of the gRPC length-prefixed message framing.
///
/// Bytes may arrive in chunks of any size: a prefix or a message split over
/// several chunks, or several messages in one chunk, are all handled.
#[derive(Debug, Default)]
pub struct FrameScanner {
    prefix: [u8; PREFIX_LEN],
    prefix_len: usize,
    payload_left: u64,
}

impl FrameScanner {
    /// Consumes `data`, calling `on_message(compressed)` once per message prefix completed.
    pub fn feed(&mut self, mut data: &[u8], mut on_message: impl FnMut(bool)) {
        while !data.is_empty() {
            if self.payload_left > 0 {
                let skip = usize::try_from(self.payload_left)
                    .map_or(data.len(), |left| left.min(data.len()));
                data = &data[skip..];
                self.payload_left -= skip as u64;
                continue;
            }
            let take = (PREFIX_LEN - self.prefix_len).min(data.len());
            self.prefix[self.prefix_len..self.prefix_len + take].copy_from_slice(&data[..take]);
            self.prefix_len += take;
            data = &data[take..];
            if self.prefix_len == PREFIX_LEN {
                self.prefix_len = 0;
                on_message(self.prefix[0] != 0);
                let [_, a, b, c, d] = self.prefix;
                self.payload_left = u64::from(u32::from_be_bytes([a, b, c, d]));
            }
        }
    }
}

/// The compressed flag of every message seen so far on one body, in order.
///
/// Shared between the body wrapper (writer) and the handler (reader). The
/// decoder can only hand message `i` to the handler after the prefix of
/// message `i` went through the wrapper, so the flag is always there in time.
#[derive(Debug, Clone, Default)]
pub struct FrameFlags(Arc<Mutex<Vec<bool>>>);

impl FrameFlags {
    /// Whether message `index` (0-based) was compressed; `None` if not seen yet.
    pub fn compressed(&self, index: usize) -> Option<bool> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(index)
            .copied()
    }

    /// Every flag seen so far.
    pub fn all(&self) -> Vec<bool> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn push(&self, compressed: bool) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(compressed);
    }
}

/// Body wrapper that records the compressed flag of every message passing through.
#[derive(Debug)]
pub struct FrameFlagBody<B> {
    inner: B,
    scanner: FrameScanner,
    flags: FrameFlags,
}

impl<B> FrameFlagBody<B> {
    /// Wraps `inner`, recording into `flags`.
    pub fn new(inner: B, flags: FrameFlags) -> Self {
        Self {
            inner,
            scanner: FrameScanner::default(),
            flags,
        }
    }
}

impl<B> HttpBody for FrameFlagBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let flags = &this.flags;
            this.scanner.feed(data, |compressed| flags.push(compressed));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(compressed: bool, len: usize) -> Vec<u8> {
        let mut out = vec![u8::from(compressed)];
        out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
        out.extend(std::iter::repeat_n(0xa5, len));
        out
    }

    fn scan(chunks: &[&[u8]]) -> Vec<bool> {
        let mut scanner = FrameScanner::default();
        let mut seen = Vec::new();
        for chunk in chunks {
            scanner.feed(chunk, |c| seen.push(c));
        }
        seen
    }

    #[test]
    fn scanner_reads_flags_at_every_split_point() {
        let mut wire = frame(true, 7);
        wire.extend(frame(false, 0));
        wire.extend(frame(false, 3));
        wire.extend(frame(true, 300));
        let want = vec![true, false, false, true];
        assert_eq!(scan(&[&wire]), want);
        for cut in 0..=wire.len() {
            let (a, b) = wire.split_at(cut);
            assert_eq!(scan(&[a, b]), want, "split at {cut}");
        }
        let bytes: Vec<&[u8]> = wire.chunks(1).collect();
        assert_eq!(scan(&bytes), want);
    }

    #[test]
    fn scanner_skips_payload_bytes_that_look_like_prefixes() {
        // A payload made of bytes 1,0,0,0,0 must not be read as a prefix.
        let mut wire = vec![0, 0, 0, 0, 5, 1, 0, 0, 0, 0];
        wire.extend(frame(true, 1));
        assert_eq!(scan(&[&wire]), vec![false, true]);
    }
}
