//! The decider pattern: `decide`, `evolve`, `initial_state`.
//!
//! Every aggregate is a [`Decider`]: a pure function from a command and the current
//! state to new events (or a typed [`Rejection`]), and a pure fold from events to
//! state. Replaying a stream is `events.fold(initial_state(), evolve)`.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Result;

/// Why a decider refused a command. [`Rejection::rule`] is the stable code of the
/// rule that tripped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The aggregate does not exist yet.
    #[error("{entity} does not exist")]
    NotFound {
        /// Aggregate kind.
        entity: &'static str,
    },
    /// The aggregate exists already.
    #[error("{entity} already exists")]
    AlreadyExists {
        /// Aggregate kind.
        entity: &'static str,
    },
    /// The command is not allowed in the aggregate's current status.
    #[error("cannot {command} while {status}")]
    InvalidTransition {
        /// The command's name.
        command: &'static str,
        /// The current status.
        status: String,
    },
    /// A field of the command broke a rule.
    #[error("{field}: {reason}")]
    InvalidInput {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The acting member's role does not allow the command.
    #[error("role {role} may not {command}")]
    NotPermitted {
        /// The actor's role (or `none`).
        role: String,
        /// The command.
        command: &'static str,
    },
    /// A named domain invariant would break.
    #[error("{rule}: {message}")]
    Invariant {
        /// Stable rule code.
        rule: &'static str,
        /// Explanation.
        message: String,
    },
}

impl Rejection {
    /// The stable code of the rule that refused.
    pub fn rule(&self) -> &'static str {
        match self {
            Rejection::NotFound { .. } => "not_found",
            Rejection::AlreadyExists { .. } => "already_exists",
            Rejection::InvalidTransition { .. } => "invalid_transition",
            Rejection::InvalidInput { .. } => "invalid_input",
            Rejection::NotPermitted { .. } => "not_permitted",
            Rejection::Invariant { rule, .. } => rule,
        }
    }

    pub(crate) fn transition(command: &'static str, status: impl fmt::Display) -> Self {
        Rejection::InvalidTransition { command, status: status.to_string() }
    }

    pub(crate) fn input(field: &'static str, reason: impl Into<String>) -> Self {
        Rejection::InvalidInput { field, reason: reason.into() }
    }
}

/// A pure decision function plus its state fold.
pub trait Decider {
    /// Commands it accepts.
    type Command;
    /// Events it emits.
    type Event;
    /// Its state.
    type State;

    /// State before any event.
    fn initial_state() -> Self::State;
    /// Decides what happens; never performs I/O.
    fn decide(command: &Self::Command, state: &Self::State) -> Result<Vec<Self::Event>, Rejection>;
    /// Applies one event.
    fn evolve(state: Self::State, event: &Self::Event) -> Self::State;

    /// Folds events into state.
    fn replay<'a, I>(events: I) -> Self::State
    where
        I: IntoIterator<Item = &'a Self::Event>,
        Self::Event: 'a,
    {
        events.into_iter().fold(Self::initial_state(), Self::evolve)
    }
}

/// A decider stored as one event stream per id.
pub trait Aggregate: Decider
where
    Self::Event: Serialize + DeserializeOwned + EventName,
    Self::State: Serialize + DeserializeOwned + Clone,
{
    /// Stream category, e.g. `feedback`.
    const CATEGORY: &'static str;
    /// Schema version written with new events.
    const SCHEMA_VERSION: u32 = 1;

    /// Turns a payload written with an older schema version into the current shape.
    ///
    /// The default accepts only the current version.
    fn upcast(event_type: &str, schema_version: u32, payload: serde_json::Value) -> Result<serde_json::Value> {
        if schema_version == Self::SCHEMA_VERSION {
            Ok(payload)
        } else {
            Err(crate::Error::Corrupt(format!(
                "{} event {event_type} has schema version {schema_version}, expected {}",
                Self::CATEGORY,
                Self::SCHEMA_VERSION
            )))
        }
    }
}

/// The stable type name of an event variant.
pub trait EventName {
    /// Variant name as stored in `event_type`.
    fn event_name(&self) -> &'static str;
}

/// Implements [`EventName`] for an enum whose variants are all struct or unit
/// variants, returning the variant name.
#[macro_export]
macro_rules! event_names {
    ($ty:ty { $($variant:ident),+ $(,)? }) => {
        impl $crate::decider::EventName for $ty {
            fn event_name(&self) -> &'static str {
                match self {
                    $( Self::$variant { .. } => stringify!($variant), )+
                }
            }
        }
    };
}
