//! The Host check against DNS rebinding: every route but `/healthz` answers only to the Hosts the
//! app is reached under.
//!
//! A page on `rebind.example` whose name is re-pointed at 127.0.0.1 is, for the browser, the same
//! origin as the app: its requests carry `Host: rebind.example:5000` and a matching `Origin`, so the
//! Origin check in [`crate::guard`] lets them through. Only the Host tells them apart. The app accepts
//! the listen address, `localhost`, `127.0.0.1` and `[::1]` with the listen port, and the names given
//! with `--allowed-host` (the same idea as Vite's `server.allowedHosts` and webpack-dev-server's
//! `allowedHosts`). An IP address can never be rebound, so when the app listens on every interface
//! (`0.0.0.0`, `::`) any IP address with the listen port is accepted too.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_mqtt::web::ApiError;

/// Paths open to any Host: a load balancer's probe names the backend however it likes, and the
/// answer (the MQTT connection state) is nothing a rebinding page could use.
pub const OPEN_PATHS: &[&str] = &["/healthz"];

/// The longest Host quoted back in an error.
const QUOTE_MAX: usize = 100;

/// One `--allowed-host` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRule {
    /// `*`: any Host (the check is off).
    Any,
    /// A name (lower case, no trailing dot), with the port it must come with (`None`: any port).
    Name { host: String, port: Option<u16> },
}

/// Why an `--allowed-host` value is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostRuleError {
    #[error("{0:?}: give a host name as HOST or HOST:PORT, without scheme or path (e.g. app.example or app.example:5000)")]
    NotAHost(String),
    #[error("{0:?}: the port is not a number from 1 to 65535")]
    BadPort(String),
}

impl std::str::FromStr for HostRule {
    type Err = HostRuleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "*" {
            return Ok(HostRule::Any);
        }
        let bad = || HostRuleError::NotAHost(s.to_string());
        if s.is_empty()
            || s.contains("://")
            || s.chars()
                .any(|c| c.is_whitespace() || matches!(c, '/' | '@' | '?' | '#' | '*'))
        {
            return Err(bad());
        }
        let (host, port) = split_authority(s).ok_or_else(bad)?;
        if host.is_empty() {
            return Err(bad());
        }
        let port = match port {
            None => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| HostRuleError::BadPort(s.to_string()))?,
            ),
        };
        Ok(HostRule::Name {
            host: normalize(host),
            port,
        })
    }
}

/// Splits `host[:port]` / `[v6][:port]`; `None` when it is neither.
fn split_authority(s: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match s.split_once(':') {
        None => Some((s, None)),
        Some((_, p)) if p.contains(':') => None, // an IPv6 address needs brackets
        Some((h, p)) => Some((h, Some(p))),
    }
}

fn normalize(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// The Hosts the app answers to.
#[derive(Debug, Clone)]
pub struct AllowedHosts {
    listen: SocketAddr,
    any: bool,
    names: Vec<(String, Option<u16>)>,
}

impl AllowedHosts {
    /// The built-in Hosts for `listen` (the bound address, with its real port) plus `rules`.
    pub fn new(listen: SocketAddr, rules: &[HostRule]) -> Self {
        let mut names = Vec::new();
        let mut any = false;
        for r in rules {
            match r {
                HostRule::Any => any = true,
                HostRule::Name { host, port } => names.push((host.clone(), *port)),
            }
        }
        AllowedHosts { listen, any, names }
    }

    /// `--allowed-host '*'`: no check.
    pub fn is_off(&self) -> bool {
        self.any
    }

    /// Whether names were added with `--allowed-host`.
    pub fn has_names(&self) -> bool {
        !self.names.is_empty()
    }

    /// Whether a Host header value (or request authority) is one the app answers to.
    pub fn allows(&self, authority: &str) -> bool {
        if self.any {
            return true;
        }
        let Some((host, port)) = split_authority(authority.trim()) else {
            return false;
        };
        // Browsers leave out the scheme's default port; the app speaks plain HTTP.
        let port = match port {
            None => 80,
            Some(p) => match p.parse::<u16>() {
                Ok(p) => p,
                Err(_) => return false,
            },
        };
        let host = normalize(host);
        let own_port = port == self.listen.port();
        if let Ok(ip) = host.parse::<IpAddr>() {
            let ours =
                ip == self.listen.ip() || ip.is_loopback() || self.listen.ip().is_unspecified();
            if own_port && ours {
                return true;
            }
        } else if own_port && host == "localhost" {
            return true;
        }
        self.names
            .iter()
            .any(|(name, p)| *name == host && p.is_none_or(|p| p == port))
    }

    /// What is accepted, for people: the banner and the refusal.
    pub fn describe(&self) -> String {
        if self.any {
            return "any Host (--allowed-host '*': the DNS rebinding check is off)".into();
        }
        let port = self.listen.port();
        let mut out = vec![
            format!("localhost:{port}"),
            format!("127.0.0.1:{port}"),
            format!("[::1]:{port}"),
        ];
        let ip = self.listen.ip();
        if ip.is_unspecified() {
            out.push(format!("any IP address with port {port}"));
        } else if !ip.is_loopback() {
            out.push(crate::addr::url_authority(self.listen));
        }
        for (name, p) in &self.names {
            out.push(match p {
                Some(p) => format!("{name}:{p}"),
                None => format!("{name} (any port)"),
            });
        }
        out.join(", ")
    }
}

/// Refuses requests whose Host is not one the app answers to (all routes but [`OPEN_PATHS`]).
pub async fn check(State(hosts): State<Arc<AllowedHosts>>, req: Request, next: Next) -> Response {
    if hosts.is_off() || OPEN_PATHS.contains(&req.uri().path()) {
        return next.run(req).await;
    }
    // HTTP/1.1 names the host in the Host header; an absolute-form request line in the URI.
    let given = match req.uri().authority() {
        Some(a) => Some(a.as_str().to_string()),
        None => req
            .headers()
            .get(header::HOST)
            .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned()),
    };
    match given {
        Some(h) if hosts.allows(&h) => next.run(req).await,
        Some(h) => refused(&hosts, &h).into_response(),
        None => ApiError::bad_request(
            "missing_host",
            "the request has no Host header; HTTP/1.1 requires one",
        )
        .into_response(),
    }
}

/// 421 Misdirected Request (RFC 9110 §15.5.20: "the server is not able to produce a response for
/// this combination of scheme and authority"): the request reached the app but names a host the app
/// is not, which is exactly what a rebound name is. 403 would say "you may not", which is about the
/// client's rights, and the app already uses 403 for those (`cross_origin`, `topic_not_allowed`);
/// this refusal is about the app's configuration, and the message says how to change it.
fn refused(hosts: &AllowedHosts, given: &str) -> ApiError {
    let quoted: String = given.chars().take(QUOTE_MAX).collect();
    let name = split_authority(&quoted)
        .map(|(h, _)| h.to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| quoted.clone());
    tracing::info!(host = %quoted, "refused a request for a Host this app does not answer to");
    ApiError::new(
        StatusCode::MISDIRECTED_REQUEST,
        "host_not_allowed",
        format!(
            "this app does not answer to Host {quoted:?} (a guard against DNS rebinding); it \
             accepts {}. If you reach it under that name, start it with --allowed-host {name} \
             (or APP_ALLOWED_HOSTS={name}; comma-separated for several)",
            hosts.describe()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(v: &[&str]) -> Vec<HostRule> {
        v.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn loopback_listen_accepts_its_own_names_only() {
        let h = AllowedHosts::new("127.0.0.1:5000".parse().unwrap(), &[]);
        for ok in [
            "127.0.0.1:5000",
            "localhost:5000",
            "LOCALHOST.:5000",
            "[::1]:5000",
        ] {
            assert!(h.allows(ok), "{ok}");
        }
        for bad in [
            "rebind.example:5000",
            "localhost:5001",
            "localhost",
            "127.0.0.1",
            "192.168.1.5:5000",
            "localhost:x",
            "::1:5000",
            "",
            "evil.localhost:5000",
        ] {
            assert!(!h.allows(bad), "{bad}");
        }
    }

    #[test]
    fn any_address_accepts_ip_literals_not_names() {
        let h = AllowedHosts::new("0.0.0.0:5000".parse().unwrap(), &[]);
        assert!(h.allows("192.168.1.5:5000"));
        assert!(h.allows("[fe80::1]:5000"));
        assert!(!h.allows("192.168.1.5:80"));
        assert!(!h.allows("myhost.lan:5000"));
        assert!(h.describe().contains("any IP address with port 5000"));
    }

    #[test]
    fn allowed_names_with_and_without_port() {
        let h = AllowedHosts::new(
            "127.0.0.1:5000".parse().unwrap(),
            &rules(&["App.Example", "proxy.example:8080"]),
        );
        assert!(h.allows("app.example"));
        assert!(h.allows("app.example:443"));
        assert!(h.allows("proxy.example:8080"));
        assert!(!h.allows("proxy.example"));
        assert!(!h.allows("proxy.example:5000"));
        assert!(!h.allows("other.example:5000"));
        let off = AllowedHosts::new("127.0.0.1:5000".parse().unwrap(), &rules(&["*"]));
        assert!(off.is_off() && off.allows("anything.example"));
    }

    #[test]
    fn rules_are_checked() {
        assert_eq!(
            "a.example:80".parse::<HostRule>(),
            Ok(HostRule::Name {
                host: "a.example".into(),
                port: Some(80)
            })
        );
        assert!(matches!(
            "http://a.example".parse::<HostRule>(),
            Err(HostRuleError::NotAHost(_))
        ));
        assert!(matches!(
            "a.example:99999".parse::<HostRule>(),
            Err(HostRuleError::BadPort(_))
        ));
        assert!(" ".parse::<HostRule>().is_err());
        assert!("*.example".parse::<HostRule>().is_err());
    }

    #[test]
    fn refusal_says_how_to_allow() {
        let h = AllowedHosts::new("127.0.0.1:5000".parse().unwrap(), &[]);
        let e = refused(&h, "rebind.example:5000");
        assert_eq!(e.status, StatusCode::MISDIRECTED_REQUEST);
        assert!(
            e.message.contains("--allowed-host rebind.example "),
            "{}",
            e.message
        );
        let long = "x".repeat(10_000);
        assert!(refused(&h, &long).message.len() < 1000);
    }
}
