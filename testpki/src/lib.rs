//! A deterministic test and simulation PKI for `ekg`, made with rcgen.
//!
//! One seed decides every key and serial number, so tests, snapshots and the demo see the
//! same certificates on every run. Keys are RSA-2048 made by the `rsa` crate from a ChaCha20
//! RNG; rcgen (ring) signs the certificates with sha256WithRSAEncryption.
//!
//! RSA key generation costs ~50 ms a key in an optimised build: build a PKI once per process
//! ([`Federation::shared`] caches the standard one).

#![forbid(unsafe_code)]
// A test fixture: a failure to make a key or certificate is a bug in the fixture itself.
#![allow(clippy::expect_used, clippy::panic)]

mod lifecycle;

use std::sync::OnceLock;

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber, date_time_ymd,
};
use rsa::pkcs8::EncodePrivateKey;
use zeroize::Zeroizing;

pub use lifecycle::{Crl, Lifecycle, crl};

/// The EKG gatekeeper extended key usage (`id-ekg-kp-gatekeeper`), as rcgen wants it.
pub const KP_GATEKEEPER: &[u64] = &[1, 3, 6, 1, 4, 1, 99999, 1, 3, 1];

/// A certificate with its private key and issuing chain (without the root).
#[derive(Clone)]
pub struct Issued {
    /// DER certificate.
    pub cert_der: Vec<u8>,
    /// PKCS#8 DER private key.
    pub key_pkcs8: Zeroizing<Vec<u8>>,
    /// Intermediates, nearest first (empty when issued by a root).
    pub chain_der: Vec<Vec<u8>>,
}

impl core::fmt::Debug for Issued {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Issued({} bytes, key redacted, chain {})", self.cert_der.len(), self.chain_der.len())
    }
}

impl Issued {
    /// The certificate as PEM.
    pub fn cert_pem(&self) -> String {
        pem("CERTIFICATE", &self.cert_der)
    }

    /// The key as PKCS#8 PEM.
    pub fn key_pem(&self) -> Zeroizing<String> {
        Zeroizing::new(pem("PRIVATE KEY", &self.key_pkcs8))
    }

    /// The intermediates as concatenated PEM.
    pub fn chain_pem(&self) -> String {
        self.chain_der.iter().map(|c| pem("CERTIFICATE", c)).collect()
    }
}

/// PEM-encodes DER with a label.
pub fn pem(label: &str, der: &[u8]) -> String {
    der::pem::encode_string(label, der::pem::LineEnding::LF, der).unwrap_or_default()
}

/// A certification authority that can issue.
pub struct Authority {
    params: CertificateParams,
    key: KeyPair,
    /// Its certificate and key.
    pub issued: Issued,
    root: bool,
}

/// Extended key usage of an end entity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Eku {
    /// None at all.
    Absent,
    /// emailProtection (users, gateways).
    EmailProtection,
    /// emailProtection and id-ekg-kp-gatekeeper (gatekeepers).
    Gatekeeper,
    /// serverAuth only (refused by the profile).
    ServerAuthOnly,
}

/// Key usage of an end entity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ku {
    /// None at all.
    Absent,
    /// digitalSignature and keyEncipherment.
    SignAndEncrypt,
    /// keyEncipherment only (refused by the profile for signing).
    EncryptOnly,
}

/// What to put in an end-entity certificate.
#[derive(Clone, Debug)]
pub struct EntitySpec {
    /// Subject common name.
    pub common_name: String,
    /// rfc822Name subjectAltNames.
    pub emails: Vec<String>,
    /// uniformResourceIdentifier subjectAltNames.
    pub uris: Vec<String>,
    /// dNSName subjectAltNames.
    pub dns_names: Vec<String>,
    /// Extended key usage.
    pub eku: Eku,
    /// Key usage.
    pub ku: Ku,
    /// Validity (year, month, day) from and to.
    pub valid: ((i32, u8, u8), (i32, u8, u8)),
    /// Add a critical extension the profile does not know.
    pub unknown_critical: bool,
    /// Add a subject key identifier (with basicConstraints cA false), so that a SignerInfo
    /// can name the certificate by it (version 3).
    pub subject_key_id: bool,
}

/// Default validity: long enough that `openssl cms -verify` (which checks against the wall
/// clock) accepts the demo's artifacts for years.
pub const VALID: ((i32, u8, u8), (i32, u8, u8)) = ((2025, 1, 1), (2045, 1, 1));

impl EntitySpec {
    /// An S/MIME user with one address.
    pub fn user(email: &str) -> EntitySpec {
        EntitySpec {
            common_name: email.to_owned(),
            emails: vec![email.to_owned()],
            uris: vec![],
            dns_names: vec![],
            eku: Eku::EmailProtection,
            ku: Ku::SignAndEncrypt,
            valid: VALID,
            unknown_critical: false,
            subject_key_id: false,
        }
    }

    /// A gatekeeper at `uri` with address `email`.
    pub fn gatekeeper(email: &str, uri: &str) -> EntitySpec {
        EntitySpec { uris: vec![uri.to_owned()], eku: Eku::Gatekeeper, ..EntitySpec::user(email) }
    }
}

/// Makes keys and certificates from one seed.
pub struct Pki {
    rng: ChaCha20Rng,
}

impl Pki {
    /// A PKI whose every key and serial follows from `seed`.
    pub fn new(seed: u64) -> Pki {
        Pki { rng: ChaCha20Rng::seed_from_u64(seed) }
    }

    fn key(&mut self) -> (KeyPair, Zeroizing<Vec<u8>>) {
        key_pair(rsa_key_pkcs8(&mut self.rng))
    }

    fn serial(&mut self) -> SerialNumber {
        let mut s = [0u8; 16];
        self.rng.fill_bytes(&mut s);
        s[0] &= 0x7f;
        s[0] |= 0x01;
        SerialNumber::from(s.to_vec())
    }

    fn ca_params(&mut self, name: &str) -> CertificateParams {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, name);
        dn.push(DnType::CommonName, format!("{name} CA"));
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        params.not_before = date_time_ymd(2024, 1, 1);
        params.not_after = date_time_ymd(2050, 1, 1);
        params.serial_number = Some(self.serial());
        params
    }

    /// A self-signed root CA.
    pub fn root(&mut self, name: &str) -> Authority {
        self.root_with(name, |_| {})
    }

    /// A self-signed root CA whose parameters `edit` changes (name constraints, ...).
    pub fn root_with(&mut self, name: &str, edit: impl FnOnce(&mut CertificateParams)) -> Authority {
        let (key, key_pkcs8) = self.key();
        let mut params = self.ca_params(name);
        edit(&mut params);
        let cert = params.self_signed(&key).expect("root");
        Authority {
            issued: Issued { cert_der: cert.der().to_vec(), key_pkcs8, chain_der: vec![] },
            params,
            key,
            root: true,
        }
    }

    /// An intermediate CA under `parent`.
    pub fn intermediate(&mut self, parent: &Authority, name: &str) -> Authority {
        self.intermediate_with(parent, name, |_| {})
    }

    /// An intermediate CA under `parent` whose parameters `edit` changes.
    pub fn intermediate_with(
        &mut self,
        parent: &Authority,
        name: &str,
        edit: impl FnOnce(&mut CertificateParams),
    ) -> Authority {
        let (key, key_pkcs8) = self.key();
        let mut params = self.ca_params(name);
        params.use_authority_key_identifier_extension = true;
        edit(&mut params);
        let issuer = Issuer::from_params(&parent.params, &parent.key);
        let cert = params.signed_by(&key, &issuer).expect("intermediate");
        // Intermediates carried below this one: its parents, except the root.
        let chain_der = if is_root(parent) { vec![] } else { parent_chain(parent) };
        Authority { issued: Issued { cert_der: cert.der().to_vec(), key_pkcs8, chain_der }, params, key, root: false }
    }

    /// An end entity issued by `ca`.
    pub fn issue(&mut self, ca: &Authority, spec: &EntitySpec) -> Issued {
        let key = self.key();
        self.issue_with_key(ca, spec, key.1)
    }

    /// An end entity issued by `ca` for a key made elsewhere (e.g. by [`rsa_key_from_seed`]
    /// on another thread); the serial number still comes from this PKI's seed.
    pub fn issue_with_key(&mut self, ca: &Authority, spec: &EntitySpec, key_pkcs8: Zeroizing<Vec<u8>>) -> Issued {
        let (key, key_pkcs8) = key_pair(key_pkcs8);
        self.issue_for(ca, spec, &key, key_pkcs8)
    }

    /// An end entity with an RSA key of `bits` (e.g. 1024, which the profile refuses). ring
    /// cannot load such a key, so the certificate is made from its public half only.
    pub fn issue_with_rsa_bits(&mut self, ca: &Authority, spec: &EntitySpec, bits: usize) -> Issued {
        use rsa::pkcs8::EncodePublicKey;
        let key = rsa::PrivateKey::new(&mut self.rng, bits).expect("RSA key generation");
        let pkcs8 = Zeroizing::new(key.to_pkcs8_der().expect("PKCS#8").as_bytes().to_vec());
        let spki = key.to_public_key().to_public_key_der().expect("SPKI");
        let spki = spki::SubjectPublicKeyInfoRef::try_from(spki.as_bytes()).expect("SPKI");
        let public = RsaPublic(spki.subject_public_key.raw_bytes().to_vec());
        self.issue_for(ca, spec, &public, pkcs8)
    }

    /// An end entity under `ca` made as `spec` says, with basicConstraints `cA` false, that
    /// nevertheless signs certificates: the issuer a path must refuse (`docs/protocol.md` V7,
    /// "issuers are CAs"). Give it no key usage (`Ku::Absent`) so that basicConstraints is
    /// the only thing that says it is not a CA.
    pub fn end_entity_issuer(&mut self, ca: &Authority, spec: &EntitySpec) -> Authority {
        let (key, key_pkcs8) = self.key();
        let mut params = self.entity_params(spec);
        params.is_ca = IsCa::ExplicitNoCa;
        let issuer = Issuer::from_params(&ca.params, &ca.key);
        let cert = params.signed_by(&key, &issuer).expect("end-entity issuer");
        let chain_der = if is_root(ca) { vec![] } else { parent_chain(ca) };
        Authority { issued: Issued { cert_der: cert.der().to_vec(), key_pkcs8, chain_der }, params, key, root: false }
    }

    fn issue_for(
        &mut self,
        ca: &Authority,
        spec: &EntitySpec,
        key: &impl rcgen::PublicKeyData,
        key_pkcs8: Zeroizing<Vec<u8>>,
    ) -> Issued {
        let params = self.entity_params(spec);
        let issuer = Issuer::from_params(&ca.params, &ca.key);
        let cert = params.signed_by(&key, &issuer).expect("end entity");
        let mut chain_der = Vec::new();
        if !is_root(ca) {
            chain_der.push(ca.issued.cert_der.clone());
            chain_der.extend(ca.issued.chain_der.iter().cloned());
        }
        Issued { cert_der: cert.der().to_vec(), key_pkcs8, chain_der }
    }

    /// The parameters of an end-entity certificate (its serial drawn from this PKI's seed).
    fn entity_params(&mut self, spec: &EntitySpec) -> CertificateParams {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, spec.common_name.as_str());
        params.distinguished_name = dn;
        params.serial_number = Some(self.serial());
        let ((y0, m0, d0), (y1, m1, d1)) = spec.valid;
        params.not_before = date_time_ymd(y0, m0, d0);
        params.not_after = date_time_ymd(y1, m1, d1);
        params.use_authority_key_identifier_extension = true;
        // Names that are not IA5 (a caller's bug: scenario inputs are checked before) are
        // left out rather than panicking; a certificate without its address is then refused.
        for e in &spec.emails {
            if let Ok(name) = e.as_str().try_into() {
                params.subject_alt_names.push(SanType::Rfc822Name(name));
            }
        }
        for u in &spec.uris {
            if let Ok(name) = u.as_str().try_into() {
                params.subject_alt_names.push(SanType::URI(name));
            }
        }
        for d in &spec.dns_names {
            if let Ok(name) = d.as_str().try_into() {
                params.subject_alt_names.push(SanType::DnsName(name));
            }
        }
        params.extended_key_usages = match spec.eku {
            Eku::Absent => vec![],
            Eku::EmailProtection => vec![ExtendedKeyUsagePurpose::EmailProtection],
            Eku::Gatekeeper => {
                vec![ExtendedKeyUsagePurpose::EmailProtection, ExtendedKeyUsagePurpose::Other(KP_GATEKEEPER.to_vec())]
            }
            Eku::ServerAuthOnly => vec![ExtendedKeyUsagePurpose::ServerAuth],
        };
        params.key_usages = match spec.ku {
            Ku::Absent => vec![],
            Ku::SignAndEncrypt => vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment],
            Ku::EncryptOnly => vec![KeyUsagePurpose::KeyEncipherment],
        };
        if spec.subject_key_id {
            params.is_ca = IsCa::ExplicitNoCa;
        }
        if spec.unknown_critical {
            let mut ext = CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, 9, 9], vec![0x05, 0x00]);
            ext.set_criticality(true);
            params.custom_extensions.push(ext);
        }
        params
    }
}

/// A fresh RSA-2048 key as PKCS#8 DER, drawn from `rng`.
fn rsa_key_pkcs8(rng: &mut ChaCha20Rng) -> Zeroizing<Vec<u8>> {
    let key = rsa::PrivateKey::new(rng, 2048).expect("RSA key generation");
    Zeroizing::new(key.to_pkcs8_der().expect("PKCS#8").as_bytes().to_vec())
}

/// An RSA-2048 key (PKCS#8 DER) that depends only on `seed`: keys for many users can be made
/// on several threads and still be the same on every run.
pub fn rsa_key_from_seed(seed: u64) -> Zeroizing<Vec<u8>> {
    rsa_key_pkcs8(&mut ChaCha20Rng::seed_from_u64(seed))
}

/// An RSA public key (PKCS#1 RSAPublicKey DER) for rcgen.
struct RsaPublic(Vec<u8>);

impl rcgen::PublicKeyData for RsaPublic {
    fn der_bytes(&self) -> &[u8] {
        &self.0
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

fn key_pair(pkcs8: Zeroizing<Vec<u8>>) -> (KeyPair, Zeroizing<Vec<u8>>) {
    let pair = KeyPair::try_from(pkcs8.as_slice()).expect("rcgen key");
    (pair, pkcs8)
}

fn is_root(a: &Authority) -> bool {
    a.root
}

fn parent_chain(parent: &Authority) -> Vec<Vec<u8>> {
    let mut chain = vec![parent.issued.cert_der.clone()];
    chain.extend(parent.issued.chain_der.iter().cloned());
    chain
}

/// One organisation: a root CA, a gatekeeper, a gateway and users.
pub struct Org {
    /// Its mail domain.
    pub domain: String,
    /// Its gatekeeper's URI.
    pub uri: String,
    /// Its root CA.
    pub ca: Authority,
    /// Its gatekeeper (address `ekg@DOMAIN`, URI `https://ekg.DOMAIN/`).
    pub gatekeeper: Issued,
    /// Its outbound gateway (`gateway@DOMAIN`).
    pub gateway: Issued,
    /// Users, by address.
    pub users: Vec<(String, Issued)>,
}

impl Org {
    /// Builds an organisation with the given user local parts.
    pub fn build(pki: &mut Pki, domain: &str, users: &[&str]) -> Org {
        Org::build_with_uri(pki, domain, users, &Org::gatekeeper_uri_for(domain))
    }

    /// As [`Org::build`], the gatekeeper's certificate naming `uri` (a demo on loopback).
    pub fn build_with_uri(pki: &mut Pki, domain: &str, users: &[&str], uri: &str) -> Org {
        let ca = pki.root(domain);
        let gatekeeper = pki.issue(&ca, &EntitySpec::gatekeeper(&format!("ekg@{domain}"), uri));
        let gateway = pki.issue(&ca, &EntitySpec::user(&format!("gateway@{domain}")));
        let users = users
            .iter()
            .map(|u| {
                let address = format!("{u}@{domain}");
                let issued = pki.issue(&ca, &EntitySpec::user(&address));
                (address, issued)
            })
            .collect();
        Org { domain: domain.to_owned(), uri: uri.to_owned(), ca, gatekeeper, gateway, users }
    }

    /// The gatekeeper URI of a domain.
    pub fn gatekeeper_uri_for(domain: &str) -> String {
        format!("https://ekg.{domain}/")
    }

    /// This organisation's gatekeeper URI.
    pub fn gatekeeper_uri(&self) -> String {
        self.uri.clone()
    }

    /// A user by address.
    pub fn user(&self, address: &str) -> &Issued {
        self.users.iter().find(|(a, _)| a == address).map(|(_, i)| i).unwrap_or_else(|| panic!("no user {address}"))
    }
}

/// The standard test world: a sender organisation, a recipient organisation (federated),
/// and an untrusted one, plus certificates that break one identity rule each.
pub struct Federation {
    /// `example.com`: alice (sender), carol; its gatekeeper serves the tests.
    pub sender_org: Org,
    /// `example.org`: bob, dave.
    pub recipient_org: Org,
    /// `untrusted.test`: mallory; its CA is in nobody's anchors.
    pub untrusted_org: Org,
    /// Misfits under the sender organisation's CA, by what they break.
    pub misfits: Misfits,
}

/// Certificates that each break one rule (all under `example.com`'s CA unless said).
pub struct Misfits {
    /// Expired in 2025.
    pub expired: Issued,
    /// Not valid before 2040.
    pub not_yet_valid: Issued,
    /// serverAuth only.
    pub server_auth_only: Issued,
    /// keyEncipherment only.
    pub encrypt_only: Issued,
    /// No rfc822Name.
    pub no_email: Issued,
    /// An unknown critical extension.
    pub unknown_critical: Issued,
    /// `erin@example.com` under an intermediate CA (path of 3).
    pub via_intermediate: Issued,
    /// `frank@example.com` under two intermediates (path of 4).
    pub via_two_intermediates: Issued,
    /// A second certificate for `bob@example.org` (under example.org's CA).
    pub bob_second: Issued,
    /// `Alice@EXAMPLE.COM`-style case variant: `ALICE@example.com` (another local part).
    pub alice_upper: Issued,
    /// `weak@example.com` with a 1024-bit RSA key (made last, so that adding it changed no
    /// other certificate).
    pub weak_key: Issued,
    /// A second gatekeeper certificate for `example.com` (same address and URI), under the
    /// intermediate CA (the ones below are made after `weak_key`, for the same reason).
    pub gatekeeper_via_intermediate: Issued,
    /// `gateway@example.com` issued by `example.org`'s CA: trusted, but not the CA the
    /// gatekeeper configured for its gateway.
    pub gateway_other_ca: Issued,
    /// `ski@example.com`, whose certificate has a subject key identifier.
    pub with_ski: Issued,
    /// keyEncipherment only and no rfc822Name: two faults, V7 before V8.
    pub encrypt_only_no_email: Issued,
}

impl Federation {
    /// Builds the standard world from `seed`.
    pub fn generate(seed: u64) -> Federation {
        let mut pki = Pki::new(seed);
        let sender_org = Org::build(&mut pki, "example.com", &["alice", "carol"]);
        let recipient_org = Org::build(&mut pki, "example.org", &["bob", "dave"]);
        let untrusted_org = Org::build(&mut pki, "untrusted.test", &["mallory"]);
        let ca = &sender_org.ca;
        let spec = |email: &str, f: &dyn Fn(&mut EntitySpec)| {
            let mut s = EntitySpec::user(email);
            f(&mut s);
            s
        };
        let expired = spec("old@example.com", &|s| s.valid = ((2020, 1, 1), (2025, 1, 1)));
        let not_yet = spec("future@example.com", &|s| s.valid = ((2040, 1, 1), (2045, 1, 1)));
        let server = spec("server@example.com", &|s| s.eku = Eku::ServerAuthOnly);
        let encrypt = spec("enc@example.com", &|s| s.ku = Ku::EncryptOnly);
        let no_email = spec("noemail@example.com", &|s| s.emails.clear());
        let critical = spec("critical@example.com", &|s| s.unknown_critical = true);
        let inter = pki.intermediate(ca, "example.com Issuing");
        let inter2 = pki.intermediate(&inter, "example.com Sub-issuing");
        let misfits = Misfits {
            expired: pki.issue(ca, &expired),
            not_yet_valid: pki.issue(ca, &not_yet),
            server_auth_only: pki.issue(ca, &server),
            encrypt_only: pki.issue(ca, &encrypt),
            no_email: pki.issue(ca, &no_email),
            unknown_critical: pki.issue(ca, &critical),
            via_intermediate: pki.issue(&inter, &EntitySpec::user("erin@example.com")),
            via_two_intermediates: pki.issue(&inter2, &EntitySpec::user("frank@example.com")),
            bob_second: pki.issue(&recipient_org.ca, &EntitySpec::user("bob@example.org")),
            alice_upper: pki.issue(ca, &EntitySpec::user("ALICE@example.com")),
            weak_key: pki.issue_with_rsa_bits(ca, &EntitySpec::user("weak@example.com"), 1024),
            gatekeeper_via_intermediate: pki
                .issue(&inter, &EntitySpec::gatekeeper("ekg@example.com", &Org::gatekeeper_uri_for("example.com"))),
            gateway_other_ca: pki.issue(&recipient_org.ca, &EntitySpec::user("gateway@example.com")),
            with_ski: pki.issue(ca, &spec("ski@example.com", &|s| s.subject_key_id = true)),
            encrypt_only_no_email: pki.issue(
                ca,
                &spec("enc-noemail@example.com", &|s| {
                    s.ku = Ku::EncryptOnly;
                    s.emails.clear();
                }),
            ),
        };
        Federation { sender_org, recipient_org, untrusted_org, misfits }
    }

    /// The standard world for seed 2026, built once per process.
    pub fn shared() -> &'static Federation {
        static SHARED: OnceLock<Federation> = OnceLock::new();
        SHARED.get_or_init(|| Federation::generate(2026))
    }

    /// The federation's trust anchors (sender and recipient organisations' roots), DER.
    pub fn anchors(&self) -> Vec<Vec<u8>> {
        vec![self.sender_org.ca.issued.cert_der.clone(), self.recipient_org.ca.issued.cert_der.clone()]
    }
}
