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
}

impl core::fmt::Display for UnixTime {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}
