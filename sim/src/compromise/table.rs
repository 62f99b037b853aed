//! The compromise analysis as text: one table per stolen secret, one row per day.

use std::fmt::Write as _;

use super::CompromiseReport;

/// The three tables (storage and database, signing key, recipient key) and what they assume.
pub fn text(c: &CompromiseReport) -> String {
    let mut s = String::new();
    let sp = &c.spec;
    let opt = |v: Option<u64>| v.map_or("-".to_owned(), |v| v.to_string());
    let day = |secs: u64| format!("{:.2}", secs as f64 / 86_400.0);
    let _ = writeln!(
        s,
        "compromise: {} keys issued, {} message keys; database alone: {} stored records searched, {} keys in the clear",
        c.keys_issued, c.message_keys, c.database.records_scanned, c.database.keys_found_in_clear
    );
    let _ = writeln!(
        s,
        "storage: epochs of {} s ({} made, {} destroyed by the end); backup taken at day {}; it keeps deleted rows: {}",
        sp.epoch_secs,
        c.storage.epochs,
        c.storage.epochs_destroyed,
        day(sp.backup_at_secs),
        sp.backup_keeps_deleted_rows
    );
    let _ = writeln!(
        s,
        "{:>4} {:>7} {:>6} {:>9} {:>9} {:>11} {:>11} {:>9}",
        "day", "issued", "held", "same:ep", "same:one", "backup:ep", "backup:one", "db:wrap"
    );
    for (i, _) in c.day_end_secs.iter().enumerate() {
        let g = |v: &Vec<u64>| v.get(i).copied().unwrap_or(0);
        let _ = writeln!(
            s,
            "{:>4} {:>7} {:>6} {:>9} {:>9} {:>11} {:>11} {:>9}",
            i + 1,
            g(&c.issued_by_day),
            g(&c.held_by_day),
            g(&c.storage.same_day_epochs),
            g(&c.storage.same_day_forever),
            opt(c.storage.later_epochs.get(i).copied().flatten()),
            opt(c.storage.later_forever.get(i).copied().flatten()),
            g(&c.database.wrapped_by_day),
        );
    }
    let sg = &sp.signing;
    let _ = writeln!(
        s,
        "signing key stolen at day {}, rotated at day {} unless detected ({} s response); {} of requests intercepted ({} messages); heads every {} s, audit every {} s",
        day(sg.at_secs),
        day(sg.at_secs + sg.rotation_after_secs),
        sg.response_secs,
        sg.intercept_share,
        c.signing.interceptable,
        sg.heads_every_secs,
        sg.audit_every_secs
    );
    for (name, m) in [
        ("log off", &c.signing.log_off),
        ("inclusion required", &c.signing.inclusion_required),
        ("forked log, audited", &c.signing.forked_log),
    ] {
        let _ = writeln!(
            s,
            "  {name:<20} forged {:>5}, detected {:>5}, first detection day {}, key stops at day {}",
            m.forged,
            m.detected,
            m.first_detection_secs.map_or("never".to_owned(), day),
            day(m.window_end_secs)
        );
    }
    let r = &sp.recipient;
    let _ = writeln!(
        s,
        "recipient key of {} stolen at day {}, revoked at day {}: exposed early {}, late {}",
        r.user,
        day(r.at_secs),
        day(r.at_secs + r.revoked_after_secs),
        c.recipient.early,
        c.recipient.late
    );
    let _ = writeln!(
        s,
        "{:>4} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "day", "sk:off", "sk:incl", "sk:fork", "det:incl", "det:fork", "rk:list", "rk:early", "rk:late"
    );
    for i in 0..c.day_end_secs.len() {
        let g = |v: &Vec<u64>| v.get(i).copied().unwrap_or(0);
        let _ = writeln!(
            s,
            "{:>4} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            i + 1,
            g(&c.signing.log_off.forged_by_day),
            g(&c.signing.inclusion_required.forged_by_day),
            g(&c.signing.forked_log.forged_by_day),
            g(&c.signing.inclusion_required.detected_by_day),
            g(&c.signing.forked_log.detected_by_day),
            g(&c.recipient.listing_victim_by_day),
            g(&c.recipient.early_by_day),
            g(&c.recipient.late_by_day),
        );
    }
    s
}
