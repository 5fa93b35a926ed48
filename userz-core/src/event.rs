//! Event envelopes: what the event store records around each domain event.

use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::ids::{CorrelationId, EventId};
use crate::time::Timestamp;

/// The name of one event stream, e.g. `feedback-<uuid>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StreamId(String);

impl StreamId {
    /// A stream name. Names are `[A-Za-z0-9_.:-]`, 1–200 characters; anything else
    /// is refused so that every adapter can use the name as a key or subject.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidStreamId> {
        let name = name.into();
        let ok = !name.is_empty()
            && name.len() <= 200
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
        if ok {
            Ok(Self(name))
        } else {
            Err(InvalidStreamId(name))
        }
    }

    /// `category-id`, the naming convention of every aggregate stream.
    pub fn for_entity(category: &str, id: impl fmt::Display) -> Self {
        // Categories are compile-time constants and ids are UUIDs, so the name is
        // always in the allowed alphabet.
        Self(format!("{category}-{id}"))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The category: the part before the first `-`.
    pub fn category(&self) -> &str {
        self.0.split('-').next().unwrap_or(&self.0)
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StreamId({})", self.0)
    }
}

/// A stream name outside the allowed alphabet or length.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("invalid stream id {0:?}: 1-200 characters of [A-Za-z0-9_.:-]")]
pub struct InvalidStreamId(pub String);

/// What the appender believes the stream's current version to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// No check (use sparingly: only for streams with a single writer by design).
    Any,
    /// The stream must not exist yet (version 0).
    NoStream,
    /// The stream's last event must have exactly this version.
    Exact(u64),
}

impl ExpectedVersion {
    /// Whether a stream at `actual` satisfies this expectation.
    pub fn matches(self, actual: u64) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual == 0,
            ExpectedVersion::Exact(v) => v == actual,
        }
    }

    /// The expectation that matches a stream currently at `version`.
    pub fn from_version(version: u64) -> Self {
        if version == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(version)
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(v) => write!(f, "{v}"),
        }
    }
}

/// An event about to be appended.
#[derive(Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// Unique id; appending the same id twice to a stream is a no-op for adapters
    /// that deduplicate (see the `EventStore` contract).
    pub id: EventId,
    /// The event's type name (stable across versions).
    pub event_type: String,
    /// Schema version of `payload`; old versions are upcast when read.
    pub schema_version: u32,
    /// JSON payload.
    pub payload: Bytes,
    /// The id of the command or event that caused this one.
    pub causation_id: Option<uuid::Uuid>,
    /// The id shared by everything caused by one original request.
    pub correlation_id: CorrelationId,
}

impl fmt::Debug for NewEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewEvent")
            .field("id", &self.id)
            .field("event_type", &self.event_type)
            .field("schema_version", &self.schema_version)
            .field("payload_bytes", &self.payload.len())
            .finish_non_exhaustive()
    }
}

/// An event as stored.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// Unique id.
    pub id: EventId,
    /// Stream it belongs to.
    pub stream: StreamId,
    /// 1-based version within the stream; gap-free.
    pub version: u64,
    /// 1-based position in the global log; strictly increasing, and a subscriber
    /// never sees a lower position after a higher one.
    pub position: u64,
    /// When the store recorded it.
    pub recorded_at: Timestamp,
    /// Type name.
    pub event_type: String,
    /// Schema version of `payload`.
    pub schema_version: u32,
    /// JSON payload.
    pub payload: Bytes,
    /// Cause (command or event id).
    pub causation_id: Option<uuid::Uuid>,
    /// Correlation id.
    pub correlation_id: CorrelationId,
}

impl fmt::Debug for RecordedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Payloads may hold personal data: show only their size.
        f.debug_struct("RecordedEvent")
            .field("id", &self.id)
            .field("stream", &self.stream)
            .field("version", &self.version)
            .field("position", &self.position)
            .field("event_type", &self.event_type)
            .field("schema_version", &self.schema_version)
            .field("payload_bytes", &self.payload.len())
            .finish_non_exhaustive()
    }
}

impl RecordedEvent {
    /// Builds the stored form of `new` (used by adapters).
    pub fn from_new(new: NewEvent, stream: StreamId, version: u64, position: u64, recorded_at: Timestamp) -> Self {
        Self {
            id: new.id,
            stream,
            version,
            position,
            recorded_at,
            event_type: new.event_type,
            schema_version: new.schema_version,
            payload: new.payload,
            causation_id: new.causation_id,
            correlation_id: new.correlation_id,
        }
    }
}
