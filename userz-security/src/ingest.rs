//! Ingest validation (guarantee G1): the typed feedback submission and its
//! hard limits, checked before any work is done.
//!
//! [`FeedbackSubmission::from_json`] parses request bytes (already capped by
//! [`super::body_limit`]) and returns either a submission that passed
//! [`FeedbackSubmission::validate`] or *every* problem found, each with a field
//! path such as `consoleLogs[3].message` and a stable [`ViolationCode`].
//!
//! | field | rule |
//! |---|---|
//! | `text` | required, 1–8192 characters (Unicode scalar values, not bytes), not blank |
//! | `severity` | required, `low` \| `medium` \| `high` |
//! | `url` | ≤ 2048 characters, `http://` or `https://` |
//! | `userAgent` | ≤ 512 characters |
//! | `viewport` | `{w, h, dpr}`: `w`,`h` in 1..=100000, `dpr` in (0, 16] |
//! | `consoleLogs` | ≤ 500 entries `{level, message ≤ 1000 chars, ts ≥ 0}`; level `log`\|`info`\|`warn`\|`error`\|`debug`\|`trace` |
//! | `attachments` | ≤ 10 refs `{key ≤ 512, kind screenshot\|annotated\|attachment, contentType ≤ 255, byteSize ≤ 15 MiB, width?, height? ≤ 100000}` |
//! | `componentTarget` | ≤ 1024 characters |
//! | `metadata` | a JSON object, ≤ 4096 bytes serialised |
//! | `identity` | an optional JSON object, ≤ 2048 bytes serialised |
//!
//! Unknown top-level or nested fields are refused (`unknown_field`): a client
//! sending fields we do not know is a client we do not understand.
//!
//! ```
//! use userz_security::ingest::FeedbackSubmission;
//! let ok = FeedbackSubmission::from_json(br#"{"text":"Save fails","severity":"high"}"#);
//! assert!(ok.is_ok());
//! let err = FeedbackSubmission::from_json(br#"{"text":"","severity":"urgent"}"#).unwrap_err();
//! assert_eq!(err.violations.len(), 2);
//! ```

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Limits, public so the HTTP layer and docs quote the same numbers.
pub mod limits {
    /// Feedback text, in characters.
    pub const TEXT_MAX_CHARS: usize = 8192;
    /// Console entries.
    pub const CONSOLE_MAX_ENTRIES: usize = 500;
    /// Console message, in characters.
    pub const CONSOLE_MESSAGE_MAX_CHARS: usize = 1000;
    /// Attachment references.
    pub const ATTACHMENTS_MAX: usize = 10;
    /// Serialised metadata, in bytes.
    pub const METADATA_MAX_BYTES: usize = 4096;
    /// Serialised identity, in bytes.
    pub const IDENTITY_MAX_BYTES: usize = 2048;
    /// URL, in characters.
    pub const URL_MAX_CHARS: usize = 2048;
    /// User agent, in characters.
    pub const USER_AGENT_MAX_CHARS: usize = 512;
    /// Component target, in characters.
    pub const COMPONENT_TARGET_MAX_CHARS: usize = 1024;
    /// Attachment key, in characters.
    pub const ATTACHMENT_KEY_MAX_CHARS: usize = 512;
    /// Attachment content type, in characters.
    pub const CONTENT_TYPE_MAX_CHARS: usize = 255;
    /// Attachment size, in bytes (the upload URL's cap).
    pub const ATTACHMENT_MAX_BYTES: u64 = 15 * 1024 * 1024;
    /// Viewport and image dimensions.
    pub const DIMENSION_MAX: u32 = 100_000;
    /// Device pixel ratio.
    pub const DPR_MAX: f64 = 16.0;
}

/// Report severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
}

/// Browser console level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsoleLevel {
    /// `console.log`.
    Log,
    /// `console.info`.
    Info,
    /// `console.warn`.
    Warn,
    /// `console.error`.
    Error,
    /// `console.debug`.
    Debug,
    /// `console.trace`.
    Trace,
}

/// Attachment kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    /// A screenshot.
    Screenshot,
    /// An annotated screenshot.
    Annotated,
    /// Any other file.
    Attachment,
}

/// Browser viewport.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Viewport {
    /// Width in CSS pixels.
    pub w: u32,
    /// Height in CSS pixels.
    pub h: u32,
    /// Device pixel ratio.
    pub dpr: f64,
}

/// One console entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleEntry {
    /// Level.
    pub level: ConsoleLevel,
    /// Message.
    pub message: String,
    /// Timestamp (milliseconds, epoch or page-relative).
    pub ts: f64,
}

/// A reference to an uploaded attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttachmentRef {
    /// Object key returned by the upload-URL call.
    pub key: String,
    /// Kind.
    pub kind: AttachmentKind,
    /// MIME type.
    pub content_type: String,
    /// Size in bytes.
    pub byte_size: u64,
    /// Image width, if an image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Image height, if an image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
}

/// The body of `POST /v1/feedback`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FeedbackSubmission {
    /// Feedback text.
    pub text: String,
    /// Severity.
    pub severity: Severity,
    /// Page URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Browser user agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Viewport.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewport: Option<Viewport>,
    /// Console entries.
    #[serde(default)]
    pub console_logs: Vec<ConsoleEntry>,
    /// Attachment references.
    #[serde(default)]
    pub attachments: Vec<AttachmentRef>,
    /// UI component the report points at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_target: Option<String>,
    /// Free-form metadata.
    #[serde(default)]
    pub metadata: Map<String, Value>,
    /// Reporter identity (public mode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Map<String, Value>>,
}

/// Stable violation codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ViolationCode {
    /// The body is not JSON.
    InvalidJson,
    /// A required field is missing or null.
    Required,
    /// Wrong JSON type.
    InvalidType,
    /// A string outside the allowed values.
    InvalidEnum,
    /// A string that is too short.
    TooShort,
    /// A string that is too long.
    TooLong,
    /// Only whitespace.
    Blank,
    /// Too many array entries.
    TooMany,
    /// Serialised size or byte size over the limit.
    TooLarge,
    /// A number outside its range.
    OutOfRange,
    /// A string in the wrong format.
    InvalidFormat,
    /// A field we do not know.
    UnknownField,
}

impl ViolationCode {
    /// The stable snake_case code.
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationCode::InvalidJson => "invalid_json",
            ViolationCode::Required => "required",
            ViolationCode::InvalidType => "invalid_type",
            ViolationCode::InvalidEnum => "invalid_enum",
            ViolationCode::TooShort => "too_short",
            ViolationCode::TooLong => "too_long",
            ViolationCode::Blank => "blank",
            ViolationCode::TooMany => "too_many",
            ViolationCode::TooLarge => "too_large",
            ViolationCode::OutOfRange => "out_of_range",
            ViolationCode::InvalidFormat => "invalid_format",
            ViolationCode::UnknownField => "unknown_field",
        }
    }
}

impl fmt::Display for ViolationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldViolation {
    /// JSON path in the wire (camelCase) names, e.g. `consoleLogs[3].message`;
    /// empty for the body itself.
    pub path: String,
    /// Stable code.
    pub code: ViolationCode,
    /// Human-readable detail (never echoes the value).
    pub message: String,
}

impl FieldViolation {
    fn new(path: impl Into<String>, code: ViolationCode, message: impl Into<String>) -> Self {
        Self { path: path.into(), code, message: message.into() }
    }
}

/// Every violation of a rejected body (API code `invalid_body`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid body: {}", summary(.violations))]
pub struct InvalidBody {
    /// All violations, in field order.
    pub violations: Vec<FieldViolation>,
}

fn summary(v: &[FieldViolation]) -> String {
    v.iter()
        .map(|x| format!("{} {}", if x.path.is_empty() { "body" } else { &x.path }, x.code))
        .collect::<Vec<_>>()
        .join(", ")
}

impl InvalidBody {
    /// Stable API error code.
    pub const CODE: &'static str = "invalid_body";
}

impl From<InvalidBody> for userz_core::Error {
    fn from(e: InvalidBody) -> Self {
        userz_core::Error::Rejected { rule: InvalidBody::CODE, message: e.to_string() }
    }
}

fn chars(s: &str) -> usize {
    s.chars().count()
}

fn check_len(out: &mut Vec<FieldViolation>, path: &str, s: &str, max: usize) {
    // Cheap bound first: a string of `max` chars has at most 4*max bytes and at
    // least `max` bytes.
    if s.len() > max && chars(s) > max {
        out.push(FieldViolation::new(path, ViolationCode::TooLong, format!("at most {max} characters")));
    }
}

impl FeedbackSubmission {
    /// Every limit violation of an already typed submission, in field order.
    pub fn validate(&self) -> Vec<FieldViolation> {
        use limits::*;
        let mut out = Vec::new();
        if self.text.is_empty() {
            out.push(FieldViolation::new("text", ViolationCode::TooShort, "at least 1 character"));
        } else if self.text.trim().is_empty() {
            out.push(FieldViolation::new("text", ViolationCode::Blank, "only whitespace"));
        }
        check_len(&mut out, "text", &self.text, TEXT_MAX_CHARS);
        if let Some(url) = &self.url {
            check_len(&mut out, "url", url, URL_MAX_CHARS);
            let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
            if !(lower.starts_with("http://") || lower.starts_with("https://")) {
                out.push(FieldViolation::new("url", ViolationCode::InvalidFormat, "must be an http(s) URL"));
            }
        }
        if let Some(ua) = &self.user_agent {
            check_len(&mut out, "userAgent", ua, USER_AGENT_MAX_CHARS);
        }
        if let Some(v) = &self.viewport {
            for (name, val) in [("w", v.w), ("h", v.h)] {
                if val == 0 || val > DIMENSION_MAX {
                    out.push(FieldViolation::new(
                        format!("viewport.{name}"),
                        ViolationCode::OutOfRange,
                        format!("between 1 and {DIMENSION_MAX}"),
                    ));
                }
            }
            if !(v.dpr.is_finite() && v.dpr > 0.0 && v.dpr <= DPR_MAX) {
                out.push(FieldViolation::new("viewport.dpr", ViolationCode::OutOfRange, "in (0, 16]"));
            }
        }
        if self.console_logs.len() > CONSOLE_MAX_ENTRIES {
            out.push(FieldViolation::new(
                "consoleLogs",
                ViolationCode::TooMany,
                format!("at most {CONSOLE_MAX_ENTRIES} entries"),
            ));
        }
        for (i, e) in self.console_logs.iter().enumerate() {
            check_len(&mut out, &format!("consoleLogs[{i}].message"), &e.message, CONSOLE_MESSAGE_MAX_CHARS);
            if !(e.ts.is_finite() && e.ts >= 0.0) {
                out.push(FieldViolation::new(
                    format!("consoleLogs[{i}].ts"),
                    ViolationCode::OutOfRange,
                    "a finite number >= 0",
                ));
            }
        }
        if self.attachments.len() > ATTACHMENTS_MAX {
            out.push(FieldViolation::new(
                "attachments",
                ViolationCode::TooMany,
                format!("at most {ATTACHMENTS_MAX} references"),
            ));
        }
        for (i, a) in self.attachments.iter().enumerate() {
            let p = |f: &str| format!("attachments[{i}].{f}");
            if a.key.is_empty() {
                out.push(FieldViolation::new(p("key"), ViolationCode::TooShort, "at least 1 character"));
            }
            check_len(&mut out, &p("key"), &a.key, ATTACHMENT_KEY_MAX_CHARS);
            if a.content_type.is_empty() {
                out.push(FieldViolation::new(p("contentType"), ViolationCode::TooShort, "at least 1 character"));
            }
            check_len(&mut out, &p("contentType"), &a.content_type, CONTENT_TYPE_MAX_CHARS);
            if a.byte_size > ATTACHMENT_MAX_BYTES {
                out.push(FieldViolation::new(p("byteSize"), ViolationCode::TooLarge, "at most 15 MiB"));
            }
            for (name, val) in [("width", a.width), ("height", a.height)] {
                if val.is_some_and(|v| v == 0 || v > DIMENSION_MAX) {
                    out.push(FieldViolation::new(
                        p(name),
                        ViolationCode::OutOfRange,
                        format!("between 1 and {DIMENSION_MAX}"),
                    ));
                }
            }
        }
        if let Some(t) = &self.component_target {
            check_len(&mut out, "componentTarget", t, COMPONENT_TARGET_MAX_CHARS);
        }
        if serialized_len(&self.metadata) > METADATA_MAX_BYTES {
            out.push(FieldViolation::new(
                "metadata",
                ViolationCode::TooLarge,
                format!("at most {METADATA_MAX_BYTES} bytes serialised"),
            ));
        }
        if let Some(id) = &self.identity {
            if serialized_len(id) > IDENTITY_MAX_BYTES {
                out.push(FieldViolation::new(
                    "identity",
                    ViolationCode::TooLarge,
                    format!("at most {IDENTITY_MAX_BYTES} bytes serialised"),
                ));
            }
        }
        out
    }

    /// Parses and validates a JSON body. On failure returns every problem:
    /// shape problems (missing/unknown fields, wrong types, bad enum values)
    /// found by walking the JSON, plus the limit checks of [`Self::validate`]
    /// on the fields that could be read.
    pub fn from_json(bytes: &[u8]) -> Result<Self, InvalidBody> {
        let value: Value = serde_json::from_slice(bytes).map_err(|e| InvalidBody {
            violations: vec![FieldViolation::new(
                "",
                ViolationCode::InvalidJson,
                format!("line {} column {}: {}", e.line(), e.column(), category(&e)),
            )],
        })?;
        Self::from_value(value)
    }

    /// As [`Self::from_json`], from an already parsed value.
    pub fn from_value(mut value: Value) -> Result<Self, InvalidBody> {
        let mut out = Vec::new();
        shape::submission(&value, &mut out);
        if out.is_empty() {
            normalise(&mut value);
            match serde_json::from_value::<FeedbackSubmission>(value) {
                Ok(s) => {
                    let v = s.validate();
                    if v.is_empty() {
                        return Ok(s);
                    }
                    out = v;
                }
                // The shape walker mirrors the serde types; if they disagree,
                // still refuse rather than accept.
                Err(e) => out.push(FieldViolation::new("", ViolationCode::InvalidType, category(&e))),
            }
        } else {
            // Limits on whatever is readable, so one response lists everything.
            out.extend(shape::partial_limits(&value));
            out.sort_by_key(|v| field_rank(&v.path));
        }
        Err(InvalidBody { violations: out })
    }
}

/// A JSON number that is a non-negative integer, written as one (`42`) or as
/// a float with no fraction (`42.0`, which JSON Schema also calls an integer),
/// up to 2^53.
pub fn integral_u64(v: &Value) -> Option<u64> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    v.as_u64().or_else(|| {
        let f = v.as_f64()?;
        // The checks make the cast exact.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        ((0.0..=EXACT).contains(&f) && f.fract() == 0.0).then_some(f as u64)
    })
}

/// Rewrites a submission the shape walker accepted into what the typed
/// parse reads: an optional field given as `null` is absent, and an integer
/// field written as `42.0` is `42`.
fn normalise(value: &mut Value) {
    let Some(obj) = value.as_object_mut() else { return };
    obj.retain(|_, v| !v.is_null());
    let fix = |v: Option<&mut Value>| {
        if let Some(v) = v {
            if let Some(n) = integral_u64(v) {
                *v = Value::from(n);
            }
        }
    };
    if let Some(vp) = obj.get_mut("viewport").and_then(Value::as_object_mut) {
        fix(vp.get_mut("w"));
        fix(vp.get_mut("h"));
    }
    if let Some(atts) = obj.get_mut("attachments").and_then(Value::as_array_mut) {
        for a in atts.iter_mut().filter_map(Value::as_object_mut) {
            a.retain(|_, v| !v.is_null());
            for k in ["byteSize", "width", "height"] {
                fix(a.get_mut(k));
            }
        }
    }
}

fn category(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Eof => "unexpected end of input",
    }
}

fn serialized_len<T: Serialize>(v: &T) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0 += b.len();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Counter(0);
    match serde_json::to_writer(&mut c, v) {
        Ok(()) => c.0,
        Err(_) => usize::MAX,
    }
}

const FIELD_ORDER: &[&str] = &[
    "",
    "text",
    "severity",
    "url",
    "userAgent",
    "viewport",
    "consoleLogs",
    "attachments",
    "componentTarget",
    "metadata",
    "identity",
];

fn field_rank(path: &str) -> usize {
    let head = path.split(['.', '[']).next().unwrap_or("");
    FIELD_ORDER.iter().position(|f| *f == head).unwrap_or(FIELD_ORDER.len())
}

/// Walks the JSON value against the expected shape, collecting every problem.
mod shape {
    use super::limits::*;
    use super::*;

    type Out = Vec<FieldViolation>;

    fn type_name(v: &Value) -> &'static str {
        match v {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        }
    }

    fn wrong(out: &mut Out, path: &str, want: &str, got: &Value) {
        out.push(FieldViolation::new(
            path,
            ViolationCode::InvalidType,
            format!("expected {want}, got {}", type_name(got)),
        ));
    }

    fn unknown(out: &mut Out, prefix: &str, obj: &Map<String, Value>, known: &[&str]) {
        for k in obj.keys() {
            if !known.contains(&k.as_str()) {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                out.push(FieldViolation::new(path, ViolationCode::UnknownField, "not a known field"));
            }
        }
    }

    fn required<'a>(out: &mut Out, obj: &'a Map<String, Value>, prefix: &str, key: &str) -> Option<&'a Value> {
        match obj.get(key) {
            None | Some(Value::Null) => {
                let path = if prefix.is_empty() { key.to_owned() } else { format!("{prefix}.{key}") };
                out.push(FieldViolation::new(path, ViolationCode::Required, "required"));
                None
            }
            Some(v) => Some(v),
        }
    }

    fn string(out: &mut Out, path: &str, v: &Value) {
        if !v.is_string() {
            wrong(out, path, "string", v);
        }
    }

    fn enum_str(out: &mut Out, path: &str, v: &Value, allowed: &[&str]) {
        match v.as_str() {
            Some(s) if allowed.contains(&s) => {}
            Some(_) => out.push(FieldViolation::new(
                path,
                ViolationCode::InvalidEnum,
                format!("one of {}", allowed.join(", ")),
            )),
            None => wrong(out, path, "string", v),
        }
    }

    fn uint(out: &mut Out, path: &str, v: &Value, max: u64) {
        match super::integral_u64(v) {
            Some(n) if n <= max => {}
            Some(_) => out.push(FieldViolation::new(path, ViolationCode::OutOfRange, format!("at most {max}"))),
            None if v.is_number() => {
                out.push(FieldViolation::new(path, ViolationCode::OutOfRange, "a non-negative integer"))
            }
            None => wrong(out, path, "integer", v),
        }
    }

    fn optional<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
        obj.get(key).filter(|v| !v.is_null())
    }

    pub(super) fn submission(v: &Value, out: &mut Out) {
        let Some(obj) = v.as_object() else {
            wrong(out, "", "object", v);
            return;
        };
        if let Some(t) = required(out, obj, "", "text") {
            string(out, "text", t);
        }
        if let Some(s) = required(out, obj, "", "severity") {
            enum_str(out, "severity", s, &["low", "medium", "high"]);
        }
        for key in ["url", "userAgent", "componentTarget"] {
            if let Some(s) = optional(obj, key) {
                string(out, key, s);
            }
        }
        if let Some(vp) = optional(obj, "viewport") {
            match vp.as_object() {
                Some(o) => {
                    for k in ["w", "h"] {
                        if let Some(x) = required(out, o, "viewport", k) {
                            uint(out, &format!("viewport.{k}"), x, u64::from(u32::MAX));
                        }
                    }
                    if let Some(x) = required(out, o, "viewport", "dpr") {
                        if !x.is_number() {
                            wrong(out, "viewport.dpr", "number", x);
                        }
                    }
                    unknown(out, "viewport", o, &["w", "h", "dpr"]);
                }
                None => wrong(out, "viewport", "object", vp),
            }
        }
        if let Some(logs) = optional(obj, "consoleLogs") {
            match logs.as_array() {
                Some(a) => {
                    for (i, e) in a.iter().enumerate() {
                        let p = format!("consoleLogs[{i}]");
                        let Some(o) = e.as_object() else {
                            wrong(out, &p, "object", e);
                            continue;
                        };
                        if let Some(x) = required(out, o, &p, "level") {
                            enum_str(
                                out,
                                &format!("{p}.level"),
                                x,
                                &["log", "info", "warn", "error", "debug", "trace"],
                            );
                        }
                        if let Some(x) = required(out, o, &p, "message") {
                            string(out, &format!("{p}.message"), x);
                        }
                        if let Some(x) = required(out, o, &p, "ts") {
                            if !x.is_number() {
                                wrong(out, &format!("{p}.ts"), "number", x);
                            }
                        }
                        unknown(out, &p, o, &["level", "message", "ts"]);
                    }
                }
                None => wrong(out, "consoleLogs", "array", logs),
            }
        }
        if let Some(atts) = optional(obj, "attachments") {
            match atts.as_array() {
                Some(a) => {
                    for (i, e) in a.iter().enumerate() {
                        let p = format!("attachments[{i}]");
                        let Some(o) = e.as_object() else {
                            wrong(out, &p, "object", e);
                            continue;
                        };
                        if let Some(x) = required(out, o, &p, "key") {
                            string(out, &format!("{p}.key"), x);
                        }
                        if let Some(x) = required(out, o, &p, "kind") {
                            enum_str(out, &format!("{p}.kind"), x, &["screenshot", "annotated", "attachment"]);
                        }
                        if let Some(x) = required(out, o, &p, "contentType") {
                            string(out, &format!("{p}.contentType"), x);
                        }
                        if let Some(x) = required(out, o, &p, "byteSize") {
                            uint(out, &format!("{p}.byteSize"), x, u64::MAX);
                        }
                        for k in ["width", "height"] {
                            if let Some(x) = optional(o, k) {
                                uint(out, &format!("{p}.{k}"), x, u64::from(u32::MAX));
                            }
                        }
                        unknown(out, &p, o, &["key", "kind", "contentType", "byteSize", "width", "height"]);
                    }
                }
                None => wrong(out, "attachments", "array", atts),
            }
        }
        for key in ["metadata", "identity"] {
            if let Some(m) = optional(obj, key) {
                if !m.is_object() {
                    wrong(out, key, "object", m);
                }
            }
        }
        unknown(out, "", obj, FIELD_ORDER);
    }

    /// Limit checks that can run on a value whose shape is broken elsewhere.
    pub(super) fn partial_limits(v: &Value) -> Out {
        let mut out = Vec::new();
        let Some(obj) = v.as_object() else { return out };
        let s = |k: &str| obj.get(k).and_then(Value::as_str);
        if let Some(t) = s("text") {
            if t.is_empty() {
                out.push(FieldViolation::new("text", ViolationCode::TooShort, "at least 1 character"));
            } else if t.trim().is_empty() {
                out.push(FieldViolation::new("text", ViolationCode::Blank, "only whitespace"));
            }
            check_len(&mut out, "text", t, TEXT_MAX_CHARS);
        }
        if let Some(u) = s("url") {
            check_len(&mut out, "url", u, URL_MAX_CHARS);
        }
        if let Some(u) = s("userAgent") {
            check_len(&mut out, "userAgent", u, USER_AGENT_MAX_CHARS);
        }
        if let Some(u) = s("componentTarget") {
            check_len(&mut out, "componentTarget", u, COMPONENT_TARGET_MAX_CHARS);
        }
        if let Some(a) = obj.get("consoleLogs").and_then(Value::as_array) {
            if a.len() > CONSOLE_MAX_ENTRIES {
                out.push(FieldViolation::new("consoleLogs", ViolationCode::TooMany, "too many entries"));
            }
            for (i, e) in a.iter().enumerate() {
                if let Some(m) = e.get("message").and_then(Value::as_str) {
                    check_len(&mut out, &format!("consoleLogs[{i}].message"), m, CONSOLE_MESSAGE_MAX_CHARS);
                }
            }
        }
        if let Some(a) = obj.get("attachments").and_then(Value::as_array) {
            if a.len() > ATTACHMENTS_MAX {
                out.push(FieldViolation::new("attachments", ViolationCode::TooMany, "too many references"));
            }
        }
        if let Some(m) = obj.get("metadata").filter(|m| m.is_object()) {
            if serialized_len(m) > METADATA_MAX_BYTES {
                out.push(FieldViolation::new("metadata", ViolationCode::TooLarge, "too large"));
            }
        }
        out
    }
}

/// Fuzzing entry point (used by `fuzz/fuzz_targets/ingest_json.rs`): parses
/// arbitrary bytes and panics if an invariant breaks: an accepted submission
/// passes [`FeedbackSubmission::validate`] and survives a JSON round trip; a
/// refusal lists at least one violation.
#[doc(hidden)]
pub fn fuzz_check(data: &[u8]) {
    match FeedbackSubmission::from_json(data) {
        Ok(s) => {
            assert!(s.validate().is_empty(), "accepted an invalid submission");
            let again = serde_json::to_vec(&s).ok().and_then(|b| FeedbackSubmission::from_json(&b).ok());
            assert_eq!(again.as_ref(), Some(&s), "round trip changed the submission");
        }
        Err(e) => assert!(!e.violations.is_empty(), "refusal without a violation"),
    }
}
