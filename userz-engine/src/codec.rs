//! Turning domain events into stored events and back (with upcasting).

use bytes::Bytes;

use userz_core::decider::{Aggregate, EventName};
use userz_core::domain::{
    app::AppDecider, blob::BlobDecider, feedback::FeedbackDecider, org::OrgDecider, pr::PrDecider, repo::RepoDecider,
    run::RunDecider, secrets::SecretsDecider, timer::TimerDecider,
};
use userz_core::domain::{
    app::AppEvent, blob::BlobEvent, feedback::FeedbackEvent, org::OrgEvent, pr::PrEvent, repo::RepoEvent,
    run::RunEvent, secrets::SecretsEvent, timer::TimerEvent,
};
use userz_core::error::{Error, Result};
use userz_core::event::{NewEvent, RecordedEvent};
use userz_core::ids::{CorrelationId, EventId};

/// Encodes one domain event.
pub fn encode<A: Aggregate>(
    event: &A::Event,
    causation: Option<uuid::Uuid>,
    correlation: CorrelationId,
) -> Result<NewEvent>
where
    A::Event: serde::Serialize + serde::de::DeserializeOwned + EventName,
    A::State: serde::Serialize + serde::de::DeserializeOwned + Clone,
{
    Ok(NewEvent {
        id: EventId::new(),
        event_type: event.event_name().to_string(),
        schema_version: A::SCHEMA_VERSION,
        payload: Bytes::from(serde_json::to_vec(event)?),
        causation_id: causation,
        correlation_id: correlation,
    })
}

/// Decodes a stored event of aggregate `A`, upcasting old schema versions.
pub fn decode<A: Aggregate>(recorded: &RecordedEvent) -> Result<A::Event>
where
    A::Event: serde::Serialize + serde::de::DeserializeOwned + EventName,
    A::State: serde::Serialize + serde::de::DeserializeOwned + Clone,
{
    if recorded.schema_version == A::SCHEMA_VERSION {
        return serde_json::from_slice(&recorded.payload).map_err(|e| {
            Error::Corrupt(format!("{} v{} at {}: {e}", recorded.event_type, recorded.version, recorded.stream))
        });
    }
    let value: serde_json::Value = serde_json::from_slice(&recorded.payload)?;
    let value = A::upcast(&recorded.event_type, recorded.schema_version, value)?;
    serde_json::from_value(value).map_err(|e| {
        Error::Corrupt(format!(
            "{} v{} at {} after upcast: {e}",
            recorded.event_type, recorded.version, recorded.stream
        ))
    })
}

/// Any domain event, decoded by stream category.
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum AnyEvent {
    Org(OrgEvent),
    App(AppEvent),
    Repo(RepoEvent),
    Feedback(FeedbackEvent),
    Run(RunEvent),
    Pr(PrEvent),
    Timer(TimerEvent),
    Blob(BlobEvent),
    Secrets(SecretsEvent),
}

impl AnyEvent {
    /// Decodes by stream category; `Ok(None)` for categories the engine does not own.
    pub fn decode(recorded: &RecordedEvent) -> Result<Option<AnyEvent>> {
        Ok(Some(match recorded.stream.category() {
            OrgDecider::CATEGORY => AnyEvent::Org(decode::<OrgDecider>(recorded)?),
            AppDecider::CATEGORY => AnyEvent::App(decode::<AppDecider>(recorded)?),
            RepoDecider::CATEGORY => AnyEvent::Repo(decode::<RepoDecider>(recorded)?),
            FeedbackDecider::CATEGORY => AnyEvent::Feedback(decode::<FeedbackDecider>(recorded)?),
            RunDecider::CATEGORY => AnyEvent::Run(decode::<RunDecider>(recorded)?),
            PrDecider::CATEGORY => AnyEvent::Pr(decode::<PrDecider>(recorded)?),
            TimerDecider::CATEGORY => AnyEvent::Timer(decode::<TimerDecider>(recorded)?),
            BlobDecider::CATEGORY => AnyEvent::Blob(decode::<BlobDecider>(recorded)?),
            SecretsDecider::CATEGORY => AnyEvent::Secrets(decode::<SecretsDecider>(recorded)?),
            _ => return Ok(None),
        }))
    }
}
