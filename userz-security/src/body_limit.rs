//! Streaming request-body limiter (guarantee G1): an oversize body is cut off
//! while it streams, never buffered whole.
//!
//! [`LimitedBody`] wraps any [`http_body::Body`]. It counts data bytes as
//! frames arrive and fails with [`BodyLimitError::LengthLimitExceeded`] on the
//! first frame that takes the total past the cap; after that it never polls the
//! inner body again. A body whose size hint already says it is too large (a
//! `Content-Length` over the cap) fails on the first poll without being read
//! at all. It holds no buffer of its own, so it drops into a tower layer as
//! `req.map(|b| LimitedBody::new(b, limit))`.
//!
//! [`read_to_bytes`] collects a limited body for handlers that need the whole
//! (bounded) payload.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

/// The default cap for a feedback request body: 8 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 8 * 1024 * 1024;

/// Why a limited body failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BodyLimitError<E> {
    /// The body is larger than the cap (HTTP 413, code `payload_too_large`).
    #[error("request body exceeds the limit of {limit} bytes")]
    LengthLimitExceeded {
        /// The cap in bytes.
        limit: usize,
    },
    /// The inner body failed.
    #[error("request body failed: {0}")]
    Inner(E),
}

impl<E> BodyLimitError<E> {
    /// Whether this is the size cap (as opposed to a transport error).
    pub fn is_length_limit(&self) -> bool {
        matches!(self, BodyLimitError::LengthLimitExceeded { .. })
    }

    /// Stable API error code for the size cap.
    pub const PAYLOAD_TOO_LARGE: &'static str = "payload_too_large";
}

pin_project! {
    /// A body that fails once more than `limit` data bytes have arrived.
    #[derive(Debug)]
    pub struct LimitedBody<B> {
        #[pin]
        inner: B,
        limit: usize,
        seen: usize,
        failed: bool,
    }
}

impl<B> LimitedBody<B> {
    /// Wraps `inner` with a cap of `limit` bytes.
    pub fn new(inner: B, limit: usize) -> Self {
        Self { inner, limit, seen: 0, failed: false }
    }

    /// Wraps `inner` with [`DEFAULT_BODY_LIMIT`].
    pub fn with_default_limit(inner: B) -> Self {
        Self::new(inner, DEFAULT_BODY_LIMIT)
    }

    /// Data bytes seen so far.
    pub fn bytes_seen(&self) -> usize {
        self.seen
    }
}

impl<B: Body> Body for LimitedBody<B> {
    type Data = B::Data;
    type Error = BodyLimitError<B::Error>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        if *this.failed {
            return Poll::Ready(None);
        }
        let limit = *this.limit;
        if this.inner.size_hint().lower() > limit as u64 {
            *this.failed = true;
            return Poll::Ready(Some(Err(BodyLimitError::LengthLimitExceeded { limit })));
        }
        match this.inner.poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => {
                *this.failed = true;
                Poll::Ready(Some(Err(BodyLimitError::Inner(e))))
            }
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let total = this.seen.saturating_add(data.remaining());
                    if total > limit {
                        *this.failed = true;
                        return Poll::Ready(Some(Err(BodyLimitError::LengthLimitExceeded { limit })));
                    }
                    *this.seen = total;
                }
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let room = (self.limit - self.seen.min(self.limit)) as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower().min(room));
        hint.set_upper(inner.upper().map_or(room, |u| u.min(room)));
        hint
    }
}

/// Reads a whole body into memory, failing as soon as it passes `limit`.
/// Trailers are ignored.
pub async fn read_to_bytes<B>(body: B, limit: usize) -> Result<Bytes, BodyLimitError<B::Error>>
where
    B: Body,
{
    let body = LimitedBody::new(body, limit);
    let mut body = std::pin::pin!(body);
    let mut buf = BytesMut::new();
    while let Some(frame) = poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        if let Ok(mut data) = frame?.into_data() {
            while data.has_remaining() {
                let chunk = data.chunk();
                buf.extend_from_slice(chunk);
                let n = chunk.len();
                data.advance(n);
            }
        }
    }
    Ok(buf.freeze())
}
