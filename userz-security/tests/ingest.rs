//! G1: ingest limits are enforced before any work, every violation reported
//! with its field path; an oversize body is cut off while streaming.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::json;
use userz_security::body_limit::{read_to_bytes, BodyLimitError, LimitedBody, DEFAULT_BODY_LIMIT};
use userz_security::ingest::{FeedbackSubmission, FieldViolation, Severity, ViolationCode};

fn codes(v: &[FieldViolation]) -> Vec<(String, ViolationCode)> {
    v.iter().map(|x| (x.path.clone(), x.code)).collect()
}

fn parse(v: serde_json::Value) -> Result<FeedbackSubmission, Vec<(String, ViolationCode)>> {
    let bytes = serde_json::to_vec(&v).unwrap_or_default();
    FeedbackSubmission::from_json(&bytes).map_err(|e| codes(&e.violations))
}

fn full() -> serde_json::Value {
    json!({
        "text": "The save button does nothing",
        "severity": "medium",
        "url": "https://app.example/settings",
        "userAgent": "Mozilla/5.0",
        "viewport": {"w": 1280, "h": 800, "dpr": 2.0},
        "consoleLogs": [{"level": "error", "message": "TypeError: x is undefined", "ts": 1700000000000u64}],
        "attachments": [{"key": "k/1.png", "kind": "screenshot", "contentType": "image/png", "byteSize": 1234, "width": 100, "height": 50}],
        "componentTarget": "#save",
        "metadata": {"plan": "pro"},
        "identity": {"email": "a@example.com"}
    })
}

#[test]
fn a_complete_valid_submission_parses() {
    let s = parse(full());
    let s = match s {
        Ok(s) => s,
        Err(e) => panic!("{e:?}"),
    };
    assert_eq!(s.severity, Severity::Medium);
    assert_eq!(s.console_logs.len(), 1);
    assert_eq!(s.attachments[0].byte_size, 1234);
    assert!(s.validate().is_empty());
}

#[test]
fn minimal_submission_parses() {
    assert!(parse(json!({"text": "x", "severity": "low"})).is_ok());
}

#[test]
fn text_limits_count_characters_not_bytes() {
    // 8192 three-byte characters: 24 KiB but within the limit.
    assert!(parse(json!({"text": "€".repeat(8192), "severity": "low"})).is_ok());
    let e = parse(json!({"text": "€".repeat(8193), "severity": "low"}));
    assert_eq!(e.err(), Some(vec![("text".into(), ViolationCode::TooLong)]));
    let e = parse(json!({"text": "", "severity": "low"}));
    assert_eq!(e.err(), Some(vec![("text".into(), ViolationCode::TooShort)]));
    let e = parse(json!({"text": "  \n", "severity": "low"}));
    assert_eq!(e.err(), Some(vec![("text".into(), ViolationCode::Blank)]));
}

#[test]
fn every_violation_is_reported_with_its_path() {
    let logs: Vec<_> = (0..501)
        .map(|i| json!({"level": "log", "message": if i == 3 { "m".repeat(1001) } else { "ok".into() }, "ts": 1}))
        .collect();
    let atts: Vec<_> =
        (0..11).map(|_| json!({"key": "k", "kind": "screenshot", "contentType": "image/png", "byteSize": 1})).collect();
    let big: serde_json::Map<String, serde_json::Value> =
        (0..100).map(|i| (format!("k{i}"), json!("v".repeat(40)))).collect();
    let e = parse(json!({
        "text": "t".repeat(9000),
        "severity": "high",
        "url": format!("https://a.example/{}", "p".repeat(2048)),
        "userAgent": "u".repeat(513),
        "consoleLogs": logs,
        "attachments": atts,
        "metadata": big,
    }))
    .err()
    .unwrap_or_default();
    assert_eq!(
        e,
        vec![
            ("text".into(), ViolationCode::TooLong),
            ("url".into(), ViolationCode::TooLong),
            ("userAgent".into(), ViolationCode::TooLong),
            ("consoleLogs".into(), ViolationCode::TooMany),
            ("consoleLogs[3].message".into(), ViolationCode::TooLong),
            ("attachments".into(), ViolationCode::TooMany),
            ("metadata".into(), ViolationCode::TooLarge),
        ]
    );
}

#[test]
fn shape_errors_carry_paths_and_codes() {
    let e = parse(json!({
        "severity": "urgent",
        "viewport": {"w": "wide", "h": 10},
        "consoleLogs": [{"level": "shout", "message": 5, "ts": 1, "extra": true}],
        "attachments": [{"key": "k", "kind": "video", "contentType": "x", "byteSize": -1}],
        "metadata": [1, 2],
        "surprise": 1
    }))
    .err()
    .unwrap_or_default();
    let expected: Vec<(String, ViolationCode)> = vec![
        ("surprise".into(), ViolationCode::UnknownField),
        ("text".into(), ViolationCode::Required),
        ("severity".into(), ViolationCode::InvalidEnum),
        ("viewport.w".into(), ViolationCode::InvalidType),
        ("viewport.dpr".into(), ViolationCode::Required),
        ("consoleLogs[0].level".into(), ViolationCode::InvalidEnum),
        ("consoleLogs[0].message".into(), ViolationCode::InvalidType),
        ("consoleLogs[0].extra".into(), ViolationCode::UnknownField),
        ("attachments[0].kind".into(), ViolationCode::InvalidEnum),
        ("attachments[0].byteSize".into(), ViolationCode::OutOfRange),
        ("metadata".into(), ViolationCode::InvalidType),
    ];
    let mut got = e;
    got.sort();
    let mut exp = expected;
    exp.sort();
    assert_eq!(got, exp);
}

#[test]
fn invalid_json_and_non_object_bodies() {
    let e = FeedbackSubmission::from_json(b"{not json").err().map(|e| codes(&e.violations));
    assert_eq!(e, Some(vec![("".into(), ViolationCode::InvalidJson)]));
    let e = FeedbackSubmission::from_json(b"[1]").err().map(|e| codes(&e.violations));
    assert_eq!(e, Some(vec![("".into(), ViolationCode::InvalidType)]));
}

#[test]
fn attachment_and_viewport_ranges() {
    let mut v = full();
    v["attachments"][0]["byteSize"] = json!(16 * 1024 * 1024);
    v["attachments"][0]["width"] = json!(0);
    v["viewport"]["dpr"] = json!(0);
    v["consoleLogs"][0]["ts"] = json!(-5);
    v["url"] = json!("javascript:alert(1)");
    assert_eq!(
        parse(v).err(),
        Some(vec![
            ("url".into(), ViolationCode::InvalidFormat),
            ("viewport.dpr".into(), ViolationCode::OutOfRange),
            ("consoleLogs[0].ts".into(), ViolationCode::OutOfRange),
            ("attachments[0].byteSize".into(), ViolationCode::TooLarge),
            ("attachments[0].width".into(), ViolationCode::OutOfRange),
        ])
    );
}

#[test]
fn invalid_body_converts_to_a_rejection() {
    let e = FeedbackSubmission::from_json(b"{}").err();
    let err: Option<userz_core::Error> = e.map(Into::into);
    assert!(matches!(err, Some(userz_core::Error::Rejected { rule: "invalid_body", .. })));
}

/// A body of `frames` chunks of `chunk` bytes that counts how often it is polled.
struct CountingBody {
    left: usize,
    chunk: usize,
    polls: Arc<AtomicUsize>,
    hint: Option<u64>,
}

impl Body for CountingBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        if self.left == 0 {
            return Poll::Ready(None);
        }
        self.left -= 1;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'a'; self.chunk])))))
    }

    fn size_hint(&self) -> SizeHint {
        match self.hint {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

fn counting(frames: usize, chunk: usize, hint: Option<u64>) -> (CountingBody, Arc<AtomicUsize>) {
    let polls = Arc::new(AtomicUsize::new(0));
    (CountingBody { left: frames, chunk, polls: polls.clone(), hint }, polls)
}

#[tokio::test]
async fn limiter_stops_pulling_frames_after_the_cap() {
    // 100 frames of 1 KiB against a 10 KiB cap: the 11th frame trips it.
    let (body, polls) = counting(100, 1024, None);
    let mut limited = LimitedBody::new(body, 10 * 1024);
    let mut frames = 0;
    let mut error = None;
    while let Some(f) = limited.frame().await {
        match f {
            Ok(_) => frames += 1,
            Err(e) => {
                error = Some(e);
                // Keep polling: the limiter must not touch the inner body again.
            }
        }
    }
    assert_eq!(frames, 10);
    assert!(matches!(error, Some(BodyLimitError::LengthLimitExceeded { limit: 10240 })));
    assert_eq!(polls.load(Ordering::SeqCst), 11);
}

#[tokio::test]
async fn declared_oversize_length_fails_without_reading() {
    let (body, polls) = counting(100, 1024, Some(100 * 1024));
    let r = read_to_bytes(body, 10 * 1024).await;
    assert!(r.as_ref().is_err_and(BodyLimitError::is_length_limit));
    assert_eq!(polls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn body_at_the_cap_is_read_whole() {
    let (body, _) = counting(8, 1024, None);
    let r = read_to_bytes(body, 8 * 1024).await;
    assert_eq!(r.map(|b| b.len()).ok(), Some(8 * 1024));
    assert_eq!(DEFAULT_BODY_LIMIT, 8 * 1024 * 1024);
}

#[tokio::test]
async fn default_cap_cuts_a_nine_mib_stream() {
    let (body, polls) = counting(9 * 16, 64 * 1024, None);
    let r = read_to_bytes(body, DEFAULT_BODY_LIMIT).await;
    assert!(r.is_err_and(|e| e.is_length_limit()));
    // 128 frames of 64 KiB fill the cap; the 129th trips it.
    assert_eq!(polls.load(Ordering::SeqCst), 129);
}

proptest! {
    /// Parsing never panics and a success always satisfies the limits.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(s) = FeedbackSubmission::from_json(&bytes) {
            prop_assert!(s.validate().is_empty());
        }
    }

    /// Text of any length is accepted exactly when it has 1..=8192 chars and is not blank.
    #[test]
    fn text_length_boundary(n in 0usize..9000, c in prop::sample::select(vec!['a', 'é', '€', '😀'])) {
        let text: String = std::iter::repeat_n(c, n).collect();
        let ok = parse(json!({"text": text, "severity": "low"})).is_ok();
        prop_assert_eq!(ok, (1..=8192).contains(&n));
    }
}
