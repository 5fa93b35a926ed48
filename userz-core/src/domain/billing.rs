//! An organization's billing events, as received from the payment provider.
//!
//! One stream per organization: `billing-<org id>`. The engine does not act on
//! billing (no plan enforcement lives here yet); this aggregate keeps a
//! verified, de-duplicated record of what the provider reported (for example
//! Stripe's `invoice.paid` or `customer.subscription.deleted`), so the
//! dashboard and later plan logic read facts rather than raw webhooks.
//!
//! A provider event id is recorded once: recording it again changes nothing
//! (redeliveries are normal for payment providers).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::decider::{Aggregate, Decider, Rejection};
use crate::event_names;
use crate::ids::OrgId;
use crate::time::Timestamp;

/// How many recent provider event ids the state remembers for de-duplication
/// (older redeliveries are still caught by the command id the caller derives
/// from the provider event id).
pub const RECENT_EVENT_IDS: usize = 256;

/// Longest accepted provider event id or type (bytes).
pub const MAX_FIELD_BYTES: usize = 255;

/// One billing fact reported by a payment provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingRecord {
    /// Provider name (`stripe`).
    pub provider: String,
    /// The provider's event id (`evt_…`).
    pub event_id: String,
    /// The provider's event type (`invoice.paid`, …).
    pub event_type: String,
    /// The id of the object the event is about (`in_…`, `sub_…`), when given.
    pub object_id: Option<String>,
    /// Whether the provider marked it as live (not test) data.
    pub livemode: bool,
    /// When the provider created the event.
    pub occurred_at: Timestamp,
    /// When we recorded it.
    pub recorded_at: Timestamp,
}

/// Commands on an organization's billing stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BillingCommand {
    /// Records one provider event for `org`.
    Record {
        /// The organization.
        org: OrgId,
        /// The fact.
        record: BillingRecord,
    },
}

/// Events of an organization's billing stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum BillingEvent {
    /// A provider event was recorded.
    BillingEventRecorded {
        /// The organization.
        org: OrgId,
        /// The fact.
        record: BillingRecord,
    },
}
event_names!(BillingEvent { BillingEventRecorded });

/// State of an organization's billing stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BillingState {
    /// The organization, once anything was recorded.
    pub org: Option<OrgId>,
    /// How many events were recorded.
    pub recorded: u64,
    /// The latest recorded fact.
    pub last: Option<BillingRecord>,
    /// The most recent provider event ids (`provider:event_id`), oldest first.
    pub recent: VecDeque<String>,
}

/// The billing decider.
#[derive(Debug, Clone, Copy)]
pub struct BillingDecider;

fn check_field(field: &'static str, value: &str) -> Result<(), Rejection> {
    if value.is_empty() || value.len() > MAX_FIELD_BYTES || value.chars().any(char::is_control) {
        return Err(Rejection::input(field, format!("1-{MAX_FIELD_BYTES} bytes without control characters")));
    }
    Ok(())
}

impl Decider for BillingDecider {
    type Command = BillingCommand;
    type Event = BillingEvent;
    type State = BillingState;

    fn initial_state() -> BillingState {
        BillingState::default()
    }

    fn decide(command: &BillingCommand, state: &BillingState) -> Result<Vec<BillingEvent>, Rejection> {
        match command {
            BillingCommand::Record { org, record } => {
                if state.org.is_some_and(|o| o != *org) {
                    return Err(Rejection::Invariant {
                        rule: "org_mismatch",
                        message: "a billing stream belongs to one organization".into(),
                    });
                }
                check_field("provider", &record.provider)?;
                check_field("event_id", &record.event_id)?;
                check_field("event_type", &record.event_type)?;
                if let Some(o) = &record.object_id {
                    check_field("object_id", o)?;
                }
                let id = format!("{}:{}", record.provider, record.event_id);
                if state.recent.contains(&id) {
                    return Ok(vec![]);
                }
                Ok(vec![BillingEvent::BillingEventRecorded { org: *org, record: record.clone() }])
            }
        }
    }

    fn evolve(mut state: BillingState, event: &BillingEvent) -> BillingState {
        match event {
            BillingEvent::BillingEventRecorded { org, record } => {
                state.org = Some(*org);
                state.recorded += 1;
                state.recent.push_back(format!("{}:{}", record.provider, record.event_id));
                while state.recent.len() > RECENT_EVENT_IDS {
                    state.recent.pop_front();
                }
                state.last = Some(record.clone());
            }
        }
        state
    }
}

impl Aggregate for BillingDecider {
    const CATEGORY: &'static str = "billing";
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn record(id: &str) -> BillingRecord {
        BillingRecord {
            provider: "stripe".into(),
            event_id: id.into(),
            event_type: "invoice.paid".into(),
            object_id: Some("in_1".into()),
            livemode: false,
            occurred_at: Timestamp::from_millis(1_000),
            recorded_at: Timestamp::from_millis(2_000),
        }
    }

    #[test]
    fn records_once_per_provider_event_id() {
        let org = OrgId::new();
        let cmd = BillingCommand::Record { org, record: record("evt_1") };
        let events = BillingDecider::decide(&cmd, &BillingDecider::initial_state()).unwrap();
        assert_eq!(events.len(), 1);
        let state = BillingDecider::replay(&events);
        assert_eq!((state.org, state.recorded), (Some(org), 1));
        assert!(BillingDecider::decide(&cmd, &state).unwrap().is_empty(), "a redelivery records nothing");
        let other = BillingCommand::Record { org, record: record("evt_2") };
        assert_eq!(BillingDecider::decide(&other, &state).unwrap().len(), 1);
    }

    #[test]
    fn refuses_another_org_and_bad_fields() {
        let org = OrgId::new();
        let state = BillingDecider::replay(&[BillingEvent::BillingEventRecorded { org, record: record("evt_1") }]);
        let foreign = BillingCommand::Record { org: OrgId::new(), record: record("evt_2") };
        assert_eq!(BillingDecider::decide(&foreign, &state).unwrap_err().rule(), "org_mismatch");
        let bad = BillingCommand::Record { org, record: record("") };
        assert_eq!(BillingDecider::decide(&bad, &state).unwrap_err().rule(), "invalid_input");
    }

    #[test]
    fn remembers_a_bounded_window_of_ids() {
        let org = OrgId::new();
        let events: Vec<_> = (0..RECENT_EVENT_IDS + 10)
            .map(|i| BillingEvent::BillingEventRecorded { org, record: record(&format!("evt_{i}")) })
            .collect();
        let state = BillingDecider::replay(&events);
        assert_eq!(state.recent.len(), RECENT_EVENT_IDS);
        assert_eq!(state.recorded, (RECENT_EVENT_IDS + 10) as u64);
    }
}
