//! Request spans carry the org, App, feedback and run ids once known.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use parking_lot::Mutex;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

type Seen = Arc<Mutex<Vec<(String, String)>>>;

struct Capture(Seen);
struct Visitor(Seen);

impl Visit for Visitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.lock().push((field.name().to_string(), format!("{value:?}")));
    }
}

impl<S: Subscriber> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        if attrs.metadata().name() == "userz_http" {
            attrs.record(&mut Visitor(self.0.clone()));
        }
    }

    fn on_record(&self, _id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        values.record(&mut Visitor(self.0.clone()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_record_org_app_and_feedback_ids() {
    let seen: Seen = Arc::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Capture(seen.clone()))).unwrap();
    let h = common::start().await;
    let t = h.tenant("Acme").await;
    let r =
        h.submit(&t, &[("origin", common::ORIGIN)], &serde_json::json!({"text": "traced", "severity": "low"})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    let has = |k: &str, v: &str| seen.lock().iter().any(|(f, x)| f == k && x == v);
    assert!(has("path", "/v1/feedback"), "{:?}", seen.lock());
    assert!(has("org", &t.org.to_string()), "{:?}", seen.lock());
    assert!(has("app", &t.app.to_string()), "{:?}", seen.lock());
    assert!(has("feedback", &id), "{:?}", seen.lock());
    let r = h.get(&format!("/v1/feedback/{id}"), &t.key).await;
    assert_eq!(r.status, 200);
    assert!(has("path", "/v1/feedback/{id}"), "{:?}", seen.lock());
}
