//! The inspection tier: the protocol's bytes, item by item, for the tools that make or read
//! them below the roles (the fixtures' generator, which forges what the roles never would;
//! the simulator; the CLI's `inspect` and `demo`; benchmarks and tests).
//!
//! - [`limits`]: every size limit of `docs/protocol.md` §4.4, in bytes (counts where said).
//! - The raw structures of module `EKG-2026` (`docs/ekg.asn1`), as DER types with public
//!   fields: [`KeyRequest`], [`ListExpansion`], [`ReleasePolicyCode`], [`TicketInfo`],
//!   [`ReleaseRequest`], [`KeyDelivery`], [`IssuanceResponse`], [`SecretOctets`] and
//!   [`VERSION`]; CMS's [`ContentInfo`] that carries each of them.
//! - [`oid`]: every object identifier the profile uses, and [`oid::name`].
//! - The CMS building blocks of the profile (`docs/protocol.md` §4): [`signed`] (SignedData),
//!   [`envelope`] (AuthEnvelopedData to a certificate), [`sealed`] (the sealed message) and
//!   [`raw`] (SignedData and SignerInfo with their elements kept as bytes, to build what the
//!   profile forbids).
//! - [`dump`]: a readable, deterministic dump of DER.
//!
//! What the roles verify stays behind them: decoding here checks DER and the profile, not
//! who may do what. No stability promise beyond the protocol's own: these types follow
//! `docs/ekg.asn1`. The strict DER decoder itself is not exposed; every function here that
//! reads bytes applies it.

pub use crate::asn1::dump::dump;
pub use crate::asn1::oid;
pub use crate::asn1::{
    ContentInfo, IssuanceResponse, KeyDelivery, KeyRequest, ListExpansion, ReleasePolicyCode, ReleaseRequest,
    SecretOctets, TicketInfo, VERSION,
};

/// The size limits of `docs/protocol.md` §4.4, in bytes (counts where said).
pub mod limits {
    pub use crate::address::{DOMAIN_MAX, LOCAL_PART_MAX};
    pub use crate::asn1::{
        MAX_ACCESS_TOKEN_LEN, MAX_ENVELOPE_LEN, MAX_EXPANSION_DEPTH, MAX_GATEKEEPER_CERTIFICATES_LEN,
        MAX_KEY_REQUEST_LEN, MAX_RECIPIENTS, MAX_RELEASE_REQUEST_LEN, MAX_TICKET_LEN, MAX_URI_LEN,
    };
    pub use crate::cms::sealed::MAX_SEALED_LEN;
    pub use crate::cms::signed::{MAX_CERTIFICATE_LEN, MAX_CERTIFICATES};
}

/// SignedData with one signer, content attached (RFC 5652 §5, the profile of
/// `docs/protocol.md` §4): [`sign`](signed::sign), [`sign_secret`](signed::sign_secret),
/// [`open`](signed::open) and what it yields, [`SignedObject`](signed::SignedObject).
pub mod signed {
    pub use crate::cms::signed::{SignedObject, open, sign, sign_secret};
}

/// AuthEnvelopedData (RFC 5083) with AES-256-GCM and RSA-OAEP key transport to a
/// certificate: the grant and each release.
pub mod envelope {
    pub use crate::cms::envelope::{open, open_any, readdress_to_each, seal_to, seal_to_each};
}

/// The sealed message: AuthEnvelopedData keyed by the gatekeeper's key id, the ticket
/// attached (`docs/protocol.md` §9).
pub mod sealed {
    pub use crate::cms::sealed::{SealedMessage, seal};
}

/// SignedData and SignerInfo with certificates and attributes kept as raw DER elements: what
/// the fixtures' generator edits to build the inputs the profile forbids.
pub mod raw {
    pub use crate::cms::raw::{
        EContent, Element, ElementSet, EncapsulatedContentInfoRaw, SecretElement, SignedDataRaw, SignerInfoRaw,
        element_set,
    };
}
