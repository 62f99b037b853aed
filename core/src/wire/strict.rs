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
    // The re-encoding may hold a secret (a key delivery): zeroized when dropped.
    match value.to_der().map(zeroize::Zeroizing::new) {
        Ok(again) if again.as_slice() == bytes => Ok(value),
        Ok(_) => Err(reject(Rejection::BerNotDer, format!("{what}: not in canonical DER form"))),
        Err(e) => Err(reject(Rejection::MalformedDer, format!("{what}: {e}"))),
    }
}

/// Whether `bytes` is one complete BER element that uses a feature DER forbids.
pub fn is_ber_not_der(bytes: &[u8]) -> bool {
    let mut seen = false;
    matches!(walk(bytes, 0, &mut seen), Ok(n) if n == bytes.len()) && seen
}

/// Walks one BER TLV at the start of `input`, returns its length in bytes. Sets `ber` when a
/// non-DER feature is seen.
fn walk(input: &[u8], depth: usize, ber: &mut bool) -> core::result::Result<usize, ()> {
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
        *ber = true;
        loop {
            let rest = input.get(pos..).ok_or(())?;
            if rest.starts_with(&[0, 0]) {
                return Ok(pos + 2);
            }
            pos += walk(rest, depth + 1, ber)?;
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
            *ber = true; // non-minimal length
        }
        len
    };
    let end = pos.checked_add(len).ok_or(())?;
    let body = input.get(pos..end).ok_or(())?;
    // Constructed form of a string type (OCTET STRING, BIT STRING, the character strings).
    let universal_string = matches!(tag, 0x23 | 0x24 | 0x2c | 0x33 | 0x34 | 0x36);
    if universal_string {
        *ber = true;
    }
    if constructed {
        let mut inner = 0;
        while inner < body.len() {
            inner += walk(body.get(inner..).ok_or(())?, depth + 1, ber)?;
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
