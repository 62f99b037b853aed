//! Early binding, S/MIME-style (RFC 8551), for the comparison with the gatekeeper: the sender
//! encrypts the content key to every recipient's certificate at send time (one
//! KeyTransRecipientInfo each), so it must hold every certificate then. Built from
//! `ekg-core`'s CMS building blocks; not part of the EKG protocol.

use ekg_core::Result;
use ekg_core::crypto::pki::Credential;
use ekg_core::crypto::{CryptoProvider, CryptoRng};
use ekg_core::wire::envelope;
use x509_cert::Certificate;
use zeroize::Zeroizing;

/// Encrypts `content` (of type `content_type`) once, the content key wrapped to each of
/// `recipients`, in order. Refuses an empty list (`profile_violation`).
pub fn seal_to_all(
    provider: &dyn CryptoProvider,
    recipients: &[&Certificate],
    content_type: der::asn1::ObjectIdentifier,
    content: &[u8],
    rng: &mut dyn CryptoRng,
) -> Result<Vec<u8>> {
    envelope::seal_to_each(provider, recipients, content_type, content, rng)
}

/// Opens an early-binding envelope with the recipient info that names `me`
/// (`not_for_this_recipient` when none does): the content type and the content.
pub fn open_as_one_of(
    provider: &dyn CryptoProvider,
    der: &[u8],
    me: &Credential,
    max_len: usize,
    rng: &mut dyn CryptoRng,
) -> Result<(der::asn1::ObjectIdentifier, Zeroizing<Vec<u8>>)> {
    envelope::open_any(provider, der, me, max_len, rng)
}

/// RFC 2634 §4's mail list agent: re-addresses an envelope that names `me` to `recipients`
/// (the content key unwrapped and wrapped to each; the encrypted content unchanged).
pub fn readdress(
    provider: &dyn CryptoProvider,
    der: &[u8],
    me: &Credential,
    recipients: &[&Certificate],
    max_len: usize,
    rng: &mut dyn CryptoRng,
) -> Result<Vec<u8>> {
    envelope::readdress_to_each(provider, der, me, recipients, max_len, rng)
}
