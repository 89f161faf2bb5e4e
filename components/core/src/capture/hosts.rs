//! Which names the admin endpoints answer to: a request's Host (its authority) against the
//! operator's `allowed_hosts`. A page at `evil.example` whose name is rebound to 127.0.0.1
//! reaches a local inbox as a page of its own origin, but its requests still say
//! `Host: evil.example`: they are refused here, before the admin token is looked at.
//!
//! Unset, nothing is checked: `inbox serve` sets its own default (its listen address and
//! the loopback names, with its port), and on Spin and Lambda the platform's front door
//! decides which names reach the app.

use std::net::SocketAddr;

use crate::Problem;
use crate::config::{Config, ConfigError, describe};

/// The configuration key: comma separated `host` or `host:port` entries, or `*` for any.
pub const ALLOWED_HOSTS: &str = "allowed_hosts";

/// One entry of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Allowed {
    /// `*`: any Host at all.
    Any,
    /// A name (lower case, IPv6 addresses in brackets), on one port or on any.
    Name { name: String, port: Option<u16> },
}

/// The hosts admin requests may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHosts(Vec<Allowed>);

impl AllowedHosts {
    /// Parses a list such as `inbox.example, 127.0.0.1:3000, [::1]:3000` (or `*`).
    pub fn parse(list: &str) -> Result<AllowedHosts, String> {
        let mut allowed = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                allowed.push(Allowed::Any);
                continue;
            }
            let (name, port) = split_authority(entry).ok_or_else(|| {
                format!(
                    "`{entry}` is not a host or host:port (write an IPv6 address in brackets: [::1]:3000)"
                )
            })?;
            allowed.push(Allowed::Name { name, port });
        }
        if allowed.is_empty() {
            return Err("it names no host (`*` allows any)".to_owned());
        }
        Ok(AllowedHosts(allowed))
    }

    /// The operator's list, or `None` when it is not set (or blank): nothing is checked.
    pub fn from_config(config: &dyn Config) -> Result<Option<AllowedHosts>, ConfigError> {
        let Some(raw) = config
            .get(ALLOWED_HOSTS)
            .filter(|raw| !raw.trim().is_empty())
        else {
            return Ok(None);
        };
        AllowedHosts::parse(&raw)
            .map(Some)
            .map_err(|why| ConfigError(format!("{} = {raw:?}: {why}", describe(ALLOWED_HOSTS))))
    }

    /// Whether a request whose Host (authority) is `host` may be answered. Names are
    /// compared without regard to case (and to a final dot). An entry without a port allows
    /// its name on any port; an entry with one allows that port, and also a Host that names
    /// no port: that means the scheme's default, which the inbox cannot know behind a proxy
    /// (80, or 443 behind TLS), and the name is what a rebinding page cannot choose.
    pub fn allows(&self, host: &str) -> bool {
        let Some((name, port)) = split_authority(host) else {
            return false;
        };
        self.0.iter().any(|allowed| match allowed {
            Allowed::Any => true,
            Allowed::Name {
                name: allowed_name,
                port: allowed_port,
            } => {
                *allowed_name == name
                    && (allowed_port.is_none() || port.is_none() || *allowed_port == port)
            }
        })
    }
}

/// What `inbox serve` allows when the operator says nothing: the address it listens on and
/// the loopback names, each with its port (`127.0.0.1:3000,localhost:3000,[::1]:3000`).
pub fn default_for_listener(address: SocketAddr) -> String {
    let port = address.port();
    let mut hosts = vec![address.to_string()];
    for loopback in ["127.0.0.1", "localhost", "[::1]"] {
        let host = format!("{loopback}:{port}");
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    hosts.join(",")
}

/// Refuses an admin request whose Host is not allowed: `421 Misdirected Request`, the
/// request reached a server that does not answer for that name (no token would change it,
/// and a `403` here already means the admin endpoints are closed). An invalid list refuses
/// every admin request (`503`): closed, not open.
pub fn check_host(host: Option<&str>, config: &dyn Config) -> Result<(), Problem> {
    let allowed = match AllowedHosts::from_config(config) {
        Ok(None) => return Ok(()),
        Ok(Some(allowed)) => allowed,
        Err(error) => {
            return Err(Problem::unavailable(format!(
                "the inbox is misconfigured: {error}"
            )));
        }
    };
    if host.is_some_and(|host| allowed.allows(host)) {
        return Ok(());
    }
    let named = match host.and_then(split_authority) {
        Some((name, Some(port))) => format!("the host `{name}:{port}`"),
        Some((name, None)) => format!("the host `{name}`"),
        None => "a request without a valid host".to_owned(),
    };
    Err(Problem::new(
        421,
        "Misdirected Request",
        format!(
            "this inbox does not answer admin requests for {named}; an operator allows a host with {}",
            describe(ALLOWED_HOSTS)
        ),
    ))
}

/// A Host value (or a list entry) as its name, in lower case without a final dot, and its
/// port: `Inbox.Example:8080` is (`inbox.example`, 8080), `[::1]:3000` is (`[::1]`, 3000),
/// `localhost` and `localhost:` are (`localhost`, none). `None` when it is not one: a
/// user, a path, an IPv6 address without brackets, a port that is not a number.
fn split_authority(text: &str) -> Option<(String, Option<u16>)> {
    let (name, port) = match text.strip_prefix('[') {
        Some(rest) => {
            let end = rest.find(']')?;
            let address = &rest[..end];
            let valid = !address.is_empty()
                && address.contains(':')
                && address
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
            if !valid {
                return None;
            }
            let port = match &rest[end + 1..] {
                "" => None,
                after => Some(after.strip_prefix(':')?),
            };
            (format!("[{}]", address.to_ascii_lowercase()), port)
        }
        None => {
            let (name, port) = match text.split_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (text, None),
            };
            let name = name.strip_suffix('.').unwrap_or(name);
            let valid = !name.is_empty()
                && name.len() <= 253
                && !name.starts_with('.')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
            if !valid {
                return None;
            }
            (name.to_ascii_lowercase(), port)
        }
    };
    let port = match port {
        None | Some("") => None,
        Some(digits) if digits.len() <= 5 && digits.bytes().all(|b| b.is_ascii_digit()) => {
            Some(digits.parse::<u16>().ok()?)
        }
        Some(_) => return None,
    };
    Some((name, port))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn list(text: &str) -> AllowedHosts {
        AllowedHosts::parse(text).unwrap()
    }

    fn config(allowed: Option<&str>) -> BTreeMap<String, String> {
        allowed
            .map(|list| BTreeMap::from([(ALLOWED_HOSTS.to_owned(), list.to_owned())]))
            .unwrap_or_default()
    }

    #[test]
    fn hosts_are_split_into_a_lower_case_name_and_a_port() {
        let split = split_authority;
        assert_eq!(split("Inbox.Example"), Some(("inbox.example".into(), None)));
        assert_eq!(
            split("inbox.example."),
            Some(("inbox.example".into(), None))
        );
        assert_eq!(
            split("localhost:3000"),
            Some(("localhost".into(), Some(3000)))
        );
        assert_eq!(split("localhost:"), Some(("localhost".into(), None)));
        assert_eq!(split("127.0.0.1:80"), Some(("127.0.0.1".into(), Some(80))));
        assert_eq!(split("[::1]:3000"), Some(("[::1]".into(), Some(3000))));
        assert_eq!(split("[::1]"), Some(("[::1]".into(), None)));
        assert_eq!(split("[FE80::1]"), Some(("[fe80::1]".into(), None)));
        for bad in [
            "",
            ":3000",
            "::1",
            "[::1",
            "[::1]3000",
            "[]",
            "[localhost]",
            "localhost:http",
            "localhost:+80",
            "localhost:65536",
            "localhost:000003000",
            "user@localhost",
            "localhost/path",
            "local host",
            ".",
            "..example",
            "évil.example",
        ] {
            assert_eq!(split(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_host_is_allowed_by_its_name_and_port() {
        let allowed = list("inbox.example, 127.0.0.1:3000,[::1]:3000");
        for host in [
            "inbox.example",
            "INBOX.EXAMPLE",
            "inbox.example.",
            "inbox.example:8443",
            "127.0.0.1:3000",
            "127.0.0.1",
            "[::1]:3000",
            "[::1]",
        ] {
            assert!(allowed.allows(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:3000",
            "inbox.example.evil.example",
            "127.0.0.1:3001",
            "127.0.0.2:3000",
            "localhost:3000",
            "[::1]:3001",
            "[::2]:3000",
            "",
            "inbox.example@evil.example",
            "::1",
        ] {
            assert!(!allowed.allows(host), "{host}");
        }
        assert!(list("*").allows("evil.example:1234"));
        assert!(list("inbox.example,*").allows("anything"));
        assert!(!list("*").allows("not a host"));
    }

    #[test]
    fn a_list_that_is_not_one_is_refused_naming_the_setting() {
        for bad in ["::1", "inbox.example:http", ",", " , ", "a b"] {
            assert!(AllowedHosts::parse(bad).is_err(), "{bad:?}");
        }
        let error = AllowedHosts::from_config(&config(Some("inbox.example:x"))).unwrap_err();
        assert!(error.0.contains("INBOX_ALLOWED_HOSTS"), "{error}");
        assert_eq!(AllowedHosts::from_config(&config(None)), Ok(None));
        assert_eq!(AllowedHosts::from_config(&config(Some("  "))), Ok(None));
    }

    #[test]
    fn unset_nothing_is_checked_and_set_a_foreign_host_is_misdirected() {
        assert_eq!(check_host(Some("evil.example"), &config(None)), Ok(()));
        assert_eq!(check_host(None, &config(None)), Ok(()));
        let allowed = config(Some("localhost:3000"));
        assert_eq!(check_host(Some("LOCALHOST:3000"), &allowed), Ok(()));
        let refused = check_host(Some("evil.example:3000"), &allowed).unwrap_err();
        assert_eq!(refused.status, 421);
        assert!(
            refused.detail.contains("INBOX_ALLOWED_HOSTS"),
            "{refused:?}"
        );
        assert!(
            refused.detail.contains("`evil.example:3000`"),
            "{refused:?}"
        );
        // What cannot be a host is not echoed back.
        let odd = check_host(Some("<script>"), &allowed).unwrap_err();
        assert_eq!(odd.status, 421);
        assert!(!odd.detail.contains("<script>"), "{odd:?}");
        assert_eq!(check_host(None, &allowed).unwrap_err().status, 421);
        // A list that is not one closes the admin endpoints rather than opening them.
        let broken = check_host(Some("localhost:3000"), &config(Some("::1"))).unwrap_err();
        assert_eq!(broken.status, 503);
    }

    #[test]
    fn serve_allows_its_listen_address_and_the_loopback_names() {
        let default = |address: &str| default_for_listener(address.parse().unwrap());
        assert_eq!(
            default("127.0.0.1:3000"),
            "127.0.0.1:3000,localhost:3000,[::1]:3000"
        );
        assert_eq!(
            default("0.0.0.0:8080"),
            "0.0.0.0:8080,127.0.0.1:8080,localhost:8080,[::1]:8080"
        );
        assert_eq!(
            default("[::1]:3000"),
            "[::1]:3000,127.0.0.1:3000,localhost:3000"
        );
        let allowed = list(&default("192.168.1.20:3000"));
        for host in [
            "192.168.1.20:3000",
            "localhost:3000",
            "127.0.0.1:3000",
            "[::1]:3000",
        ] {
            assert!(allowed.allows(host), "{host}");
        }
        assert!(!allowed.allows("evil.example:3000"));
        assert!(!allowed.allows("localhost:3001"));
    }
}
