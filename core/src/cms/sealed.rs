//! The sealed message: AuthEnvelopedData, AES-256-GCM, one KEKRecipientInfo.
//!
//! The key-encryption key is the gatekeeper's one-time key and the KEKIdentifier is its key
//! id, so `openssl cms -decrypt -secretkey KEY -secretkeyid ID` opens it. The SHA-256 of the
//! ticket is an authenticated attribute (GCM additional data): a message cannot be moved
//! under another ticket. The ticket rides as an unauthenticated attribute (seed: "attaches
//! the signed key request").

use cms::authenveloped_data::AuthEnvelopedData;
use cms::content_info::CmsVersion;
use cms::enveloped_data::{KekIdentifier, KekRecipientInfo, RecipientInfo, RecipientInfos};
use der::asn1::{ObjectIdentifier, OctetString, SetOfVec};
use der::{Any, Decode, Encode, Tag};
use zeroize::Zeroizing;

use super::{algorithm, attribute, content_info, encode_failed, gcm, single_attribute};
use crate::asn1::{ContentInfo, MAX_TICKET_LEN, oid, strict};
use crate::crypto::{CryptoProvider, CryptoRng};
use crate::error::{Rejection, Result, reject};
use crate::ids::{Digest, KEY_LEN, KeyId, OneTimeKey};

/// Largest sealed message accepted by default, in bytes.
pub const MAX_SEALED_LEN: usize = 64 * 1024 * 1024;

/// A parsed sealed message: the key id, the attached ticket, and the ciphertext.
#[derive(Clone, Debug)]
pub struct SealedMessage {
    key_id: KeyId,
    ticket: Vec<u8>,
    expanded: Vec<Vec<u8>>,
    aed: AuthEnvelopedData,
}

/// Seals `message` (MIME bytes) under `key`, attaching `ticket`.
pub fn seal(
    provider: &dyn CryptoProvider,
    key_id: &KeyId,
    key: &OneTimeKey,
    ticket: &[u8],
    message: &[u8],
    rng: &mut dyn CryptoRng,
) -> Result<Vec<u8>> {
    let cek = gcm::fresh_cek(provider, rng);
    let wrapped = provider.aes256_kw_wrap(key.expose(), &cek)?;
    let kekri = KekRecipientInfo {
        version: CmsVersion::V4,
        kek_id: KekIdentifier {
            kek_identifier: OctetString::new(key_id.0.to_vec()).map_err(encode_failed)?,
            date: None,
            other: None,
        },
        key_enc_alg: algorithm(oid::AES256_WRAP, None),
        encrypted_key: OctetString::new(wrapped.0.to_vec()).map_err(encode_failed)?,
    };
    let ticket_digest = provider.sha256(ticket);
    let auth_attrs = SetOfVec::try_from(vec![
        attribute(oid::ATTR_CONTENT_TYPE, Any::encode_from(&oid::ID_DATA).map_err(encode_failed)?)?,
        attribute(oid::AA_TICKET_DIGEST, Any::new(Tag::OctetString, ticket_digest.0.to_vec()).map_err(encode_failed)?)?,
    ])
    .map_err(encode_failed)?;
    let unauth_attrs =
        SetOfVec::try_from(vec![attribute(oid::UA_TICKET, Any::from_der(ticket).map_err(encode_failed)?)?])
            .map_err(encode_failed)?;
    let (eci, mac) = gcm::encrypt(provider, &cek, oid::ID_DATA, message, Some(&auth_attrs), rng)?;
    let aed = AuthEnvelopedData {
        version: CmsVersion::V0,
        originator_info: None,
        recip_infos: RecipientInfos::try_from(vec![RecipientInfo::Kekri(kekri)]).map_err(encode_failed)?,
        auth_encrypted_content_info: eci,
        auth_attrs: Some(auth_attrs),
        mac,
        unauth_attrs: Some(unauth_attrs),
    };
    content_info(oid::ID_AUTH_ENVELOPED_DATA, &aed)
}

/// The `id-ekg-ua-expandedTickets` attribute's tickets (none if absent), each at most
/// [`MAX_TICKET_LEN`], at most `MAX_EXPANSION_DEPTH` of them.
fn expanded_tickets(unauth: &[x509_cert::attr::Attribute]) -> Result<Vec<Vec<u8>>> {
    let Some(value) = single_attribute(unauth, &oid::UA_EXPANDED_TICKETS, "unauthenticated")? else {
        return Ok(Vec::new());
    };
    let chain: Vec<ContentInfo> = value.decode_as().map_err(|_| reject(Rejection::MalformedDer, "expanded tickets"))?;
    if chain.is_empty() {
        return Err(reject(Rejection::MalformedDer, "an empty expanded-tickets attribute"));
    }
    if chain.len() > crate::asn1::MAX_EXPANSION_DEPTH {
        return Err(reject(Rejection::ListDepthExceeded, format!("{} expanded tickets", chain.len())));
    }
    let mut out = Vec::with_capacity(chain.len());
    for t in &chain {
        let der = t.to_der().map_err(encode_failed)?;
        if der.len() > MAX_TICKET_LEN {
            return Err(reject(Rejection::InputTooLarge, "an expanded ticket"));
        }
        out.push(der);
    }
    Ok(out)
}

impl SealedMessage {
    /// Parses a sealed message and checks that the authenticated ticket digest matches the
    /// attached ticket. The ticket itself is not verified here (see the recipient role).
    pub fn parse(provider: &dyn CryptoProvider, der: &[u8], max_len: usize) -> Result<SealedMessage> {
        let (content_type, inner) = super::raw::content_info_parts(der, max_len, "ContentInfo")?;
        if content_type != oid::ID_AUTH_ENVELOPED_DATA {
            return Err(reject(Rejection::UnexpectedContentType, format!("{content_type} is not AuthEnvelopedData")));
        }
        let aed: AuthEnvelopedData = strict::decode(inner, max_len, "AuthEnvelopedData")?;
        if aed.version != CmsVersion::V0 || aed.originator_info.is_some() {
            return Err(reject(Rejection::UnsupportedVersion, "AuthEnvelopedData version 0 without originatorInfo"));
        }
        let mut infos = aed.recip_infos.0.iter();
        let (Some(RecipientInfo::Kekri(kekri)), None) = (infos.next(), infos.next()) else {
            return Err(reject(Rejection::ProfileViolation, "exactly one KEKRecipientInfo is required"));
        };
        if kekri.version != CmsVersion::V4 || kekri.kek_id.date.is_some() || kekri.kek_id.other.is_some() {
            return Err(reject(Rejection::ProfileViolation, "KEKRecipientInfo v4 with a bare key identifier"));
        }
        if kekri.key_enc_alg.oid != oid::AES256_WRAP || kekri.key_enc_alg.parameters.is_some() {
            return Err(reject(Rejection::UnsupportedAlgorithm, "key wrap must be id-aes256-wrap"));
        }
        let key_id = KeyId::from_slice(kekri.kek_id.kek_identifier.as_bytes())
            .ok_or_else(|| reject(Rejection::ProfileViolation, "key identifier must be 16 bytes"))?;
        gcm::check_algorithm(&aed.auth_encrypted_content_info)?;
        if aed.auth_encrypted_content_info.content_type != oid::ID_DATA {
            return Err(reject(Rejection::UnexpectedContentType, "sealed content must be id-data"));
        }
        let auth = aed
            .auth_attrs
            .as_ref()
            .ok_or_else(|| reject(Rejection::ProfileViolation, "no authenticated attributes"))?;
        let ct = single_attribute(auth.as_slice(), &oid::ATTR_CONTENT_TYPE, "authenticated")?
            .ok_or_else(|| reject(Rejection::ProfileViolation, "no content-type attribute"))?;
        if ct.decode_as::<ObjectIdentifier>().ok() != Some(oid::ID_DATA) {
            return Err(reject(Rejection::ContentTypeMismatch, "content-type attribute"));
        }
        let digest = single_attribute(auth.as_slice(), &oid::AA_TICKET_DIGEST, "authenticated")?
            .ok_or_else(|| reject(Rejection::ProfileViolation, "no ticket digest attribute"))?
            .decode_as::<OctetString>()
            .map_err(|_| reject(Rejection::MalformedDer, "ticket digest"))?;
        let unauth =
            aed.unauth_attrs.as_ref().ok_or_else(|| reject(Rejection::ProfileViolation, "no ticket attached"))?;
        let ticket = single_attribute(unauth.as_slice(), &oid::UA_TICKET, "unauthenticated")?
            .ok_or_else(|| reject(Rejection::ProfileViolation, "no ticket attached"))?
            .to_der()
            .map_err(encode_failed)?;
        if ticket.len() > MAX_TICKET_LEN {
            return Err(reject(Rejection::InputTooLarge, "attached ticket"));
        }
        let expanded = expanded_tickets(unauth.as_slice())?;
        // C6: the content was sealed under the first ticket of the chain (the attached one
        // for a message no list expanded); C7 checks the rest of the chain.
        let original = expanded.first().unwrap_or(&ticket);
        if digest.as_bytes() != provider.sha256(original).as_bytes() {
            return Err(reject(
                Rejection::TicketDigestMismatch,
                "authenticated digest differs from the attached (or original) ticket",
            ));
        }
        Ok(SealedMessage { key_id, ticket, expanded, aed })
    }

    /// The gatekeeper key id (the KEKIdentifier).
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The attached ticket's DER.
    pub fn ticket(&self) -> &[u8] {
        &self.ticket
    }

    /// The tickets of the expansions before the attached one, the original first (empty for
    /// a message no list expanded).
    pub fn expanded_tickets(&self) -> &[Vec<u8>] {
        &self.expanded
    }

    /// A list agent's expansion (`docs/protocol.md` §13): the same content, authenticated
    /// attributes and tag, the content-encryption key unwrapped with `old_key` and wrapped
    /// under `new_key` (id `new_key_id`), `new_ticket` attached, and the ticket this message
    /// had appended to the expanded tickets. The content is not encrypted again.
    pub fn expand(
        &self,
        provider: &dyn CryptoProvider,
        old_key: &OneTimeKey,
        new_key_id: &KeyId,
        new_key: &OneTimeKey,
        new_ticket: &[u8],
    ) -> Result<Vec<u8>> {
        if self.expanded.len() >= crate::asn1::MAX_EXPANSION_DEPTH {
            return Err(reject(Rejection::ListDepthExceeded, "the message went through every expansion allowed"));
        }
        let Some(RecipientInfo::Kekri(kekri)) = self.aed.recip_infos.0.iter().next() else {
            return Err(reject(Rejection::ProfileViolation, "no KEKRecipientInfo"));
        };
        let cek = provider.aes256_kw_unwrap(old_key.expose(), kekri.encrypted_key.as_bytes())?;
        let wrapped = provider.aes256_kw_wrap(new_key.expose(), cek.expose())?;
        let kekri = KekRecipientInfo {
            version: CmsVersion::V4,
            kek_id: KekIdentifier {
                kek_identifier: OctetString::new(new_key_id.0.to_vec()).map_err(encode_failed)?,
                date: None,
                other: None,
            },
            key_enc_alg: algorithm(oid::AES256_WRAP, None),
            encrypted_key: OctetString::new(wrapped.0.to_vec()).map_err(encode_failed)?,
        };
        let mut chain = self.expanded.clone();
        chain.push(self.ticket.clone());
        let chain: Vec<ContentInfo> =
            chain.iter().map(|t| ContentInfo::from_der(t)).collect::<der::Result<_>>().map_err(encode_failed)?;
        let unauth_attrs = SetOfVec::try_from(vec![
            attribute(oid::UA_TICKET, Any::from_der(new_ticket).map_err(encode_failed)?)?,
            attribute(oid::UA_EXPANDED_TICKETS, Any::encode_from(&chain).map_err(encode_failed)?)?,
        ])
        .map_err(encode_failed)?;
        let aed = AuthEnvelopedData {
            recip_infos: RecipientInfos::try_from(vec![RecipientInfo::Kekri(kekri)]).map_err(encode_failed)?,
            unauth_attrs: Some(unauth_attrs),
            ..self.aed.clone()
        };
        content_info(oid::ID_AUTH_ENVELOPED_DATA, &aed)
    }

    /// SHA-256 of the attached ticket.
    pub fn ticket_digest(&self, provider: &dyn CryptoProvider) -> Digest {
        provider.sha256(&self.ticket)
    }

    /// Decrypts with the released key.
    pub fn open(&self, provider: &dyn CryptoProvider, key: &OneTimeKey) -> Result<Zeroizing<Vec<u8>>> {
        let Some(RecipientInfo::Kekri(kekri)) = self.aed.recip_infos.0.iter().next() else {
            return Err(reject(Rejection::ProfileViolation, "no KEKRecipientInfo"));
        };
        let cek = provider.aes256_kw_unwrap(key.expose(), kekri.encrypted_key.as_bytes())?;
        let cek: &[u8; KEY_LEN] = cek.expose();
        let eci = &self.aed.auth_encrypted_content_info;
        gcm::decrypt(provider, cek, eci, self.aed.auth_attrs.as_ref(), &self.aed.mac)
    }
}
