//! Names of streams, subjects and buckets, and the encoding of user names into
//! subject tokens and KV keys.

use userz_core::StreamId;

/// Every name derived from one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    pub(crate) prefix: String,
    pub(crate) events_stream: String,
    pub(crate) jobs_stream: String,
    pub(crate) jobs_bucket: String,
    pub(crate) cache_bucket: String,
    pub(crate) read_model_bucket: String,
}

impl Names {
    pub(crate) fn new(prefix: &str) -> Self {
        let up = prefix.to_ascii_uppercase();
        Self {
            prefix: prefix.to_string(),
            events_stream: format!("{up}_EVENTS"),
            jobs_stream: format!("{up}_JOBS"),
            jobs_bucket: format!("{prefix}_jobids"),
            cache_bucket: format!("{prefix}_cache"),
            read_model_bucket: format!("{prefix}_rm"),
        }
    }

    /// `<prefix>.ev.<token>`: one subject per event stream.
    pub(crate) fn event_subject(&self, stream: &StreamId) -> String {
        format!("{}.ev.{}", self.prefix, encode_token(stream.as_str()))
    }

    /// Every event subject.
    pub(crate) fn all_events(&self) -> String {
        format!("{}.ev.>", self.prefix)
    }

    /// `<prefix>.evid.<event id>`: the uniqueness marker of one event id.
    pub(crate) fn id_subject(&self, id: &userz_core::ids::EventId) -> String {
        format!("{}.evid.{}", self.prefix, id.as_uuid().simple())
    }

    pub(crate) fn all_ids(&self) -> String {
        format!("{}.evid.>", self.prefix)
    }

    /// `<prefix>.job.<token>`: one subject per queue.
    pub(crate) fn job_subject(&self, queue: &str) -> String {
        format!("{}.job.{}", self.prefix, encode_token(queue))
    }

    pub(crate) fn all_jobs(&self) -> String {
        format!("{}.job.>", self.prefix)
    }

    /// Durable consumer name of a queue (consumer names allow no `.`, `*`, `>`).
    pub(crate) fn queue_consumer(&self, queue: &str) -> String {
        format!("q_{}", encode_token(queue))
    }
}

/// Encodes any string into one subject token / consumer name / KV key token.
///
/// `[A-Za-z0-9-]` pass through; `_` becomes `__`; every other byte becomes `_`
/// and two lower-case hex digits (`.` → `_2e`, `:` → `_3a`). The mapping is
/// injective (decoding is unambiguous), so two stream ids never share a subject,
/// and the result never holds `.`, `*`, `>` or whitespace.
pub(crate) fn encode_token(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' => out.push(char::from(b)),
            b'_' => out.push_str("__"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push('_');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0x0f)]));
            }
        }
    }
    if out.is_empty() {
        // An empty token is not a valid subject token; `_` alone never comes out
        // of a non-empty input, so it cannot collide.
        out.push('_');
    }
    out
}

/// The inverse of [`encode_token`]; `None` for a string it never produces.
pub(crate) fn decode_token(t: &str) -> Option<String> {
    if t == "_" {
        return Some(String::new());
    }
    let b = t.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'_' {
            out.push(b[i]);
            i += 1;
        } else if b.get(i + 1) == Some(&b'_') {
            out.push(b'_');
            i += 2;
        } else {
            let hex = t.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::{decode_token, encode_token};

    #[test]
    fn tokens_decode_back() {
        for s in ["", "a", "a.b", "a_b", "__", "é/ü key", "x:y-z_2e", "_"] {
            assert_eq!(decode_token(&encode_token(s)).as_deref(), Some(s), "{s}");
        }
    }

    #[test]
    fn stream_ids_map_to_distinct_safe_tokens() {
        let names = ["a.b", "a_2eb", "a:b", "a_b", "a__b", "feedback-0190", "x.y:z_w", ""];
        let tokens: Vec<_> = names.iter().map(|n| encode_token(n)).collect();
        for t in &tokens {
            assert!(!t.is_empty());
            assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'), "{t}");
        }
        let distinct: std::collections::HashSet<_> = tokens.iter().collect();
        assert_eq!(distinct.len(), tokens.len(), "{tokens:?}");
        assert_eq!(encode_token("a.b"), "a_2eb");
        assert_eq!(encode_token("a_2eb"), "a__2eb");
    }
}
