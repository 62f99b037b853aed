//! The expansion history of a list agent's key request (`docs/protocol.md` §13), after RFC
//! 2634 §4's `mlExpansionHistory`: which lists a message went through, when, and under which
//! ticket. The gatekeeper checks it (V27: depth, loops, the agent's own entry last); a reader
//! checks the chain of tickets it links (C7, in `client.rs`: the reader's step).

use crate::address::EmailAddress;
use crate::asn1::{ListExpansion as WireExpansion, MAX_EXPANSION_DEPTH};
use crate::cms::{ia5, octets};
use crate::error::{Rejection, Result, reject};
use crate::ids::Digest;
use crate::time::UnixTime;

/// One expansion: list `list` expanded at `time` the message released under the ticket whose
/// SHA-256 is `expanded_ticket`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListExpansion {
    /// The list's address (the agent's certificate names it).
    pub list: EmailAddress,
    /// When the agent expanded.
    pub time: UnixTime,
    /// SHA-256 of the ticket the agent was released the key under.
    pub expanded_ticket: Digest,
}

impl ListExpansion {
    /// From the wire form (V9 for the address; the digest must be 32 bytes).
    pub(crate) fn decode(w: &WireExpansion) -> Result<ListExpansion> {
        Ok(ListExpansion {
            list: EmailAddress::parse(w.list.as_ref())?,
            time: UnixTime::from_generalized(&w.expansion_time),
            expanded_ticket: Digest::from_slice(w.expanded_ticket.as_bytes())
                .ok_or_else(|| reject(Rejection::MalformedDer, "expandedTicket must be 32 bytes"))?,
        })
    }

    /// To the wire form.
    pub(crate) fn encode(&self) -> Result<WireExpansion> {
        Ok(WireExpansion {
            list: ia5(&self.list.to_string())?,
            expansion_time: self.time.to_generalized()?,
            expanded_ticket: octets(self.expanded_ticket.as_bytes())?,
        })
    }
}

/// Step V27 on a key request's history (`history` empty: an ordinary sender, nothing to
/// check): at most [`MAX_EXPANSION_DEPTH`] entries (`list_depth_exceeded`); the lists
/// distinct, and no recipient one of them (`list_loop`); the last entry is the requester's
/// own list (`profile_violation`: an agent expands only as itself).
pub fn check_history(sender: &EmailAddress, recipients: &[EmailAddress], history: &[ListExpansion]) -> Result<()> {
    let Some(last) = history.last() else { return Ok(()) };
    if over_depth_bound(history.len()) {
        return Err(reject(
            Rejection::ListDepthExceeded,
            format!("{} expansions > {MAX_EXPANSION_DEPTH}", history.len()),
        ));
    }
    if last.list != *sender {
        return Err(reject(Rejection::ProfileViolation, "the last expansion is not the requester's own list"));
    }
    if crate::planted::is(crate::planted::PlantedBug::ListLoopIgnored) {
        return Ok(());
    }
    let mut seen = std::collections::BTreeSet::new();
    for e in history {
        if !seen.insert(&e.list) {
            return Err(reject(Rejection::ListLoop, format!("{} expanded twice", e.list)));
        }
    }
    if let Some(r) = recipients.iter().find(|r| seen.contains(r)) {
        return Err(reject(Rejection::ListLoop, format!("{r} is a list this message already went through")));
    }
    Ok(())
}

/// Whether a history of `len` entries is over [`MAX_EXPANSION_DEPTH`] (K and V27; the
/// planted `list_depth_off_by_one` lets one more through).
pub(crate) fn over_depth_bound(len: usize) -> bool {
    len > MAX_EXPANSION_DEPTH
        && !(crate::planted::is(crate::planted::PlantedBug::ListDepthOffByOne) && len == MAX_EXPANSION_DEPTH + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    fn e(list: &str, n: u8) -> ListExpansion {
        ListExpansion { list: a(list), time: UnixTime(1), expanded_ticket: Digest([n; 32]) }
    }

    #[test]
    fn a_recipient_already_expanded_is_a_loop() {
        let h = [e("a@x.org", 1), e("b@y.org", 2)];
        let refused = check_history(&a("b@y.org"), &[a("m@z.org"), a("a@x.org")], &h).unwrap_err();
        assert_eq!(refused.rejection(), Rejection::ListLoop);
        assert!(check_history(&a("b@y.org"), &[a("m@z.org")], &h).is_ok());
    }

    #[test]
    fn a_list_twice_in_the_history_is_a_loop() {
        let h = [e("a@x.org", 1), e("a@x.org", 2)];
        assert_eq!(check_history(&a("a@x.org"), &[a("m@z.org")], &h).unwrap_err().rejection(), Rejection::ListLoop);
    }

    #[test]
    fn more_expansions_than_the_bound_are_refused() {
        let lists: Vec<String> = (0..=MAX_EXPANSION_DEPTH).map(|i| format!("l{i}@x.org")).collect();
        let h: Vec<ListExpansion> = lists.iter().map(|l| e(l, 1)).collect();
        let last = h.last().unwrap().list.clone();
        let refused = check_history(&last, &[a("m@z.org")], &h).unwrap_err();
        assert_eq!(refused.rejection(), Rejection::ListDepthExceeded);
        assert!(check_history(&h[MAX_EXPANSION_DEPTH - 1].list, &[a("m@z.org")], &h[..MAX_EXPANSION_DEPTH]).is_ok());
    }

    #[test]
    fn an_agent_expands_only_as_itself() {
        let h = [e("a@x.org", 1)];
        let refused = check_history(&a("b@y.org"), &[a("m@z.org")], &h).unwrap_err();
        assert_eq!(refused.rejection(), Rejection::ProfileViolation);
        assert!(check_history(&a("s@x.org"), &[a("a@x.org")], &[]).is_ok(), "no history, nothing to check");
    }
}
