//! Reading key requests, tickets and key deliveries: what more than one role checks.

use der::Encode;

use super::expansion::{ListExpansion, check_history};
use crate::access::policy::{AttributeValue, MAX_LABELS};
use crate::address::EmailAddress;
use crate::asn1::{
    self, KeyDelivery, KeyRequest, MAX_KEY_REQUEST_LEN, MAX_RECIPIENTS, MAX_RELEASE_REQUEST_LEN, MAX_TICKET_LEN,
    MAX_URI_LEN, TicketInfo, VERSION, oid, strict,
};
use crate::cms::signed::{self, SignedObject};
use crate::cms::{ia5, octets};
use crate::crypto::CryptoProvider;
use crate::crypto::pki::{TrustAnchors, ValidatedCertificate};
use crate::error::{Rejection, Result, reject};
use crate::ids::{Digest, KeyId, Nonce, OneTimeKey};
use crate::ledger::ReleasePolicy;
use crate::time::UnixTime;

/// The fields of a key request, checked (step V9, V12 as far as the wire allows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRequestContent {
    /// The sender's address.
    pub sender: EmailAddress,
    /// The recipients, distinct, in request order.
    pub recipients: Vec<EmailAddress>,
    /// The sender's nonce.
    pub nonce: Nonce,
    /// When the sender made it.
    pub request_time: UnixTime,
    /// Its security labels, distinct, in request order (V15; empty: unlabelled).
    pub labels: Vec<AttributeValue>,
    /// A list agent's expansion history, its own expansion last; empty for an ordinary
    /// sender (`docs/protocol.md` §13).
    pub expansion: Vec<ListExpansion>,
}

impl KeyRequestContent {
    /// Decodes a [`KeyRequest`] DER (strict DER, version 0, a 16-byte nonce) and parses every
    /// address (step V9, the sender first, then the recipients in order). The recipient-list
    /// rules are step V12: [`KeyRequestContent::check_recipients`].
    pub fn decode(der: &[u8]) -> Result<KeyRequestContent> {
        let req: KeyRequest = strict::decode(der, MAX_KEY_REQUEST_LEN, "KeyRequest")?;
        if req.version != VERSION {
            return Err(reject(Rejection::UnsupportedVersion, "KeyRequest version"));
        }
        let nonce = Nonce::from_slice(req.nonce.as_bytes())
            .ok_or_else(|| reject(Rejection::MalformedDer, "nonce must be 16 bytes"))?;
        let sender = EmailAddress::parse(req.sender.as_ref())?;
        let recipients = req.recipients.iter().map(|r| EmailAddress::parse(r.as_ref())).collect::<Result<Vec<_>>>()?;
        let labels = match &req.labels {
            None => Vec::new(),
            Some(list) => parse_labels(list.iter().map(|l| l.as_ref()))?,
        };
        let expansion = match &req.expansion {
            None => Vec::new(),
            Some(_) if crate::planted::is(crate::planted::PlantedBug::ExpansionRefused) => {
                return Err(reject(Rejection::MalformedDer, "KeyRequest: an unknown field after requestTime"));
            }
            Some(h) if h.is_empty() => {
                return Err(reject(Rejection::MalformedDer, "an expansion history has at least one entry"));
            }
            Some(h) if super::expansion::over_depth_bound(h.len()) => {
                return Err(reject(Rejection::ListDepthExceeded, format!("{} expansions", h.len())));
            }
            Some(h) => h.iter().map(ListExpansion::decode).collect::<Result<Vec<_>>>()?,
        };
        Ok(KeyRequestContent {
            sender,
            recipients,
            nonce,
            request_time: UnixTime::from_generalized(&req.request_time),
            labels,
            expansion,
        })
    }

    /// Step V12: at least one recipient, at most `max` (itself at most [`MAX_RECIPIENTS`]),
    /// all distinct after address normalisation; in that order.
    pub fn check_recipients(&self, max: usize) -> Result<()> {
        if self.recipients.is_empty() {
            return Err(Rejection::NoRecipients.into());
        }
        let max = max.min(MAX_RECIPIENTS);
        let n = self.recipients.len();
        if (n > max && !(crate::planted::is(crate::planted::PlantedBug::RecipientLimitPlusOne) && n == max + 1))
            || (crate::planted::is(crate::planted::PlantedBug::RecipientLimitExclusive) && n == max)
        {
            return Err(reject(Rejection::TooManyRecipients, format!("{} > {max}", self.recipients.len())));
        }
        let mut seen = std::collections::BTreeSet::new();
        for a in &self.recipients {
            if !seen.insert(a) {
                return Err(reject(Rejection::DuplicateRecipient, a.to_string()));
            }
        }
        Ok(())
    }

    /// What identifies a key request (step V14): the sender and its nonce, both signed.
    pub fn request_id(&self) -> crate::ids::RequestId {
        crate::ids::RequestId { sender: self.sender.clone(), nonce: self.nonce }
    }

    /// Encodes as [`KeyRequest`] DER.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let req = KeyRequest {
            version: VERSION,
            sender: ia5(&self.sender.to_string())?,
            recipients: self.recipients.iter().map(|r| ia5(&r.to_string())).collect::<Result<_>>()?,
            nonce: octets(self.nonce.as_bytes())?,
            request_time: self.request_time.to_generalized()?,
            labels: match self.labels.as_slice() {
                [] => None,
                list => Some(list.iter().map(|l| ia5(l.as_str())).collect::<Result<_>>()?),
            },
            expansion: if self.expansion.is_empty() {
                None
            } else {
                Some(self.expansion.iter().map(ListExpansion::encode).collect::<Result<_>>()?)
            },
        };
        req.to_der().map_err(crate::cms::encode_failed)
    }
}

/// Step V15's decoding rule: 1 to [`MAX_LABELS`] labels (the field is absent when there is
/// none), each an attribute-value URI, no two equal (case-insensitively) → `invalid_label`.
pub fn parse_labels<'a>(list: impl ExactSizeIterator<Item = &'a str>) -> Result<Vec<AttributeValue>> {
    if list.len() == 0 || list.len() > MAX_LABELS {
        return Err(reject(Rejection::InvalidLabel, format!("1 to {MAX_LABELS} labels, the field absent for none")));
    }
    let mut labels: Vec<AttributeValue> = Vec::with_capacity(list.len());
    for text in list {
        let label = AttributeValue::parse(text)?;
        if labels.contains(&label) {
            return Err(reject(Rejection::InvalidLabel, format!("{label} twice")));
        }
        labels.push(label);
    }
    Ok(labels)
}

/// A verified ticket: the gatekeeper's signature checked, its fields decoded.
#[derive(Clone, Debug)]
pub struct Ticket {
    /// The ticket's DER (ContentInfo).
    pub der: Vec<u8>,
    /// SHA-256 of [`Ticket::der`].
    pub digest: Digest,
    /// The key id.
    pub key_id: KeyId,
    /// Where to reach the gatekeeper.
    pub gatekeeper_uri: String,
    /// Issue time.
    pub issued_at: UnixTime,
    /// Expiry.
    pub expires_at: UnixTime,
    /// Release policy.
    pub policy: ReleasePolicy,
    /// SHA-256 of the grant it was issued with.
    pub grant_digest: Digest,
    /// The sender's signed key request, byte for byte.
    pub request_der: Vec<u8>,
    /// Its content.
    pub request: KeyRequestContent,
    /// The gatekeeper's certificate as carried in the ticket.
    pub signer: x509_cert::Certificate,
    /// The same, DER as carried.
    pub signer_der: Vec<u8>,
    /// The other certificates the ticket carries (the gatekeeper's intermediates).
    pub chain: Vec<x509_cert::Certificate>,
}

impl Ticket {
    /// Opens a ticket: SignedData of our profile (V1 to V4), then its content. The signer's
    /// path is the caller's to check (a gatekeeper compares with its own certificate, a
    /// client validates it with [`Ticket::check_gatekeeper`]). The sender's inner signature
    /// is verified too (so a ticket cannot carry a request its sender did not sign).
    pub fn open(provider: &dyn CryptoProvider, der: &[u8]) -> Result<Ticket> {
        Ticket::open_with(provider, der, provider.sha256(der), true)
    }

    /// Opens a ticket (its SHA-256 `digest` already computed by the caller); with `verify`
    /// false, for a ticket this gatekeeper issued itself, both signatures are known good and
    /// are not verified again; everything else is checked.
    pub(crate) fn open_with(provider: &dyn CryptoProvider, der: &[u8], digest: Digest, verify: bool) -> Result<Ticket> {
        let SignedObject { content, signer, signer_der, certificates, .. } =
            signed::open_with(provider, der, oid::CT_TICKET, MAX_TICKET_LEN, verify)?;
        let info = TicketContent::decode(&content)?;
        let inner = signed::open_with(provider, &info.request_der, oid::CT_KEY_REQUEST, MAX_KEY_REQUEST_LEN, verify)?;
        let request = KeyRequestContent::decode(&inner.content)?;
        request.check_recipients(MAX_RECIPIENTS)?;
        check_history(&request.sender, &request.recipients, &request.expansion)?;
        Ok(Ticket {
            der: der.to_vec(),
            digest,
            key_id: info.key_id,
            gatekeeper_uri: info.gatekeeper_uri,
            issued_at: info.issued_at,
            expires_at: info.expires_at,
            policy: info.policy,
            grant_digest: info.grant_digest,
            request_der: info.request_der,
            request,
            signer,
            signer_der,
            chain: certificates,
        })
    }

    /// Client step C1: the signer is a gatekeeper (id-ekg-kp-gatekeeper) with a valid path
    /// at `now` (through the intermediates the ticket carries) whose certificate names the
    /// ticket's URI.
    pub fn check_gatekeeper(
        &self,
        provider: &dyn CryptoProvider,
        anchors: &TrustAnchors,
        now: UnixTime,
    ) -> Result<ValidatedCertificate> {
        let validated = anchors.validate(provider, &self.signer, &self.chain, now)?;
        if !validated.is_gatekeeper {
            return Err(reject(Rejection::WrongGatekeeper, "signer is not a gatekeeper"));
        }
        if !validated.uris.contains(&self.gatekeeper_uri) {
            return Err(reject(Rejection::WrongGatekeeper, "signer's certificate does not name the ticket's URI"));
        }
        Ok(validated)
    }
}

/// Builds and encodes a [`TicketInfo`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn encode_ticket_info(
    key_id: &KeyId,
    uri: &str,
    request_der: &[u8],
    issued_at: UnixTime,
    expires_at: UnixTime,
    policy: ReleasePolicy,
    grant_digest: &Digest,
) -> Result<Vec<u8>> {
    let info = TicketInfo {
        version: VERSION,
        key_id: octets(key_id.as_bytes())?,
        gatekeeper: ia5(uri)?,
        request: der::Decode::from_der(request_der).map_err(crate::cms::encode_failed)?,
        issued_at: issued_at.to_generalized()?,
        expires_at: expires_at.to_generalized()?,
        release_policy: policy.into(),
        grant_digest: octets(grant_digest.as_bytes())?,
    };
    info.to_der().map_err(crate::cms::encode_failed)
}

/// The fields of a [`TicketInfo`], checked against `docs/ekg.asn1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TicketContent {
    /// The key id.
    pub key_id: KeyId,
    /// The gatekeeper's URI (1 to 512 printable ASCII characters).
    pub gatekeeper_uri: String,
    /// The sender's signed key request, DER.
    pub request_der: Vec<u8>,
    /// Issue time.
    pub issued_at: UnixTime,
    /// Expiry.
    pub expires_at: UnixTime,
    /// Release policy.
    pub policy: ReleasePolicy,
    /// SHA-256 of the grant.
    pub grant_digest: Digest,
}

impl TicketContent {
    /// Decodes a [`TicketInfo`] DER: strict DER, version 0, a 16-byte key id, a URI of 1 to
    /// 512 printable ASCII characters, a 32-byte grant digest (`malformed_der` otherwise).
    pub fn decode(der: &[u8]) -> Result<TicketContent> {
        let info: TicketInfo = strict::decode(der, MAX_TICKET_LEN, "TicketInfo")?;
        if info.version != VERSION {
            return Err(reject(Rejection::UnsupportedVersion, "TicketInfo version"));
        }
        let key_id = KeyId::from_slice(info.key_id.as_bytes())
            .ok_or_else(|| reject(Rejection::MalformedDer, "key id must be 16 bytes"))?;
        let uri: &str = info.gatekeeper.as_ref();
        if uri.is_empty() || uri.len() > MAX_URI_LEN || !uri.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(reject(Rejection::MalformedDer, "gatekeeper URI: 1 to 512 printable characters"));
        }
        let request_der = info.request.to_der().map_err(crate::cms::encode_failed)?;
        let grant_digest = Digest::from_slice(info.grant_digest.as_bytes())
            .ok_or_else(|| reject(Rejection::MalformedDer, "grant digest must be 32 bytes"))?;
        Ok(TicketContent {
            key_id,
            gatekeeper_uri: uri.to_owned(),
            request_der,
            issued_at: UnixTime::from_generalized(&info.issued_at),
            expires_at: UnixTime::from_generalized(&info.expires_at),
            policy: info.release_policy.into(),
            grant_digest,
        })
    }
}

/// The fields of a [`ReleaseRequest`](crate::wire::ReleaseRequest), checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReleaseRequestContent {
    /// The ticket, DER.
    pub ticket_der: Vec<u8>,
    /// The requester's nonce.
    pub nonce: Nonce,
    /// When the requester made it.
    pub request_time: UnixTime,
    /// The access token it carries (V28), if any: 1 to
    /// [`MAX_ACCESS_TOKEN_LEN`](crate::wire::limits::MAX_ACCESS_TOKEN_LEN) octets, not yet
    /// checked otherwise.
    pub access_token: Option<String>,
}

impl ReleaseRequestContent {
    /// Decodes a ReleaseRequest DER: strict DER, version 0, a 16-byte nonce, an access token
    /// (if present) of 1 to [`MAX_ACCESS_TOKEN_LEN`](crate::wire::limits::MAX_ACCESS_TOKEN_LEN)
    /// octets.
    pub fn decode(der: &[u8]) -> Result<ReleaseRequestContent> {
        let rr: asn1::ReleaseRequest = strict::decode(der, MAX_RELEASE_REQUEST_LEN, "ReleaseRequest")?;
        if rr.version != VERSION {
            return Err(reject(Rejection::UnsupportedVersion, "ReleaseRequest version"));
        }
        let nonce = Nonce::from_slice(rr.nonce.as_bytes())
            .ok_or_else(|| reject(Rejection::MalformedDer, "nonce must be 16 bytes"))?;
        let access_token = match rr.access_token.as_ref().map(|t| -> &str { t.as_ref() }) {
            None => None,
            Some(t) if t.is_empty() || t.len() > asn1::MAX_ACCESS_TOKEN_LEN => {
                return Err(reject(Rejection::MalformedDer, "access token: 1 to 8192 octets"));
            }
            Some(t) => Some(t.to_owned()),
        };
        Ok(ReleaseRequestContent {
            ticket_der: rr.ticket.to_der().map_err(crate::cms::encode_failed)?,
            nonce,
            request_time: UnixTime::from_generalized(&rr.request_time),
            access_token,
        })
    }
}

/// The fields of a [`KeyDelivery`], checked. The key is zeroized on drop.
#[derive(Clone, Debug)]
pub struct KeyDeliveryContent {
    /// The key id.
    pub key_id: KeyId,
    /// The key.
    pub key: OneTimeKey,
    /// SHA-256 of the request answered.
    pub request_digest: Digest,
    /// The address served.
    pub delivered_to: EmailAddress,
}

impl KeyDeliveryContent {
    /// Decodes a [`KeyDelivery`] DER: strict DER, version 0, a 16-byte key id, a 32-byte key,
    /// a 32-byte digest (`malformed_der`), and an address (`invalid_address`).
    pub fn decode(der: &[u8]) -> Result<KeyDeliveryContent> {
        let d: KeyDelivery = strict::decode(der, asn1::MAX_ENVELOPE_LEN, "KeyDelivery")?;
        if d.version != VERSION {
            return Err(reject(Rejection::UnsupportedVersion, "KeyDelivery version"));
        }
        let key_id = KeyId::from_slice(d.key_id.as_bytes()).ok_or_else(|| reject(Rejection::MalformedDer, "key id"))?;
        let key =
            OneTimeKey::from_slice(&d.key.0).ok_or_else(|| reject(Rejection::MalformedDer, "key must be 32 bytes"))?;
        let request_digest = Digest::from_slice(d.request_digest.as_bytes())
            .ok_or_else(|| reject(Rejection::MalformedDer, "request digest"))?;
        let delivered_to = EmailAddress::parse(d.delivered_to.as_ref())?;
        Ok(KeyDeliveryContent { key_id, key, request_digest, delivered_to })
    }
}

pub(crate) fn encode_delivery(
    key_id: &KeyId,
    key: &OneTimeKey,
    request_digest: &Digest,
    delivered_to: &str,
) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let delivery = KeyDelivery {
        version: VERSION,
        key_id: octets(key_id.as_bytes())?,
        key: asn1::SecretOctets(zeroize::Zeroizing::new(key.expose().to_vec())),
        request_digest: octets(request_digest.as_bytes())?,
        delivered_to: ia5(delivered_to)?,
    };
    delivery.to_der().map(zeroize::Zeroizing::new).map_err(crate::cms::encode_failed)
}

/// Checks a client-supplied time against `now` (step V13).
pub(crate) fn check_skew(request_time: UnixTime, now: UnixTime, max_skew_secs: u64) -> Result<()> {
    let skew = request_time.abs_diff(now);
    if (skew > max_skew_secs
        || (crate::planted::is(crate::planted::PlantedBug::SkewExclusive) && skew == max_skew_secs))
        && !(crate::planted::is(crate::planted::PlantedBug::SkewPlusOne) && skew == max_skew_secs + 1)
    {
        return Err(reject(Rejection::RequestTimeSkew, format!("request time {request_time}, now {now}")));
    }
    Ok(())
}

/// Encodes the HTTP answer to a key request: ContentInfo { id-ekg-ct-issuance,
/// IssuanceResponse { grant, ticket } }.
pub(crate) fn encode_issuance_response(grant: &[u8], ticket: &[u8]) -> Result<Vec<u8>> {
    use der::Decode;
    let response = asn1::IssuanceResponse {
        grant: asn1::ContentInfo::from_der(grant).map_err(crate::cms::encode_failed)?,
        ticket: asn1::ContentInfo::from_der(ticket).map_err(crate::cms::encode_failed)?,
    };
    let inner = response.to_der().map_err(crate::cms::encode_failed)?;
    let mut out = crate::cms::raw::wrap_content_info(oid::CT_ISSUANCE, &inner).map_err(crate::cms::encode_failed)?;
    Ok(core::mem::take(&mut *out))
}

/// The grant and the ticket of an HTTP answer to a key request (strict DER, at most the
/// grant's and the ticket's limits together).
pub fn decode_issuance_response(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let (content_type, inner) =
        crate::cms::raw::content_info_parts(der, asn1::MAX_ENVELOPE_LEN + MAX_TICKET_LEN + 64, "ContentInfo")?;
    if content_type != oid::CT_ISSUANCE {
        return Err(reject(Rejection::UnexpectedContentType, format!("{content_type} is not id-ekg-ct-issuance")));
    }
    let r: asn1::IssuanceResponse = strict::decode(inner, asn1::MAX_ENVELOPE_LEN + MAX_TICKET_LEN, "IssuanceResponse")?;
    Ok((r.grant.to_der().map_err(crate::cms::encode_failed)?, r.ticket.to_der().map_err(crate::cms::encode_failed)?))
}
