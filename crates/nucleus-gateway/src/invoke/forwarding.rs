//! What the proxy changes in headers on the way through. Hop-by-hop headers (RFC 9110 §7.6.1),
//! and every header the `Connection` header names, describe one connection and stay behind; the
//! caller's Nucleus token is ours, not the workload's; the replica learns who called and how from
//! `X-Forwarded-For` (appended), `X-Forwarded-Proto`, `X-Forwarded-Host`, `X-Forwarded-Prefix` and
//! `Forwarded` (appended).

use std::net::IpAddr;

use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue};

const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Who called and how, for the forwarded headers.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub ip: IpAddr,
    /// `http` or `https`.
    pub proto: &'static str,
    /// The invoke URL's prefix: `/api/v2/endpoints/workloads/{id}`.
    pub prefix: &'a str,
}

/// How the request travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hop {
    Plain,
    /// An HTTP/1.1 upgrade: `Connection: upgrade` and `Upgrade` go through.
    Upgrade,
    /// gRPC over HTTP/2: `TE: trailers` goes through (gRPC servers may require it).
    Grpc,
}

/// Turns the caller's request headers into the replica's.
pub fn request_headers(headers: &mut HeaderMap, caller: &Caller<'_>, hop: Hop) {
    let upgrade = (hop == Hop::Upgrade).then(|| headers.get(header::UPGRADE).cloned()).flatten();
    let trailers = hop == Hop::Grpc
        && headers.get(header::TE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.split(',').any(|t| t.trim() == "trailers"));
    strip_hop_by_hop(headers);
    headers.remove(header::AUTHORIZATION);
    let host = headers.remove(header::HOST);

    let ip = caller.ip.to_string();
    let forwarded_for = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(earlier) => format!("{earlier}, {ip}"),
        None => ip.clone(),
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
        headers.insert(X_FORWARDED_FOR.clone(), value);
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(caller.proto));
    let node = if caller.ip.is_ipv6() { format!("\"[{ip}]\"") } else { ip };
    let mut element = format!("for={node};proto={}", caller.proto);
    if let Some(host) = host.as_ref().and_then(|h| h.to_str().ok()) {
        element.push_str(";host=\"");
        element.push_str(host);
        element.push('"');
    }
    let forwarded = match headers.get(header::FORWARDED).and_then(|v| v.to_str().ok()) {
        Some(earlier) => format!("{earlier}, {element}"),
        None => element,
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded) {
        headers.insert(header::FORWARDED, value);
    }
    if let Some(host) = host {
        headers.insert(X_FORWARDED_HOST.clone(), host);
    }
    if let Ok(prefix) = HeaderValue::from_str(caller.prefix) {
        headers.insert(X_FORWARDED_PREFIX.clone(), prefix);
    }
    if let Some(upgrade) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, upgrade);
    }
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// Turns the replica's answer headers into the caller's; an upgrade's `Connection`/`Upgrade`
/// stay, since the caller needs them to switch protocols.
pub fn response_headers(headers: &mut HeaderMap, switching: bool) {
    let upgrade = switching.then(|| headers.get(header::UPGRADE).cloned()).flatten();
    strip_hop_by_hop(headers);
    if let Some(upgrade) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, upgrade);
    }
}

/// Whether a request asks to switch protocols (`Connection: upgrade` with an `Upgrade` header).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("upgrade"))
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = connection_tokens(headers).filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok()).collect();
        for name in named {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(&KEEP_ALIVE);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> Caller<'static> {
        Caller { ip: "10.0.0.7".parse().unwrap(), proto: "http", prefix: "/api/v2/endpoints/workloads/w1" }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_and_the_token_stay_behind() {
        let mut h = headers(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic abc"),
            ("authorization", "Bearer nucleus-token"),
            ("te", "gzip"),
            ("upgrade", "websocket"),
            ("accept", "application/json"),
            ("host", "api.example.com"),
        ]);
        request_headers(&mut h, &caller(), Hop::Plain);
        for gone in ["connection", "x-secret-hop", "keep-alive", "proxy-authorization", "authorization", "te", "upgrade", "host"] {
            assert!(!h.contains_key(gone), "{gone} was forwarded: {h:?}");
        }
        assert_eq!(h["accept"], "application/json");
        assert_eq!(h["x-forwarded-host"], "api.example.com");
        assert_eq!(h["x-forwarded-prefix"], "/api/v2/endpoints/workloads/w1");
    }

    #[test]
    fn forwarded_for_is_appended_and_proto_set() {
        let mut h = headers(&[("x-forwarded-for", "203.0.113.9"), ("forwarded", "for=203.0.113.9"), ("x-forwarded-proto", "https"), ("host", "h")]);
        request_headers(&mut h, &caller(), Hop::Plain);
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, 10.0.0.7");
        assert_eq!(h["forwarded"], "for=203.0.113.9, for=10.0.0.7;proto=http;host=\"h\"");
        assert_eq!(h["x-forwarded-proto"], "http", "what this hop saw, not what the caller claims");
        let mut v6 = HeaderMap::new();
        request_headers(&mut v6, &Caller { ip: "::1".parse().unwrap(), ..caller() }, Hop::Plain);
        assert_eq!(v6["forwarded"], "for=\"[::1]\";proto=http");
    }

    #[test]
    fn an_upgrade_keeps_its_headers_both_ways() {
        let mut h = headers(&[("connection", "Upgrade"), ("upgrade", "websocket"), ("sec-websocket-key", "k")]);
        assert!(is_upgrade(&h));
        request_headers(&mut h, &caller(), Hop::Upgrade);
        assert_eq!((&h["connection"], &h["upgrade"], &h["sec-websocket-key"]), (&"upgrade".parse::<HeaderValue>().unwrap(), &"websocket".parse::<HeaderValue>().unwrap(), &"k".parse::<HeaderValue>().unwrap()));
        let mut answer = headers(&[("connection", "upgrade"), ("upgrade", "websocket"), ("sec-websocket-accept", "a")]);
        response_headers(&mut answer, true);
        assert_eq!(answer["upgrade"], "websocket");
        let mut plain = headers(&[("connection", "close"), ("upgrade", "h2c"), ("content-type", "text/plain")]);
        response_headers(&mut plain, false);
        assert!(!plain.contains_key("connection") && !plain.contains_key("upgrade"));
        assert!(!is_upgrade(&headers(&[("upgrade", "websocket")])), "Upgrade alone is not an upgrade request");
    }

    #[test]
    fn grpc_keeps_te_trailers() {
        let mut h = headers(&[("te", "trailers"), ("content-type", "application/grpc")]);
        request_headers(&mut h, &caller(), Hop::Grpc);
        assert_eq!(h["te"], "trailers");
    }
}
