//! Object identifiers: the EKG private arc and the standard ones the profile uses.
//!
//! The arc `1.3.6.1.4.1.99999.1` (`id-ekg`) is a **placeholder**: it is not a registered
//! Private Enterprise Number. A deployment must take its own PEN from IANA and change
//! [`ID_EKG`]'s subtree here, in `docs/ekg.asn1` and in the fixtures, in one step.

use der::asn1::ObjectIdentifier as Oid;

/// `id-ekg` (placeholder, see the module documentation).
pub const ID_EKG: Oid = Oid::new_unwrap("1.3.6.1.4.1.99999.1");
/// Content type of [`super::KeyRequest`] (`id-ekg-ct-keyRequest`).
pub const CT_KEY_REQUEST: Oid = Oid::new_unwrap("1.3.6.1.4.1.99999.1.1.1");
/// Content type of [`super::TicketInfo`] (`id-ekg-ct-ticket`).
pub const CT_TICKET: Oid = Oid::new_unwrap("1.3.6.1.4.1.99999.1.1.2");
/// Content type of [`super::ReleaseRequest`] (`id-ekg-ct-releaseRequest`).
pub const CT_RELEASE_REQUEST: Oid = Oid::new_unwrap("1.3.6.1.4.1.99999.1.1.3");
/// Content type of [`super::KeyDelivery`] (`id-ekg-ct-keyDelivery`).
pub const CT_KEY_DELIVERY: Oid = Oid::new_unwrap("1.3.6.1.4.1.99999.1.1.4");
/// Content type of [`super::IssuanceResponse`], the HTTP answer to a key request
/// (`id-ekg-ct-issuance`).
pub const CT_ISSUANCE: Oid = Oid::new_unwrap("1.3.6.1.4.1.99999.1.1.5");
/// Content type of a signed tree head of the issuance log (`id-ekg-ct-treeHead`).
pub const CT_TREE_HEAD: Oid = Oid::new_unwrap("1.3.6.1.4.1.99999.1.1.6");
/// Authenticated attribute of the sealed message: SHA-256 of its ticket (`id-ekg-aa-ticketDigest`).
pub const AA_TICKET_DIGEST: Oid = Oid::new_unwrap("1.3.6.1.4.1.99999.1.2.1");
/// Unauthenticated attribute of the sealed message: the ticket itself (`id-ekg-ua-ticket`).
pub const UA_TICKET: Oid = Oid::new_unwrap("1.3.6.1.4.1.99999.1.2.2");
/// Unauthenticated attribute of an expanded sealed message: the tickets it was released
/// under before the attached one, the original first (`id-ekg-ua-expandedTickets`).
pub const UA_EXPANDED_TICKETS: Oid = Oid::new_unwrap("1.3.6.1.4.1.99999.1.2.3");
/// Extended key usage of a gatekeeper certificate (`id-ekg-kp-gatekeeper`).
pub const KP_GATEKEEPER: Oid = Oid::new_unwrap("1.3.6.1.4.1.99999.1.3.1");

/// `id-data` (RFC 5652).
pub const ID_DATA: Oid = const_oid::db::rfc5911::ID_DATA;
/// `id-signedData` (RFC 5652).
pub const ID_SIGNED_DATA: Oid = const_oid::db::rfc5911::ID_SIGNED_DATA;
/// `id-ct-authEnvelopedData` (RFC 5083).
pub const ID_AUTH_ENVELOPED_DATA: Oid = const_oid::db::rfc5911::ID_CT_AUTH_ENVELOPED_DATA;
/// `id-contentType` signed/authenticated attribute.
pub const ATTR_CONTENT_TYPE: Oid = const_oid::db::rfc5911::ID_CONTENT_TYPE;
/// `id-messageDigest` signed attribute.
pub const ATTR_MESSAGE_DIGEST: Oid = const_oid::db::rfc5911::ID_MESSAGE_DIGEST;
/// `id-signingTime` signed attribute.
pub const ATTR_SIGNING_TIME: Oid = const_oid::db::rfc5911::ID_SIGNING_TIME;
/// `id-sha256`.
pub const SHA256: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.2.1");
/// `rsaEncryption`.
pub const RSA_ENCRYPTION: Oid = Oid::new_unwrap("1.2.840.113549.1.1.1");
/// `sha256WithRSAEncryption`.
pub const SHA256_WITH_RSA: Oid = Oid::new_unwrap("1.2.840.113549.1.1.11");
/// `id-RSAES-OAEP`.
pub const RSAES_OAEP: Oid = Oid::new_unwrap("1.2.840.113549.1.1.7");
/// `id-mgf1`.
pub const MGF1: Oid = Oid::new_unwrap("1.2.840.113549.1.1.8");
/// `id-aes256-GCM`.
pub const AES256_GCM: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.46");
/// `id-aes256-wrap`.
pub const AES256_WRAP: Oid = Oid::new_unwrap("2.16.840.1.101.3.4.1.45");
/// `id-kp-emailProtection`.
pub const KP_EMAIL_PROTECTION: Oid = Oid::new_unwrap("1.3.6.1.5.5.7.3.4");

/// A readable name for an OID the profile knows (used by the dump).
pub fn name(oid: &Oid) -> Option<&'static str> {
    const NAMES: &[(Oid, &str)] = &[
        (CT_KEY_REQUEST, "id-ekg-ct-keyRequest"),
        (CT_TICKET, "id-ekg-ct-ticket"),
        (CT_RELEASE_REQUEST, "id-ekg-ct-releaseRequest"),
        (CT_KEY_DELIVERY, "id-ekg-ct-keyDelivery"),
        (CT_ISSUANCE, "id-ekg-ct-issuance"),
        (CT_TREE_HEAD, "id-ekg-ct-treeHead"),
        (AA_TICKET_DIGEST, "id-ekg-aa-ticketDigest"),
        (UA_TICKET, "id-ekg-ua-ticket"),
        (UA_EXPANDED_TICKETS, "id-ekg-ua-expandedTickets"),
        (KP_GATEKEEPER, "id-ekg-kp-gatekeeper"),
        (ID_DATA, "id-data"),
        (ID_SIGNED_DATA, "id-signedData"),
        (ID_AUTH_ENVELOPED_DATA, "id-ct-authEnvelopedData"),
        (ATTR_CONTENT_TYPE, "id-contentType"),
        (ATTR_MESSAGE_DIGEST, "id-messageDigest"),
        (ATTR_SIGNING_TIME, "id-signingTime"),
        (SHA256, "id-sha256"),
        (RSA_ENCRYPTION, "rsaEncryption"),
        (SHA256_WITH_RSA, "sha256WithRSAEncryption"),
        (RSAES_OAEP, "id-RSAES-OAEP"),
        (MGF1, "id-mgf1"),
        (AES256_GCM, "id-aes256-GCM"),
        (AES256_WRAP, "id-aes256-wrap"),
        (KP_EMAIL_PROTECTION, "id-kp-emailProtection"),
    ];
    NAMES.iter().find(|(o, _)| o == oid).map(|(_, n)| *n).or_else(|| const_oid::db::DB.by_oid(oid))
}
