//! Secrets at rest: writes an envelope-sealed secret through a store's ports the
//! way the engine stores secrets (an event carrying the sealed form and the
//! wrapped org key, and a read-model row), so an adapter test can then search
//! the backend's raw storage for the plaintext.

use std::sync::Arc;

use bytes::Bytes;
use userz_core::event::{ExpectedVersion, NewEvent, StreamId};
use userz_core::ids::{CorrelationId, EventId, OrgId};
use userz_core::ports::{EventStore, KeyProvider, ReadModelCommit, ReadModelOp, ReadModelStore};
use userz_core::Timestamp;
use userz_security::envelope::{Envelope, SecretKind, StaticKeyProvider};

/// What was written.
#[derive(Debug, Clone)]
pub struct Written {
    /// The secret's plaintext, which must appear nowhere at rest.
    pub plaintext: String,
    /// A marker stored in clear beside it (the secret id), which must appear:
    /// it proves the search looked at the right data.
    pub marker: String,
}

/// Seals a fresh secret and writes it as an event and as a read-model row.
///
/// # Panics
/// When sealing, opening or writing fails.
pub async fn write_sealed_secret(events: &dyn EventStore, models: &dyn ReadModelStore) -> Written {
    let provider: Arc<dyn KeyProvider> =
        Arc::new(StaticKeyProvider::generate("master-1").unwrap_or_else(|e| panic!("provider: {e}")));
    let envelope = Envelope::new(provider);
    let org = OrgId::new();
    let (key, wrapped) =
        envelope.generate_org_key(org, 1, Timestamp::from_millis(0)).await.unwrap_or_else(|e| panic!("org key: {e}"));
    let plaintext = format!("ghp_PLAINTEXTsecret{}", uuid::Uuid::new_v4().simple());
    let marker = format!("secretid{}", uuid::Uuid::new_v4().simple());
    let sealed = key.seal(SecretKind::RepoToken, &marker, plaintext.as_bytes()).unwrap_or_else(|e| panic!("seal: {e}"));
    let opened = key.open(&sealed, SecretKind::RepoToken, &marker).unwrap_or_else(|e| panic!("open: {e}"));
    assert_eq!(opened.expose_secret(), plaintext.as_bytes(), "the sealed form opens to the plaintext");
    let payload = serde_json::json!({ "type": "SecretSet", "org_key": wrapped, "secret": sealed });
    let body = Bytes::from(serde_json::to_vec(&payload).unwrap_or_else(|e| panic!("{e}")));
    let stream = StreamId::new(format!("secret-{marker}")).unwrap_or_else(|e| panic!("{e}"));
    events
        .append(
            &stream,
            ExpectedVersion::NoStream,
            vec![NewEvent {
                id: EventId::new(),
                event_type: "SecretSet".into(),
                schema_version: 1,
                payload: body.clone(),
                causation_id: None,
                correlation_id: CorrelationId::new(),
            }],
        )
        .await
        .unwrap_or_else(|e| panic!("append: {e}"));
    models
        .commit(ReadModelCommit {
            checkpoint: None,
            ops: vec![ReadModelOp::Put { table: "secrets".into(), key: marker.clone(), value: body }],
        })
        .await
        .unwrap_or_else(|e| panic!("commit: {e}"));
    Written { plaintext, marker }
}

/// Whether `haystack` contains `needle`.
pub fn contains(haystack: &[u8], needle: &str) -> bool {
    let n = needle.as_bytes();
    !n.is_empty() && haystack.windows(n.len()).any(|w| w == n)
}
