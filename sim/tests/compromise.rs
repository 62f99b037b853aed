//! The compromise analysis (issue 27, deliverable 5): exact counts on a hand-made key history,
//! and on a real run the counts each mechanism implies; planted bugs (epochs ignored, the log
//! not consulted) change them.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use ekg_sim::compromise::{self, CompromiseReport, DAY_MS, Inputs};
use ekg_sim::metrics::KeyLife;
use ekg_sim::scenario::Plant;
use ekg_sim::workload::Message;
use ekg_sim::{Options, Scenario};

/// A small world over `days` of mail with tickets of `lifetime_days`, daily epochs.
fn scenario(plant: &str, keeps_deleted: bool) -> Scenario {
    Scenario::from_toml(&format!(
        r#"
name = "small-compromise"
seed = 5
plant = "{plant}"

[[org]]
domain = "a.example"
users = 5
trusts = ["b.example"]

[[org]]
domain = "b.example"
users = 3
trusts = ["a.example"]

[workload]
messages = 80
rate_per_sec = 0.0001
recipients = [[1, 60], [3, 40]]
cross_org_share = 0.5
sizes = [[1024, 100]]
read_delay_mean_secs = 21600
never_read_share = 0.1

[gatekeeper]
policy = "same_certificate"
retention_secs = 600
max_deliveries = 8
ticket_lifetime_secs = 259200

[compromise]
days = 16
epoch_secs = 86400
backup_at_secs = 259200
backup_keeps_deleted_rows = {keeps_deleted}
signing = {{ at_secs = 86400, rotation_after_secs = 2592000, intercept_share = 0.5, heads_every_secs = 3600, audit_every_secs = 86400, response_secs = 43200 }}
recipient = {{ user = "u0@b.example", at_secs = 345600, revoked_after_secs = 172800 }}
"#
    ))
    .expect("scenario")
}

fn run(s: &Scenario) -> (CompromiseReport, Vec<KeyLife>) {
    let mut quiet = |_: &str, _: u64, _: u64| {};
    let r =
        ekg_sim::run(s, "test".into(), Options { threads: 2, progress: &mut quiet, base: ekg_sim::BASE }).expect("run");
    assert_eq!(r.verdict, ekg_sim::Verdict::Ok);
    (r.compromise.expect("compromise report"), r.late.key_lives.clone())
}

/// What the storage mechanism implies, from the key lives alone; `Err` names the first
/// count that differs.
fn storage_as_implied(c: &CompromiseReport, lives: &[KeyLife]) -> Result<(), String> {
    let last = c.day_end_secs.len() - 1;
    let message: Vec<&KeyLife> = lives.iter().filter(|l| l.used).collect();
    // Epochs of a day: the epoch of every key ends by its expiry, 3 days after the last issue;
    // by the last day every epoch key is destroyed.
    if c.storage.epochs_destroyed != c.storage.epochs {
        return Err(format!("epochs destroyed {} of {}", c.storage.epochs_destroyed, c.storage.epochs));
    }
    let b = c.spec.backup_at_secs * 1000;
    let keeps = c.spec.backup_keeps_deleted_rows;
    let in_backup = message.iter().filter(|l| l.issued_ms <= b && (keeps || compromise::held_at(l, b))).count() as u64;
    if c.storage.later_forever[last] != Some(in_backup) {
        return Err(format!("one key for ever: {:?} against {in_backup} in the backup", c.storage.later_forever[last]));
    }
    if c.storage.later_epochs[last] != Some(0) {
        return Err(format!("epochs, storage keys stolen at the end: {:?}, not 0", c.storage.later_epochs[last]));
    }
    for (i, t) in c.day_end_secs.iter().map(|s| s * 1000).enumerate() {
        let issued = message.iter().filter(|l| l.issued_ms <= t).count() as u64;
        let held = message.iter().filter(|l| compromise::held_at(l, t)).count() as u64;
        let (ep, one) = (c.storage.same_day_epochs[i], c.storage.same_day_forever[i]);
        let want_one = if c.spec.backup_keeps_deleted_rows { issued } else { held };
        if one != want_one {
            return Err(format!("day {}: one key for ever exposes {one}, not {want_one}", i + 1));
        }
        if !c.spec.backup_keeps_deleted_rows && ep != held {
            return Err(format!("day {}: epochs expose {ep}, not the {held} keys held", i + 1));
        }
        if ep < held || ep > one {
            return Err(format!("day {}: epochs expose {ep}, outside held {held} .. one key {one}", i + 1));
        }
    }
    Ok(())
}

/// What the log implies for a stolen signing key.
fn signing_as_implied(c: &CompromiseReport) -> Result<(), String> {
    let s = &c.signing;
    if s.log_off.detected != 0 || s.log_off.first_detection_secs.is_some() {
        return Err("the log off detects something".into());
    }
    let first = s.inclusion_required.first_detection_secs.ok_or("inclusion required detects nothing")?;
    let want_end =
        (c.spec.signing.at_secs + c.spec.signing.rotation_after_secs).min(first + c.spec.signing.response_secs);
    if s.inclusion_required.window_end_secs != want_end {
        return Err(format!("window ends at {}, not {want_end}", s.inclusion_required.window_end_secs));
    }
    if s.inclusion_required.forged >= s.log_off.forged || s.inclusion_required.detected == 0 {
        return Err(format!(
            "inclusion: forged {} (log off {}), detected {}",
            s.inclusion_required.forged, s.log_off.forged, s.inclusion_required.detected
        ));
    }
    if s.forked_log.forged < s.inclusion_required.forged || s.forked_log.forged > s.log_off.forged {
        return Err("a forked log is caught later than a missing ticket, sooner than never".into());
    }
    Ok(())
}

#[test]
fn a_real_run_exposes_what_epochs_the_log_and_wrapping_imply() {
    for keeps in [true, false] {
        let (c, lives) = run(&scenario("none", keeps));
        storage_as_implied(&c, &lives).unwrap();
        signing_as_implied(&c).unwrap();
        // The database alone: every stored record of every key searched, no key in the clear.
        assert!(c.database.records_scanned >= c.message_keys && c.message_keys > 0);
        assert_eq!(c.database.keys_found_in_clear, 0);
        // Early binding exposes every message to the victim sent before revocation; late
        // binding a subset: keys still held at the theft, and those sent until revocation.
        assert!(c.recipient.late < c.recipient.early, "late {} early {}", c.recipient.late, c.recipient.early);
        assert_eq!(c.recipient.early, *c.recipient.listing_victim_by_day.iter().max().unwrap().min(&c.recipient.early));
    }
}

#[test]
fn ignoring_epochs_or_not_consulting_the_log_changes_the_counts() {
    let (c, lives) = run(&scenario("epochs_ignored", true));
    assert!(storage_as_implied(&c, &lives).is_err());
    let (c, _) = run(&scenario("log_not_consulted", true));
    assert!(signing_as_implied(&c).is_err());
    assert_eq!(c.signing.inclusion_required.forged, c.signing.log_off.forged);
}

#[test]
fn bad_compromise_sections_are_refused_with_a_code() {
    let good = scenario("none", true);
    let mut bad = Vec::new();
    for edit in [
        |c: &mut compromise::CompromiseSpec| c.days = 0,
        |c: &mut compromise::CompromiseSpec| c.epoch_secs = 0,
        |c: &mut compromise::CompromiseSpec| c.signing.intercept_share = 1.5,
        |c: &mut compromise::CompromiseSpec| c.signing.heads_every_secs = 0,
        |c: &mut compromise::CompromiseSpec| c.backup_at_secs = u64::MAX,
    ] {
        let mut s = good.clone();
        edit(s.compromise.as_mut().unwrap());
        bad.push(s.check().expect_err("refused"));
    }
    // A victim who is no user is refused when the world is built, before either run.
    let mut s = good.clone();
    s.compromise.as_mut().unwrap().recipient.user = "nobody@a.example".into();
    let mut quiet = |_: &str, _: u64, _: u64| {};
    let opts = Options { threads: 2, progress: &mut quiet, base: ekg_sim::BASE };
    bad.push(ekg_sim::run(&s, "test".into(), opts).map(|_| ()).expect_err("refused"));
    for e in bad {
        assert_eq!(e.code(), "scenario_invalid", "{e}");
    }
    // And a typo in the section is refused, not defaulted.
    let text = include_str!("../../fixtures/scenarios/compromise.toml").replace("epoch_secs", "epoch_sec");
    assert_eq!(Scenario::from_toml(&text).unwrap_err().code(), "scenario_invalid");
}

fn life(msg: usize, issued_days: f64, destroyed_days: f64) -> KeyLife {
    let ms = |d: f64| (d * DAY_MS as f64) as u64;
    KeyLife { msg, org: 0, issued_ms: ms(issued_days), destroyed_ms: Some(ms(destroyed_days)), used: true }
}

fn message(id: usize, submit_days: f64, recipients: Vec<usize>, read_after_days: Option<f64>) -> Message {
    let n = recipients.len();
    Message {
        id,
        submit_ms: (submit_days * DAY_MS as f64) as u64,
        sender: 0,
        recipients,
        size: 1,
        read_after_ms: vec![read_after_days.map(|d| (d * DAY_MS as f64) as u64); n],
        cert_found: vec![true; n],
        gateway_fetch: false,
        foreign_probes: vec![],
        labelled: false,
    }
}

#[test]
fn hand_made_history_gives_the_counts_worked_out_by_hand() {
    // Epochs of a day. k0 lives 0.5..0.6, k1 0.7..3 (epoch 0 ends at day 3), k2 1.5..1.6
    // (epoch 1 ends at day 2). Backup at day 1.
    let mut s = scenario("none", true);
    let lives = [life(0, 0.5, 0.6), life(1, 0.7, 3.0), life(2, 1.5, 1.6)];
    // Messages to user 9 (the victim is user 9 here): k1's message is read at day 1.
    let msgs =
        [message(0, 0.5, vec![1], Some(0.05)), message(1, 0.7, vec![9], Some(0.3)), message(2, 1.5, vec![9], None)];
    let spec = {
        let c = s.compromise.as_mut().unwrap();
        c.days = 4;
        c.backup_at_secs = 86_400;
        c.recipient.at_secs = 2 * 86_400;
        c.recipient.revoked_after_secs = 86_400;
        c.clone()
    };
    let inputs = |s: &Scenario| -> CompromiseReport {
        compromise::analyse(&spec, &Inputs { scenario: s, messages: &msgs, lives: &lives, victim: 9, db_scan: (3, 0) })
    };
    let c = inputs(&s);
    // The backup of day 1 holds k0 and k1; epoch 0's key lives until day 3.
    assert_eq!(c.storage.later_epochs, vec![Some(2), Some(2), Some(0), Some(0)]);
    assert_eq!(c.storage.later_forever, vec![Some(2); 4]);
    // Same day at day 2: k0, k1 (epoch 0 alive), k2's epoch destroyed at day 2.
    assert_eq!(c.storage.same_day_epochs, vec![2, 2, 0, 0]);
    assert_eq!(c.storage.same_day_forever, vec![2, 3, 3, 3]);
    assert_eq!(c.held_by_day, vec![1, 1, 0, 0]);
    // The victim's key at day 2: early binding reads both its messages; late binding only
    // k1's (still held, the victim read it first but same_certificate redelivers), not k2's.
    assert_eq!((c.recipient.early, c.recipient.late), (2, 1));
    s.gatekeeper.policy = ekg_core::ledger::ReleasePolicy::Once;
    assert_eq!(inputs(&s).recipient.late, 0);
    // Deleted rows not in the backup: k1 only.
    s.gatekeeper.policy = ekg_core::ledger::ReleasePolicy::SameCertificate;
    s.plant = Plant::EpochsIgnored;
    assert_eq!(inputs(&s).storage.later_epochs, vec![Some(2); 4]);
}
