//! Rejections: one enum, one stable snake_case code per variant.
//!
//! Every variant names the verification step of `docs/protocol.md` it comes from
//! (`V1`..`V30`, `C1`..`C8` for client-side checks, `A1`.. for an auditor's checks of the
//! issuance log, `L1`.. for local failures). The codes are
//! part of the conformance interface: fixtures and other implementations match on them, so a
//! code is never renamed or reused.

use core::fmt;

/// Who is at fault for a rejection (after rustls' classification).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The bytes are not a well-formed message of the EKG profile.
    InvalidMessage,
    /// The message is well formed but a signature, certificate or path does not hold.
    Untrusted,
    /// Everything verifies, but policy or state refuses the request.
    Refused,
    /// This side failed (storage, configuration, provider); the peer did nothing wrong.
    Local,
}

macro_rules! rejections {
    ($( $(#[doc = $doc:literal])* $variant:ident => $code:literal, $step:literal, $fault:ident; )*) => {
        /// Why an input was rejected. See the module documentation.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Rejection {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl Rejection {
            /// Every rejection, in declaration order (for fixtures and documentation).
            pub const ALL: &'static [Rejection] = &[ $( Rejection::$variant, )* ];

            /// The stable snake_case code.
            pub const fn code(self) -> &'static str {
                match self { $( Rejection::$variant => $code, )* }
            }

            /// The verification step in `docs/protocol.md` this rejection comes from.
            pub const fn step(self) -> &'static str {
                match self { $( Rejection::$variant => $step, )* }
            }

            /// Who is at fault.
            pub const fn fault(self) -> Fault {
                match self { $( Rejection::$variant => Fault::$fault, )* }
            }

            /// Looks a rejection up by its code.
            pub fn from_code(code: &str) -> Option<Rejection> {
                match code { $( $code => Some(Rejection::$variant), )* _ => None }
            }
        }
    };
}

rejections! {
    /// The input is larger than the profile allows for this object.
    InputTooLarge => "input_too_large", "V1", InvalidMessage;
    /// The input uses BER features (indefinite length, non-minimal length, unsorted SET OF,
    /// constructed strings): the profile is DER only.
    BerNotDer => "ber_not_der", "V1", InvalidMessage;
    /// The input is not a DER encoding of the expected structure.
    MalformedDer => "malformed_der", "V1", InvalidMessage;
    /// The CMS content type is not the one expected at this point of the flow.
    UnexpectedContentType => "unexpected_content_type", "V2", InvalidMessage;
    /// A version field has a value this profile does not define.
    UnsupportedVersion => "unsupported_version", "V2", InvalidMessage;
    /// An algorithm outside the profile (digest, signature, key transport, cipher).
    UnsupportedAlgorithm => "unsupported_algorithm", "V2", InvalidMessage;
    /// The CMS structure breaks the narrow EKG profile (signer count, missing or duplicate
    /// attributes, detached content, ...).
    ProfileViolation => "profile_violation", "V2", InvalidMessage;
    /// The signed content-type attribute differs from the encapsulated content type.
    ContentTypeMismatch => "content_type_mismatch", "V3", InvalidMessage;
    /// The signed message-digest attribute differs from the digest of the content.
    DigestMismatch => "digest_mismatch", "V3", Untrusted;
    /// The signer's certificate is not among the certificates carried in the SignedData.
    SignerCertificateMissing => "signer_certificate_missing", "V4", InvalidMessage;
    /// The signature does not verify with the signer's public key.
    BadSignature => "bad_signature", "V4", Untrusted;
    /// No path from the certificate to a configured trust anchor (or a certificate signature
    /// in the path does not verify).
    UntrustedCertificate => "untrusted_certificate", "V5", Untrusted;
    /// The path is longer than the configured bound.
    ChainTooLong => "chain_too_long", "V5", Untrusted;
    /// A certificate in the path has expired (`now` is after its notAfter).
    CertificateExpired => "certificate_expired", "V6", Untrusted;
    /// A certificate in the path is not valid yet (`now` is before its notBefore).
    CertificateNotYetValid => "certificate_not_yet_valid", "V6", Untrusted;
    /// A certificate in the path is listed on its issuer's configured CRL.
    CertificateRevoked => "certificate_revoked", "V6", Untrusted;
    /// The configured CRL of an issuer in the path is not current at `now` (past its
    /// nextUpdate, or before its thisUpdate): revocation cannot be told, so the path is
    /// refused (fail closed). The fault is local: the CRL must be refreshed.
    CrlStale => "crl_stale", "V6", Local;
    /// A certificate's key usage does not allow the use (end entity: digitalSignature;
    /// issuer: keyCertSign and cA).
    KeyUsageNotAllowed => "key_usage_not_allowed", "V7", Untrusted;
    /// The end-entity certificate has an extended key usage without emailProtection.
    ExtendedKeyUsageNotAllowed => "extended_key_usage_not_allowed", "V7", Untrusted;
    /// A certificate carries a critical extension this profile does not process.
    UnknownCriticalExtension => "unknown_critical_extension", "V7", Untrusted;
    /// A name of a certificate is outside the nameConstraints of an issuer or anchor above it
    /// (RFC 5280 section 4.2.1.10), or a critical nameConstraints extension holds a name form
    /// this profile cannot check.
    NameNotPermitted => "name_not_permitted", "V7", Untrusted;
    /// The certificate's public key is not RSA of 2048 to 8192 bits.
    UnsupportedKey => "unsupported_key", "V7", Untrusted;
    /// The end-entity certificate has no rfc822Name subjectAltName.
    CertificateHasNoEmail => "certificate_has_no_email", "V8", Untrusted;
    /// A string is not an email address this profile accepts.
    InvalidAddress => "invalid_address", "V9", InvalidMessage;
    /// The key request's sender address is not an address of the signer's certificate.
    SenderAddressMismatch => "sender_address_mismatch", "V10", Refused;
    /// The gatekeeper's policy does not recognise this sender (domain or issuing CA).
    SenderNotRecognised => "sender_not_recognised", "V11", Refused;
    /// The key request lists no recipient.
    NoRecipients => "no_recipients", "V12", InvalidMessage;
    /// The key request lists more recipients than the cap.
    TooManyRecipients => "too_many_recipients", "V12", Refused;
    /// The key request lists the same address twice (after address normalisation).
    DuplicateRecipient => "duplicate_recipient", "V12", InvalidMessage;
    /// The request's time is too far from the gatekeeper's `now`.
    RequestTimeSkew => "request_time_skew", "V13", Refused;
    /// A key request with the same (sender, nonce) was already answered and is still
    /// remembered (a replay, a duplicate from the network, or a reused nonce): a retry must be
    /// a new request.
    DuplicateRequest => "duplicate_request", "V14", Refused;
    /// The ticket was not signed by this gatekeeper (release) or by the gatekeeper that
    /// signed the ticket (client checks).
    WrongGatekeeper => "wrong_gatekeeper", "V20", Untrusted;
    /// The ticket has expired.
    TicketExpired => "ticket_expired", "V21", Refused;
    /// The requester's certificate holds no address listed in the ticket, and the requester
    /// is not a configured gateway of this organisation.
    RecipientNotListed => "recipient_not_listed", "V22", Refused;
    /// The key id is not known to this gatekeeper.
    KeyUnknown => "key_unknown", "V23", Refused;
    /// The key was destroyed (every recipient served, or expiry).
    KeyDestroyed => "key_destroyed", "V23", Refused;
    /// Policy `once`: this address has had its one release.
    AlreadyReleased => "already_released", "V24", Refused;
    /// Policy `same_certificate`: the address was released to a different certificate.
    ReleasedToOtherCertificate => "released_to_other_certificate", "V24", Refused;
    /// Policy `same_certificate`: the re-delivery bound for this address is spent.
    RedeliveryLimit => "redelivery_limit", "V24", Refused;
    /// The requester's listed addresses are all in domains that the anchor its path ends at
    /// may not certify (the gatekeeper's recipient rules; checked after V20, before V21).
    AnchorNotAllowedForDomain => "anchor_not_allowed_for_domain", "V25", Refused;
    /// A key request's label is not an attribute-value URI of the profile, or there are too
    /// many (`docs/protocol.md` §12.1).
    InvalidLabel => "invalid_label", "V15", InvalidMessage;
    /// A label names an attribute or value the gatekeeper's policy does not define.
    LabelUnknown => "label_unknown", "V15", Refused;
    /// An `all_of` attribute of the label: the party does not hold every value it carries
    /// (the sender at issuance, V15; a recipient at release, V26).
    EntitlementAllOfUnmet => "entitlement_all_of_unmet", "V26", Refused;
    /// An `any_of` attribute of the label: the party holds none of the values it carries.
    EntitlementAnyOfUnmet => "entitlement_any_of_unmet", "V26", Refused;
    /// A `hierarchy` attribute of the label: the party holds no value ranked at or above it.
    EntitlementHierarchyUnmet => "entitlement_hierarchy_unmet", "V26", Refused;
    /// A list expansion would loop: the request (or the agent's list) names, as a recipient or
    /// as its own list, a list already in the expansion history (RFC 2634 §4 loop detection).
    ListLoop => "list_loop", "V27", Refused;
    /// A list expansion would exceed the depth bound (`MAX_EXPANSION_DEPTH` expansions).
    ListDepthExceeded => "list_depth_exceeded", "V27", Refused;
    /// A release request's access token is not a JWT access token of the profile (form,
    /// `alg`, `typ`, required claims, a lifetime over the ticket lifetime), or its signature
    /// does not verify (`docs/protocol.md` §12.5.3).
    TokenInvalid => "token_invalid", "V28", Untrusted;
    /// The token's issuer is not configured for a listed domain of the requester's
    /// certificate.
    TokenIssuer => "token_issuer", "V28", Refused;
    /// The issuer's key set has no usable key with the token's `kid` (after the one refetch
    /// the interval allows), or the key set could not be fetched.
    TokenKeyUnknown => "token_key_unknown", "V28", Untrusted;
    /// The token's audience does not name this gatekeeper.
    TokenAudience => "token_audience", "V28", Refused;
    /// The token has expired (`exp`, with the skew).
    TokenExpired => "token_expired", "V28", Refused;
    /// The token is not valid yet (`nbf` or `iat` after `now`, with the skew).
    TokenNotYetValid => "token_not_yet_valid", "V28", Refused;
    /// The token's (`iss`, `sub`) maps to no listed address of the requester's certificate:
    /// an unmapped subject, or a token moved into another party's request.
    TokenUnbound => "token_unbound", "V28", Refused;
    /// The token's (`iss`, `jti`) was recorded with an earlier release: a replay.
    TokenReplayed => "token_replayed", "V28", Refused;
    /// Client: the response is bound to another ticket or request than the one sent.
    ResponseMismatch => "response_mismatch", "C3", Untrusted;
    /// Client: no recipient info in the envelope is addressed to this certificate or key id.
    NotForThisRecipient => "not_for_this_recipient", "C4", InvalidMessage;
    /// Client: a wrapped key does not unwrap (OAEP or AES key wrap failure).
    KeyUnwrapFailed => "key_unwrap_failed", "C4", Untrusted;
    /// Client: AES-GCM authentication failed (tampered ciphertext or authenticated
    /// attributes, or the wrong key).
    AuthenticationFailed => "authentication_failed", "C5", Untrusted;
    /// Client: the sealed message's authenticated ticket digest differs from its ticket.
    TicketDigestMismatch => "ticket_digest_mismatch", "C6", Untrusted;
    /// An expanded message's chain of tickets does not hold: an expansion that does not name
    /// the ticket before it, a list not listed there, or a history that was rewritten.
    ListExpansionMismatch => "list_expansion_mismatch", "C7", Untrusted;
    /// Audit: a log file or one of its entries is not in the encoding of `docs/protocol.md`
    /// §10.2, or is over its bounds.
    LogMalformed => "log_malformed", "A1", InvalidMessage;
    /// Audit: a tree head's content is not a TreeHead of the profile (the CMS around it is
    /// checked as any SignedData, with those codes).
    TreeHeadMalformed => "tree_head_malformed", "A2", InvalidMessage;
    /// Audit: a tree head's signature does not verify, or its signer is not the gatekeeper
    /// certificate the auditor trusts.
    TreeHeadBadSignature => "tree_head_bad_signature", "A2", Untrusted;
    /// Audit: a signed tree head's root is not the root of the log's first treeSize entries
    /// (or the log holds fewer entries than the head counts).
    LogRootMismatch => "log_root_mismatch", "A3", Untrusted;
    /// Audit: a proof is not well formed for its sizes (index or size out of range, wrong
    /// number of hashes, a hash that is not 32 bytes).
    LogProofMalformed => "log_proof_malformed", "A4", InvalidMessage;
    /// Audit: an inclusion proof does not lead from the entry to the head's root.
    LogInclusionFailed => "log_inclusion_failed", "A4", Untrusted;
    /// Audit: no entry of the log (up to the head's size) records the issuance of this
    /// ticket: a ticket the gatekeeper did not log (forged with its key, or hidden).
    TicketNotLogged => "ticket_not_logged", "A4", Untrusted;
    /// Audit: a consistency proof does not lead from the first root to the second.
    LogConsistencyFailed => "log_consistency_failed", "A5", Untrusted;
    /// Audit: two validly signed heads cannot be of one append-only log (same size and
    /// different roots, or the earlier root is not a prefix of the later tree).
    LogFork => "log_fork", "A5", Untrusted;
    /// Audit: the address given does not match the entry's keyed commitment under the
    /// log salt given (or the entry commits to no address).
    LogAddressMismatch => "log_address_mismatch", "A6", Untrusted;
    /// Local: the store failed to make a record durable; no response was produced.
    StorageFailed => "storage_failed", "L1", Local;
    /// Local: a fresh key id collided with a known one (a broken RNG); nothing was issued.
    KeyIdCollision => "key_id_collision", "L2", Local;
    /// Local: the configuration is invalid (bad key, missing anchor, ...).
    InvalidConfiguration => "invalid_configuration", "L3", Local;
    /// Local: the crypto provider failed on an operation that should not fail.
    CryptoFailure => "crypto_failure", "L4", Local;
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A rejection with a human-readable detail. Equality and matching use the [`Rejection`].
#[derive(Clone)]
pub struct Error {
    rejection: Rejection,
    detail: String,
}

impl Error {
    /// A rejection with detail.
    pub fn new(rejection: Rejection, detail: impl Into<String>) -> Self {
        Error { rejection, detail: detail.into() }
    }

    /// The rejection.
    pub fn rejection(&self) -> Rejection {
        self.rejection
    }

    /// Its stable code.
    pub fn code(&self) -> &'static str {
        self.rejection.code()
    }

    /// The detail (never holds secret material).
    pub fn detail(&self) -> &str {
        &self.detail
    }
}

impl From<Rejection> for Error {
    fn from(rejection: Rejection) -> Self {
        Error { rejection, detail: String::new() }
    }
}

impl PartialEq<Rejection> for Error {
    fn eq(&self, other: &Rejection) -> bool {
        self.rejection == *other
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.detail.is_empty() {
            write!(f, "{}", self.rejection.code())
        } else {
            write!(f, "{}: {}", self.rejection.code(), self.detail)
        }
    }
}

impl std::error::Error for Error {}

/// Result with an [`Error`].
pub type Result<T> = core::result::Result<T, Error>;

/// Shorthand: `Err(reject(Rejection::X, "detail"))`.
pub(crate) fn reject(rejection: Rejection, detail: impl Into<String>) -> Error {
    Error::new(rejection, detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_round_trip() {
        let mut seen = std::collections::BTreeSet::new();
        for r in Rejection::ALL {
            let code = r.code();
            assert!(seen.insert(code), "duplicate code {code}");
            assert!(code.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{code}");
            assert_eq!(Rejection::from_code(code), Some(*r));
        }
        assert_eq!(Rejection::from_code("nope"), None);
    }
}
