//! A readable, deterministic dump of DER (in the manner of `openssl asn1parse -i`), used by
//! the snapshot tests so that the wire format cannot change silently, and by `ekg demo`.
//!
//! OCTET STRINGs and `[0]` wrappers whose contents are themselves one DER element are
//! descended into. Long byte strings are shown by length and their first bytes.

use core::fmt::Write;

use der::asn1::ObjectIdentifier;

use super::oid;

/// Dumps `der` as indented text. Undecodable input is shown as such, never panics.
pub fn dump(der: &[u8]) -> String {
    let mut out = String::new();
    let mut pos = 0;
    while pos < der.len() {
        match element(der.get(pos..).unwrap_or_default(), 0, &mut out) {
            Some(n) => pos += n,
            None => {
                let _ = writeln!(out, "!! undecodable at offset {pos}");
                break;
            }
        }
    }
    out
}

fn header(input: &[u8]) -> Option<(u8, usize, usize)> {
    let tag = *input.first()?;
    if tag & 0x1f == 0x1f {
        return None;
    }
    let first = *input.get(1)?;
    if first < 0x80 {
        return Some((tag, 2, usize::from(first)));
    }
    let n = usize::from(first & 0x7f);
    if n == 0 || n > 4 {
        return None;
    }
    let len = input.get(2..2 + n)?.iter().fold(0usize, |a, b| (a << 8) | usize::from(*b));
    Some((tag, 2 + n, len))
}

fn is_single_element(body: &[u8]) -> bool {
    matches!(header(body), Some((tag, h, l)) if h + l == body.len() && (tag & 0x20 != 0 || tag == 0x06))
        && crate::asn1::strict::decode::<der::Any>(body, usize::MAX, "").is_ok()
}

fn element(input: &[u8], depth: usize, out: &mut String) -> Option<usize> {
    let (tag, h, len) = header(input)?;
    let body = input.get(h..h + len)?;
    let pad = "  ".repeat(depth);
    let constructed = tag & 0x20 != 0;
    let class = tag >> 6;
    let name = match (class, tag & 0x1f) {
        (0, 1) => "BOOLEAN".to_string(),
        (0, 2) => "INTEGER".to_string(),
        (0, 3) => "BIT STRING".to_string(),
        (0, 4) => "OCTET STRING".to_string(),
        (0, 5) => "NULL".to_string(),
        (0, 6) => "OBJECT IDENTIFIER".to_string(),
        (0, 10) => "ENUMERATED".to_string(),
        (0, 12) => "UTF8String".to_string(),
        (0, 16) => "SEQUENCE".to_string(),
        (0, 17) => "SET".to_string(),
        (0, 19) => "PrintableString".to_string(),
        (0, 22) => "IA5String".to_string(),
        (0, 23) => "UTCTime".to_string(),
        (0, 24) => "GeneralizedTime".to_string(),
        (2, n) => format!("[{n}]"),
        (c, n) => format!("tag(class {c}, {n})"),
    };
    if constructed {
        let _ = writeln!(out, "{pad}{name} ({len} bytes)");
        let mut pos = 0;
        while pos < body.len() {
            pos += element(body.get(pos..)?, depth + 1, out)?;
        }
        return Some(h + len);
    }
    let value = match (class, tag & 0x1f) {
        (0, 6) => {
            let oid = ObjectIdentifier::from_bytes(body).ok()?;
            match oid::name(&oid) {
                Some(n) => format!("{oid} ({n})"),
                None => oid.to_string(),
            }
        }
        (0, 12 | 19 | 22 | 23 | 24) => format!("{:?}", String::from_utf8_lossy(body)),
        (0, 1 | 2 | 10) if body.len() <= 8 => format!("{}", body.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b))),
        (0, 5) => String::new(),
        _ => bytes(body),
    };
    let _ = writeln!(out, "{pad}{name} {value}");
    if (class == 0 && tag & 0x1f == 4 || class == 2) && !body.is_empty() && is_single_element(body) {
        let _ = writeln!(out, "{pad}  -- encapsulates:");
        element(body, depth + 2, out)?;
    }
    Some(h + len)
}

fn bytes(b: &[u8]) -> String {
    let hex: String = b.iter().take(16).map(|x| format!("{x:02x}")).collect();
    if b.len() > 16 { format!("({} bytes) {hex}...", b.len()) } else { format!("({} bytes) {hex}", b.len()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_never_panics_on_garbage() {
        for input in [&[][..], &[0x30], &[0x30, 0x85, 1, 2, 3, 4, 5], &[0x1f, 0x30], &[0x04, 0x02, 0x30, 0x00]] {
            let _ = dump(input);
        }
        assert!(dump(&[0x02, 0x01, 0x05]).contains("INTEGER 5"));
    }
}
