//! The protocol's parties: [`Sender`], [`Gatekeeper`], [`Recipient`], [`Gateway`] and a
//! mailing list's [`ListAgent`].
//!
//! Every method takes `now` and, where randomness is needed, the caller's RNG. Bytes in,
//! bytes or a typed [`crate::Error`] out; nothing here does I/O.

mod client;
mod expansion;
mod gatekeeper;
mod list;
mod sender;
mod ticket;

pub use client::{Fetcher, Gateway, PendingRelease, ReceivedMessage, Recipient, check_chain};
pub use expansion::{ListExpansion, check_history};
pub use gatekeeper::{
    CredentialStatus, DecidedIssuance, DecidedRelease, DrawFromRng, EpochKeyRing, Gatekeeper, GatekeeperConfig,
    GatekeeperCrypto, GatekeeperSettings, GatewayPrincipal, Issuance, IssueWork, RecipientRule, Release, ReleaseWork,
    RetiredCertificate, RetiredKey, SenderRule, SettingsError, StorageKey, StorageKeys, VerifiedKeyRequest,
    VerifiedReleaseRequest, check_credential, check_profile, destroyable_before, done_epochs_before, draw_fresh,
    epoch_destroyed, limits, settings, unwrap_by_epoch,
};
pub use list::ListAgent;
pub use sender::{PendingKeyRequest, SendKey, Sender};
pub use ticket::{
    KeyDeliveryContent, KeyRequestContent, ReleaseRequestContent, Ticket, TicketContent, decode_issuance_response,
};

/// Planted gatekeeper bugs for the conformance runner's test mode: known-wrong behaviours,
/// one per process, that `ekg serve --test-mode` switches on (`docs/conformance.md` §6).
/// Nothing is planted unless `plant` was called, which exists only with the `planted` feature
/// (without it, `is` is the constant `false`).
pub mod planted {
    pub use crate::planted::{PlantedBug, is};
    #[cfg(feature = "planted")]
    pub use crate::planted::{plant, planted};
}

use crate::asn1::ReleasePolicyCode;
use crate::ledger::ReleasePolicy;

impl From<ReleasePolicy> for ReleasePolicyCode {
    fn from(p: ReleasePolicy) -> Self {
        match p {
            ReleasePolicy::Once => ReleasePolicyCode::Once,
            ReleasePolicy::SameCertificate => ReleasePolicyCode::SameCertificate,
        }
    }
}

impl From<ReleasePolicyCode> for ReleasePolicy {
    fn from(p: ReleasePolicyCode) -> Self {
        match p {
            ReleasePolicyCode::Once => ReleasePolicy::Once,
            ReleasePolicyCode::SameCertificate => ReleasePolicy::SameCertificate,
        }
    }
}
