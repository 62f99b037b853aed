//! Time as the caller gives it: whole seconds since the Unix epoch, never read from a clock.

use der::DateTime;
use der::asn1::GeneralizedTime;

use crate::error::{Rejection, Result, reject};

/// A point in time, in seconds since 1970-01-01T00:00:00Z. The core never reads a clock:
/// every role takes `now: UnixTime` as an argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UnixTime(pub u64);

impl UnixTime {
    /// Seconds since the epoch.
    pub const fn secs(self) -> u64 {
        self.0
    }

    /// `self + secs`, saturating.
    pub const fn plus_secs(self, secs: u64) -> UnixTime {
        UnixTime(self.0.saturating_add(secs))
    }

    /// The absolute distance in seconds.
    pub const fn abs_diff(self, other: UnixTime) -> u64 {
        self.0.abs_diff(other.0)
    }

    pub(crate) fn to_der_datetime(self) -> Result<DateTime> {
        DateTime::from_unix_duration(core::time::Duration::from_secs(self.0))
            .map_err(|e| reject(Rejection::InvalidConfiguration, format!("time out of range: {e}")))
    }

    pub(crate) fn to_generalized(self) -> Result<GeneralizedTime> {
        Ok(GeneralizedTime::from_date_time(self.to_der_datetime()?))
    }

    pub(crate) fn from_generalized(t: &GeneralizedTime) -> UnixTime {
        UnixTime(t.to_unix_duration().as_secs())
    }

    pub(crate) fn from_x509(t: &x509_cert::time::Time) -> UnixTime {
        UnixTime(t.to_unix_duration().as_secs())
    }

    /// RFC 3339 text (`2026-11-28T13:16:15Z`).
    pub fn to_rfc3339(self) -> String {
        match self.to_der_datetime() {
            Ok(dt) => format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
                dt.year(),
                dt.month(),
                dt.day(),
                dt.hour(),
                dt.minutes(),
                dt.seconds()
            ),
            Err(_) => format!("@{}", self.0),
        }
    }

    /// Parses the RFC 3339 form [`UnixTime::to_rfc3339`] writes (`YYYY-MM-DDTHH:MM:SSZ`, UTC,
    /// no fraction); `None` for anything else.
    pub fn from_rfc3339(text: &str) -> Option<UnixTime> {
        let b = text.as_bytes();
        if b.len() != 20 || b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || b.get(10) != Some(&b'T') {
            return None;
        }
        if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') || b.get(19) != Some(&b'Z') {
            return None;
        }
        let num = |from: usize, to: usize| text.get(from..to).and_then(|s| s.parse::<u16>().ok());
        let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
        let (h, mi, s) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
        let dt = der::DateTime::new(
            y,
            u8::try_from(mo).ok()?,
            u8::try_from(d).ok()?,
            u8::try_from(h).ok()?,
            u8::try_from(mi).ok()?,
            u8::try_from(s).ok()?,
        )
        .ok()?;
        Some(UnixTime(dt.unix_duration().as_secs()))
    }
}

impl core::fmt::Display for UnixTime {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::UnixTime;

    #[test]
    fn rfc3339_round_trips_and_refuses_other_forms() {
        let t = UnixTime(1_780_272_000);
        assert_eq!(t.to_rfc3339(), "2026-06-01T00:00:00Z");
        assert_eq!(UnixTime::from_rfc3339("2026-06-01T00:00:00Z"), Some(t));
        for bad in
            ["2026-06-01 00:00:00Z", "2026-06-01T00:00:00+00:00", "2026-13-01T00:00:00Z", "", "2026-06-01T00:00:0xZ"]
        {
            assert_eq!(UnixTime::from_rfc3339(bad), None, "{bad}");
        }
    }
}
