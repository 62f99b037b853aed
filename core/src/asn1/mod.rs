//! Our own DER structures (module `EKG-2026` in `docs/ekg.asn1`) and their limits.
//!
//! These are the eContent of the SignedData layers of the profile:
//! - [`KeyRequest`]: what a sender signs (seed: "formats a key request ... and signs it");
//! - [`TicketInfo`]: what the gatekeeper signs, the whole signed request inside (seed: "a
//!   plaintext copy of the key request, signed by the EKG itself");
//! - [`ReleaseRequest`]: what a recipient signs, the whole ticket inside (seed: "uses the
//!   recipient's email signing cert to sign the EKG-signed key request");
//! - [`KeyDelivery`]: what the grant and each release carry, encrypted to the requester.
//!
//! The types here are the raw ASN.1; their meaning is checked where they are used.

pub mod dump;
pub mod oid;
pub mod strict;

use der::asn1::{GeneralizedTime, Ia5String, OctetString};
use der::{DecodeValue, EncodeValue, Enumerated, FixedTag, Header, Length, Reader, Sequence, Tag, Writer};
use zeroize::Zeroizing;

pub use cms::content_info::ContentInfo;

/// The only version this profile defines for every structure.
pub const VERSION: u8 = 0;
/// Absolute cap on recipients per key request (a gatekeeper may configure a lower one).
pub const MAX_RECIPIENTS: usize = 1000;
// Size limits, layered so that each object fits in the one that carries it
// (`docs/protocol.md` §4.4): a ticket is a key request (at most 128 KiB) plus the
// gatekeeper's layer (its certificates, at most 32 KiB, and a few hundred bytes); a release
// request is a ticket plus the requester's layer (at most 8 certificates of 16 KiB).

/// Largest signed key request accepted, in bytes (128 KiB).
pub const MAX_KEY_REQUEST_LEN: usize = 128 * 1024;
/// Largest ticket accepted, in bytes (256 KiB).
pub const MAX_TICKET_LEN: usize = 256 * 1024;
/// Largest signed release request accepted, in bytes (512 KiB).
pub const MAX_RELEASE_REQUEST_LEN: usize = 512 * 1024;
/// Largest grant or release accepted, in bytes (64 KiB); the key delivery signed inside a
/// release is bounded by it too.
pub const MAX_ENVELOPE_LEN: usize = 64 * 1024;
/// Largest certificate and chain a gatekeeper may sign with, together, in bytes (32 KiB).
pub const MAX_GATEKEEPER_CERTIFICATES_LEN: usize = 32 * 1024;
/// Longest gatekeeper URI.
pub const MAX_URI_LEN: usize = 512;
/// Longest access token a release request may carry, in octets (`docs/protocol.md` §12.5).
pub const MAX_ACCESS_TOKEN_LEN: usize = 8192;
/// Most list expansions one message may go through (the depth bound of `docs/protocol.md`
/// §13): an expansion history holds at most this many entries.
pub const MAX_EXPANSION_DEPTH: usize = 8;

/// ```asn1
/// KeyRequest ::= SEQUENCE {
///   version      INTEGER (0),
///   sender       IA5String,                       -- the sender's address
///   recipients   SEQUENCE SIZE (1..1000) OF IA5String,
///   nonce        OCTET STRING (SIZE (16)),
///   requestTime  GeneralizedTime,
///   labels   [0] IMPLICIT SEQUENCE SIZE (1..16) OF IA5String OPTIONAL,
///                                                 -- attribute-value URIs (§12)
///   expansion    [1] ExpansionHistory OPTIONAL }  -- only a list agent's (docs/protocol.md §13)
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct KeyRequest {
    /// `0`.
    pub version: u8,
    /// The sender's address.
    pub sender: Ia5String,
    /// The recipients' addresses, no keys (seed: "includes the recipient's email addresses,
    /// but not their public keys").
    pub recipients: Vec<Ia5String>,
    /// 16 random bytes chosen by the sender.
    pub nonce: OctetString,
    /// When the sender made the request.
    pub request_time: GeneralizedTime,
    /// Security labels: attribute-value URIs (`docs/protocol.md` §12); absent when there is
    /// none, so that an unlabelled request is encoded as before labels existed.
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true", constructed = "true")]
    pub labels: Option<Vec<Ia5String>>,
    /// Present only in a list agent's request: the expansions so far, this one last
    /// (`docs/protocol.md` §13). Absent, the encoding is the original one byte for byte.
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    pub expansion: Option<Vec<ListExpansion>>,
}

/// ```asn1
/// ExpansionHistory ::= SEQUENCE SIZE (1..8) OF ListExpansion
/// ListExpansion ::= SEQUENCE {
///   list            IA5String,                 -- the list address expanded
///   expansionTime   GeneralizedTime,
///   expandedTicket  OCTET STRING (SIZE (32)) } -- SHA-256 of the ticket it expanded
/// ```
/// One entry of a list agent's expansion history (after RFC 2634 §4 `MLData`).
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct ListExpansion {
    /// The list's address.
    pub list: Ia5String,
    /// When the agent expanded.
    pub expansion_time: GeneralizedTime,
    /// SHA-256 of the ticket the agent received (the one it was released the key under).
    pub expanded_ticket: OctetString,
}

/// ```asn1
/// ReleasePolicy ::= ENUMERATED { once(0), sameCertificate(1) }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Enumerated)]
#[repr(u8)]
pub enum ReleasePolicyCode {
    /// One release per listed address, never again (the seed).
    Once = 0,
    /// Re-delivery to the same certificate after a lost response, never to a second one.
    SameCertificate = 1,
}

/// ```asn1
/// TicketInfo ::= SEQUENCE {
///   version        INTEGER (0),
///   keyId          OCTET STRING (SIZE (16)),
///   gatekeeper     IA5String,        -- URI where recipients reach the gatekeeper
///   request        ContentInfo,      -- the sender's whole SignedData KeyRequest
///   issuedAt       GeneralizedTime,
///   expiresAt      GeneralizedTime,
///   releasePolicy  ReleasePolicy,
///   grantDigest    OCTET STRING (SIZE (32)) }  -- SHA-256 of the grant's DER
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct TicketInfo {
    /// `0`.
    pub version: u8,
    /// The key's id (seed: "a unique identifier for the encryption key").
    pub key_id: OctetString,
    /// Contact URI (seed: "contact info, so recipients can locate the EKG").
    pub gatekeeper: Ia5String,
    /// The sender's signed key request, byte for byte.
    pub request: ContentInfo,
    /// Issue time.
    pub issued_at: GeneralizedTime,
    /// After this the key is destroyed and no release is made.
    pub expires_at: GeneralizedTime,
    /// How releases are counted.
    pub release_policy: ReleasePolicyCode,
    /// Binds the grant to this signature, so that one signature authenticates both.
    pub grant_digest: OctetString,
}

/// ```asn1
/// ReleaseRequest ::= SEQUENCE {
///   version      INTEGER (0),
///   ticket       ContentInfo,        -- the gatekeeper's whole SignedData TicketInfo
///   nonce        OCTET STRING (SIZE (16)),
///   requestTime  GeneralizedTime,
///   accessToken  [0] IMPLICIT IA5String (SIZE (1..8192)) OPTIONAL }
///                                     -- a JWT access token (docs/protocol.md §12.5)
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct ReleaseRequest {
    /// `0`.
    pub version: u8,
    /// The ticket, byte for byte.
    pub ticket: ContentInfo,
    /// 16 random bytes chosen by the requester.
    pub nonce: OctetString,
    /// When the requester made the request.
    pub request_time: GeneralizedTime,
    /// An OAuth 2.0 access token (RFC 9068), the compact JWS as issued, signed with the rest
    /// (`docs/protocol.md` §12.5); absent, the request is encoded as before tokens existed.
    #[asn1(context_specific = "0", tag_mode = "IMPLICIT", optional = "true")]
    pub access_token: Option<Ia5String>,
}

/// ```asn1
/// KeyDelivery ::= SEQUENCE {
///   version        INTEGER (0),
///   keyId          OCTET STRING (SIZE (16)),
///   key            OCTET STRING (SIZE (32)),  -- the one-time AES-256 key
///   requestDigest  OCTET STRING (SIZE (32)),  -- SHA-256 of the request answered
///   deliveredTo    IA5String }                -- the address served
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct KeyDelivery {
    /// `0`.
    pub version: u8,
    /// The key's id.
    pub key_id: OctetString,
    /// The key. Zeroized on drop.
    pub key: SecretOctets,
    /// SHA-256 of the signed key request (grant) or signed release request (release).
    pub request_digest: OctetString,
    /// The address (or gateway principal) the key was delivered to.
    pub delivered_to: Ia5String,
}

/// ```asn1
/// IssuanceResponse ::= SEQUENCE {
///   grant   ContentInfo,   -- AuthEnvelopedData { KeyDelivery }, to the sender
///   ticket  ContentInfo }  -- SignedData(gatekeeper) { TicketInfo }
/// ```
/// The body of the HTTP answer to a key request, as the content of a ContentInfo of type
/// `id-ekg-ct-issuance` (`docs/protocol.md` §8).
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct IssuanceResponse {
    /// The grant.
    pub grant: ContentInfo,
    /// The ticket.
    pub ticket: ContentInfo,
}

/// An OCTET STRING whose contents are zeroized on drop and never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretOctets(pub Zeroizing<Vec<u8>>);

impl core::fmt::Debug for SecretOctets {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "SecretOctets(<{} bytes redacted>)", self.0.len())
    }
}

impl FixedTag for SecretOctets {
    const TAG: Tag = Tag::OctetString;
}

impl<'a> DecodeValue<'a> for SecretOctets {
    type Error = der::Error;

    fn decode_value<R: Reader<'a>>(reader: &mut R, header: Header) -> der::Result<Self> {
        Ok(SecretOctets(Zeroizing::new(reader.read_vec(header.length())?)))
    }
}

impl EncodeValue for SecretOctets {
    fn value_len(&self) -> der::Result<Length> {
        Length::try_from(self.0.len())
    }

    fn encode_value(&self, writer: &mut impl Writer) -> der::Result<()> {
        writer.write(&self.0)
    }
}
