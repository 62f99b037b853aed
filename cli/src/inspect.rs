//! `ekg inspect FILE`: what an EKG artifact is and says, in the protocol's terms (in the
//! manner of `openssl cms -cmsout -print`), and which of its checks pass. DER, PEM or a
//! sealed `.eml`. Certificate paths are checked when trust anchors are given (`--anchors`
//! or `--config`); keys are never shown.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use der::{Decode, Encode};
use ekg_core::crypto::pki::{TrustAnchors, certificate_addresses};
use ekg_core::role::{KeyRequestContent, ReleaseRequestContent, Ticket};
use ekg_core::wire::limits::{MAX_KEY_REQUEST_LEN, MAX_RECIPIENTS, MAX_RELEASE_REQUEST_LEN, MAX_SEALED_LEN};
use ekg_core::wire::oid;
use ekg_core::wire::sealed::SealedMessage;
use ekg_core::wire::signed;
use x509_cert::Certificate;

use crate::client::{ClientConfig, ClientError, now, provider, read_input};
use crate::mail;

/// What `ekg inspect` was asked.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The artifact (`-`: standard input).
    pub file: PathBuf,
    /// Client configuration (its anchors check certificate paths).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Trust anchors (PEM): check certificate paths against them.
    #[arg(long)]
    pub anchors: Vec<PathBuf>,
}

/// The report: lines, and checks with their outcome.
#[derive(Default)]
struct Report {
    text: String,
    checks: Vec<(String, Outcome)>,
}

/// A check's outcome.
enum Outcome {
    Ok,
    Failed(String),
    Skipped(String),
}

impl Report {
    fn line(&mut self, indent: usize, key: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.text, "{:indent$}{key:<14} {value}", "", indent = indent);
    }

    fn check<T>(&mut self, what: &str, r: &Result<T, ekg_core::Error>) {
        let outcome = match r {
            Ok(_) => Outcome::Ok,
            Err(e) => Outcome::Failed(format!("{}: {}", e.code(), e.detail())),
        };
        self.checks.push((what.to_owned(), outcome));
    }

    fn skipped(&mut self, what: &str, why: &str) {
        self.checks.push((what.to_owned(), Outcome::Skipped(why.to_owned())));
    }
}

fn who(cert: &Certificate) -> String {
    let addresses: Vec<String> = certificate_addresses(cert).iter().map(ToString::to_string).collect();
    let subject = cert.tbs_certificate().subject().to_string();
    let issuer = cert.tbs_certificate().issuer().to_string();
    if addresses.is_empty() {
        format!("{subject} (issuer {issuer})")
    } else {
        format!("{} ({subject}; issuer {issuer})", addresses.join(", "))
    }
}

/// The artifact's DER: DER as is, the first PEM block, or the sealed CMS of an `.eml`.
fn der_of(bytes: &[u8]) -> Result<(Vec<u8>, &'static str), ClientError> {
    if bytes.first() == Some(&0x30) {
        return Ok((bytes.to_vec(), "DER"));
    }
    let text = String::from_utf8_lossy(bytes);
    if let Some(start) = text.find("-----BEGIN ") {
        let (_, der) = der::pem::decode_vec(text[start..].as_bytes())
            .map_err(|e| ClientError { code: "malformed_pem".into(), detail: e.to_string() })?;
        return Ok((der, "PEM"));
    }
    match mail::unwrap(bytes) {
        Ok(der) => Ok((der, "S/MIME message")),
        Err(e) => Err(ClientError {
            code: "not_an_ekg_artifact".into(),
            detail: format!("not DER, PEM or a sealed email message ({e})"),
        }),
    }
}

/// `(contentType, eContentType or encrypted content type)` of a ContentInfo.
fn kinds(der: &[u8]) -> Result<(der::asn1::ObjectIdentifier, Option<der::asn1::ObjectIdentifier>), ClientError> {
    let bad = |e: der::Error| ClientError { code: "malformed_der".into(), detail: e.to_string() };
    let ci = cms::content_info::ContentInfo::from_der(der).map_err(bad)?;
    let inner = ci.content.to_der().map_err(bad)?;
    let sub = match ci.content_type {
        oid::ID_SIGNED_DATA => {
            Some(cms::signed_data::SignedData::from_der(&inner).map_err(bad)?.encap_content_info.econtent_type)
        }
        oid::ID_AUTH_ENVELOPED_DATA => Some(
            cms::authenveloped_data::AuthEnvelopedData::from_der(&inner)
                .map_err(bad)?
                .auth_encrypted_content_info
                .content_type,
        ),
        _ => None,
    };
    Ok((ci.content_type, sub))
}

fn key_request(r: &mut Report, der: &[u8], indent: usize, anchors: Option<&TrustAnchors>) {
    let signed = signed::open(provider(), der, oid::CT_KEY_REQUEST, MAX_KEY_REQUEST_LEN);
    r.check("key request: strict DER, profile, signature (V1 to V4)", &signed);
    let Ok(signed) = signed else { return };
    r.line(indent, "signed by", who(&signed.signer));
    r.line(indent, "signing time", signed.signing_time);
    let content = KeyRequestContent::decode(&signed.content);
    r.check("key request: content and addresses (V9)", &content);
    let Ok(c) = content else { return };
    r.line(indent, "sender", &c.sender);
    let list: Vec<String> = c.recipients.iter().map(ToString::to_string).collect();
    r.line(indent, "recipients", list.join(", "));
    r.line(indent, "request time", c.request_time);
    r.line(indent, "nonce", hex::encode(c.nonce.0));
    r.check("key request: recipient list (V12)", &c.check_recipients(MAX_RECIPIENTS));
    let named = if certificate_addresses(&signed.signer).contains(&c.sender) {
        Ok(())
    } else {
        Err(ekg_core::Error::new(
            ekg_core::Rejection::SenderAddressMismatch,
            "the certificate does not name the sender",
        ))
    };
    r.check("key request: the certificate names the sender (V10)", &named);
    match anchors {
        Some(a) => r.check(
            "key request: the sender's certificate path (V5 to V8)",
            &a.validate(provider(), &signed.signer, &signed.certificates, now()),
        ),
        None => r.skipped("the sender's certificate path", "no --anchors"),
    }
}

fn ticket(r: &mut Report, der: &[u8], indent: usize, anchors: Option<&TrustAnchors>) {
    let t = Ticket::open(provider(), der);
    r.check("ticket: strict DER, profile, the gatekeeper's and the sender's signatures", &t);
    let Ok(t) = t else { return };
    r.line(indent, "signed by", who(&t.signer));
    r.line(indent, "gatekeeper", &t.gatekeeper_uri);
    r.line(indent, "key id", t.key_id);
    r.line(indent, "issued", t.issued_at);
    r.line(indent, "expires", t.expires_at);
    r.line(
        indent,
        "policy",
        match t.policy {
            ekg_core::ledger::ReleasePolicy::Once => "once",
            ekg_core::ledger::ReleasePolicy::SameCertificate => "same_certificate",
        },
    );
    r.line(indent, "grant digest", hex::encode(t.grant_digest.as_bytes()));
    let list: Vec<String> = t.request.recipients.iter().map(ToString::to_string).collect();
    r.line(indent, "sender", &t.request.sender);
    r.line(indent, "recipients", list.join(", "));
    match anchors {
        Some(a) => {
            r.check("ticket: a gatekeeper's certificate naming its URI (C1)", &t.check_gatekeeper(provider(), a, now()))
        }
        None => r.skipped("the gatekeeper's certificate path (C1)", "no --anchors"),
    }
}

fn release_request(r: &mut Report, der: &[u8], anchors: Option<&TrustAnchors>) {
    let signed = signed::open(provider(), der, oid::CT_RELEASE_REQUEST, MAX_RELEASE_REQUEST_LEN);
    r.check("release request: strict DER, profile, signature (V1 to V4)", &signed);
    let Ok(signed) = signed else { return };
    r.line(2, "signed by", who(&signed.signer));
    r.line(2, "signing time", signed.signing_time);
    let content = ReleaseRequestContent::decode(&signed.content);
    r.check("release request: content", &content);
    let Ok(c) = content else { return };
    r.line(2, "request time", c.request_time);
    match anchors {
        Some(a) => r.check(
            "release request: the requester's certificate path (V5 to V8)",
            &a.validate(provider(), &signed.signer, &signed.certificates, now()),
        ),
        None => r.skipped("the requester's certificate path", "no --anchors"),
    }
    r.text.push_str("  ticket\n");
    ticket(r, &c.ticket_der, 4, anchors);
}

fn sealed(r: &mut Report, der: &[u8], anchors: Option<&TrustAnchors>) {
    let s = SealedMessage::parse(provider(), der, MAX_SEALED_LEN);
    r.check("sealed message: strict DER and profile (M.1 to M.15)", &s);
    let Ok(s) = s else { return };
    r.line(2, "key id", s.key_id());
    r.line(2, "content", "AES-256-GCM (the key is released by the ticket's gatekeeper)");
    // M.15 (checked by the parse above): the authenticated digest names the original ticket,
    // the first expanded one if a list expanded the message, else the attached one.
    let expanded = s.expanded_tickets().to_vec();
    if expanded.is_empty() {
        r.line(2, "ticket digest", "authenticates the attached ticket (M.15)");
    } else {
        r.line(2, "ticket digest", "authenticates the original ticket, the first expanded one (M.15)");
        for (i, der) in expanded.iter().enumerate() {
            let _ = writeln!(r.text, "  expanded ticket {} of {}", i + 1, expanded.len());
            ticket(r, der, 4, anchors);
        }
    }
    r.text.push_str("  ticket\n");
    let ticket_der = s.ticket().to_vec();
    ticket(r, &ticket_der, 4, anchors);
    if !expanded.is_empty() {
        // C7: the expanded tickets, then the attached one, each the expansion of the one before.
        let chain = expanded
            .iter()
            .chain(std::iter::once(&ticket_der))
            .map(|der| Ticket::open(provider(), der))
            .collect::<Result<Vec<_>, _>>();
        let linked = chain.and_then(|c| ekg_core::role::check_chain(&c));
        r.check("sealed message: each ticket is the expansion of the one before (C7)", &linked);
    }
    if let Ok(t) = Ticket::open(provider(), &ticket_der) {
        let same = if t.key_id == *s.key_id() {
            Ok(())
        } else {
            Err(ekg_core::Error::new(ekg_core::Rejection::ResponseMismatch, "the ticket names another key id"))
        };
        r.check("sealed message: the ticket's key id is the message's (C6)", &same);
    }
}

fn envelope(r: &mut Report, der: &[u8], what: &str) -> Result<(), ClientError> {
    let bad = |e: der::Error| ClientError { code: "malformed_der".into(), detail: e.to_string() };
    let ci = cms::content_info::ContentInfo::from_der(der).map_err(bad)?;
    let env = cms::authenveloped_data::AuthEnvelopedData::from_der(&ci.content.to_der().map_err(bad)?).map_err(bad)?;
    for ri in env.recip_infos.0.iter() {
        let line = match ri {
            cms::enveloped_data::RecipientInfo::Ktri(k) => match &k.rid {
                cms::enveloped_data::RecipientIdentifier::IssuerAndSerialNumber(i) => {
                    format!(
                        "RSA-OAEP to the certificate of issuer {}, serial {}",
                        i.issuer,
                        hex::encode(i.serial_number.as_bytes())
                    )
                }
                cms::enveloped_data::RecipientIdentifier::SubjectKeyIdentifier(s) => {
                    format!("RSA-OAEP to the certificate with key identifier {}", hex::encode(s.0.as_bytes()))
                }
            },
            _ => "a recipient info of another kind".into(),
        };
        r.line(2, "for", line);
    }
    r.line(2, "content", what);
    r.check("envelope: AuthEnvelopedData with its recipient infos", &Ok::<(), ekg_core::Error>(()));
    r.skipped("envelope: opening it (C4, C5)", "only its recipient's key opens it: openssl cms -decrypt -recip");
    Ok(())
}

/// Runs `ekg inspect`: the report on standard output; exit 1 if a check failed.
pub fn run(args: &Args) -> Result<bool, ClientError> {
    let config = ClientConfig::load(args.config.as_deref())?;
    let anchors =
        if args.anchors.is_empty() && config.anchors.is_empty() { None } else { Some(config.anchors(&args.anchors)?) };
    let bytes = read_input(&args.file, mail::MAX_SEALED_MESSAGE_LEN)?;
    let (der, form) = der_of(&bytes)?;
    let mut r = Report::default();
    let (kind, sub) = kinds(&der)?;
    let name = display(&args.file);
    match (kind, sub) {
        (oid::ID_SIGNED_DATA, Some(oid::CT_KEY_REQUEST)) => {
            r.text.push_str(&format!("{name}: key request (SignedData), {} bytes of {form}\n", der.len()));
            key_request(&mut r, &der, 2, anchors.as_ref());
        }
        (oid::ID_SIGNED_DATA, Some(oid::CT_TICKET)) => {
            r.text.push_str(&format!("{name}: ticket (SignedData by a gatekeeper), {} bytes of {form}\n", der.len()));
            ticket(&mut r, &der, 2, anchors.as_ref());
        }
        (oid::ID_SIGNED_DATA, Some(oid::CT_RELEASE_REQUEST)) => {
            r.text.push_str(&format!("{name}: release request (SignedData), {} bytes of {form}\n", der.len()));
            release_request(&mut r, &der, anchors.as_ref());
        }
        (oid::ID_AUTH_ENVELOPED_DATA, Some(oid::CT_KEY_DELIVERY)) => {
            r.text
                .push_str(&format!("{name}: grant (AuthEnvelopedData to the sender), {} bytes of {form}\n", der.len()));
            envelope(&mut r, &der, "a KeyDelivery (the one-time key)")?;
        }
        (oid::ID_AUTH_ENVELOPED_DATA, Some(oid::ID_SIGNED_DATA)) => {
            r.text.push_str(&format!(
                "{name}: release (AuthEnvelopedData to the requester), {} bytes of {form}\n",
                der.len()
            ));
            envelope(&mut r, &der, "a KeyDelivery signed by the gatekeeper")?;
        }
        (oid::ID_AUTH_ENVELOPED_DATA, Some(oid::ID_DATA)) => {
            r.text.push_str(&format!(
                "{name}: sealed message (AuthEnvelopedData, RFC 5083), {} bytes of {form}\n",
                der.len()
            ));
            sealed(&mut r, &der, anchors.as_ref());
        }
        (oid::CT_ISSUANCE, _) => {
            r.text.push_str(&format!("{name}: issuance response (grant and ticket), {} bytes of {form}\n", der.len()));
            let (grant, t) = ekg_core::role::decode_issuance_response(&der)?;
            r.text.push_str("  grant\n");
            envelope(&mut r, &grant, "a KeyDelivery (the one-time key)")?;
            r.text.push_str("  ticket\n");
            ticket(&mut r, &t, 4, anchors.as_ref());
        }
        (k, s) => {
            return Err(ClientError {
                code: "not_an_ekg_artifact".into(),
                detail: format!("{name}: content type {k}{}", s.map(|s| format!(" / {s}")).unwrap_or_default()),
            });
        }
    }
    let failed = r.checks.iter().filter(|(_, c)| matches!(c, Outcome::Failed(_))).count();
    println!("{}", r.text.trim_end());
    println!("checks");
    for (what, c) in &r.checks {
        match c {
            Outcome::Ok => println!("  ok       {what}"),
            Outcome::Failed(e) => println!("  FAILED   {what}: {e}"),
            Outcome::Skipped(why) => println!("  skipped  {what} ({why})"),
        }
    }
    Ok(failed == 0)
}

fn display(p: &Path) -> String {
    if p == Path::new("-") { "(standard input)".into() } else { p.display().to_string() }
}
