//! Sealed messages in email (`docs/protocol.md` §9): the original message, less its Bcc
//! fields, is the sealed content byte for byte; the outer message carries a few header fields
//! in the clear, a placeholder Subject, and the AuthEnvelopedData as an RFC 8551
//! `application/pkcs7-mime; smime-type=authEnveloped-data` body in base64. Parsing is
//! `mail-parser`'s, building `mail-builder`'s; only the strict base64 of the sealed body is
//! decoded here (a truncated or corrupt body is an error, never a shorter CMS).

use base64::Engine;
use mail_builder::MessageBuilder;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::raw::Raw;
use mail_builder::mime::{BodyPart, MimePart};
use mail_parser::{HeaderName, MessageParser, MimeHeaders};

/// Largest message `ekg send` seals (the sealed CMS must stay within the core's 64 MiB).
pub const MAX_MESSAGE_LEN: usize = 48 * 1024 * 1024;
/// Largest sealed `.eml` `ekg read` takes (64 MiB of CMS in base64, and headers).
pub const MAX_SEALED_MESSAGE_LEN: usize = 90 * 1024 * 1024;
/// The header fields copied in the clear to the outer message, in this order.
pub const CLEAR_FIELDS: [&str; 9] =
    ["From", "Sender", "Reply-To", "To", "Cc", "Date", "Message-ID", "In-Reply-To", "References"];
/// The outer Subject (RFC 9788's placeholder; the real one is inside).
pub const PLACEHOLDER_SUBJECT: &str = "[...]";

/// A message that is not what the command needs: a stable code and a line for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailError {
    /// `malformed_mime`, `not_an_ekg_message`, `no_recipients`, `input_too_large`.
    pub code: &'static str,
    /// What was wrong.
    pub detail: String,
}

impl core::fmt::Display for MailError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl std::error::Error for MailError {}

fn err<T>(code: &'static str, detail: impl Into<String>) -> Result<T, MailError> {
    Err(MailError { code, detail: detail.into() })
}

/// The addresses a message is for: To and Cc, and Bcc apart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recipients {
    /// To and Cc, in order, each once.
    pub visible: Vec<String>,
    /// Bcc.
    pub bcc: Vec<String>,
}

fn parse(message: &[u8]) -> Result<mail_parser::Message<'_>, MailError> {
    match MessageParser::default().parse(message) {
        Some(m) if !m.headers().is_empty() => Ok(m),
        _ => err("malformed_mime", "not an RFC 5322 message (no header fields)"),
    }
}

/// The addresses of a header field, each once, the local part as written and the domain in
/// lower case: `docs/protocol.md` §4.3 compares local parts exactly and domains
/// case-insensitively, so `Bob@EXAMPLE.org` is `Bob@example.org`, not `bob@example.org`.
fn addresses(value: Option<&mail_parser::Address<'_>>, out: &mut Vec<String>) {
    for a in value.into_iter().flat_map(mail_parser::Address::iter) {
        if let Some(address) = &a.address {
            let address = match address.trim().rsplit_once('@') {
                Some((local, domain)) => format!("{local}@{}", domain.to_ascii_lowercase()),
                None => address.trim().to_owned(),
            };
            if !address.is_empty() && !out.contains(&address) {
                out.push(address);
            }
        }
    }
}

/// The message's recipients from its To, Cc and Bcc fields.
pub fn recipients(message: &[u8]) -> Result<Recipients, MailError> {
    let m = parse(message)?;
    let mut r = Recipients::default();
    for h in m.headers() {
        match h.name {
            HeaderName::To | HeaderName::Cc => addresses(h.value.as_address(), &mut r.visible),
            HeaderName::Bcc => addresses(h.value.as_address(), &mut r.bcc),
            _ => {}
        }
    }
    r.bcc.retain(|b| !r.visible.contains(b));
    Ok(r)
}

/// The content to seal: `message` byte for byte, less its top-level Bcc fields (they must
/// reach no recipient).
pub fn protected_content(message: &[u8]) -> Result<Vec<u8>, MailError> {
    if message.len() > MAX_MESSAGE_LEN {
        return err("input_too_large", format!("the message is over {MAX_MESSAGE_LEN} bytes"));
    }
    let m = parse(message)?;
    let mut cuts: Vec<(usize, usize)> = m
        .headers()
        .iter()
        .filter(|h| h.name == HeaderName::Bcc)
        .map(|h| (h.offset_field as usize, h.offset_end as usize))
        .collect();
    cuts.sort_unstable();
    let mut out = Vec::with_capacity(message.len());
    let mut at = 0;
    for (start, end) in cuts {
        out.extend_from_slice(message.get(at..start).unwrap_or_default());
        at = end.max(at);
    }
    out.extend_from_slice(message.get(at..).unwrap_or_default());
    Ok(out)
}

/// A header field's raw value, unfolded and trimmed.
fn unfolded(raw: &str) -> String {
    raw.replace("\r\n", "").replace('\n', "").trim().to_owned()
}

/// The sealed message: `original`'s clear fields, the placeholder Subject, and `sealed` (the
/// AuthEnvelopedData's DER) as the `application/pkcs7-mime` body.
pub fn wrap(original: &[u8], sealed: &[u8]) -> Result<Vec<u8>, MailError> {
    let m = parse(original)?;
    let mut builder = MessageBuilder::new();
    for name in CLEAR_FIELDS {
        if let Some(raw) = m.header_raw(name) {
            builder = builder.header(name, Raw::new(unfolded(raw)));
        }
    }
    builder = builder.header("Subject", Raw::new(PLACEHOLDER_SUBJECT));
    let part = MimePart::new(
        ContentType::new("application/pkcs7-mime")
            .attribute("smime-type", "authEnveloped-data")
            .attribute("name", "smime.p7m"),
        BodyPart::Binary(sealed.to_vec().into()),
    )
    .attachment("smime.p7m");
    builder.body(part).write_to_vec().or_else(|e| err("malformed_mime", e.to_string()))
}

fn is_pkcs7(part: &mail_parser::MessagePart<'_>) -> bool {
    part.content_type().is_some_and(|ct| {
        let subtype = ct.subtype().unwrap_or_default();
        ct.ctype().eq_ignore_ascii_case("application")
            && (subtype.eq_ignore_ascii_case("pkcs7-mime") || subtype.eq_ignore_ascii_case("x-pkcs7-mime"))
    })
}

/// The sealed CMS of an EKG message: the first `application/pkcs7-mime` part (depth first;
/// in a message `ekg send` made, the whole body) with `smime-type=authEnveloped-data`, its
/// base64 decoded strictly.
pub fn unwrap(eml: &[u8]) -> Result<Vec<u8>, MailError> {
    if eml.len() > MAX_SEALED_MESSAGE_LEN {
        return err("input_too_large", format!("the message is over {MAX_SEALED_MESSAGE_LEN} bytes"));
    }
    let m = parse(eml)?;
    let Some(part) = m.parts.iter().find(|p| is_pkcs7(p)) else {
        return err("not_an_ekg_message", "no application/pkcs7-mime part");
    };
    let smime_type = part.content_type().and_then(|ct| ct.attribute("smime-type")).unwrap_or("");
    if !smime_type.eq_ignore_ascii_case("authEnveloped-data") {
        let shown = if smime_type.is_empty() { "none" } else { smime_type };
        return err("not_an_ekg_message", format!("smime-type is {shown}, not authEnveloped-data"));
    }
    let raw = eml.get(part.offset_body as usize..part.offset_end as usize).unwrap_or_default();
    // The declared encoding, from the header itself: mail-parser's own field falls back to
    // "none" when its lenient decoder gives up, which would pass the encoded text as DER.
    let cte = part.content_transfer_encoding().map(str::trim).unwrap_or("binary").to_ascii_lowercase();
    match cte.as_str() {
        "base64" => {
            let text: Vec<u8> = raw.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
            base64::engine::general_purpose::STANDARD
                .decode(&text)
                .or_else(|e| err("malformed_mime", format!("the smime.p7m body is not valid base64: {e}")))
        }
        "binary" | "7bit" | "8bit" => Ok(raw.to_vec()),
        other => err("malformed_mime", format!("the smime.p7m body must be base64 (or binary), not {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &[u8] = b"From: Alice <alice@example.com>\r\nTo: Bob <bob@example.org>,\r\n carol@example.com\r\nBcc: dave@example.org\r\nSubject: secret plans\r\nMessage-ID: <1@example.com>\r\nDate: Wed, 2 Dec 2026 10:00:00 +0000\r\n\r\nhello\r\n";

    #[test]
    fn recipients_come_from_to_cc_and_bcc() {
        let r = recipients(MESSAGE).unwrap();
        assert_eq!(r.visible, ["bob@example.org", "carol@example.com"]);
        assert_eq!(r.bcc, ["dave@example.org"]);
    }

    #[test]
    fn local_parts_are_kept_as_written_and_domains_lower_cased() {
        let m = b"From: alice@example.com\r\nTo: Bob@EXAMPLE.org, bob@example.org, BOB@Example.Org\r\nCc: Carol.X@Example.COM\r\n\r\nhi\r\n";
        let r = recipients(m).unwrap();
        assert_eq!(r.visible, ["Bob@example.org", "bob@example.org", "BOB@example.org", "Carol.X@example.com"]);
    }

    #[test]
    fn bcc_is_cut_and_every_other_byte_kept() {
        let p = protected_content(MESSAGE).unwrap();
        let expected = String::from_utf8_lossy(MESSAGE).replace("Bcc: dave@example.org\r\n", "");
        assert_eq!(String::from_utf8_lossy(&p), expected);
    }

    #[test]
    fn the_outer_message_shows_only_the_clear_fields_and_round_trips() {
        let sealed: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let outer = wrap(MESSAGE, &sealed).unwrap();
        let text = String::from_utf8_lossy(&outer);
        assert!(text.contains("Subject: [...]") && !text.contains("secret plans"), "{text}");
        assert!(!text.contains("dave@example.org"), "{text}");
        assert!(text.contains("Message-ID: <1@example.com>"), "{text}");
        assert!(text.contains("application/pkcs7-mime"), "{text}");
        assert_eq!(unwrap(&outer).unwrap(), sealed);
    }

    #[test]
    fn bad_bodies_and_plain_messages_are_refused_with_their_codes() {
        assert_eq!(unwrap(MESSAGE).unwrap_err().code, "not_an_ekg_message");
        let outer = String::from_utf8(wrap(MESSAGE, &[1, 2, 3, 4, 5]).unwrap()).unwrap();
        // A character outside the alphabet, and a length that is not a multiple of 4.
        let bad = outer.trim_end().to_owned() + "!\r\n";
        assert_eq!(unwrap(bad.as_bytes()).unwrap_err().code, "malformed_mime");
        let cut = outer.trim_end().trim_end_matches('=').to_owned() + "\r\n";
        assert_eq!(unwrap(cut.as_bytes()).unwrap_err().code, "malformed_mime");
        let signed = outer.replace("authEnveloped-data", "signed-data");
        assert_eq!(unwrap(signed.as_bytes()).unwrap_err().code, "not_an_ekg_message");
        assert_eq!(unwrap(b"").unwrap_err().code, "malformed_mime");
    }
}
