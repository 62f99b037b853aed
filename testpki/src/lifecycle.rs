//! The certificates of a federation with partners and of a gatekeeper's working life: a
//! partner CA trusted for its own domain, CAs with name constraints, a revoked certificate
//! with its CRL and a stale CRL, and the gatekeeper's renewed, rekeyed, expired, not yet
//! valid, EKU-less and other-URI certificates. Made from a seed of their own, so that adding
//! them changed no certificate of [`Federation`].

use std::sync::OnceLock;

use der::Encode;
use der::asn1::Ia5String;
use rcgen::{
    CertificateRevocationListParams, CidrSubnet, CustomExtension, GeneralSubtree, Issuer, KeyIdMethod, NameConstraints,
    RevocationReason, RevokedCertParams, SerialNumber, date_time_ymd,
};
use x509_cert::ext::pkix::constraints::name::GeneralSubtree as X509Subtree;
use x509_cert::ext::pkix::name::GeneralName;

use crate::{Authority, Eku, EntitySpec, Federation, Issued, Org, Pki, pem};

/// A CRL and the CA that signed it.
#[derive(Clone, Debug)]
pub struct Crl {
    /// DER.
    pub der: Vec<u8>,
    /// The issuing CA's certificate (DER).
    pub issuer_der: Vec<u8>,
}

impl Crl {
    /// As PEM (`X509 CRL`).
    pub fn pem(&self) -> String {
        pem("X509 CRL", &self.der)
    }
}

/// The certificates of issue 25 (see the module documentation). Addresses of the standard
/// federation keep their meaning: `example.com` is the gatekeeper's organisation,
/// `example.org` its federated partner.
pub struct Lifecycle {
    /// `partner.test`: another organisation, whose CA a gatekeeper trusts for `partner.test`
    /// only (users: pat).
    pub partner_org: Org,
    /// `bob@example.org` issued by `partner.test`'s CA: a trusted anchor, but not for
    /// `example.org`.
    pub partner_bob: Issued,
    /// A root CA whose critical nameConstraints permit rfc822Name `constrained.test` and
    /// `.constrained.test`.
    pub constrained_ca: Authority,
    /// `carl@constrained.test` under it: within its constraints.
    pub constrained_carl: Issued,
    /// `bob@example.org` under it: outside its constraints.
    pub constrained_bob: Issued,
    /// An intermediate CA under `example.org`'s CA whose **non-critical** nameConstraints
    /// permit rfc822Name `example.org` and dNSName `example.org`.
    pub limited_ca: Authority,
    /// `olga@example.org` (dNSName `mx.example.org`) under it: within.
    pub limited_olga: Issued,
    /// `eve@example.com` under it: an address outside.
    pub limited_eve: Issued,
    /// `dana@example.org` with dNSName `dana.example.net` under it: a DNS name outside.
    pub limited_dana: Issued,
    /// An intermediate CA under `example.org`'s CA whose critical nameConstraints permit an
    /// iPAddress range (a form the profile does not check).
    pub ip_limited_ca: Authority,
    /// `ivan@example.org` under it.
    pub ip_limited_ivan: Issued,
    /// A second certificate for `bob@example.org` under `example.org`'s CA, revoked.
    pub bob_revoked: Issued,
    /// `example.org`'s CRL listing `bob_revoked`, current from 2025 to 2045.
    pub crl_example_org: Crl,
    /// The same list, current from 2025-01-01 to 2026-01-01 only: stale after.
    pub crl_example_org_stale: Crl,
    /// `example.com`'s gatekeeper renewed: the same key, address and URI, a new serial, valid
    /// 2026 to 2046.
    pub gatekeeper_renewed: Issued,
    /// `example.com`'s gatekeeper with a new key (a rotation), the same address and URI.
    pub gatekeeper_rekeyed: Issued,
    /// `example.com`'s gatekeeper key in a certificate that expired in 2025.
    pub gatekeeper_expired: Issued,
    /// ... in a certificate valid from 2040.
    pub gatekeeper_not_yet_valid: Issued,
    /// ... in a certificate without `id-ekg-kp-gatekeeper` (emailProtection only).
    pub gatekeeper_no_eku: Issued,
    /// ... in a certificate naming `https://other.example.com/` instead of its URI.
    pub gatekeeper_other_uri: Issued,
}

impl Lifecycle {
    /// Builds them for `fed` from `seed`.
    pub fn generate(fed: &Federation, seed: u64) -> Lifecycle {
        let mut pki = Pki::new(seed);
        let org_ca = &fed.recipient_org.ca;
        let partner_org = Org::build(&mut pki, "partner.test", &["pat"]);
        let partner_bob = pki.issue(&partner_org.ca, &EntitySpec::user("bob@example.org"));
        let constrained_ca = pki.root_with("constrained.test", |p| {
            p.name_constraints = Some(NameConstraints {
                permitted_subtrees: vec![
                    GeneralSubtree::Rfc822Name("constrained.test".into()),
                    GeneralSubtree::Rfc822Name(".constrained.test".into()),
                ],
                excluded_subtrees: vec![],
            });
        });
        let constrained_carl = pki.issue(&constrained_ca, &EntitySpec::user("carl@constrained.test"));
        let constrained_bob = pki.issue(&constrained_ca, &EntitySpec::user("bob@example.org"));
        let limited_ca = pki.intermediate_with(org_ca, "example.org Limited", |p| {
            p.custom_extensions.push(non_critical_name_constraints(&["example.org"], &["example.org"]));
        });
        let with_dns = |email: &str, dns: &str| EntitySpec { dns_names: vec![dns.into()], ..EntitySpec::user(email) };
        let limited_olga = pki.issue(&limited_ca, &with_dns("olga@example.org", "mx.example.org"));
        let limited_eve = pki.issue(&limited_ca, &EntitySpec::user("eve@example.com"));
        let limited_dana = pki.issue(&limited_ca, &with_dns("dana@example.org", "dana.example.net"));
        let ip_limited_ca = pki.intermediate_with(org_ca, "example.org IP-limited", |p| {
            p.name_constraints = Some(NameConstraints {
                permitted_subtrees: vec![GeneralSubtree::IpAddress(CidrSubnet::V4([10, 0, 0, 0], [255, 0, 0, 0]))],
                excluded_subtrees: vec![],
            });
        });
        let ip_limited_ivan = pki.issue(&ip_limited_ca, &EntitySpec::user("ivan@example.org"));
        let bob_revoked = pki.issue(org_ca, &EntitySpec::user("bob@example.org"));
        let crl_example_org = crl(org_ca, (2025, 1, 1), (2045, 1, 1), &[&bob_revoked]);
        let crl_example_org_stale = crl(org_ca, (2025, 1, 1), (2026, 1, 1), &[&bob_revoked]);
        let ca = &fed.sender_org.ca;
        let gk = &fed.sender_org.gatekeeper;
        let uri = fed.sender_org.gatekeeper_uri();
        let spec = |f: &dyn Fn(&mut EntitySpec)| {
            let mut s = EntitySpec::gatekeeper("ekg@example.com", &uri);
            f(&mut s);
            s
        };
        let same_key = |pki: &mut Pki, s: &EntitySpec| pki.issue_with_key(ca, s, gk.key_pkcs8.clone());
        let gatekeeper_renewed = same_key(&mut pki, &spec(&|s| s.valid = ((2026, 1, 1), (2046, 1, 1))));
        let gatekeeper_rekeyed = pki.issue(ca, &spec(&|s| s.valid = ((2026, 1, 1), (2046, 1, 1))));
        let gatekeeper_expired = same_key(&mut pki, &spec(&|s| s.valid = ((2020, 1, 1), (2025, 1, 1))));
        let gatekeeper_not_yet_valid = same_key(&mut pki, &spec(&|s| s.valid = ((2040, 1, 1), (2045, 1, 1))));
        let gatekeeper_no_eku = same_key(&mut pki, &spec(&|s| s.eku = Eku::EmailProtection));
        let gatekeeper_other_uri = same_key(&mut pki, &spec(&|s| s.uris = vec!["https://other.example.com/".into()]));
        Lifecycle {
            partner_org,
            partner_bob,
            constrained_ca,
            constrained_carl,
            constrained_bob,
            limited_ca,
            limited_olga,
            limited_eve,
            limited_dana,
            ip_limited_ca,
            ip_limited_ivan,
            bob_revoked,
            crl_example_org,
            crl_example_org_stale,
            gatekeeper_renewed,
            gatekeeper_rekeyed,
            gatekeeper_expired,
            gatekeeper_not_yet_valid,
            gatekeeper_no_eku,
            gatekeeper_other_uri,
        }
    }

    /// The set for [`Federation::shared`], built once per process (seed 2025).
    pub fn shared() -> &'static Lifecycle {
        static SHARED: OnceLock<Lifecycle> = OnceLock::new();
        SHARED.get_or_init(|| Lifecycle::generate(Federation::shared(), 2025))
    }
}

/// A CRL by `ca`, current from `this` to `next`, listing `revoked` (reason keyCompromise).
pub fn crl(ca: &Authority, this: (i32, u8, u8), next: (i32, u8, u8), revoked: &[&Issued]) -> Crl {
    let revoked_certs = revoked
        .iter()
        .map(|i| RevokedCertParams {
            serial_number: SerialNumber::from(serial_of(&i.cert_der)),
            revocation_time: date_time_ymd(this.0, this.1, this.2),
            reason_code: Some(RevocationReason::KeyCompromise),
            invalidity_date: None,
        })
        .collect();
    let params = CertificateRevocationListParams {
        this_update: date_time_ymd(this.0, this.1, this.2),
        next_update: date_time_ymd(next.0, next.1, next.2),
        crl_number: SerialNumber::from(vec![1]),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let issuer = Issuer::from_params(&ca.params, &ca.key);
    let crl = params.signed_by(&issuer).expect("CRL");
    Crl { der: crl.der().to_vec(), issuer_der: ca.issued.cert_der.clone() }
}

/// The serial number of a DER certificate (its INTEGER's contents octets).
fn serial_of(cert_der: &[u8]) -> Vec<u8> {
    use der::Decode;
    let cert = x509_cert::Certificate::from_der(cert_der).expect("certificate");
    cert.tbs_certificate().serial_number().as_bytes().to_vec()
}

/// A non-critical nameConstraints extension permitting rfc822Name `emails` and dNSName
/// `dns` (rcgen writes the extension critical only).
fn non_critical_name_constraints(emails: &[&str], dns: &[&str]) -> CustomExtension {
    let subtree = |base: GeneralName| X509Subtree { base, minimum: 0, maximum: None };
    let ia5 = |s: &str| Ia5String::new(s).expect("IA5");
    let permitted = emails
        .iter()
        .map(|e| subtree(GeneralName::Rfc822Name(ia5(e))))
        .chain(dns.iter().map(|d| subtree(GeneralName::DnsName(ia5(d)))))
        .collect();
    let nc = x509_cert::ext::pkix::NameConstraints { permitted_subtrees: Some(permitted), excluded_subtrees: None };
    let mut ext = CustomExtension::from_oid_content(&[2, 5, 29, 30], nc.to_der().expect("nameConstraints"));
    ext.set_criticality(false);
    ext
}
