//! The list agent (`docs/protocol.md` §13): a mailing list's address, expanded where the
//! list lives. To the sender's gatekeeper the agent is one listed recipient; to its own
//! gatekeeper it is a sender whose recipients are the list's members and whose request
//! carries the expansion history. It re-addresses the message key, never the content.
//!
//! # Driving it
//! 1. [`ListAgent::receive`] the sealed message addressed to the list: the reader's checks
//!    (C1, C6, C7), then the agent's own (its list not already in the history, the depth
//!    bound, no member a list the message went through): `list_loop`, `list_depth_exceeded`.
//! 2. [`ListAgent::request_release`] / [`ListAgent::accept_release`]: the key, exactly as a
//!    recipient fetches it from the ticket's gatekeeper.
//! 3. [`ListAgent::request_expansion`]: send [`PendingKeyRequest::der`] to the list's own
//!    gatekeeper; [`ListAgent::accept_grant`] its answer.
//! 4. [`ListAgent::expand`]: the message for the members, to deliver to each of them.

use super::client::{PendingRelease, ReceivedMessage, Recipient};
use super::expansion::{ListExpansion, check_history};
use super::sender::{PendingKeyRequest, SendKey, Sender};
use crate::address::EmailAddress;
use crate::asn1::{MAX_EXPANSION_DEPTH, MAX_RECIPIENTS};
use crate::crypto::{CryptoProvider, CryptoRng};
use crate::error::{Rejection, Result, reject};
use crate::ids::OneTimeKey;
use crate::time::UnixTime;

/// A list agent: the list's identity (as recipient and as sender) and its members.
#[derive(Debug)]
pub struct ListAgent {
    provider: &'static dyn CryptoProvider,
    recipient: Recipient,
    sender: Sender,
    members: Vec<EmailAddress>,
}

impl ListAgent {
    /// An agent for the list whose address is `sender`'s (its certificate names the list);
    /// `recipient` must hold the same address. `members`: 1 to [`MAX_RECIPIENTS`] distinct
    /// addresses, never the list itself (`list_loop`).
    pub fn new(
        provider: &'static dyn CryptoProvider,
        recipient: Recipient,
        sender: Sender,
        members: Vec<EmailAddress>,
    ) -> Result<Self> {
        if !recipient.addresses().contains(sender.address()) {
            return Err(reject(Rejection::InvalidConfiguration, "the list's two identities name different addresses"));
        }
        if members.is_empty() {
            return Err(reject(Rejection::NoRecipients, "the list has no members"));
        }
        if members.len() > MAX_RECIPIENTS {
            return Err(reject(Rejection::TooManyRecipients, format!("{} members > {MAX_RECIPIENTS}", members.len())));
        }
        let mut seen = std::collections::BTreeSet::new();
        for m in &members {
            if !seen.insert(m) {
                return Err(reject(Rejection::DuplicateRecipient, m.to_string()));
            }
        }
        if members.contains(sender.address()) {
            return Err(reject(Rejection::ListLoop, "the list is one of its own members"));
        }
        Ok(ListAgent { provider, recipient, sender, members })
    }

    /// The list's address.
    pub fn list(&self) -> &EmailAddress {
        self.sender.address()
    }

    /// The members.
    pub fn members(&self) -> &[EmailAddress] {
        &self.members
    }

    /// Receives a message for the list (the reader's checks), then refuses one this agent
    /// must not expand: its list already in the history, or a member that is (`list_loop`);
    /// the history at the depth bound (`list_depth_exceeded`). Nothing is fetched before.
    pub fn receive(&self, sealed: &[u8], now: UnixTime) -> Result<ReceivedMessage> {
        let message = self.recipient.receive(sealed, now)?;
        let history = &message.ticket().request.expansion;
        if history.iter().any(|e| e.list == *self.list()) {
            return Err(reject(Rejection::ListLoop, format!("{} already expanded this message", self.list())));
        }
        if history.len() >= MAX_EXPANSION_DEPTH {
            return Err(reject(
                Rejection::ListDepthExceeded,
                format!("the message went through {} expansions already", history.len()),
            ));
        }
        let next = self.next_history(&message, now);
        check_history(self.list(), &self.members, &next)?;
        Ok(message)
    }

    /// Signs the ticket into a release request (as any listed recipient).
    pub fn request_release(
        &self,
        message: &ReceivedMessage,
        now: UnixTime,
        rng: &mut dyn CryptoRng,
    ) -> Result<PendingRelease> {
        self.recipient.request_release(message, now, rng)
    }

    /// Checks and opens the release: the key the message was sealed under.
    pub fn accept_release(
        &self,
        message: &ReceivedMessage,
        pending: &PendingRelease,
        release: &[u8],
        now: UnixTime,
        rng: &mut dyn CryptoRng,
    ) -> Result<OneTimeKey> {
        self.recipient.accept_release(message, pending, release, now, rng)
    }

    /// The key request to the list's own gatekeeper: the members as recipients, the history
    /// of `message` plus this expansion.
    pub fn request_expansion(
        &self,
        message: &ReceivedMessage,
        now: UnixTime,
        rng: &mut dyn CryptoRng,
    ) -> Result<PendingKeyRequest> {
        self.sender.request_key_expanding(&self.members, self.next_history(message, now), now, rng)
    }

    /// Checks the list's gatekeeper's answer (C1 to C3): the key for the members.
    pub fn accept_grant(
        &self,
        pending: &PendingKeyRequest,
        grant: &[u8],
        ticket: &[u8],
        now: UnixTime,
        rng: &mut dyn CryptoRng,
    ) -> Result<SendKey> {
        self.sender.accept_grant(pending, grant, ticket, now, rng)
    }

    /// The message for the members: `message`'s content key, unwrapped with `received` and
    /// wrapped under `send`, `send`'s ticket attached. `send` must answer a request whose
    /// last expansion names `message`'s ticket (`list_expansion_mismatch` otherwise).
    pub fn expand(&self, message: &ReceivedMessage, received: &OneTimeKey, send: &SendKey) -> Result<Vec<u8>> {
        let last = send.ticket.request.expansion.last();
        if last.is_none_or(|e| e.expanded_ticket != message.ticket().digest || e.list != *self.list()) {
            return Err(reject(Rejection::ListExpansionMismatch, "the new ticket does not expand this message"));
        }
        message.sealed().expand(self.provider, received, &send.key_id, &send.key, &send.ticket.der)
    }

    fn next_history(&self, message: &ReceivedMessage, now: UnixTime) -> Vec<ListExpansion> {
        let mut history = message.ticket().request.expansion.clone();
        history.push(ListExpansion { list: self.list().clone(), time: now, expanded_ticket: message.ticket().digest });
        history
    }
}
