//! Where plain HTTP may be served: loopback always, a private address behind a TLS proxy.

use std::net::SocketAddr;

/// Whether plain HTTP may be served on `listen`: on a loopback address always; on a private
/// address (IPv4 10/8, 172.16/12, 192.168/16, 100.64/10; IPv6 fc00::/7) with
/// `allow_plain_http` (a TLS-terminating proxy in front); never on any other address
/// (public, or unspecified: `0.0.0.0` and `::` listen on every interface).
pub fn plain_http_allowed(listen: SocketAddr, tls: bool, allow_plain_http: bool) -> Result<(), String> {
    let ip = listen.ip();
    if tls || ip.is_loopback() {
        return Ok(());
    }
    if !allow_plain_http {
        return Err(format!(
            "{listen}: plain HTTP only on a loopback address (set tls_cert and tls_key; or, behind a \
             TLS-terminating proxy on a private network, allow_plain_http = true)"
        ));
    }
    if is_private(ip) {
        return Ok(());
    }
    let what = if ip.is_unspecified() { "every interface" } else { "a public address" };
    Err(format!(
        "{listen}: allow_plain_http serves plain HTTP on a loopback or private address only, not on \
         {what}: listen on the private address the proxy reaches (or set tls_cert and tls_key)"
    ))
}

/// A private (RFC 1918, RFC 6598 shared, IPv6 unique local) address.
pub fn is_private(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private() || (a == 100 && (64..128).contains(&b))
        }
        std::net::IpAddr::V6(v6) => {
            let [first, ..] = v6.segments();
            (first & 0xfe00) == 0xfc00
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::plain_http_allowed;

    #[test]
    fn plain_http_is_allowed_on_loopback_and_private_addresses_only() {
        let ok = |a: &str, allow| plain_http_allowed(a.parse().unwrap(), false, allow).is_ok();
        assert!(ok("127.0.0.1:8443", false) && ok("[::1]:8443", false));
        for private in ["10.1.2.3:80", "172.16.0.1:80", "192.168.1.1:80", "100.64.0.1:80", "[fd00::1]:80"] {
            assert!(!ok(private, false), "{private} without allow_plain_http");
            assert!(ok(private, true), "{private}");
        }
        for public in ["203.0.113.7:80", "0.0.0.0:80", "[::]:80", "[2001:db8::1]:80", "172.32.0.1:80"] {
            assert!(!ok(public, true), "{public}");
        }
        let e = plain_http_allowed("0.0.0.0:80".parse().unwrap(), false, true).unwrap_err();
        assert!(e.contains("every interface"), "{e}");
        assert!(plain_http_allowed("203.0.113.7:443".parse().unwrap(), true, false).is_ok(), "TLS anywhere");
    }
}
