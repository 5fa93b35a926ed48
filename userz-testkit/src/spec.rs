//! Given/when/then specifications for deciders.
//!
//! ```
//! use userz_core::domain::timer::*;
//! use userz_core::ids::{RunId, TimerId};
//! use userz_core::Timestamp;
//! use userz_testkit::spec::Spec;
//!
//! let timer = TimerId::new();
//! let target = TimerTarget::RunDeadline { run: RunId::new() };
//! Spec::<TimerDecider>::new()
//!     .given(vec![TimerEvent::TimerScheduled { timer, fire_at: Timestamp::from_millis(10), target: target.clone() }])
//!     .when(TimerCommand::Fire { now: Timestamp::from_millis(5) })
//!     .then_rejects("not_due");
//! ```

use std::fmt::Debug;
use std::marker::PhantomData;

use userz_core::decider::Decider;

/// A decider specification.
#[derive(Debug)]
pub struct Spec<D: Decider> {
    given: Vec<D::Event>,
    _d: PhantomData<D>,
}

impl<D: Decider> Default for Spec<D> {
    fn default() -> Self {
        Self { given: Vec::new(), _d: PhantomData }
    }
}

/// A specification with its command.
#[derive(Debug)]
pub struct When<D: Decider> {
    given: Vec<D::Event>,
    command: D::Command,
}

impl<D: Decider> Spec<D> {
    /// A specification starting from the initial state.
    pub fn new() -> Self {
        Self::default()
    }

    /// The events already in the stream.
    pub fn given(mut self, events: Vec<D::Event>) -> Self {
        self.given = events;
        self
    }

    /// The command under test.
    pub fn when(self, command: D::Command) -> When<D> {
        When { given: self.given, command }
    }
}

impl<D> When<D>
where
    D: Decider,
    D::Event: Debug + PartialEq,
    D::State: Debug,
{
    fn decide(&self) -> Result<Vec<D::Event>, userz_core::decider::Rejection> {
        let state = D::replay(self.given.iter());
        D::decide(&self.command, &state)
    }

    /// Asserts the command is accepted with exactly `expected` events.
    #[track_caller]
    pub fn then(self, expected: Vec<D::Event>) -> D::State {
        match self.decide() {
            Ok(events) => {
                assert_eq!(events, expected, "decided events differ");
                D::replay(self.given.iter().chain(events.iter()))
            }
            Err(r) => panic!("expected events {expected:?}, but the command was rejected: {r} (rule {})", r.rule()),
        }
    }

    /// Asserts the command is accepted and `check` holds for the decided events.
    #[track_caller]
    pub fn then_matches(self, check: impl FnOnce(&[D::Event]) -> bool) -> D::State {
        match self.decide() {
            Ok(events) => {
                assert!(check(&events), "decided events do not match: {events:?}");
                D::replay(self.given.iter().chain(events.iter()))
            }
            Err(r) => panic!("expected acceptance, but the command was rejected: {r} (rule {})", r.rule()),
        }
    }

    /// Asserts the command is rejected by rule `rule`.
    #[track_caller]
    pub fn then_rejects(self, rule: &str) {
        match self.decide() {
            Ok(events) => panic!("expected rejection by {rule}, but got events {events:?}"),
            Err(r) => assert_eq!(r.rule(), rule, "rejected by another rule: {r}"),
        }
    }
}
