//! Strict DER decoding: decode, then require that re-encoding gives the input back.
//!
//! `der` already refuses indefinite lengths, non-minimal lengths, non-canonical BOOLEANs and
//! INTEGERs; the round trip also refuses what it would silently normalise (a SET OF out of
//! X.690 order). Input that uses an indefinite or non-minimal length or a constructed string
//! gets `ber_not_der` (so that a client which sent `openssl cms -stream` output learns why),
//! as does a SET OF out of order; other malformations are `malformed_der`
//! (`docs/protocol.md` §3.0.1).

use der::{Decode, Encode};

use crate::error::{Rejection, Result, reject};

/// Decodes `bytes` as one `T` in DER, with nothing after it, at most `max_len` bytes long.
pub fn decode<'a, T>(bytes: &'a [u8], max_len: usize, what: &str) -> Result<T>
where
    T: Decode<'a> + Encode,
    <T as Decode<'a>>::Error: core::fmt::Display,
{
    if bytes.len() > max_len {
        return Err(reject(Rejection::InputTooLarge, format!("{what}: {} bytes > {max_len}", bytes.len())));
    }
    let value = match T::from_der(bytes) {
        Ok(v) => v,
        Err(e) => {
            let rejection = if is_ber_not_der(bytes) { Rejection::BerNotDer } else { Rejection::MalformedDer };
            return Err(reject(rejection, format!("{what}: {e}")));
        }
    };
    // Step 2 also holds for what the decoder takes as it is: an OBJECT IDENTIFIER's
    // subidentifiers are minimal (X.690 8.19.2), wherever one is (an ignored attribute too).
    if !oids_minimal(bytes) {
        return Err(reject(Rejection::MalformedDer, format!("{what}: an OBJECT IDENTIFIER subidentifier led by 80")));
    }
    // The re-encoding may hold a secret (a key delivery): zeroized when dropped.
    match value.to_der().map(zeroize::Zeroizing::new) {
        Ok(again) if again.as_slice() == bytes => Ok(value),
        Ok(_) => Err(reject(Rejection::BerNotDer, format!("{what}: not in canonical DER form"))),
        Err(e) => Err(reject(Rejection::MalformedDer, format!("{what}: {e}"))),
    }
}

/// Whether `bytes` is one complete BER element that uses a feature DER forbids.
pub fn is_ber_not_der(bytes: &[u8]) -> bool {
    let mut seen = Seen::default();
    matches!(walk(bytes, 0, &mut seen), Ok(n) if n == bytes.len()) && seen.ber
}

/// Whether every OBJECT IDENTIFIER (universal tag 6) in the element `bytes`, at any depth of
/// its constructed elements, has minimal subidentifiers. Primitive contents (an OCTET STRING
/// that wraps an encoding) are not looked into: they are decoded, and checked, on their own.
/// `false` if `bytes` is not one BER element.
pub fn oids_minimal(bytes: &[u8]) -> bool {
    let mut seen = Seen::default();
    matches!(walk(bytes, 0, &mut seen), Ok(n) if n == bytes.len()) && !seen.non_minimal_oid
}

/// Whether the contents octets of an OBJECT IDENTIFIER have no subidentifier led by `80`
/// (X.690 8.19.2: "the leading octet of the subidentifier shall not have the value 80").
pub fn oid_contents_minimal(contents: &[u8]) -> bool {
    let mut first_of_subidentifier = true;
    for &b in contents {
        if first_of_subidentifier && b == 0x80 {
            return false;
        }
        first_of_subidentifier = b & 0x80 == 0;
    }
    true
}

/// What a walk saw.
#[derive(Default)]
struct Seen {
    /// A feature of BER that DER forbids.
    ber: bool,
    /// An OBJECT IDENTIFIER with a non-minimal subidentifier.
    non_minimal_oid: bool,
}

/// Walks one BER TLV at the start of `input`, returns its length in bytes. Notes in `seen`
/// a non-DER feature and a non-minimal OBJECT IDENTIFIER.
fn walk(input: &[u8], depth: usize, seen: &mut Seen) -> core::result::Result<usize, ()> {
    if depth > 64 {
        return Err(());
    }
    let tag = *input.first().ok_or(())?;
    let mut pos = 1;
    if tag & 0x1f == 0x1f {
        // High tag number form.
        loop {
            let b = *input.get(pos).ok_or(())?;
            pos += 1;
            if b & 0x80 == 0 {
                break;
            }
            if pos > 6 {
                return Err(());
            }
        }
    }
    let constructed = tag & 0x20 != 0;
    let first = *input.get(pos).ok_or(())?;
    pos += 1;
    if first == 0x80 {
        // Indefinite length: constructed only, ends with 00 00.
        if !constructed {
            return Err(());
        }
        seen.ber = true;
        loop {
            let rest = input.get(pos..).ok_or(())?;
            if rest.starts_with(&[0, 0]) {
                return Ok(pos + 2);
            }
            pos += walk(rest, depth + 1, seen)?;
        }
    }
    let len = if first & 0x80 == 0 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return Err(());
        }
        let bytes = input.get(pos..pos + n).ok_or(())?;
        pos += n;
        let len = bytes.iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        if len < 0x80 || bytes.first() == Some(&0) {
            seen.ber = true; // non-minimal length
        }
        len
    };
    let end = pos.checked_add(len).ok_or(())?;
    let body = input.get(pos..end).ok_or(())?;
    // Constructed form of a string type (OCTET STRING, BIT STRING, the character strings).
    let universal_string = matches!(tag, 0x23 | 0x24 | 0x2c | 0x33 | 0x34 | 0x36);
    if universal_string {
        seen.ber = true;
    }
    if tag == 0x06 && !oid_contents_minimal(body) {
        seen.non_minimal_oid = true;
    }
    if constructed {
        let mut inner = 0;
        while inner < body.len() {
            inner += walk(body.get(inner..).ok_or(())?, depth + 1, seen)?;
        }
    }
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::asn1::OctetString;

    #[test]
    fn indefinite_length_is_ber_not_der() {
        // SEQUENCE (indefinite) { INTEGER 1 } EOC
        let ber = [0x30, 0x80, 0x02, 0x01, 0x01, 0x00, 0x00];
        assert!(is_ber_not_der(&ber));
        let e = decode::<der::Any>(&ber, 100, "x").err().map(|e| e.rejection());
        assert_eq!(e, Some(Rejection::BerNotDer));
    }

    #[test]
    fn non_minimal_length_is_ber_not_der() {
        let ber = [0x04, 0x81, 0x01, 0xAA];
        assert!(is_ber_not_der(&ber));
        assert_eq!(decode::<OctetString>(&ber, 100, "x").err().map(|e| e.rejection()), Some(Rejection::BerNotDer));
    }

    #[test]
    fn constructed_octet_string_is_ber_not_der() {
        let ber = [0x24, 0x06, 0x04, 0x01, 0xAA, 0x04, 0x01, 0xBB];
        assert!(is_ber_not_der(&ber));
    }

    #[test]
    fn a_subidentifier_led_by_80_is_malformed() {
        // 1.2.840.113549 with its arc 113549 written 80 86 F7 0D: the decoder takes it.
        let odd = [0x06, 0x07, 0x2a, 0x86, 0x48, 0x80, 0x86, 0xf7, 0x0d];
        let taken: core::result::Result<der::asn1::ObjectIdentifier, _> = der::Decode::from_der(&odd);
        assert!(taken.is_ok());
        assert!(!oids_minimal(&odd));
        assert_eq!(decode::<der::Any>(&odd, 100, "x").err().map(|e| e.rejection()), Some(Rejection::MalformedDer));
        // Nested in a SEQUENCE, and as the first subidentifier.
        let nested = [0x30, 0x04, 0x06, 0x02, 0x80, 0x01];
        assert_eq!(decode::<der::Any>(&nested, 100, "x").err().map(|e| e.rejection()), Some(Rejection::MalformedDer));
        // `80` inside a subidentifier is fine (113549 is 86 F7 0D; 128 is 81 00).
        let fine = [0x30, 0x09, 0x06, 0x07, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x81, 0x00];
        assert!(oids_minimal(&fine));
        assert!(decode::<der::Any>(&fine, 100, "x").is_ok());
        // Inside an OCTET STRING it is not an OID.
        assert!(oids_minimal(&[0x04, 0x03, 0x06, 0x01, 0x80]));
    }

    #[test]
    fn garbage_is_malformed_and_der_is_accepted() {
        assert_eq!(
            decode::<OctetString>(&[0x04, 0x05, 1], 100, "x").err().map(|e| e.rejection()),
            Some(Rejection::MalformedDer)
        );
        assert_eq!(
            decode::<OctetString>(&[0x04, 0x01, 1, 0], 100, "x").err().map(|e| e.rejection()),
            Some(Rejection::MalformedDer)
        );
        assert!(decode::<OctetString>(&[0x04, 0x01, 7], 100, "x").is_ok());
        assert_eq!(
            decode::<OctetString>(&[0x04, 0x01, 7], 2, "x").err().map(|e| e.rejection()),
            Some(Rejection::InputTooLarge)
        );
    }
}
