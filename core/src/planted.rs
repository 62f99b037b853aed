//! Planted gatekeeper bugs: known-wrong behaviours that `ekg serve --test-mode` switches on,
//! one per process, so that the conformance runner can be measured by the bugs it catches
//! (`docs/conformance.md` §6, `scripts/planted-bugs.sh`), as mutation testing measures a
//! suite by the mutants it kills.
//!
//! Each bug is one small branch at the decision point it corrupts, behind [`is`]. Nothing is
//! planted unless `plant` was called, and only the test mode calls it: `ekg serve` without
//! `--test-mode` refuses to start when `EKG_PLANTED_BUG` is set. The model checker, the
//! simulator and every other caller never plant, so every branch below is dead for them.
//!
//! This is the one piece of process-wide state in the core: a bug is a property of the
//! process under test, set once before it serves, never changed.
//!
//! The switch exists only with the crate's `planted` feature (on through `ekg-server`'s and
//! the `ekg` command's `testmode`). Without it there is no `plant`, [`is`] is the constant
//! `false`, and the compiler drops every planted branch: a production gatekeeper
//! (`docs/server.md`, "A production build") carries the bugs' names, not the bugs.

use std::sync::atomic::{AtomicU64, Ordering};

#[cfg(feature = "planted")]
static PLANTED: std::sync::OnceLock<PlantedBug> = std::sync::OnceLock::new();
static SEQUENCE: AtomicU64 = AtomicU64::new(1);

/// Plants `bug` in this process. Once per process: `Err` with the bug already planted if
/// one was (the same or another).
#[cfg(feature = "planted")]
pub fn plant(bug: PlantedBug) -> Result<(), PlantedBug> {
    PLANTED.set(bug).map_err(|_| PLANTED.get().copied().unwrap_or(bug))?;
    Ok(())
}

/// The bug planted in this process, if any.
#[cfg(feature = "planted")]
pub fn planted() -> Option<PlantedBug> {
    PLANTED.get().copied()
}

/// Whether `bug` is the one planted.
#[cfg(feature = "planted")]
#[inline]
pub fn is(bug: PlantedBug) -> bool {
    PLANTED.get() == Some(&bug)
}

/// Whether `bug` is the one planted: never, in a build without the `planted` feature.
#[cfg(not(feature = "planted"))]
#[inline(always)]
pub const fn is(_bug: PlantedBug) -> bool {
    false
}

/// The next number of a counter (the `sequential_key_ids` bug's key ids).
pub(crate) fn next_in_sequence() -> u64 {
    SEQUENCE.fetch_add(1, Ordering::Relaxed)
}

macro_rules! bugs {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal, $area:literal;)*) => {
        /// A planted gatekeeper bug (see the module's documentation).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum PlantedBug {
            $($(#[doc = $doc])* $variant,)*
        }

        impl PlantedBug {
            /// Every bug, in the table's order.
            pub const ALL: &'static [PlantedBug] = &[$(PlantedBug::$variant,)*];

            /// Its stable snake_case name (`EKG_PLANTED_BUG=<name>`).
            pub fn name(self) -> &'static str {
                match self { $(PlantedBug::$variant => $name,)* }
            }

            /// What it does wrong, in one sentence.
            pub fn description(self) -> &'static str {
                match self { $(PlantedBug::$variant => concat!($($doc),*).trim_ascii(),)* }
            }

            /// The rule it breaks (a V-step, a ledger rule, a bound, the binding).
            pub fn area(self) -> &'static str {
                match self { $(PlantedBug::$variant => $area,)* }
            }
        }
    };
}

impl PlantedBug {
    /// The bug named `name`.
    pub fn from_name(name: &str) -> Option<PlantedBug> {
        PlantedBug::ALL.iter().copied().find(|b| b.name() == name)
    }
}

impl core::fmt::Display for PlantedBug {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

bugs! {
    /// The request's signature is not verified (V4).
    SignatureUnchecked = "signature_unchecked", "V4";
    /// The message-digest attribute is not compared with the content (V3).
    DigestUnchecked = "digest_unchecked", "V3";
    /// More certificates than the path bound are followed (V5).
    ChainLengthUnbounded = "chain_length_unbounded", "V5";
    /// An expired certificate is accepted (V6.1 notAfter).
    CertificateExpiryUnchecked = "certificate_expiry_unchecked", "V6";
    /// A certificate not yet valid is accepted (V6.1 notBefore).
    NotYetValidAccepted = "not_yet_valid_accepted", "V6";
    /// A certificate is refused at exactly its notAfter second (V6.1 off by one).
    CertificateExpiryExclusive = "certificate_expiry_exclusive", "V6 boundary";
    /// Revocation is not checked (V6.2).
    RevocationUnchecked = "revocation_unchecked", "V6";
    /// An issuer need not be a CA (V7 basicConstraints).
    IssuerNotCaAccepted = "issuer_not_ca_accepted", "V7";
    /// The end entity need not carry emailProtection (V7 extendedKeyUsage).
    EmailEkuUnchecked = "email_eku_unchecked", "V7";
    /// Unknown critical extensions are ignored (V7).
    CriticalExtensionsIgnored = "critical_extensions_ignored", "V7";
    /// The request's sender need not be an address of the certificate (V10).
    SenderAddressUnchecked = "sender_address_unchecked", "V10";
    /// A sender rule's domain also recognises its subdomains (V11).
    SubdomainSenders = "subdomain_senders", "V11";
    /// A sender rule's issuer is not compared with the sender's anchor (V11).
    SenderIssuerUnchecked = "sender_issuer_unchecked", "V11";
    /// Exactly max_recipients recipients are refused (V12 off by one).
    RecipientLimitExclusive = "recipient_limit_exclusive", "V12 boundary";
    /// One recipient more than max_recipients is accepted (V12 off by one).
    RecipientLimitPlusOne = "recipient_limit_plus_one", "V12 boundary";
    /// The key request's requestTime is not checked against the clock (V13).
    RequestTimeUnchecked = "request_time_unchecked", "V13";
    /// The key request's signing-time is not checked against the clock (V13).
    SigningTimeUnchecked = "signing_time_unchecked", "V13";
    /// A time exactly at the allowed skew is refused (V13 off by one).
    SkewExclusive = "skew_exclusive", "V13 boundary";
    /// A time one second past the allowed skew is accepted (V13 off by one).
    SkewPlusOne = "skew_plus_one", "V13 boundary";
    /// A release request's times are not checked against the clock (V13).
    ReleaseFreshnessUnchecked = "release_freshness_unchecked", "V13";
    /// Tickets are issued under the gatekeeper's own expired certificate (L3).
    GatekeeperCredentialUnchecked = "gatekeeper_credential_unchecked", "L3";
    /// The ticket's signature is not verified (V20).
    TicketSignatureUnchecked = "ticket_signature_unchecked", "V20";
    /// Only the ticket's gatekeeper URI is compared, not that its signer is this gatekeeper (V20).
    TicketUriOnly = "ticket_uri_only", "V20 signer";
    /// Only the ticket's signer is compared, not its gatekeeper URI (V20).
    TicketSignerOnly = "ticket_signer_only", "V20";
    /// Tickets signed under a certificate this gatekeeper replaced are refused (V20, renewal).
    RetiredCertificatesRefused = "retired_certificates_refused", "V20";
    /// The outside team's: only the ticket's URI is checked and the listed addresses are the ticket's, so a forged ticket releases bob's key to carol (V20, V22).
    ForgedTicketServed = "forged_ticket_served", "V20 signer, V22 record";
    /// The listed addresses are taken from the ticket, not from the gatekeeper's record (V22).
    ListedFromTicket = "listed_from_ticket", "V22 record";
    /// A requester's anchor need not be allowed for the listed domain (V25).
    AnchorDomainsUnchecked = "anchor_domains_unchecked", "V25";
    /// A list agent's loop is not refused: a list twice in the expansion history, or a recipient the history names, is issued (V27).
    ListLoopIgnored = "list_loop_ignored", "V27";
    /// An expansion history one entry over the depth bound is accepted (V27 off by one).
    ListDepthOffByOne = "list_depth_off_by_one", "V27 boundary";
    /// A key request carrying an expansion history is refused as malformed, as by a gatekeeper that predates lists (docs/protocol.md §13).
    ExpansionRefused = "expansion_refused", "V27 lists";
    /// A key request one byte over its bound is read (the 128 KiB bound, off by one).
    KeyRequestSizePlusOne = "key_request_size_plus_one", "size boundary";
    /// A release request one byte over its bound is read (the 512 KiB bound, off by one).
    ReleaseRequestSizePlusOne = "release_request_size_plus_one", "size boundary";
    /// A ninth certificate is accepted in a SignedData (the eight-certificate bound, off by one).
    CertificatesPlusOne = "certificates_plus_one", "size boundary";
    /// A repeated key request is answered with a new key (V14 skipped).
    V14Skipped = "v14_skipped", "V14";
    /// V14 is remembered in the process's memory only: a replay after a restart gets a second key.
    V14InMemory = "v14_in_memory", "V14 durability";
    /// The store forgets a request when its key is destroyed: a replay then gets a new key (V14).
    V14ForgottenAtDestruction = "v14_forgotten_at_destruction", "V14";
    /// A destroyed key's tombstone (and its request) is purged at once, not after the ticket's expiry (V14, purge).
    PurgedAtDestruction = "purged_at_destruction", "purge";
    /// The ticket's expiry counts from the request's signed time, not the gatekeeper's clock.
    ExpiryFromRequestTime = "expiry_from_request_time", "issuance";
    /// The ticket lives one second less than configured.
    TicketLifetimeShort = "ticket_lifetime_short", "issuance boundary";
    /// One AES key for every issuance.
    OneKeyForAll = "one_key_for_all", "key freshness";
    /// Key ids are a counter.
    SequentialKeyIds = "sequential_key_ids", "key-id freshness";
    /// Keys are stored in the clear, not wrapped under the storage key.
    KeysStoredInClear = "keys_stored_in_clear", "keys at rest";
    /// A destroyed key's wrapped material stays in the store.
    DestroyedMaterialKept = "destroyed_material_kept", "keys at rest";
    /// A release at exactly the ticket's expiresAt is served (V21 off by one).
    FetchAtExpiryServed = "fetch_at_expiry_served", "V21 boundary";
    /// The ticket's and the key's expiry are not checked at release (V21).
    ExpiryUncheckedAtRelease = "expiry_unchecked_at_release", "V21";
    /// A gateway is recognised by its address alone, whatever its anchor (V22).
    GatewayAnyAnchor = "gateway_any_anchor", "V22";
    /// A listed gateway's fetch is counted as that address's recipient release (V22, V24).
    GatewayCountedAsRecipient = "gateway_counted_as_recipient", "V22";
    /// Listed local parts are compared case-insensitively (V22).
    LocalPartCaseInsensitive = "local_part_case_insensitive", "V22";
    /// A destroyed key is reported as unknown (V23).
    DestroyedReportedUnknown = "destroyed_reported_unknown", "V23";
    /// `once` is counted per certificate, not per address: another certificate of a served address is served (V24).
    OncePerCertificate = "once_per_certificate", "V24";
    /// `once` re-serves the same certificate, as `same_certificate` would (V24).
    OnceAsSameCertificate = "once_as_same_certificate", "V24";
    /// Under `same_certificate`, another certificate of a served address is served (V24).
    OtherCertificateServed = "other_certificate_served", "V24";
    /// One re-delivery more than max_deliveries is served (V24 off by one).
    RedeliveryLimitPlusOne = "redelivery_limit_plus_one", "V24 boundary";
    /// A release follows the configured policy, not the one recorded at issuance (V24).
    ConfiguredPolicyAtRelease = "configured_policy_at_release", "V24 recorded policy";
    /// A release is served without its record (the ledger never learns of it).
    ReleaseNotRecorded = "release_not_recorded", "ledger";
    /// A key is not destroyed when its last listed recipient is served (retention 0).
    NotDestroyedWhenReleased = "not_destroyed_when_released", "destruction";
    /// A key is destroyed when its last recipient is served even with a retention configured.
    RetentionIgnored = "retention_ignored", "retention";
    /// A re-delivery at exactly the end of retention is served (off by one).
    RetentionEndServed = "retention_end_served", "retention boundary";
    /// The key is looked up before the requester is checked against the list (V23 before V22).
    KeyBeforeListed = "key_before_listed", "V22/V23 order";
    /// A labelled key is released without checking the requester's entitlements (V26).
    EntitlementUnchecked = "entitlement_unchecked", "V26";
    /// An access token's audience is not compared with the gatekeeper's (V28.5).
    TokenAudienceUnchecked = "token_audience_unchecked", "V28";
    /// A release does not record its token's (iss, jti): the token can be replayed (V28.8).
    TokenUseUnrecorded = "token_use_unrecorded", "V28";
    /// The sweep never destroys an expired key.
    NoExpirySweep = "no_expiry_sweep", "sweep";
    /// The sweep never ends a retention.
    RetentionNeverSwept = "retention_never_swept", "sweep";
    /// The sweep destroys a key one second before its expiry.
    SweepOneSecondEarly = "sweep_one_second_early", "sweep boundary";
    /// The answer is made although its record could not be written (the ledger before the store).
    AnswerBeforeDurable = "answer_before_durable", "crash safety";
    /// The release's requestDigest is the ticket's digest, not the release request's (C3).
    ReleaseDigestWrong = "release_digest_wrong", "release";
    /// The grant's requestDigest is the digest of the request's content, not of the signed request (C2).
    GrantDigestWrong = "grant_digest_wrong", "issuance";
    /// A protocol body with Content-Type parameters or another case is refused (415).
    ContentTypeParametersRefused = "content_type_parameters_refused", "HTTP";
    /// A protocol body of any Content-Type is read.
    ContentTypeUnchecked = "content_type_unchecked", "HTTP";
    /// Refusals are sent as application/json, not application/problem+json.
    ProblemAsPlainJson = "problem_as_plain_json", "HTTP";
    /// The ledger's conflicts (409) are answered 400.
    ConflictAs400 = "conflict_as_400", "HTTP status";
    /// Gone (410: expired, destroyed) is answered 404.
    GoneAs404 = "gone_as_404", "HTTP status";
    /// The store's failures (503) are answered 500.
    StorageFailedAs500 = "storage_failed_as_500", "HTTP status";
    /// Answers are sent as application/octet-stream, not application/cms.
    SuccessAsOctetStream = "success_as_octet_stream", "HTTP";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case_and_round_trip() {
        let mut names = std::collections::BTreeSet::new();
        for b in PlantedBug::ALL {
            assert!(names.insert(b.name()), "{b:?}");
            assert!(b.name().bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_'), "{b:?}");
            assert_eq!(PlantedBug::from_name(b.name()), Some(*b));
            assert!(!b.description().is_empty() && !b.area().is_empty());
        }
        assert!(PlantedBug::ALL.len() >= 60, "{}", PlantedBug::ALL.len());
        assert_eq!(PlantedBug::from_name("no_such_bug"), None);
        // Nothing is planted in a test process.
        #[cfg(feature = "planted")]
        assert_eq!(planted(), None);
        assert!(PlantedBug::ALL.iter().all(|b| !is(*b)));
    }
}
