//! Given/when/then specifications of the blob decider: every transition and every
//! rejection, plus the stream naming the sweeper relies on.

use userz_core::decider::{Aggregate, Decider};
use userz_core::domain::blob::*;
use userz_core::domain::common::Actor;
use userz_core::ids::{OrgId, UserId};
use userz_core::Timestamp;
use userz_engine::CommandBus;
use userz_testkit::spec::Spec;

struct Fixture {
    org: OrgId,
    key: String,
    at: Timestamp,
}

fn fixture() -> Fixture {
    let org = OrgId::new();
    Fixture { org, key: format!("orgs/{org}/screenshots/shot-1"), at: Timestamp::from_millis(1_000) }
}

fn stored(f: &Fixture) -> BlobEvent {
    BlobEvent::BlobStored { org: f.org, key: f.key.clone(), size: 42, at: f.at }
}

fn record(f: &Fixture) -> BlobCommand {
    BlobCommand::Record { org: f.org, key: f.key.clone(), size: 42, at: f.at }
}

fn user() -> Actor {
    Actor::User { user: UserId::new() }
}

#[test]
fn record_stores_a_new_blob() {
    let f = fixture();
    let state = Spec::<BlobDecider>::new().when(record(&f)).then(vec![stored(&f)]);
    assert_eq!(state.stored_at(), Some(f.at));
    assert!(!state.is_retained());
}

#[test]
fn record_repeated_with_the_same_facts_is_a_no_op() {
    let f = fixture();
    Spec::<BlobDecider>::new().given(vec![stored(&f)]).when(record(&f)).then(vec![]);
}

#[test]
fn record_over_a_different_live_blob_is_refused() {
    let f = fixture();
    let other = BlobCommand::Record { org: f.org, key: f.key.clone(), size: 7, at: Timestamp::from_millis(9) };
    Spec::<BlobDecider>::new().given(vec![stored(&f)]).when(other).then_rejects("already_exists");
}

#[test]
fn record_after_deletion_stores_again() {
    let f = fixture();
    let again = Timestamp::from_millis(5_000);
    let cmd = BlobCommand::Record { org: f.org, key: f.key.clone(), size: 1, at: again };
    let state = Spec::<BlobDecider>::new()
        .given(vec![stored(&f), BlobEvent::BlobDeleted { at: Timestamp::from_millis(2_000) }])
        .when(cmd)
        .then(vec![BlobEvent::BlobStored { org: f.org, key: f.key.clone(), size: 1, at: again }]);
    assert_eq!(state.stored_at(), Some(again));
}

#[test]
fn record_under_another_orgs_prefix_is_refused() {
    let f = fixture();
    let foreign = format!("orgs/{}/screenshots/shot-1", OrgId::new());
    let cmd = BlobCommand::Record { org: f.org, key: foreign, size: 1, at: f.at };
    Spec::<BlobDecider>::new().when(cmd).then_rejects("invalid_input");
}

#[test]
fn record_with_dot_dot_segment_is_refused() {
    let f = fixture();
    let sneaky = format!("orgs/{}/../other/screenshots/x", f.org);
    let cmd = BlobCommand::Record { org: f.org, key: sneaky, size: 1, at: f.at };
    Spec::<BlobDecider>::new().when(cmd).then_rejects("invalid_input");
}

#[test]
fn commands_on_an_unknown_blob_are_refused() {
    Spec::<BlobDecider>::new().when(BlobCommand::Retain { by: user() }).then_rejects("not_found");
    Spec::<BlobDecider>::new().when(BlobCommand::Release { by: user() }).then_rejects("not_found");
    Spec::<BlobDecider>::new().when(BlobCommand::Delete { at: Timestamp::EPOCH }).then_rejects("not_found");
}

#[test]
fn retain_marks_the_blob() {
    let f = fixture();
    let by = user();
    let state = Spec::<BlobDecider>::new()
        .given(vec![stored(&f)])
        .when(BlobCommand::Retain { by: by.clone() })
        .then(vec![BlobEvent::BlobRetained { by }]);
    assert!(state.is_retained());
}

#[test]
fn retain_twice_is_a_no_op() {
    let f = fixture();
    Spec::<BlobDecider>::new()
        .given(vec![stored(&f), BlobEvent::BlobRetained { by: user() }])
        .when(BlobCommand::Retain { by: user() })
        .then(vec![]);
}

#[test]
fn release_lifts_the_mark() {
    let f = fixture();
    let by = user();
    let state = Spec::<BlobDecider>::new()
        .given(vec![stored(&f), BlobEvent::BlobRetained { by: user() }])
        .when(BlobCommand::Release { by: by.clone() })
        .then(vec![BlobEvent::BlobReleased { by }]);
    assert!(!state.is_retained());
}

#[test]
fn release_of_an_unretained_blob_is_refused() {
    let f = fixture();
    Spec::<BlobDecider>::new()
        .given(vec![stored(&f)])
        .when(BlobCommand::Release { by: user() })
        .then_rejects("not_retained");
}

#[test]
fn delete_records_the_deletion() {
    let f = fixture();
    let at = Timestamp::from_millis(99);
    let state = Spec::<BlobDecider>::new()
        .given(vec![stored(&f)])
        .when(BlobCommand::Delete { at })
        .then(vec![BlobEvent::BlobDeleted { at }]);
    assert!(matches!(state, BlobState::Deleted { at: a, .. } if a == at));
}

#[test]
fn deleting_a_retained_blob_is_refused() {
    let f = fixture();
    Spec::<BlobDecider>::new()
        .given(vec![stored(&f), BlobEvent::BlobRetained { by: Actor::System }])
        .when(BlobCommand::Delete { at: Timestamp::from_millis(5) })
        .then_rejects("blob_retained");
}

#[test]
fn delete_after_release_is_allowed() {
    let f = fixture();
    let at = Timestamp::from_millis(7);
    Spec::<BlobDecider>::new()
        .given(vec![stored(&f), BlobEvent::BlobRetained { by: user() }, BlobEvent::BlobReleased { by: user() }])
        .when(BlobCommand::Delete { at })
        .then(vec![BlobEvent::BlobDeleted { at }]);
}

#[test]
fn delete_twice_is_a_no_op_so_an_interrupted_sweep_can_resume() {
    let f = fixture();
    Spec::<BlobDecider>::new()
        .given(vec![stored(&f), BlobEvent::BlobDeleted { at: Timestamp::from_millis(5) }])
        .when(BlobCommand::Delete { at: Timestamp::from_millis(6) })
        .then(vec![]);
}

#[test]
fn retain_or_release_after_deletion_is_refused() {
    let f = fixture();
    let given = vec![stored(&f), BlobEvent::BlobDeleted { at: Timestamp::from_millis(5) }];
    Spec::<BlobDecider>::new()
        .given(given.clone())
        .when(BlobCommand::Retain { by: user() })
        .then_rejects("invalid_transition");
    Spec::<BlobDecider>::new()
        .given(given)
        .when(BlobCommand::Release { by: user() })
        .then_rejects("invalid_transition");
}

#[test]
fn stream_id_is_a_pure_function_of_the_key() {
    let f = fixture();
    let a = CommandBus::stream::<BlobDecider>(BlobId::for_key(&f.key));
    let b = CommandBus::stream::<BlobDecider>(BlobId::for_key(&f.key));
    let other = CommandBus::stream::<BlobDecider>(BlobId::for_key("orgs/x/screenshots/y"));
    assert_eq!(a, b);
    assert_ne!(a, other);
    assert_eq!(a.category(), BlobDecider::CATEGORY);
    assert_eq!(BlobDecider::CATEGORY, "blob");
}

#[test]
fn replay_folds_a_full_lifecycle() {
    let f = fixture();
    let state = BlobDecider::replay(&[
        stored(&f),
        BlobEvent::BlobRetained { by: Actor::System },
        BlobEvent::BlobReleased { by: Actor::System },
        BlobEvent::BlobDeleted { at: Timestamp::from_millis(3) },
    ]);
    assert_eq!(state, BlobState::Deleted { org: f.org, key: f.key, at: Timestamp::from_millis(3) });
}
