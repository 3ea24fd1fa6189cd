//! The SSRF guard: a customer's webhook URL must not reach the platform's own network
//! (loopback, private ranges, link-local such as the cloud metadata address 169.254.169.254,
//! unique-local, CGNAT, multicast, unspecified) unless the configuration allows it.
//!
//! URLs are checked when they are saved (a webhook subscription, a journey's webhook node) and
//! again at each call: the HTTP client resolves names through [`GuardedResolver`], so the
//! addresses checked are the addresses connected to, and a name re-pointed at a private
//! address after the check (DNS rebinding) is refused too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// How long resolving a host may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the guard lets through (from the calling service's configuration).
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub allow_http: bool,
    pub allow_private_addresses: bool,
}

/// Whether `ip` is an address of the platform's own network rather than the internet.
pub fn is_forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => forbidden_v4(v4),
        IpAddr::V6(v6) => forbidden_v6(v6),
    }
}

fn forbidden_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()
        || a == 0 // "this network"
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || (a == 100 && (64..128).contains(&b)) // CGNAT, 100.64.0.0/10
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments, 192.0.0.0/24
        || (a == 198 && (b == 18 || b == 19)) // benchmarking, 198.18.0.0/15
        || ip.is_multicast()
        || a >= 240 // reserved and broadcast
}

fn forbidden_v6(ip: Ipv6Addr) -> bool {
    let segments = ip.segments();
    // Addresses that carry an IPv4 address are judged by it.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return forbidden_v4(v4);
    }
    if segments[..6] == [0; 6] && !ip.is_unspecified() && !ip.is_loopback() {
        // IPv4-compatible (deprecated), ::a.b.c.d
        let [a, b] = segments[6].to_be_bytes();
        let [c, d] = segments[7].to_be_bytes();
        return forbidden_v4(Ipv4Addr::new(a, b, c, d));
    }
    if segments[0] == 0x64 && segments[1] == 0xff9b {
        // NAT64, 64:ff9b::/96 and 64:ff9b:1::/48
        let [a, b] = segments[6].to_be_bytes();
        let [c, d] = segments[7].to_be_bytes();
        return forbidden_v4(Ipv4Addr::new(a, b, c, d));
    }
    if segments[0] == 0x2002 {
        // 6to4, 2002:a.b.c.d::/48
        let [a, b] = segments[1].to_be_bytes();
        let [c, d] = segments[2].to_be_bytes();
        return forbidden_v4(Ipv4Addr::new(a, b, c, d));
    }
    ip.is_unspecified()
        || ip.is_loopback()
        || (segments[0] & 0xfe00) == 0xfc00 // unique local, fc00::/7
        || (segments[0] & 0xffc0) == 0xfe80 // link-local, fe80::/10
        || (segments[0] & 0xffc0) == 0xfec0 // site-local (deprecated), fec0::/10
        || ip.is_multicast()
}

/// Parses an outbound URL and checks its scheme and shape (not its addresses).
pub fn parse(url: &str, policy: Policy) -> Result<Url, String> {
    if url.is_empty() {
        return Err("is required".into());
    }
    if url.len() > 2048 {
        return Err("must be at most 2048 characters".into());
    }
    let parsed = Url::parse(url).map_err(|error| format!("is not a valid URL: {error}"))?;
    match parsed.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        _ => return Err("must be an https URL".into()),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("must not carry credentials; sign with the signing secret instead".into());
    }
    if parsed.host().is_none() {
        return Err("must name a host".into());
    }
    Ok(parsed)
}

/// Checks a URL as [`parse`] does and, unless private addresses are allowed, that none of the
/// addresses its host resolves to is forbidden. The error says why, for a field violation.
pub async fn check(url: &str, policy: Policy) -> Result<Url, String> {
    let parsed = parse(url, policy)?;
    if policy.allow_private_addresses {
        return Ok(parsed);
    }
    let port = parsed.port_or_known_default().unwrap_or(443);
    match parsed.host() {
        Some(url::Host::Ipv4(ip)) => refuse_forbidden(&[IpAddr::V4(ip)])?,
        Some(url::Host::Ipv6(ip)) => refuse_forbidden(&[IpAddr::V6(ip)])?,
        Some(url::Host::Domain(host)) => {
            let addresses = resolve(host, port).await?;
            refuse_forbidden(&addresses.iter().map(SocketAddr::ip).collect::<Vec<_>>())?;
        }
        None => return Err("must name a host".into()),
    }
    Ok(parsed)
}

fn refuse_forbidden(addresses: &[IpAddr]) -> Result<(), String> {
    if addresses.iter().any(|ip| is_forbidden(*ip)) {
        return Err(
            "must not reach a private, loopback, link-local or otherwise internal address".into(),
        );
    }
    Ok(())
}

async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let lookup = tokio::net::lookup_host((host, port));
    let addresses: Vec<SocketAddr> = match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
        Ok(Ok(addresses)) => addresses.collect(),
        Ok(Err(_)) | Err(_) => return Err("the host could not be resolved".into()),
    };
    if addresses.is_empty() {
        return Err("the host could not be resolved".into());
    }
    Ok(addresses)
}

/// The HTTP client's resolver: refuses a name any of whose addresses is forbidden.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    pub allow_private_addresses: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private_addresses;
        Box::pin(async move {
            let addresses = resolve(name.as_str(), 0).await?;
            if !allow_private {
                refuse_forbidden(&addresses.iter().map(SocketAddr::ip).collect::<Vec<_>>())?;
            }
            let addrs: Addrs = Box::new(addresses.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn forbidden(text: &str) -> bool {
        is_forbidden(text.parse().unwrap())
    }

    #[test]
    fn internal_addresses_are_forbidden() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "127.8.9.10",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::",
        ] {
            assert!(forbidden(ip), "{ip} must be forbidden");
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:2800:220:1:248:1893:25c8:1946",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert!(!forbidden(ip), "{ip} must be allowed");
        }
    }

    const STRICT: Policy = Policy {
        allow_http: false,
        allow_private_addresses: false,
    };

    #[tokio::test]
    async fn urls_to_internal_addresses_are_refused() {
        for url in [
            "https://127.0.0.1/hook",
            "https://10.0.0.1/hook",
            "https://[::1]/hook",
            "https://[::ffff:127.0.0.1]/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://localhost/hook",
        ] {
            assert!(check(url, STRICT).await.is_err(), "{url} must be refused");
        }
        assert!(check("https://93.184.216.34/hook", STRICT).await.is_ok());
    }

    #[tokio::test]
    async fn schemes_and_credentials_are_checked() {
        assert!(check("http://93.184.216.34/hook", STRICT).await.is_err());
        assert!(check("ftp://93.184.216.34/hook", STRICT).await.is_err());
        assert!(
            check("https://user:pw@93.184.216.34/", STRICT)
                .await
                .is_err()
        );
        assert!(check("not a url", STRICT).await.is_err());
        let lax = Policy {
            allow_http: true,
            allow_private_addresses: true,
        };
        assert!(check("http://127.0.0.1:8080/hook", lax).await.is_ok());
    }
}
