//! The backend-level test suite: what every [`Backend`] must do, checked through the trait
//! alone. The redb [`super::Store`] runs it in its unit tests; another backend runs
//! [`run`] with a function that opens it on the same storage each time it is called (a new
//! client of the same cluster, the same file).
//!
//! It covers append (ids, records and events read back), the state changes (failed, delivered
//! with its event dropped, dead with its event kept), a retry by hand, removal, deliveries
//! refused by quota and stored dead at once, listing, dead ids by Provider, Provider statuses,
//! pruning in bounded chunks, and that all of it survives closing and opening again.
//! Failures panic with what was expected.

use std::sync::Arc;

use herald_core::{Event, ObjectReference, OrderingKey};

use super::{
    Backend, DeadReason, Health, NewDelivery, Placement, Prepared, ProviderStatus, Record, State,
    wait,
};

/// A pending delivery to `provider` of `event`, accepted now.
pub fn prepared(provider: &str, event: Event) -> Prepared {
    let key = OrderingKey::of(herald_core::ProviderType::Generic, &event);
    let new = NewDelivery {
        provider: provider.to_owned(),
        provider_type: "generic".to_owned(),
        alert: "apps/alert".to_owned(),
        event,
    };
    let (record, event) = Record::pending(new, key, super::now_ms());
    Prepared {
        record,
        event: Arc::new(event),
    }
}

/// Appends `deliveries` and waits until they are committed; returns the first id.
pub fn append(backend: &dyn Backend, deliveries: &[Prepared]) -> u64 {
    wait(|done| backend.append(deliveries, done)).expect("append commits")
}

/// Appends one delivery; returns its id.
pub fn append_one(backend: &dyn Backend, delivery: &Prepared) -> u64 {
    append(backend, std::slice::from_ref(delivery))
}

fn event(name: &str, message: &str) -> Event {
    Event {
        involved_object: ObjectReference {
            kind: "Kustomization".into(),
            namespace: "apps".into(),
            name: name.into(),
            ..Default::default()
        },
        message: message.into(),
        reason: "Progressing".into(),
        ..Default::default()
    }
}

fn settle(backend: &dyn Backend, record: &Record, from: Placement) {
    wait(|done| backend.settle(record, from, Some(done))).expect("a state change commits");
}

fn flush(backend: &dyn Backend) {
    wait(|done| backend.flush(done)).expect("flush");
}

fn get(backend: &dyn Backend, id: u64) -> Record {
    backend
        .get(id)
        .expect("read")
        .unwrap_or_else(|| panic!("delivery {id} is not in the backend"))
}

/// Runs the whole suite. `open` opens the backend on the same storage every time (it is closed
/// in between). The storage must start empty.
pub fn run(open: &dyn Fn() -> Arc<dyn Backend>) {
    let b = open();
    assert_eq!(b.health(), Health::Ok);
    let loaded = b.load().expect("load an empty backend");
    assert!(loaded.active.is_empty() && loaded.dead.is_empty());

    // Append: consecutive, increasing ids; records and events read back as written.
    let first = append(
        &*b,
        &[
            prepared("apps/p", event("a", "one")),
            prepared("apps/q", event("b", "two")),
            prepared("apps/p", event("c", "three")),
        ],
    );
    let [one, two, three] = [first, first + 1, first + 2];
    let next = append_one(&*b, &prepared("apps/p", event("d", "four")));
    assert_eq!(next, first + 3, "ids continue across appends");
    let (r, e) = b.get_with_event(one).expect("read").expect("present");
    assert_eq!(
        (r.id, r.provider.as_str(), r.state),
        (one, "apps/p", State::Pending)
    );
    assert_eq!(r.object, "Kustomization/apps/a");
    assert_eq!(e.expect("its event").message, "one");
    let active: Vec<u64> = b
        .load()
        .expect("load")
        .active
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        active,
        [one, two, three, next],
        "active deliveries load in id order"
    );

    // Failed: still active, with its retry time; its event is kept.
    let mut failed = get(&*b, one);
    failed.state = State::Failed;
    failed.attempts = 1;
    failed.failures = 1;
    failed.last_error = Some("HTTP 503".into());
    failed.next_attempt_at = Some(failed.accepted_at + 1000);
    settle(&*b, &failed, Placement::Active);
    assert_eq!(get(&*b, one), failed);

    // Delivered: finished, out of the active set, its event dropped.
    let mut delivered = failed.clone();
    delivered.state = State::Delivered;
    delivered.attempts = 2;
    delivered.finished_at = Some(delivered.accepted_at + 2000);
    delivered.next_attempt_at = None;
    settle(&*b, &delivered, Placement::Active);
    let (r, e) = b.get_with_event(one).expect("read").expect("kept");
    assert_eq!((r.state, e), (State::Delivered, None));

    // Dead: out of the active set, its event kept for a retry by hand.
    let mut dead = get(&*b, two);
    dead.state = State::Dead;
    dead.dead_reason = Some(DeadReason::Permanent);
    dead.attempts = 1;
    dead.last_error = Some("HTTP 404".into());
    dead.finished_at = Some(dead.accepted_at + 10);
    settle(&*b, &dead, Placement::Active);
    assert_eq!(b.dead_ids(None).expect("dead ids"), [two]);
    assert_eq!(b.dead_ids(Some("apps/q")).expect("dead ids"), [two]);
    assert!(b.dead_ids(Some("apps/p")).expect("dead ids").is_empty());
    assert!(
        b.get_with_event(two)
            .expect("read")
            .expect("kept")
            .1
            .is_some()
    );

    // Refused by quota: recorded dead at once, with its event.
    let mut refused = prepared("apps/p", event("e", "five"));
    refused.record.state = State::Dead;
    refused.record.dead_reason = Some(DeadReason::Quota);
    refused.record.finished_at = Some(refused.record.accepted_at);
    refused.record.last_error = Some("quota".into());
    let quota = append_one(&*b, &refused);
    assert_eq!(get(&*b, quota).dead_reason, Some(DeadReason::Quota));
    assert_eq!(b.dead_ids(None).expect("dead ids"), [two, quota]);

    // A retry by hand: dead back to active, with its age clock reset.
    let retried = crate::transition::manual_retry(&get(&*b, two), dead.accepted_at + 5000)
        .expect("a dead delivery can be retried");
    settle(&*b, &retried, dead.placement());
    assert_eq!(get(&*b, two).state, State::Pending);
    assert_eq!(get(&*b, two).clock_from, dead.accepted_at + 5000);
    assert_eq!(b.dead_ids(None).expect("dead ids"), [quota]);

    // Removal, for good.
    wait(|done| b.remove(three, Placement::Active, Some(done))).expect("remove");
    assert!(b.get(three).expect("read").is_none());
    assert!(b.get_with_event(three).expect("read").is_none());

    // Listing: newest first, filtered, limited.
    let all: Vec<u64> = b
        .list(100, &mut |_| true)
        .expect("list")
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(all, [quota, next, two, one]);
    let of_p: Vec<u64> = b
        .list(2, &mut |r| r.provider == "apps/p")
        .expect("list")
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(of_p, [quota, next]);

    // Statuses: the last one saved wins.
    let status = ProviderStatus {
        last_success_at: Some(1),
        last_error: Some("boom".into()),
        last_error_at: Some(2),
        consecutive_failures: 3,
        failing_since: Some(2),
    };
    b.save_status("apps/q", &ProviderStatus::default())
        .expect("status");
    b.save_status("apps/q", &status).expect("status");
    flush(&*b);
    b.close();
    drop(b);

    // Everything survives closing and opening again; ids keep increasing.
    let b = open();
    let loaded = b.load().expect("load");
    let active: Vec<u64> = loaded.active.iter().map(|r| r.id).collect();
    assert_eq!(active, [two, next]);
    assert_eq!(loaded.dead.get("apps/p"), Some(&1));
    assert_eq!(loaded.providers.get("apps/q"), Some(&status));
    assert_eq!(get(&*b, one), delivered);
    let later = append_one(&*b, &prepared("apps/p", event("f", "six")));
    assert!(later > quota, "ids keep increasing after a reopen");

    // Pruning: only finished records older than the cuts, at most `limit` at a time.
    let mut more = Vec::new();
    for id in [next, later] {
        let mut r = get(&*b, id);
        r.state = State::Delivered;
        r.attempts = 1;
        r.finished_at = Some(r.accepted_at);
        settle(&*b, &r, Placement::Active);
        more.push(r);
    }
    let cut = super::now_ms() + 60_000;
    let pruned = wait(|done| b.prune(cut, 0, 1, done)).expect("prune");
    assert_eq!(pruned, 1, "a prune removes at most its limit");
    let pruned = wait(|done| b.prune(cut, 0, 100, done)).expect("prune");
    assert_eq!(pruned, 2);
    for id in [one, next, later] {
        assert!(b.get(id).expect("read").is_none(), "delivered {id} pruned");
    }
    assert!(
        b.get(quota).expect("read").is_some(),
        "dead records have their own retention"
    );
    assert!(
        b.get(two).expect("read").is_some(),
        "active records are never pruned"
    );
    let pruned = wait(|done| b.prune(0, cut, 100, done)).expect("prune");
    assert_eq!(pruned, 1);
    assert!(b.dead_ids(None).expect("dead ids").is_empty());
    assert_eq!(b.health(), Health::Ok);
    b.close();
}
