//! Name constraints (RFC 5280 section 4.2.1.10), step V7.4 of `docs/protocol.md` §3.0.4.
//!
//! A CA's (or an anchor's) nameConstraints bound the names of every certificate below it on
//! the path. Three name forms are checked, critical extension or not:
//! - **rfc822Name**: the certificate's rfc822Name subjectAltNames that parse as addresses and
//!   the emailAddress attributes of its subject. A constraint with `@` is one mailbox (local
//!   part exact, domain case-insensitive); one beginning with `.` is every address in a
//!   subdomain of it; otherwise every address at that host exactly.
//! - **dNSName**: the dNSName subjectAltNames; a constraint matches the name itself and any
//!   name made by adding labels on the left (`example.com` matches `mx.example.com`, not
//!   `badexample.com`); one beginning with `.` matches subdomains only; empty matches all.
//!   Case-insensitive.
//! - **directoryName**: the subject (when not empty) and directoryName subjectAltNames: the
//!   constraint's RDNs are the first RDNs of the name (compared as decoded values).
//!
//! For each form with permitted subtrees, every name of that form must lie in one of them;
//! no name may lie in an excluded subtree. Any other form (iPAddress, URI, otherName, ...)
//! and any subtree with a `minimum` other than 0 or a `maximum` (which RFC 5280 forbids) is
//! not processed: in a critical extension it refuses the path (`name_not_permitted`, fail
//! closed); in a non-critical one it is ignored.

use der::asn1::Ia5StringRef;
use der::oid::AssociatedOid;
use x509_cert::Certificate;
use x509_cert::ext::pkix::NameConstraints;
use x509_cert::ext::pkix::constraints::name::GeneralSubtree;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::Name;

use crate::address::EmailAddress;
use crate::error::{Rejection, Result, reject};

/// The legacy emailAddress attribute of a subject (PKCS #9).
const EMAIL_ADDRESS_ATTRIBUTE: der::asn1::ObjectIdentifier =
    der::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.1");

/// One CA's name constraints, decoded.
#[derive(Clone, Debug)]
pub(crate) struct Constraints {
    permitted: Vec<Subtree>,
    excluded: Vec<Subtree>,
    /// The first subtree of a form this module does not process, in a critical extension.
    unsupported: Option<&'static str>,
}

#[derive(Clone, Debug)]
enum Subtree {
    Email(String),
    Dns(String),
    Directory(Name),
}

impl Constraints {
    /// The nameConstraints of `cert`, if it has the extension (`malformed_der` if it does not
    /// decode).
    pub(crate) fn of(cert: &Certificate) -> Result<Option<Constraints>> {
        let Some(ext) =
            cert.tbs_certificate().extensions().into_iter().flatten().find(|e| e.extn_id == NameConstraints::OID)
        else {
            return Ok(None);
        };
        let nc: NameConstraints = der::Decode::from_der(ext.extn_value.as_bytes())
            .map_err(|e| reject(Rejection::MalformedDer, format!("extension {}: {e}", NameConstraints::OID)))?;
        let mut unsupported = None;
        let mut read = |subtrees: Option<Vec<GeneralSubtree>>| {
            let mut out = Vec::new();
            for s in subtrees.into_iter().flatten() {
                match subtree(&s) {
                    Ok(t) => out.push(t),
                    Err(form) if ext.critical => {
                        unsupported = unsupported.or(Some(form));
                    }
                    Err(_) => {}
                }
            }
            out
        };
        let permitted = read(nc.permitted_subtrees);
        let excluded = read(nc.excluded_subtrees);
        Ok(Some(Constraints { permitted, excluded, unsupported }))
    }

    /// A name form that a critical extension constrains and this module cannot check.
    pub(crate) fn unsupported(&self) -> Option<&'static str> {
        self.unsupported
    }

    /// Whether every name of `cert` is within these constraints (`name_not_permitted`).
    pub(crate) fn check(&self, cert: &Certificate) -> Result<()> {
        if let Some(form) = self.unsupported {
            return Err(reject(
                Rejection::NameNotPermitted,
                format!("a critical nameConstraints extension constrains {form}, which is not checked"),
            ));
        }
        let names = Names::of(cert);
        let refuse = |what: String| Err(reject(Rejection::NameNotPermitted, what));
        for a in &names.emails {
            if self.excluded.iter().any(|s| s.matches_email(a)) {
                return refuse(format!("{a} is in an excluded subtree"));
            }
            let permitted: Vec<&Subtree> = self.permitted.iter().filter(|s| matches!(s, Subtree::Email(_))).collect();
            if !permitted.is_empty() && !permitted.iter().any(|s| s.matches_email(a)) {
                return refuse(format!("{a} is outside the permitted rfc822Name subtrees"));
            }
        }
        for n in &names.dns {
            if self.excluded.iter().any(|s| s.matches_dns(n)) {
                return refuse(format!("dNSName {n} is in an excluded subtree"));
            }
            let permitted: Vec<&Subtree> = self.permitted.iter().filter(|s| matches!(s, Subtree::Dns(_))).collect();
            if !permitted.is_empty() && !permitted.iter().any(|s| s.matches_dns(n)) {
                return refuse(format!("dNSName {n} is outside the permitted subtrees"));
            }
        }
        for d in &names.directories {
            if self.excluded.iter().any(|s| s.matches_directory(d)) {
                return refuse(format!("directoryName {d} is in an excluded subtree"));
            }
            let permitted: Vec<&Subtree> =
                self.permitted.iter().filter(|s| matches!(s, Subtree::Directory(_))).collect();
            if !permitted.is_empty() && !permitted.iter().any(|s| s.matches_directory(d)) {
                return refuse(format!("directoryName {d} is outside the permitted subtrees"));
            }
        }
        Ok(())
    }
}

/// A subtree this module checks, or the name of the form it does not.
fn subtree(s: &GeneralSubtree) -> core::result::Result<Subtree, &'static str> {
    if s.minimum != 0 || s.maximum.is_some() {
        return Err("a subtree with a minimum or maximum");
    }
    match &s.base {
        GeneralName::Rfc822Name(n) => Ok(Subtree::Email(n.to_string())),
        GeneralName::DnsName(n) => Ok(Subtree::Dns(n.to_string())),
        GeneralName::DirectoryName(n) => Ok(Subtree::Directory(n.clone())),
        GeneralName::IpAddress(_) => Err("iPAddress"),
        GeneralName::UniformResourceIdentifier(_) => Err("uniformResourceIdentifier"),
        GeneralName::OtherName(_) => Err("otherName"),
        GeneralName::RegisteredId(_) => Err("registeredID"),
        GeneralName::EdiPartyName(_) => Err("ediPartyName"),
    }
}

impl Subtree {
    fn matches_email(&self, a: &EmailAddress) -> bool {
        let Subtree::Email(c) = self else { return false };
        match c.rsplit_once('@') {
            Some((local, domain)) => a.local_part() == local && a.domain().eq_ignore_ascii_case(domain),
            None if c.starts_with('.') => ends_with_ignore_case(a.domain(), c) && a.domain().len() > c.len(),
            None => a.domain().eq_ignore_ascii_case(c),
        }
    }

    fn matches_dns(&self, n: &str) -> bool {
        let Subtree::Dns(c) = self else { return false };
        if c.is_empty() {
            true
        } else if c.starts_with('.') {
            n.len() > c.len() && ends_with_ignore_case(n, c)
        } else {
            n.eq_ignore_ascii_case(c) || (n.len() > c.len() + 1 && ends_with_ignore_case(n, &format!(".{c}")))
        }
    }

    fn matches_directory(&self, n: &Name) -> bool {
        let Subtree::Directory(base) = self else { return false };
        let (base, n) = (base.as_ref(), n.as_ref());
        base.len() <= n.len() && base.iter().zip(n.iter()).all(|(a, b)| a == b)
    }
}

fn ends_with_ignore_case(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len() && s.get(s.len() - suffix.len()..).is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
}

/// The names of a certificate that constraints apply to.
struct Names {
    emails: Vec<EmailAddress>,
    dns: Vec<String>,
    directories: Vec<Name>,
}

impl Names {
    fn of(cert: &Certificate) -> Names {
        let tbs = cert.tbs_certificate();
        let mut names = Names { emails: Vec::new(), dns: Vec::new(), directories: Vec::new() };
        if !tbs.subject().as_ref().is_empty() {
            names.directories.push(tbs.subject().clone());
        }
        for rdn in tbs.subject().as_ref().iter() {
            for atv in rdn.iter() {
                if atv.oid == EMAIL_ADDRESS_ATTRIBUTE
                    && let Ok(s) = atv.value.decode_as::<Ia5StringRef<'_>>()
                    && let Ok(a) = EmailAddress::parse(s.as_str())
                {
                    names.emails.push(a);
                }
            }
        }
        for n in super::fields::san(cert) {
            match n {
                GeneralName::Rfc822Name(s) => {
                    if let Ok(a) = EmailAddress::parse(s.as_ref()) {
                        names.emails.push(a);
                    }
                }
                GeneralName::DnsName(s) => names.dns.push(s.to_string()),
                GeneralName::DirectoryName(d) => names.directories.push(d),
                _ => {}
            }
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(c: &str, a: &str) -> bool {
        Subtree::Email(c.into()).matches_email(&EmailAddress::parse(a).expect("address"))
    }

    fn dns(c: &str, n: &str) -> bool {
        Subtree::Dns(c.into()).matches_dns(n)
    }

    #[test]
    fn rfc822_constraints_follow_rfc_5280() {
        assert!(email("example.org", "bob@example.org"));
        assert!(email("example.org", "bob@EXAMPLE.org"));
        assert!(!email("example.org", "bob@mail.example.org"), "a host constraint is that host only");
        assert!(email(".example.org", "bob@mail.example.org"));
        assert!(!email(".example.org", "bob@example.org"), "a leading dot is subdomains only");
        assert!(!email(".example.org", "bob@badexample.org"));
        assert!(email("bob@example.org", "bob@Example.ORG"));
        assert!(!email("bob@example.org", "Bob@example.org"), "local parts compare exactly");
        assert!(!email("example.org", "bob@badexample.org"));
    }

    #[test]
    fn dns_constraints_add_labels_on_the_left_only() {
        assert!(dns("example.org", "example.org"));
        assert!(dns("example.org", "mx.Example.org"));
        assert!(!dns("example.org", "badexample.org"));
        assert!(!dns(".example.org", "example.org"));
        assert!(dns(".example.org", "a.example.org"));
        assert!(dns("", "anything.test"));
    }
}
