//! Mailing lists expanded where the list lives (the core's `ListAgent`) against RFC 2634's
//! MLA, and labelled traffic: who reads, who is refused, and the checkers catching a planted
//! agent that expands to a non-member and planted senders that drop the label.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use ekg_sim::scenario::Plant;
use ekg_sim::{Options, Scenario, Verdict};

/// Two federated organisations; a list of 5 members hosted by the second.
fn with_list(seed: u64) -> Scenario {
    Scenario::from_toml(&format!(
        r#"
name = "small-list"
seed = {seed}
provider = "rustcrypto"

[[org]]
domain = "a.example"
users = 3
trusts = ["lists.example"]

[[org]]
domain = "lists.example"
users = 7
trusts = ["a.example"]
sends = false

[workload]
messages = 4
rate_per_sec = 0.5
recipients = [[1, 100]]
cross_org_share = 0.5
sizes = [[1024, 100]]
read_delay_mean_secs = 60
never_read_share = 0.2

[list]
name = "team"
org = "lists.example"
members = 5
posts = 6
"#
    ))
    .expect("scenario")
}

/// Three federated organisations; the third lacks the label.
fn labelled(seed: u64) -> Scenario {
    Scenario::from_toml(&format!(
        r#"
name = "small-labelled"
seed = {seed}
provider = "rustcrypto"

[[org]]
domain = "a.example"
users = 3
trusts = ["b.example", "c.example"]

[[org]]
domain = "b.example"
users = 2
trusts = ["a.example", "c.example"]

[[org]]
domain = "c.example"
users = 3
trusts = ["a.example", "b.example"]

[workload]
messages = 30
rate_per_sec = 1.0
recipients = [[1, 40], [3, 60]]
cross_org_share = 0.6
sizes = [[1024, 100]]
read_delay_mean_secs = 30
never_read_share = 0.0

[labels]
label = "https://export.example/attr/itar/value/controlled"
entitled = ["a.example", "b.example"]
share = 0.6
"#
    ))
    .expect("scenario")
}

fn run(s: &Scenario) -> ekg_sim::RunReport {
    let mut quiet = |_: &str, _: u64, _: u64| {};
    ekg_sim::run(s, "test".into(), Options { threads: 2, progress: &mut quiet, base: ekg_sim::BASE }).expect("run")
}

#[test]
fn a_list_is_expanded_where_it_lives_and_every_member_reads() {
    let r = run(&with_list(3));
    assert_eq!(r.verdict, Verdict::Ok, "{}", ekg_sim::report::text(&r));
    let l = r.list.as_ref().expect("list report");
    assert_eq!((l.members, l.delivered, l.posts), (5, 5, 6));
    for x in [&l.late, &l.early] {
        assert_eq!(x.pairs, 30, "{}", x.scheme);
        assert!(x.lost.is_empty(), "{}: {:?}", x.scheme, x.lost);
        assert_eq!(x.read + x.never_read, x.pairs, "{}", x.scheme);
        assert!(x.read > 0 && x.never_read > 0, "{}: {} {}", x.scheme, x.read, x.never_read);
        assert_eq!(x.members_held_key, x.read);
        assert_eq!(x.agent_held_key, 6, "{}: the agent holds every post's key", x.scheme);
        // Membership stays private from the sender's side: it saw the list address only.
        assert_eq!(x.sender_side_addresses.iter().collect::<Vec<_>>(), ["team@lists.example"], "{}", x.scheme);
        assert!(x.violations.is_empty(), "{:?}", x.violations);
    }
    let late = &l.late;
    // One issuance and one release (to the list) at the sender's gatekeeper per post; one
    // issuance per post and one release per member read at the list's.
    assert_eq!((late.sender_gatekeeper.issuances, late.sender_gatekeeper.releases), (6, 6));
    assert_eq!((late.list_gatekeeper.issuances, late.list_gatekeeper.releases), (6, late.read));
    // The content is never encrypted again: the agent makes no key transport of its own but
    // the release it opens, while the MLA wraps the content key to each member.
    let agent = |x: &ekg_sim::lists::ListScheme| x.ops.get("list_agent").copied().unwrap_or_default();
    assert_eq!(agent(&l.early).encrypt, 6 * 5);
    assert_eq!(agent(late).encrypt, 0);
    assert!(!l.early.ops.contains_key("list_gatekeeper"));
    // The same seed, the same list trace; the main runs' traces do not depend on the list.
    let again = run(&with_list(3));
    assert_eq!(again.list.as_ref().unwrap().trace_hash, l.trace_hash);
    let mut without = with_list(3);
    without.list = None;
    assert_eq!(run(&without).trace_hash, r.trace_hash);
}

#[test]
fn an_agent_expanding_to_a_non_member_is_caught() {
    let mut s = with_list(3);
    s.workload.never_read_share = 0.0;
    s.plant = Plant::ListAgentAddsNonMember;
    let r = run(&s);
    assert_eq!(r.verdict, Verdict::CorrectnessFailure, "{}", ekg_sim::report::text(&r));
    let l = r.list.as_ref().unwrap();
    assert_eq!(l.delivered, 6);
    fn codes(x: &ekg_sim::lists::ListScheme) -> Vec<&str> {
        let mut c: Vec<&str> = x.violations.iter().filter_map(|v| v.split(':').next()).collect();
        c.dedup();
        c
    }
    assert!(codes(&l.late).contains(&"release_to_non_member"), "{:?}", l.late.violations);
    assert!(codes(&l.late).contains(&"unauthorised_holder"), "{:?}", l.late.violations);
    assert_eq!(codes(&l.early), ["unauthorised_holder"], "{:?}", l.early.violations);
}

#[test]
fn labelled_mail_is_withheld_from_the_unentitled_under_late_binding_only() {
    let r = run(&labelled(5));
    assert_eq!(r.verdict, Verdict::Ok, "{}", ekg_sim::report::text(&r));
    let (l, e) = (&r.late.labelled, &r.early.labelled);
    assert!(l.messages > 0 && l.messages == e.messages, "{l:?}");
    assert!(l.pairs_unentitled > 0, "{l:?}");
    assert_eq!(l.read_unentitled, 0, "{l:?}");
    assert_eq!(l.withheld, l.pairs_unentitled, "{l:?}");
    assert_eq!(r.late.lost.get("entitlement_all_of_unmet").copied(), Some(l.withheld), "{:?}", r.late.lost);
    assert_eq!(l.read_entitled, l.pairs_entitled, "{l:?}");
    // Early binding encrypted to every listed recipient: the unentitled read.
    assert_eq!(e.read_unentitled, e.pairs_unentitled, "{e:?}");
    assert_eq!(e.read_entitled, e.pairs_entitled, "{e:?}");
    assert_eq!(r.late.owed_undelivered, 0);
}

#[test]
fn senders_dropping_the_label_are_caught() {
    let mut s = labelled(5);
    s.plant = Plant::LabelsDropped;
    let r = run(&s);
    assert_eq!(r.verdict, Verdict::CorrectnessFailure, "{}", ekg_sim::report::text(&r));
    assert!(r.late.labelled.read_unentitled > 0);
    assert!(r.late.violations.iter().all(|v| v.starts_with("unentitled_read")), "{:?}", r.late.violations);
}

#[test]
fn bad_lists_and_labels_are_refused_with_a_code() {
    let list = include_str!("../../fixtures/scenarios/mailing-list.toml");
    let labels = include_str!("../../fixtures/scenarios/labelled-itar.toml");
    for (base, from, to) in [
        (list, "members = 200", "members = 0"),
        (list, "members = 200", "members = 221"),
        (list, "org = \"lists.example\"", "org = \"nowhere.example\""),
        (list, "name = \"team\"", "name = \"u3\""),
        (list, "name = \"team\"", "name = \"Team Room\""),
        (list, "posts = 30", "posts = 0"),
        (list, "posts = 30", "posts = 30\ntypo = 1"),
        (labels, "value/controlled", "value/has space"),
        (labels, "entitled = [\"a.example\", \"b.example\"]", "entitled = [\"nowhere.example\"]"),
        (labels, "entitled = [\"a.example\", \"b.example\"]", "entitled = []"),
        (labels, "share = 0.3", "share = 1.5"),
    ] {
        assert!(base.contains(from), "{from}");
        let e = Scenario::from_toml(&base.replacen(from, to, 1)).unwrap_err();
        assert_eq!(e.code(), "scenario_invalid", "{to}");
    }
}
