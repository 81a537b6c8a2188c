//! The location engine's rules, shown natively over in-memory ports ([`super::memory`]): order
//! per contact, the run's budget, pacing, token renewal, a restart mid-attempt, creates in doubt,
//! the transitions and their tallies, unreadable rows, and the live mapping.

use serde_json::{json, Value};

use super::memory::*;
use super::ports::AlertKind;
use super::tallies::Counter;
use crate::contacts_api::{ApiId, Method};
use crate::sync::mapping::Mapping;
use crate::sync::plan::lookup_not_before;
use crate::sync::queue::QueueState;
use crate::sync::records::{contact_key, Action, Link, Outcome, WebhookState};

fn location() -> Location {
    Location::new(config(&[]))
}

fn outcome(location: &Location, id: &str) -> Outcome {
    match location.store.record(id).state {
        WebhookState::Finished { outcome, .. } => outcome,
        state => panic!("webhook {id} is not finished: {state:?}"),
    }
}

fn action(location: &Location, id: &str) -> Action {
    match outcome(location, id) {
        Outcome::Applied { action, .. } => action,
        other => panic!("webhook {id} was not applied: {other:?}"),
    }
}

fn contact_link(location: &Location, sightmill_id: &str) -> Option<Link> {
    let value = location.store.link_json(&contact_key(LOCATION, sightmill_id))?;
    Some(serde_json::from_value(value).unwrap())
}

fn live_id(location: &Location, sightmill_id: &str) -> String {
    let link = contact_link(location, sightmill_id).expect("a link");
    link.live_id().unwrap_or_else(|| panic!("not live: {link:?}")).to_string()
}

fn pending(location: &Location, id: &str) -> (i64, u32, Option<String>) {
    match location.store.record(id).state {
        WebhookState::Pending { due_at, failures, last_error, .. } => (due_at, failures, last_error),
        state => panic!("webhook {id} is not pending: {state:?}"),
    }
}

fn methods(location: &Location) -> Vec<(Method, String)> {
    location.api.seen.borrow().iter().map(|seen| (seen.method, seen.path.clone())).collect()
}

// ---- order ----

#[test]
fn a_contacts_events_apply_in_sightmills_order_even_when_accepted_out_of_order() {
    let location = location();
    location.accept("w-update", contact("contact.updated", "sm_1", 2_000, "Bea Later"));
    location.accept("w-create", contact("contact.created", "sm_1", 1_000, "Ann First"));
    location.run();
    let seen = location.api.seen.borrow().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(
        (seen[0].method, seen[0].body.as_ref().unwrap()["firstName"].as_str()),
        (Method::Post, Some("Ann"))
    );
    assert_eq!(
        (seen[1].method, seen[1].body.as_ref().unwrap()["firstName"].as_str()),
        (Method::Put, Some("Bea"))
    );
    assert_eq!(
        (action(&location, "w-create"), action(&location, "w-update")),
        (Action::Created, Action::Updated)
    );
    assert_eq!(location.api.contacts.borrow().len(), 1);
}

#[test]
fn different_contacts_are_applied_concurrently_by_up_to_four_workers() {
    let location = location();
    location.api.latency_ms.set(100);
    for n in 0..6 {
        location.accept(&format!("w{n}"), contact("contact.created", &format!("sm_{n}"), 1_000, "Ann Lee"));
    }
    let ended = location.run();
    assert_eq!(ended.tally.finished, 6);
    assert_eq!(location.api.most_in_flight.get(), 4, "four at once, never more");
    assert!(ended.tally.finished_at - ended.tally.started_at < 6 * 100, "not one after another");
}

#[test]
fn one_contacts_events_are_never_applied_at_once() {
    let location = location();
    location.api.latency_ms.set(100);
    for n in 0..4 {
        location.accept(&format!("w{n}"), contact("contact.updated", "sm_1", 1_000 + n, "Ann Lee"));
    }
    let ended = location.run();
    assert_eq!(ended.tally.finished, 4);
    assert_eq!(location.api.most_in_flight.get(), 1);
    assert_eq!(location.api.calls(Method::Post, "/contacts/").len(), 1, "one create, then updates");
}

#[test]
fn a_waiting_event_does_not_hold_its_contacts_later_ones_back() {
    let location = location();
    location.accept("w-note", note("sm_1", "n1", 1_000, "hello"));
    location.accept("w-contact", contact("contact.created", "sm_1", 2_000, "Ann Lee"));
    let ended = location.run();
    assert_eq!((ended.tally.waiting, ended.tally.finished), (1, 2), "the note waited, then was woken");
    assert_eq!(action(&location, "w-contact"), Action::Created);
    assert_eq!(action(&location, "w-note"), Action::Created);
    let contact = live_id(&location, "sm_1");
    assert_eq!(location.api.notes.borrow().values().next().unwrap().0, contact);
}

// ---- budget ----

#[test]
fn a_run_stops_taking_events_before_its_calls_could_exceed_the_budget() {
    // Each attempt under way may still make MAX_CALLS (4) calls: with 8 allowed, two at once.
    let location = with_tagged_contacts(8, &[("CRON_MAX_API_CALLS", "8")]);
    location.api.latency_ms.set(100);
    for n in 0..8 {
        location.accept(&format!("w{n}"), status_update(n));
    }
    let first = location.run();
    assert_eq!((first.tally.finished, first.tally.api_calls), (2, 6), "three calls each");
    assert_eq!(first.tally.left_for_next_run, 6);
    assert_eq!(first.resume_at, Some(location.now()), "carry on at once");
    let mut runs = 1;
    loop {
        let ended = location.run();
        assert!(ended.tally.api_calls <= 8);
        runs += 1;
        if ended.resume_at.is_none() {
            break;
        }
    }
    assert_eq!(runs, 4);
    assert_eq!(location.store.ids_in(QueueState::Finished).len(), 8);
}

#[test]
fn a_run_stops_taking_events_when_its_time_is_spent() {
    let location = Location::new(config(&[("CRON_TIME_BUDGET_MS", "1000")]));
    location.api.latency_ms.set(300);
    for n in 0..24 {
        location.accept(&format!("w{n}"), contact("contact.created", &format!("sm_{n}"), 1_000, "Ann Lee"));
    }
    let first = location.run();
    assert!(first.tally.finished > 0 && first.tally.finished < 24, "{:?}", first.tally);
    assert!(first.tally.finished_at - first.tally.started_at <= 1_000 + 300, "no attempt starts late");
    assert!(first.resume_at.is_some());
    let mut runs = 1;
    while location.run().resume_at.is_some() {
        runs += 1;
        assert!(runs < 10);
    }
    assert_eq!(location.store.ids_in(QueueState::Finished).len(), 24);
}

// ---- pacing ----

#[test]
fn calls_are_spaced_to_the_announced_limit() {
    let location = location();
    location.api.announce.set(Some((5, 1_000)));
    for n in 0..12 {
        location.accept(&format!("w{n}"), contact("contact.created", &format!("sm_{n}"), 1_000, "Ann Lee"));
    }
    let ended = location.run();
    assert_eq!(ended.tally.finished, 12);
    let times: Vec<i64> = location.api.seen.borrow().iter().map(|seen| seen.at).collect();
    for (index, start) in times.iter().enumerate() {
        let in_window = times[index..].iter().filter(|at| **at < start + 1_000).count();
        assert!(in_window <= 5, "{in_window} calls in the window from {start}: {times:?}");
    }
    assert_eq!(location.store.tallies().total(Counter::Api429), 0);
}

#[test]
fn a_429_blocks_the_location_for_its_retry_after() {
    let location = location();
    location.api.fault(Method::Post, "/contacts/", Fault::Status(429, Some(3)));
    for n in 0..3 {
        location.accept(&format!("w{n}"), contact("contact.created", &format!("sm_{n}"), 1_000, "Ann Lee"));
    }
    let ended = location.run();
    let times: Vec<i64> = location.api.seen.borrow().iter().map(|seen| seen.at).collect();
    assert_eq!(times[0], T0);
    assert!(times[1..].iter().all(|at| *at >= T0 + 3_000), "nothing sent while blocked: {times:?}");
    assert_eq!((ended.tally.retried, ended.tally.finished), (1, 3), "the run waited the block out");
    assert_eq!(location.store.tallies().total(Counter::RateLimited), 1);
    assert_eq!(location.store.tallies().total(Counter::Api429), 1);
    let record = location.store.record("w0");
    assert_eq!(record.attempts, 2);
    assert!(matches!(record.state, WebhookState::Finished { finished_at, .. } if finished_at >= T0 + 3_000));
}

#[test]
fn a_block_longer_than_a_run_waits_ends_the_run_deferred() {
    let location = location();
    location.api.fault(Method::Post, "/contacts/", Fault::Status(429, Some(60)));
    for n in 0..3 {
        location.accept(&format!("w{n}"), contact("contact.created", &format!("sm_{n}"), 1_000, "Ann Lee"));
    }
    let ended = location.run();
    assert_eq!(location.api.seen.borrow().len(), 1);
    assert!(ended.tally.deferred > 0);
    assert_eq!(ended.tally.left_for_next_run, 2);
    assert_eq!(ended.resume_at, Some(T0 + 60_000), "carry on when the block ends");
    location.wait(60_000);
    location.run();
    assert_eq!(location.store.ids_in(QueueState::Finished).len(), 3);
}

// ---- token renewal ----

#[test]
fn a_refused_token_is_renewed_once_and_the_same_call_sent_again() {
    let location = location();
    location.api.fault(Method::Post, "/contacts/", Fault::Revoke);
    location.accept("w1", contact("contact.created", "sm_1", 1_000, "Ann Lee"));
    location.run();
    let creates = location.api.calls(Method::Post, "/contacts/");
    let tokens: Vec<&str> = creates.iter().map(|seen| seen.token.as_str()).collect();
    assert_eq!(tokens, ["tok-1", "tok-2"]);
    assert_eq!(creates[0].body, creates[1].body);
    assert_eq!(action(&location, "w1"), Action::Created);
    assert_eq!(location.api.contacts.borrow().len(), 1);
    assert_eq!(location.store.record("w1").attempts, 1);
}

#[test]
fn a_resend_after_renewal_is_not_one_of_the_events_own_calls() {
    // Four calls of its own (search, update, two tag calls), the update sent twice.
    let location = Location::new(config(&[(
        "CONTACT_MAPPING",
        r#"{"fields": [{"from": "name", "to": "name"}, {"from": "email", "to": "email"}],
            "status": {"to": "tag", "prefix": "status:"}}"#,
    )]));
    let id = location.api.add_contact(json!({"email": "sm-1@example.com", "tags": ["status:lead"]}));
    let doubt = json!({"state": "in_doubt", "updated_at": T0 + 1_000, "sent_at": T0 - 20_000,
                       "sent": {"email": "sm-1@example.com", "tag": "status:lead"}});
    location.store.put_link(&contact_key(LOCATION, "sm_1"), doubt);
    location.api.fault(Method::Put, &format!("/contacts/{id}"), Fault::Revoke);
    let data = json!({"id": "sm_1", "email": "sm-1@example.com", "name": "Ann", "status": "customer"});
    location.accept("w1", event("contact.updated", 2_000, data));
    location.run();
    assert_eq!(location.api.seen.borrow().len(), 5, "{:?}", methods(&location));
    assert_eq!(action(&location, "w1"), Action::Adopted);
    assert_eq!(location.api.contacts.borrow()[&id]["tags"], json!(["status:customer"]));
}

#[test]
fn a_renewal_that_fails_retries_the_event_and_raises_the_token_alert() {
    let location = location();
    location.api.fault(Method::Post, "/contacts/", Fault::Revoke);
    location.api.renewals_fail.set(true);
    location.accept("w1", contact("contact.created", "sm_1", 1_000, "Ann Lee"));
    location.run();
    let (due_at, failures, _) = pending(&location, "w1");
    assert_eq!((due_at, failures), (T0 + 60_000, 0));
    assert_eq!(location.outside.alerts_of(AlertKind::TokenRenewal).len(), 1);
    assert_eq!(contact_link(&location, "sm_1"), None, "a refused create leaves no doubt behind");
    location.api.renewals_fail.set(false);
    location.wait(60_000);
    location.run();
    assert_eq!(action(&location, "w1"), Action::Created);
    assert_eq!(location.api.contacts.borrow().len(), 1);
}

// ---- restart ----

#[test]
fn a_restart_while_a_create_is_under_way_adopts_what_it_made_once() {
    let mut location = location();
    location.api.fault(Method::Post, "/contacts/", Fault::AppliedHang);
    location.accept("w1", contact("contact.created", "sm_1", 1_000, "Ann Lee"));
    let sent = |location: &Location| !location.api.seen.borrow().is_empty();
    assert_eq!(location.run_until(sent), None, "the run is cut short while the create is under way");
    assert_eq!(location.now(), T0);
    assert!(
        matches!(contact_link(&location, "sm_1"), Some(Link::InDoubt(_))),
        "the intent was written first"
    );
    location.restart();
    location.check_tallies();
    let Some(Link::InDoubt(doubt)) = contact_link(&location, "sm_1") else { unreachable!() };
    let known = crate::sync::plan::Known { contact: Some(Link::InDoubt(doubt)), ..Default::default() };
    let settled = lookup_not_before(&known, location.config.api_timeout_ms).unwrap();
    location.run();
    assert_eq!(location.api.seen.borrow().len(), 1, "no lookup before the create could have been applied");
    assert_eq!(pending(&location, "w1").0, settled);
    location.clock.set(settled);
    location.run();
    assert_eq!(location.api.calls(Method::Post, "/contacts/search").len(), 1);
    assert_eq!(location.api.contacts.borrow().len(), 1, "exactly one contact");
    assert_eq!(action(&location, "w1"), Action::Adopted);
    let id = live_id(&location, "sm_1");
    location.accept("w2", contact("contact.updated", "sm_1", 2_000, "Ann Other"));
    location.run();
    assert_eq!(location.api.calls(Method::Put, &format!("/contacts/{id}")).len(), 1);
    assert_eq!(location.api.contacts.borrow()[&id]["lastName"], "Other");
}

// ---- creates in doubt ----

fn doubt_location() -> Location {
    Location::new(config(&[("RETRY_SCHEDULE", "1s,1s,1s")]))
}

/// Runs until webhook `id` is no longer pending (moving time to when it is due).
fn run_until_done(location: &Location, id: &str) {
    for _ in 0..10 {
        location.run();
        match location.store.record(id).state {
            WebhookState::Pending { due_at, .. } => location.clock.set(due_at),
            _ => return,
        }
    }
    panic!("webhook {id} still pending");
}

#[test]
fn a_create_applied_but_unanswered_is_looked_up_once_settled_and_adopted() {
    let location = doubt_location();
    location.api.fault(Method::Post, "/contacts/", Fault::AppliedLost);
    location.accept("w1", contact("contact.created", "sm_1", 1_000, "Ann Lee"));
    location.run();
    let Some(Link::InDoubt(doubt)) = contact_link(&location, "sm_1") else { panic!("in doubt") };
    location.wait(1_000);
    location.run();
    assert_eq!(location.api.seen.borrow().len(), 1, "nothing sent before the create settles");
    let settled = doubt.sent_at + i64::from(location.config.api_timeout_ms) + 1_000;
    assert_eq!(pending(&location, "w1").0, settled);
    run_until_done(&location, "w1");
    assert!(location.now() >= settled);
    assert_eq!(location.api.calls(Method::Post, "/contacts/search").len(), 1);
    assert_eq!(location.api.calls(Method::Post, "/contacts/").len(), 1, "never created again");
    assert_eq!(action(&location, "w1"), Action::Adopted);
}

#[test]
fn a_create_not_applied_is_looked_up_and_created_once() {
    let location = doubt_location();
    location.api.fault(Method::Post, "/contacts/", Fault::Lost);
    location.accept("w1", contact("contact.created", "sm_1", 1_000, "Ann Lee"));
    run_until_done(&location, "w1");
    assert_eq!(location.api.calls(Method::Post, "/contacts/search").len(), 1);
    assert_eq!(location.api.calls(Method::Post, "/contacts/").len(), 2, "the lost one, then one more");
    assert_eq!(location.api.contacts.borrow().len(), 1);
    assert_eq!(action(&location, "w1"), Action::Created);
}

#[test]
fn a_create_in_doubt_that_two_contacts_match_is_parked_naming_both() {
    let location = doubt_location();
    location.api.fault(Method::Post, "/contacts/", Fault::AppliedLost);
    location.accept("w1", contact("contact.created", "sm_1", 1_000, "Ann Lee"));
    location.run();
    let made = location.api.contacts.borrow().keys().next().unwrap().clone();
    let twin =
        location.api.add_contact(json!({"email": "sm-1@example.com", "firstName": "Ann", "lastName": "Lee"}));
    run_until_done(&location, "w1");
    let WebhookState::Parked { reason, .. } = location.store.record("w1").state else { panic!("parked") };
    assert!(reason.contains(&made) && reason.contains(&twin), "{reason}");
    assert_eq!(location.outside.alerts_of(AlertKind::Parked).len(), 1);
}

// ---- transitions ----

/// A location where SightMill contact `sm_1` is already in the API.
fn with_contact() -> Location {
    let location = Location::new(config(&[("RETRY_SCHEDULE", "1s,2s")]));
    location.accept("w0", contact("contact.created", "sm_1", 1_000, "Ann Lee"));
    location.run();
    location
}

#[test]
fn a_failure_is_retried_along_the_schedule_then_parked_with_an_alert() {
    let location = with_contact();
    let id = live_id(&location, "sm_1");
    let path = format!("/contacts/{id}/tags");
    for _ in 0..3 {
        location.api.fault(Method::Post, &path, Fault::Status(503, None));
    }
    location.accept("w1", tag("sm_1", "vip", 2_000));
    let start = location.now();
    location.run();
    assert_eq!(pending(&location, "w1").0, start + 1_000);
    assert_eq!(pending(&location, "w1").1, 1);
    location.wait(1_000);
    location.run();
    let (due_at, failures, _) = pending(&location, "w1");
    assert_eq!((due_at, failures), (location.now() + 2_000, 2));
    location.wait(2_000);
    location.run();
    let WebhookState::Parked { reason, .. } = location.store.record("w1").state else { panic!("parked") };
    assert!(reason.starts_with("gave up after 3 failed attempts"), "{reason}");
    assert_eq!(location.outside.alerts_of(AlertKind::Parked).len(), 1);
    assert_eq!(location.store.record("w1").attempts, 3);
    let tallies = location.store.tallies();
    assert_eq!((tallies.parked, tallies.pending), (1, 0));
    assert_eq!((tallies.total(Counter::Retried), tallies.total(Counter::Parked)), (2, 1));
}

#[test]
fn a_400_parks_at_once() {
    let location = with_contact();
    let id = live_id(&location, "sm_1");
    location.api.fault(Method::Post, &format!("/contacts/{id}/tags"), Fault::Status(400, None));
    location.accept("w1", tag("sm_1", "vip", 2_000));
    let ended = location.run();
    assert_eq!(ended.tally.parked, 1);
    let WebhookState::Parked { reason, .. } = location.store.record("w1").state else { panic!("parked") };
    assert_eq!(reason, "HTTP 400: scripted 400");
    assert_eq!(location.outside.alerts_of(AlertKind::Parked).len(), 1);
}

#[test]
fn finishing_writes_the_link_and_remembers_the_record() {
    let location = location();
    location.accept("w1", contact("contact.created", "sm_1", 1_000, "Ann Lee"));
    location.run();
    let id = live_id(&location, "sm_1");
    assert_eq!(location.api.contacts.borrow()[&id]["email"], "sm-1@example.com");
    let remembered = location.outside.remembered.borrow().clone();
    assert_eq!(remembered, vec![("w1".to_owned(), location.store.record("w1"))]);
    assert_eq!(*location.store.changed.borrow(), vec![id]);
    let tallies = location.store.tallies();
    assert_eq!(
        (tallies.pending, tallies.total(Counter::Accepted), tallies.total(Counter::Applied)),
        (0, 1, 1)
    );
    assert_eq!(tallies.total(Counter::ApiCalls), 1);
}

#[test]
fn the_tallies_follow_every_kind_of_transition() {
    let location = with_contact();
    let id = live_id(&location, "sm_1");
    location.api.fault(Method::Post, &format!("/contacts/{id}/tags"), Fault::Status(500, None));
    location.accept("w-retry", tag("sm_1", "vip", 2_000));
    location.accept("w-wait", note("sm_2", "n1", 1_000, "hi"));
    location.accept("w-stale", contact("contact.updated", "sm_1", 500, "Old"));
    location.run();
    let tallies = location.store.tallies();
    assert_eq!((tallies.pending, tallies.parked), (2, 0));
    assert_eq!(outcome(&location, "w-stale"), Outcome::Stale);
    let totals = [Counter::StaleDropped, Counter::Retried, Counter::Waiting, Counter::Applied];
    assert_eq!(totals.map(|counter| tallies.total(counter)), [1, 1, 1, 1]);
}

#[test]
fn an_update_with_the_values_last_sent_makes_no_call_and_counts_as_unchanged() {
    let location = location();
    location.accept("w1", contact("contact.created", "sm_1", 1_000, "Ann Lee"));
    location.run();
    let created_at = contact_link(&location, "sm_1").unwrap().updated_at();
    location.accept("w2", contact("contact.updated", "sm_1", 2_000, "Ann Lee"));
    location.run();
    assert_eq!(location.api.seen.borrow().len(), 1, "only the create was sent");
    let id = live_id(&location, "sm_1");
    assert_eq!(outcome(&location, "w2"), Outcome::Unchanged { contact_id: ApiId::parse(&id).unwrap() });
    let moved_to = contact_link(&location, "sm_1").unwrap().updated_at();
    assert_eq!(moved_to - created_at, 1_000, "the link moved on to the unchanged event's version");
    let tallies = location.store.tallies();
    assert_eq!((tallies.total(Counter::Unchanged), tallies.total(Counter::Applied)), (1, 1));
    let chart = serde_json::to_value(&*location.outside.chart.borrow()).unwrap();
    assert_eq!(chart[1 + 5], 1, "the charts' skipped series: {chart}");
    location.accept("w3", contact("contact.updated", "sm_1", 3_000, "Ann Leigh"));
    location.run();
    assert_eq!(methods(&location)[1], (Method::Put, format!("/contacts/{id}")));
}

// ---- unreadable rows ----

#[test]
fn an_unreadable_record_is_taken_out_of_the_queue_and_the_rest_drains() {
    let location = location();
    location.accept("w-bad", contact("contact.created", "sm_1", 1_000, "Ann Lee"));
    location.accept("w-next", contact("contact.updated", "sm_1", 2_000, "Ann Lee"));
    location.accept("w-other", contact("contact.created", "sm_2", 1_000, "Bo Sun"));
    location.store.corrupt("w-bad");
    location.run();
    assert_eq!(location.store.state("w-bad"), QueueState::Unreadable);
    assert_eq!(action(&location, "w-next"), Action::Created, "the contact's next event is not held back");
    assert_eq!(action(&location, "w-other"), Action::Created);
    let errors = location.outside.errors.borrow().clone();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["msg"], "unreadable webhook taken out of the queue");
    let tallies = location.store.tallies();
    assert_eq!((tallies.unreadable, tallies.pending), (1, 0));
}

// ---- the live mapping ----

fn company_mapping() -> Mapping {
    Mapping::parse(
        r#"{"fields": [{"from": "email", "to": "email"}, {"from": "company", "to": "companyName"}]}"#,
    )
    .unwrap()
}

#[test]
fn a_live_mapping_saved_mid_run_applies_to_the_next_event() {
    let location = location();
    location.store.script_live(vec![None, Some(Ok(company_mapping()))]);
    for sightmill in ["sm_1", "sm_2"] {
        let data = json!({"id": sightmill, "email": format!("{sightmill}@x.com"), "name": "Ann Lee", "company": "Acme"});
        location.accept(sightmill, event("contact.created", 1_000, data));
    }
    location.run();
    let creates = location.api.calls(Method::Post, "/contacts/");
    let bodies: Vec<&Value> = creates.iter().map(|seen| seen.body.as_ref().unwrap()).collect();
    assert_eq!((bodies[0]["firstName"].as_str(), bodies[0].get("companyName")), (Some("Ann"), None));
    assert_eq!((bodies[1].get("firstName"), bodies[1]["companyName"].as_str()), (None, Some("Acme")));
}

#[test]
fn an_unusable_live_mapping_fails_the_attempt_as_misconfigured_without_sending() {
    let location = location();
    location.store.set_live(Some(Err("the saved mapping does not parse".into())));
    location.accept("w1", contact("contact.created", "sm_1", 1_000, "Ann Lee"));
    let ended = location.run();
    assert!(location.api.seen.borrow().is_empty());
    assert_eq!(ended.tally.retried, 1);
    let (due_at, failures, error) = pending(&location, "w1");
    assert_eq!((due_at, failures), (T0 + 60_000, 0));
    assert!(error.unwrap().contains("the saved mapping does not parse"));
    assert_eq!(location.outside.alerts_of(AlertKind::TokenRenewal).len(), 1);
}

// ---- found while testing ----

#[test]
fn a_worker_that_waited_out_a_block_checks_the_budget_again_before_taking_an_event() {
    let location = with_tagged_contacts(5, &[("CRON_MAX_API_CALLS", "8")]);
    location.api.latency_ms.set(100);
    let blocked = live_id(&location, "sm_4");
    location.api.fault(Method::Put, &format!("/contacts/{blocked}"), Fault::Status(429, Some(20)));
    location.accept("w4", status_update(4));
    location.run();
    assert_eq!(location.engine.pacing.blocked(location.now()), Some(T0 + 20_100));
    for n in 0..4 {
        location.accept(&format!("w{n}"), status_update(n));
    }
    location.wait(15_000);
    let ended = location.run();
    assert!(ended.tally.api_calls <= 8, "{} calls in a run allowed 8", ended.tally.api_calls);
    while location.run().resume_at.is_some() {}
    assert_eq!(location.store.ids_in(QueueState::Finished).len(), 5);
}

#[test]
fn an_unreadable_waiting_event_does_not_stop_its_contacts_finished_event_from_being_recorded() {
    let location = location();
    location.accept("w-note", note("sm_1", "n1", 2_000, "hello"));
    location.run();
    assert_eq!(pending(&location, "w-note").0, T0 + 60_000, "the note waits for its contact");
    location.store.corrupt("w-note");
    location.accept("w-contact", contact("contact.created", "sm_1", 1_000, "Ann Lee"));
    location.run();
    assert_eq!(action(&location, "w-contact"), Action::Created);
    let id = live_id(&location, "sm_1");
    assert_eq!(*location.store.changed.borrow(), vec![id], "its cached reads are stale");
    let remembered: Vec<String> =
        location.outside.remembered.borrow().iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(remembered, ["w-contact"]);
    location.wait(60_000);
    location.run();
    assert_eq!(location.store.state("w-note"), QueueState::Unreadable);
}

#[test]
fn a_create_applied_then_refused_with_422_is_adopted_not_made_twice() {
    let location = doubt_location();
    location.api.fault(Method::Post, "/contacts/", Fault::AppliedThen422);
    location.accept("w1", contact("contact.created", "sm_1", 1_000, "Ann Lee"));
    run_until_done(&location, "w1");
    assert_eq!(location.api.contacts.borrow().len(), 1);
    assert_eq!(location.api.calls(Method::Post, "/contacts/search").len(), 1);
    assert_eq!(action(&location, "w1"), Action::Adopted);
}

#[test]
fn calls_of_events_under_way_wait_out_a_short_block_too() {
    let location = with_tagged_contacts(4, &[]);
    location.api.latency_ms.set(100);
    let blocked = live_id(&location, "sm_0");
    location.api.fault(Method::Put, &format!("/contacts/{blocked}"), Fault::Status(429, Some(5)));
    let sent_before = location.api.seen.borrow().len();
    for n in 0..4 {
        location.accept(&format!("w{n}"), status_update(n));
    }
    location.run();
    let seen = location.api.seen.borrow();
    let refused =
        seen[sent_before..].iter().find(|seen| seen.path == format!("/contacts/{blocked}")).unwrap().at;
    let during: Vec<_> = seen[sent_before..]
        .iter()
        .filter(|seen| seen.at > refused && seen.at < refused + 5_000)
        .map(|seen| (seen.method, seen.path.clone(), seen.at))
        .collect();
    assert_eq!(during, vec![], "nothing is sent while the location is blocked");
}

// ---- the import lane ----

/// A location with `count` import rows, each a new contact `imp_{n}` (file order).
fn with_import(count: u64, pairs: &[(&str, &str)]) -> Location {
    let location = Location::new(config(pairs));
    for n in 0..count {
        let body = contact("contact.created", &format!("imp_{n}"), 1_000, "Imp Orted");
        location.store.add_import_row(n + 2, &body, location.now());
    }
    location
}

#[test]
fn live_webhooks_go_before_the_imports_rows() {
    let location = with_import(6, &[]);
    for n in 0..3 {
        location.accept(&format!("w{n}"), contact("contact.created", &format!("sm_{n}"), 1_000, "Ann Lee"));
    }
    location.run();
    let created: Vec<String> = location
        .api
        .calls(Method::Post, "/contacts/")
        .iter()
        .map(|seen| {
            seen.body.as_ref().and_then(|body| body["firstName"].as_str()).unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(created.len(), 9);
    assert!(created[..3].iter().all(|name| name == "Ann"), "live first: {created:?}");
    assert_eq!(location.store.import_left(), (0, 0));
    assert_eq!(location.store.import_finished.borrow().len(), 6);
    assert_eq!(location.store.tallies().total(Counter::Applied), 3, "import rows are not live totals");
}

#[test]
fn an_import_row_waits_while_its_contact_has_a_live_webhook_pending() {
    let location = with_import(1, &[]);
    location.api.fault(Method::Post, "/contacts/", Fault::Status(503, None));
    location.accept("w0", contact("contact.created", "imp_0", 2_000, "Live Newer"));
    location.run();
    assert_eq!(location.api.calls(Method::Post, "/contacts/").len(), 1, "only the live create was tried");
    assert_eq!(location.store.import_left(), (1, 0));
    location.wait(120_000);
    while location.run().resume_at.is_some() {}
    let finished = location.store.import_finished.borrow();
    assert!(matches!(finished[0].1, Outcome::Stale), "the older row is left alone: {finished:?}");
    assert_eq!(location.api.contacts.borrow().len(), 1);
}

#[test]
fn the_import_leaves_room_in_each_window_for_live_webhooks() {
    let location = with_import(40, &[]);
    location.api.announce.set(Some((20, 10_000)));
    while location.run().resume_at.is_some() {}
    let times: Vec<i64> = location.api.seen.borrow().iter().map(|seen| seen.at).collect();
    assert_eq!(times.len(), 40);
    let most = times
        .iter()
        .map(|start| times.iter().filter(|at| **at >= *start && **at < start + 10_000).count())
        .max();
    let reserve = super::pacing::IMPORT_WINDOW_RESERVE as usize;
    assert!(most.unwrap() <= 20 - reserve, "an import window used {most:?} of 20");
}

#[test]
fn the_import_stops_for_the_day_when_the_days_calls_run_low_and_live_goes_on() {
    let location = with_import(5, &[]);
    location.api.daily_remaining.set(Some(900));
    let ended = location.run();
    assert_eq!(location.store.import_finished.borrow().len(), 1, "the first answer says the day is spent");
    let midnight = (location.now().div_euclid(86_400_000) + 1) * 86_400_000;
    assert_eq!(ended.resume_at, Some(midnight));
    location.accept("w0", contact("contact.created", "sm_live", 1_000, "Ann Lee"));
    location.run();
    assert_eq!(location.api.calls(Method::Post, "/contacts/").len(), 2, "live goes on; the import waits");
    location.api.daily_remaining.set(Some(150_000));
    location.clock.set(midnight);
    while location.run().resume_at.is_some() {}
    assert_eq!(location.store.import_finished.borrow().len(), 5);
}

#[test]
fn a_paused_import_sends_nothing_and_a_failed_row_raises_no_alert() {
    let location = with_import(2, &[]);
    location.store.import_running.set(false);
    assert_eq!(location.run().resume_at, None);
    assert!(location.api.seen.borrow().is_empty());
    location.store.import_running.set(true);
    location.api.fault(Method::Post, "/contacts/", Fault::Status(400, None));
    while location.run().resume_at.is_some() {}
    assert_eq!(location.store.import_left(), (0, 1), "the refused row failed for good");
    assert!(location.outside.alerts_of(AlertKind::Parked).is_empty());
    assert_eq!(location.store.import_calls.get(), 2);
}

#[test]
fn a_run_dropped_part_way_does_not_leave_the_engine_marked_running() {
    let location = location();
    location.api.fault(Method::Post, "/contacts/", Fault::AppliedHang);
    location.accept("w1", contact("contact.created", "sm_1", 1_000, "Ann Lee"));
    let sent = |location: &Location| !location.api.seen.borrow().is_empty();
    assert_eq!(location.run_until(sent), None, "the run's request is cancelled while a call is under way");
    assert!(!location.engine.running(), "an acceptance arms the alarm again");
}
