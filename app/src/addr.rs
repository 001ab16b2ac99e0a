//! Listen addresses as local clients and URLs name them (used by start-up, the banner and the Host
//! check).

use std::net::SocketAddr;

/// The host a local client uses to reach a listen address (`0.0.0.0` means "this machine").
pub fn connect_host(addr: SocketAddr) -> String {
    match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".into(),
        ip if ip.is_unspecified() => "::1".into(),
        ip => ip.to_string(),
    }
}

/// `host:port` for URLs (IPv6 in brackets, unspecified addresses as loopback).
pub fn url_authority(addr: SocketAddr) -> String {
    let host = connect_host(addr);
    if host.contains(':') {
        format!("[{host}]:{}", addr.port())
    } else {
        format!("{host}:{}", addr.port())
    }
}
