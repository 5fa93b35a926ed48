//! Durable timers: deadlines and windows stored as events, so they fire after a
//! restart too.

use serde::{Deserialize, Serialize};

use crate::decider::{Aggregate, Decider, Rejection};
use crate::event_names;
use crate::ids::{FeedbackId, RunId, TimerId};
use crate::time::Timestamp;

/// What a timer does when it fires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TimerTarget {
    /// The run's wall-clock deadline.
    RunDeadline {
        /// Run.
        run: RunId,
    },
    /// A report's batch window.
    BatchWindow {
        /// Report.
        feedback: FeedbackId,
    },
}

/// Commands on a timer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimerCommand {
    /// Schedules it.
    Schedule {
        /// Id.
        timer: TimerId,
        /// When.
        fire_at: Timestamp,
        /// What.
        target: TimerTarget,
    },
    /// Fires it (refused before `fire_at`).
    Fire {
        /// Now.
        now: Timestamp,
    },
    /// Cancels it.
    Cancel,
}

/// Events of a timer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum TimerEvent {
    /// Scheduled.
    TimerScheduled {
        /// Id.
        timer: TimerId,
        /// When.
        fire_at: Timestamp,
        /// What.
        target: TimerTarget,
    },
    /// Fired.
    TimerFired {
        /// Id.
        timer: TimerId,
        /// What.
        target: TimerTarget,
        /// When it actually fired.
        at: Timestamp,
    },
    /// Cancelled.
    TimerCancelled {
        /// Id.
        timer: TimerId,
    },
}
event_names!(TimerEvent { TimerScheduled, TimerFired, TimerCancelled });

/// State of a timer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum TimerState {
    /// Not scheduled.
    #[default]
    None,
    /// Waiting.
    Pending {
        /// Id.
        timer: TimerId,
        /// When.
        fire_at: Timestamp,
        /// What.
        target: TimerTarget,
    },
    /// Fired.
    Fired,
    /// Cancelled.
    Cancelled,
}

/// The timer decider.
#[derive(Debug, Clone, Copy)]
pub struct TimerDecider;

impl Decider for TimerDecider {
    type Command = TimerCommand;
    type Event = TimerEvent;
    type State = TimerState;

    fn initial_state() -> TimerState {
        TimerState::None
    }

    fn decide(command: &TimerCommand, state: &TimerState) -> Result<Vec<TimerEvent>, Rejection> {
        match (command, state) {
            (TimerCommand::Schedule { timer, fire_at, target }, TimerState::None) => {
                Ok(vec![TimerEvent::TimerScheduled { timer: *timer, fire_at: *fire_at, target: target.clone() }])
            }
            (TimerCommand::Schedule { fire_at, target, .. }, TimerState::Pending { fire_at: f, target: t, .. })
                if f == fire_at && t == target =>
            {
                Ok(vec![])
            }
            (TimerCommand::Schedule { .. }, _) => Err(Rejection::AlreadyExists { entity: "timer" }),
            (_, TimerState::None) => Err(Rejection::NotFound { entity: "timer" }),
            (TimerCommand::Fire { now }, TimerState::Pending { timer, fire_at, target }) => {
                if now < fire_at {
                    return Err(Rejection::Invariant { rule: "not_due", message: format!("due at {fire_at}") });
                }
                Ok(vec![TimerEvent::TimerFired { timer: *timer, target: target.clone(), at: *now }])
            }
            (TimerCommand::Cancel, TimerState::Pending { timer, .. }) => {
                Ok(vec![TimerEvent::TimerCancelled { timer: *timer }])
            }
            (TimerCommand::Fire { .. }, TimerState::Fired) => Err(Rejection::transition("fire", "fired")),
            (TimerCommand::Fire { .. }, TimerState::Cancelled) => Err(Rejection::transition("fire", "cancelled")),
            (TimerCommand::Cancel, TimerState::Fired) => Err(Rejection::transition("cancel", "fired")),
            (TimerCommand::Cancel, TimerState::Cancelled) => Ok(vec![]),
        }
    }

    fn evolve(state: TimerState, event: &TimerEvent) -> TimerState {
        match event {
            TimerEvent::TimerScheduled { timer, fire_at, target } => match state {
                TimerState::None => TimerState::Pending { timer: *timer, fire_at: *fire_at, target: target.clone() },
                s => s,
            },
            TimerEvent::TimerFired { .. } => TimerState::Fired,
            TimerEvent::TimerCancelled { .. } => TimerState::Cancelled,
        }
    }
}

impl Aggregate for TimerDecider {
    const CATEGORY: &'static str = "timer";
}
