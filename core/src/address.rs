//! Email addresses and the rule for comparing them.
//!
//! Rule (as draft-schaad-plasma-cms section 3.2 does): the domain compares
//! case-insensitively, the local part exactly. Addresses are ASCII (`addr-spec` of RFC 5322
//! without comments, quoted local parts or domain literals; internationalised domains as
//! A-labels), as an rfc822Name in a certificate must be (RFC 5280 section 4.2.1.6).

use core::fmt;

use crate::error::{Rejection, Result, reject};

/// Longest local part (RFC 5321 section 4.5.3.1.1).
pub const LOCAL_PART_MAX: usize = 64;
/// Longest domain (RFC 5321 section 4.5.3.1.2).
pub const DOMAIN_MAX: usize = 255;

/// An email address: a local part kept exactly and a domain kept in lower case.
/// Equality, ordering and hashing follow the comparison rule above.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EmailAddress {
    local: String,
    domain: String,
}

impl EmailAddress {
    /// Parses `local@domain`.
    pub fn parse(text: &str) -> Result<EmailAddress> {
        let bad = |why: &str| reject(Rejection::InvalidAddress, format!("{why}: {text:?}"));
        let (local, domain) = text.rsplit_once('@').ok_or_else(|| bad("no @"))?;
        if local.is_empty() || local.len() > LOCAL_PART_MAX {
            return Err(bad("local part length"));
        }
        if !local.bytes().all(is_atext_or_dot) || local.starts_with('.') || local.ends_with('.') || local.contains("..")
        {
            return Err(bad("local part characters"));
        }
        if domain.is_empty() || domain.len() > DOMAIN_MAX {
            return Err(bad("domain length"));
        }
        for label in domain.split('.') {
            let ldh = label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if label.is_empty() || label.len() > 63 || !ldh || label.starts_with('-') || label.ends_with('-') {
                return Err(bad("domain label"));
            }
        }
        Ok(EmailAddress { local: local.to_owned(), domain: domain.to_ascii_lowercase() })
    }

    /// The local part, exactly as given.
    pub fn local_part(&self) -> &str {
        &self.local
    }

    /// The domain, in lower case.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Whether the address is in `domain` (compared case-insensitively).
    pub fn in_domain(&self, domain: &str) -> bool {
        self.domain.eq_ignore_ascii_case(domain)
    }
}

fn is_atext_or_dot(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b)
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{self}>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn domain_compares_case_insensitively() {
        assert_eq!(a("alice@Example.COM"), a("alice@example.com"));
        assert!(a("alice@example.com").in_domain("EXAMPLE.com"));
    }

    #[test]
    fn local_part_compares_exactly() {
        assert_ne!(a("Alice@example.com"), a("alice@example.com"));
        assert_eq!(a("Alice@example.com").local_part(), "Alice");
    }

    #[test]
    fn malformed_addresses_are_rejected() {
        for s in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "al ice@example.com",
            "alice@exa mple.com",
            "alice@-example.com",
            "alice@example..com",
            ".alice@example.com",
            "a..b@example.com",
            "alice@example.com.",
            "al\u{e9}@example.com",
            "alice@\u{e9}.com",
            "a\"b@example.com",
        ] {
            let e = EmailAddress::parse(s).err().unwrap_or_else(|| panic!("accepted {s:?}"));
            assert_eq!(e, Rejection::InvalidAddress);
        }
        let long_local = format!("{}@example.com", "a".repeat(LOCAL_PART_MAX + 1));
        assert!(EmailAddress::parse(&long_local).is_err());
        assert!(EmailAddress::parse(&format!("{}@example.com", "a".repeat(LOCAL_PART_MAX))).is_ok());
    }

    #[test]
    fn last_at_sign_splits() {
        // '@' is not atext, so an address with two '@' is refused rather than misread.
        assert!(EmailAddress::parse("a@b@example.com").is_err());
    }
}
