//! What the proxy changes in headers on the way through. Hop-by-hop headers (RFC 9110 §7.6.1),
//! and every header the `Connection` header names, describe one connection and stay behind; the
//! caller's Nucleus token is ours, not the workload's; the replica learns who called and how from
//! `X-Forwarded-For` (appended), `X-Forwarded-Proto`, `X-Forwarded-Host`, `X-Forwarded-Prefix` and
//! `Forwarded` (appended).

use std::net::IpAddr;

use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue};

use crate::http1::head::{Kind, RequestHead};

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
static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Who called and how, for the forwarded headers.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub ip: IpAddr,
    /// `http` or `https`.
    pub proto: &'static str,
    /// The invoke URL's prefix: `/api/v2/endpoints/workloads/{id}`.
    pub prefix: &'a HeaderValue,
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

/// The headers this hop writes in place of the caller's (worked out once per request, whatever
/// replica it goes to).
#[derive(Debug)]
pub struct Added {
    forwarded_for: HeaderValue,
    forwarded: HeaderValue,
    proto: &'static str,
    host: Option<HeaderValue>,
    prefix: HeaderValue,
    upgrade: Option<HeaderValue>,
    te_trailers: bool,
    /// Custom headers the caller's `Connection` header names (hop-by-hop too); usually none.
    named: Vec<HeaderName>,
    /// This hop's span as the replica's parent, when traces are exported (replaces the caller's).
    traceparent: Option<HeaderValue>,
}

impl Added {
    pub fn of(headers: &HeaderMap, caller: &Caller<'_>, hop: Hop) -> Added {
        let host = headers.get(header::HOST).cloned();
        let mut ip = Text::new();
        ip.push_display(&caller.ip);
        let mut forwarded_for = Text::new();
        // Not text, it cannot be appended to: then this hop's says what it knows.
        if let Some(earlier) = headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
            forwarded_for.push(earlier);
            forwarded_for.push(", ");
        }
        forwarded_for.push(ip.as_str());
        let mut forwarded = Text::new();
        if let Some(earlier) = headers.get(header::FORWARDED).and_then(|v| v.to_str().ok()) {
            forwarded.push(earlier);
            forwarded.push(", ");
        }
        forwarded.push("for=");
        if caller.ip.is_ipv6() {
            forwarded.push("\"[");
            forwarded.push(ip.as_str());
            forwarded.push("]\"");
        } else {
            forwarded.push(ip.as_str());
        }
        forwarded.push(";proto=");
        forwarded.push(caller.proto);
        if let Some(host) = host.as_ref().and_then(|h| h.to_str().ok()) {
            forwarded.push(";host=\"");
            forwarded.push(host);
            forwarded.push("\"");
        }
        let named = connection_tokens(headers)
            .filter(|t| !["close", "keep-alive", "upgrade", "te"].iter().any(|known| t.eq_ignore_ascii_case(known)))
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .collect();
        Added {
            forwarded_for: forwarded_for.value(),
            forwarded: forwarded.value(),
            proto: caller.proto,
            host,
            prefix: caller.prefix.clone(),
            upgrade: (hop == Hop::Upgrade).then(|| headers.get(header::UPGRADE).cloned()).flatten(),
            te_trailers: hop == Hop::Grpc
                && headers.get(header::TE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.split(',').any(|t| t.trim() == "trailers")),
            named,
            traceparent: None,
        }
    }

    /// Sends `traceparent` (this hop's span) instead of the caller's.
    pub fn set_traceparent(&mut self, traceparent: Option<String>) {
        self.traceparent = traceparent.and_then(|value| HeaderValue::from_str(&value).ok());
    }

    /// Whether the caller's header `name` stays behind (hop-by-hop, the token, or replaced here).
    fn drops(&self, name: &HeaderName) -> bool {
        HOP_BY_HOP.contains(name)
            || REPLACED.contains(name)
            || name == KEEP_ALIVE
            || name == X_FORWARDED_FOR
            || name == X_FORWARDED_PROTO
            || name == X_FORWARDED_HOST
            || name == X_FORWARDED_PREFIX
            || self.named.contains(name)
            || (self.traceparent.is_some() && name == TRACEPARENT)
    }

    /// The headers this hop adds, in order.
    fn each(&self, mut add: impl FnMut(&HeaderName, &HeaderValue)) {
        add(&X_FORWARDED_FOR, &self.forwarded_for);
        add(&X_FORWARDED_PROTO, &HeaderValue::from_static(self.proto));
        if let Some(host) = &self.host {
            add(&X_FORWARDED_HOST, host);
        }
        add(&X_FORWARDED_PREFIX, &self.prefix);
        add(&header::FORWARDED, &self.forwarded);
        if let Some(upgrade) = &self.upgrade {
            add(&header::CONNECTION, &HeaderValue::from_static("upgrade"));
            add(&header::UPGRADE, upgrade);
        }
        if self.te_trailers {
            add(&header::TE, &HeaderValue::from_static("trailers"));
        }
        if let Some(traceparent) = &self.traceparent {
            add(&TRACEPARENT, traceparent);
        }
    }
}

/// Headers of the caller's that this hop replaces: its token is ours, and `Host` names us.
const REPLACED: [HeaderName; 3] = [header::AUTHORIZATION, header::HOST, header::FORWARDED];

/// Turns the caller's request headers into the replica's (for requests sent with hyper's client;
/// `Host` comes from the URI or is set per replica).
pub fn request_headers(headers: &mut HeaderMap, added: &Added) {
    let drop: Vec<HeaderName> = headers.keys().filter(|name| added.drops(name)).cloned().collect();
    for name in drop {
        headers.remove(name);
    }
    added.each(|name, value| {
        headers.insert(name.clone(), value.clone());
    });
}

/// How the request head says its body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyHeader {
    /// The caller's own headers say it (`Content-Length`, or no body).
    Caller,
    /// `Transfer-Encoding: chunked`, and the caller's `Content-Length` (if any) is not sent.
    Chunked,
}

/// Writes the replica's request head for the proxy's own HTTP/1.1 client: the request line, `Host`,
/// the caller's headers that go through, and this hop's.
#[allow(clippy::too_many_arguments)] // the parts of one request line and head, each its own
pub fn write_request_head(
    buf: &mut Vec<u8>,
    method: &http::Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    added: &Added,
    host: &HeaderValue,
    body: BodyHeader,
) {
    buf.extend_from_slice(method.as_str().as_bytes());
    buf.push(b' ');
    buf.extend_from_slice(path.as_bytes());
    if let Some(query) = query {
        buf.push(b'?');
        buf.extend_from_slice(query.as_bytes());
    }
    buf.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    buf.extend_from_slice(host.as_bytes());
    buf.extend_from_slice(b"\r\n");
    let mut line = |name: &HeaderName, value: &HeaderValue| {
        buf.extend_from_slice(name.as_str().as_bytes());
        buf.extend_from_slice(b": ");
        buf.extend_from_slice(value.as_bytes());
        buf.extend_from_slice(b"\r\n");
    };
    for (name, value) in headers {
        if added.drops(name) || (body == BodyHeader::Chunked && name == header::CONTENT_LENGTH) {
            continue;
        }
        line(name, value);
    }
    added.each(&mut line);
    if body == BodyHeader::Chunked {
        buf.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    buf.extend_from_slice(b"\r\n");
}

/// Writes the replica's request head for a request the fast path read, from the caller's head as
/// it was read (`buf`): the request line (`target`: the replica's path and query), `Host`, the
/// caller's headers that go through (its framing headers included: the body is relayed as it
/// came), and this hop's, composed in place.
pub fn write_request_raw(out: &mut Vec<u8>, buf: &[u8], request: &RequestHead, target: &str, caller: &Caller<'_>, host: &HeaderValue) {
    use std::io::Write as _;
    let head = &request.head;
    out.extend_from_slice(&buf[request.method.clone()]);
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    let (mut caller_host, mut earlier_for, mut earlier_forwarded) = (None, None, None);
    for field in &head.fields {
        let value = &buf[field.value.clone()];
        match field.kind {
            Kind::Host => caller_host = Some(value),
            Kind::XForwardedFor => earlier_for = Some(value),
            Kind::Forwarded => earlier_forwarded = Some(value),
            Kind::TransferEncoding | Kind::ContentLength | Kind::Other | Kind::Expect => {
                out.extend_from_slice(&buf[field.name.clone()]);
                out.extend_from_slice(b": ");
                out.extend_from_slice(value);
                out.extend_from_slice(b"\r\n");
            }
            _ => {}
        }
    }
    // Values that are not plain text are not appended to: this hop's says what it knows.
    let (caller_host, earlier_for, earlier_forwarded) = (plain(caller_host), plain(earlier_for), plain(earlier_forwarded));
    out.extend_from_slice(b"x-forwarded-for: ");
    if let Some(earlier) = earlier_for {
        out.extend_from_slice(earlier);
        out.extend_from_slice(b", ");
    }
    let ip_at = out.len();
    match caller.ip {
        // The common case, without the formatting machinery.
        std::net::IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                push_decimal(out, u64::from(octet));
            }
        }
        ip => {
            let _ = write!(out, "{ip}");
        }
    }
    let ip = ip_at..out.len();
    out.extend_from_slice(b"\r\nx-forwarded-proto: ");
    out.extend_from_slice(caller.proto.as_bytes());
    if let Some(host) = caller_host {
        out.extend_from_slice(b"\r\nx-forwarded-host: ");
        out.extend_from_slice(host);
    }
    out.extend_from_slice(b"\r\nx-forwarded-prefix: ");
    out.extend_from_slice(caller.prefix.as_bytes());
    out.extend_from_slice(b"\r\nforwarded: ");
    if let Some(earlier) = earlier_forwarded {
        out.extend_from_slice(earlier);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(b"for=");
    let v6 = caller.ip.is_ipv6();
    if v6 {
        out.extend_from_slice(b"\"[");
    }
    out.extend_from_within(ip);
    if v6 {
        out.extend_from_slice(b"]\"");
    }
    out.extend_from_slice(b";proto=");
    out.extend_from_slice(caller.proto.as_bytes());
    if let Some(host) = caller_host {
        out.extend_from_slice(b";host=\"");
        out.extend_from_slice(host);
        out.push(b'"');
    }
    out.extend_from_slice(b"\r\n\r\n");
}

/// Writes `n` in decimal.
pub fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// The value, if it is plain text (visible ASCII, spaces and tabs).
fn plain(value: Option<&[u8]>) -> Option<&[u8]> {
    value.filter(|v| v.iter().all(|b| (0x20..0x7f).contains(b) || *b == b'\t'))
}

/// A header value put together from header text and addresses: on the stack while it fits, so
/// that the finished value is the only allocation.
struct Text {
    inline: [u8; 96],
    len: usize,
    spilled: Option<String>,
}

impl Text {
    fn new() -> Text {
        Text { inline: [0; 96], len: 0, spilled: None }
    }

    fn push(&mut self, text: &str) {
        if let Some(spilled) = &mut self.spilled {
            spilled.push_str(text);
        } else if self.len + text.len() <= self.inline.len() {
            self.inline[self.len..self.len + text.len()].copy_from_slice(text.as_bytes());
            self.len += text.len();
        } else {
            let mut spilled = String::with_capacity(self.len + text.len() + 64);
            spilled.push_str(self.as_str());
            spilled.push_str(text);
            self.spilled = Some(spilled);
        }
    }

    fn push_display(&mut self, value: &impl std::fmt::Display) {
        use std::io::Write as _;
        let mut cursor = std::io::Cursor::new(&mut self.inline[self.len..]);
        if self.spilled.is_none() && write!(cursor, "{value}").is_ok() {
            self.len += cursor.position() as usize;
        } else {
            self.push(&value.to_string());
        }
    }

    fn as_str(&self) -> &str {
        match &self.spilled {
            Some(spilled) => spilled,
            // Only whole `&str`s are copied in, so the bytes are UTF-8.
            None => std::str::from_utf8(&self.inline[..self.len]).unwrap_or_default(),
        }
    }

    /// Header text and addresses only: always a valid value.
    fn value(&self) -> HeaderValue {
        HeaderValue::from_str(self.as_str()).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
    }
}

/// Turns the replica's answer headers into the caller's; an upgrade's `Connection`/`Upgrade`
/// stay, since the caller needs them to switch protocols. Returns whether the replica keeps its
/// connection open for another request (`Connection: close` says no; so does HTTP/1.0 without
/// `keep-alive`).
pub fn response_headers(headers: &mut HeaderMap, version: http::Version, switching: bool) -> bool {
    let upgrade = switching.then(|| headers.get(header::UPGRADE).cloned()).flatten();
    let said = strip_hop_by_hop(headers);
    if let Some(upgrade) = upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, upgrade);
    }
    said.keeps_alive(version)
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

/// What a `Connection` header said about the connection.
#[derive(Debug, Default, Clone, Copy)]
pub struct ConnectionSays {
    close: bool,
    keep_alive: bool,
}

impl ConnectionSays {
    /// Takes in one `Connection` value; the custom headers it names go in `named`.
    pub fn read(&mut self, value: &HeaderValue, named: &mut Vec<HeaderName>) {
        for token in value.to_str().unwrap_or_default().split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if token.eq_ignore_ascii_case("close") {
                self.close = true;
            } else if token.eq_ignore_ascii_case("keep-alive") {
                self.keep_alive = true;
            } else if let Ok(name) = HeaderName::from_bytes(token.as_bytes())
                && !is_hop_by_hop(&name)
            {
                named.push(name);
            }
        }
    }

    /// Whether the sender keeps the connection open after this message.
    pub fn keeps_alive(&self, version: http::Version) -> bool {
        if version == http::Version::HTTP_10 { self.keep_alive } else { !self.close }
    }
}

/// Whether a header describes one connection, not the message.
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name) || name == KEEP_ALIVE
}

/// Removes the hop-by-hop headers and those `Connection` names; returns what `Connection` said.
fn strip_hop_by_hop(headers: &mut HeaderMap) -> ConnectionSays {
    // One pass over the names decides what to remove: most messages carry none or one of them,
    // and comparing names is cheaper than looking each one up.
    let mut present = 0u16;
    for name in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == name) {
            present |= 1 << i;
        } else if name == KEEP_ALIVE {
            present |= 1 << HOP_BY_HOP.len();
        }
    }
    let mut says = ConnectionSays::default();
    if present == 0 {
        return says;
    }
    let mut named = Vec::new();
    for value in headers.get_all(header::CONNECTION) {
        says.read(value, &mut named);
    }
    for name in named {
        headers.remove(name);
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
    if present & (1 << HOP_BY_HOP.len()) != 0 {
        headers.remove(&KEEP_ALIVE);
    }
    says
}

#[cfg(test)]
mod tests {
    use super::*;

    static PREFIX: HeaderValue = HeaderValue::from_static("/api/v2/endpoints/workloads/w1");

    fn caller() -> Caller<'static> {
        Caller { ip: "10.0.0.7".parse().unwrap(), proto: "http", prefix: &PREFIX }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(HeaderName::from_static(name), HeaderValue::from_static(value));
        }
        map
    }

    /// The request as the replica gets it, both ways: through hyper's client and through ours.
    fn forwarded(mut h: HeaderMap, hop: Hop) -> HeaderMap {
        let added = Added::of(&h, &caller(), hop);
        let mut written = Vec::new();
        write_request_head(
            &mut written,
            &http::Method::GET,
            "/p",
            Some("q=1"),
            &h,
            &added,
            &HeaderValue::from_static("10.0.0.9:80"),
            BodyHeader::Caller,
        );
        request_headers(&mut h, &added);
        let mut parsed = [httparse::EMPTY_HEADER; 64];
        let mut request = httparse::Request::new(&mut parsed);
        assert!(request.parse(&written).unwrap().is_complete(), "{}", String::from_utf8_lossy(&written));
        assert_eq!((request.method, request.path), (Some("GET"), Some("/p?q=1")));
        let mut from_bytes = HeaderMap::new();
        for header in request.headers.iter() {
            from_bytes.append(HeaderName::from_bytes(header.name.as_bytes()).unwrap(), HeaderValue::from_bytes(header.value).unwrap());
        }
        assert_eq!(from_bytes.remove("host").unwrap(), "10.0.0.9:80", "the replica's own address");
        assert_eq!(from_bytes, h, "both clients send the same headers");
        h
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_and_the_token_stay_behind() {
        let h = forwarded(
            headers(&[
                ("connection", "keep-alive, x-secret-hop"),
                ("x-secret-hop", "1"),
                ("keep-alive", "timeout=5"),
                ("proxy-authorization", "Basic abc"),
                ("authorization", "Bearer nucleus-token"),
                ("te", "gzip"),
                ("upgrade", "websocket"),
                ("accept", "application/json"),
                ("host", "api.example.com"),
            ]),
            Hop::Plain,
        );
        for gone in ["connection", "x-secret-hop", "keep-alive", "proxy-authorization", "authorization", "te", "upgrade", "host"] {
            assert!(!h.contains_key(gone), "{gone} was forwarded: {h:?}");
        }
        assert_eq!(h["accept"], "application/json");
        assert_eq!(h["x-forwarded-host"], "api.example.com");
        assert_eq!(h["x-forwarded-prefix"], "/api/v2/endpoints/workloads/w1");
    }

    #[test]
    fn forwarded_for_is_appended_and_proto_set() {
        let h = forwarded(
            headers(&[("x-forwarded-for", "203.0.113.9"), ("forwarded", "for=203.0.113.9"), ("x-forwarded-proto", "https"), ("host", "h")]),
            Hop::Plain,
        );
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, 10.0.0.7");
        assert_eq!(h["forwarded"], "for=203.0.113.9, for=10.0.0.7;proto=http;host=\"h\"");
        assert_eq!(h["x-forwarded-proto"], "http", "what this hop saw, not what the caller claims");
        let v6 = Added::of(&HeaderMap::new(), &Caller { ip: "::1".parse().unwrap(), ..caller() }, Hop::Plain);
        assert_eq!(v6.forwarded, "for=\"[::1]\";proto=http");
    }

    #[test]
    fn an_upgrade_keeps_its_headers_both_ways() {
        let h = forwarded(headers(&[("connection", "Upgrade"), ("upgrade", "websocket"), ("sec-websocket-key", "k")]), Hop::Upgrade);
        assert_eq!(
            (&h["connection"], &h["upgrade"], &h["sec-websocket-key"]),
            (
                &"upgrade".parse::<HeaderValue>().unwrap(),
                &"websocket".parse::<HeaderValue>().unwrap(),
                &"k".parse::<HeaderValue>().unwrap()
            )
        );
        assert!(is_upgrade(&headers(&[("connection", "Upgrade"), ("upgrade", "websocket")])));
        let mut answer = headers(&[("connection", "upgrade"), ("upgrade", "websocket"), ("sec-websocket-accept", "a")]);
        response_headers(&mut answer, http::Version::HTTP_11, true);
        assert_eq!(answer["upgrade"], "websocket");
        let mut plain = headers(&[("connection", "close"), ("upgrade", "h2c"), ("content-type", "text/plain")]);
        assert!(!response_headers(&mut plain, http::Version::HTTP_11, false), "the replica closes this connection");
        assert!(!plain.contains_key("connection") && !plain.contains_key("upgrade"));
        assert!(!is_upgrade(&headers(&[("upgrade", "websocket")])), "Upgrade alone is not an upgrade request");
    }

    #[test]
    fn keep_alive_follows_version_and_connection() {
        let v10 = http::Version::HTTP_10;
        let v11 = http::Version::HTTP_11;
        assert!(response_headers(&mut headers(&[("content-length", "1")]), v11, false));
        assert!(!response_headers(&mut headers(&[("content-length", "1")]), v10, false), "HTTP/1.0 closes unless told");
        assert!(response_headers(&mut headers(&[("connection", "Keep-Alive")]), v10, false));
        assert!(!response_headers(&mut headers(&[("connection", "x-a, close")]), v11, false));
    }

    #[test]
    fn a_non_text_forwarded_for_is_replaced_not_appended() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_bytes(b"\xff").unwrap());
        let added = Added::of(&h, &caller(), Hop::Plain);
        request_headers(&mut h, &added);
        assert_eq!(h["x-forwarded-for"], "10.0.0.7");
    }

    #[test]
    fn long_values_are_built_whole() {
        let host = "h".repeat(500);
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_str(&host).unwrap());
        h.insert("x-forwarded-for", HeaderValue::from_str(&vec!["1.2.3.4"; 40].join(", ")).unwrap());
        let h = forwarded(h, Hop::Plain);
        assert_eq!(h["forwarded"], format!("for=10.0.0.7;proto=http;host=\"{host}\""));
        assert!(h["x-forwarded-for"].to_str().unwrap().ends_with("1.2.3.4, 10.0.0.7"));
    }

    #[test]
    fn the_fast_path_writes_what_the_general_path_sends() {
        let raw = b"GET /api/v2/endpoints/workloads/w1/p?q=1 HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer t\r\nConnection: keep-alive\r\nX-Forwarded-For: 203.0.113.9\r\nAccept: */*\r\nX-App: 1\r\n\r\n";
        let request = crate::http1::head::request(raw).unwrap().unwrap();
        let mut written = Vec::new();
        write_request_raw(&mut written, raw, &request, "/p?q=1", &caller(), &HeaderValue::from_static("10.0.0.9:80"));
        let mut parsed = [httparse::EMPTY_HEADER; 64];
        let mut sent = httparse::Request::new(&mut parsed);
        assert!(sent.parse(&written).unwrap().is_complete(), "{}", String::from_utf8_lossy(&written));
        assert_eq!((sent.method, sent.path), (Some("GET"), Some("/p?q=1")));
        let mut from_raw = HeaderMap::new();
        for header in sent.headers.iter() {
            from_raw.append(HeaderName::from_bytes(header.name.as_bytes()).unwrap(), HeaderValue::from_bytes(header.value).unwrap());
        }
        assert_eq!(from_raw.remove("host").unwrap(), "10.0.0.9:80");
        let general = forwarded(
            headers(&[
                ("host", "api.example.com"),
                ("authorization", "Bearer t"),
                ("connection", "keep-alive"),
                ("x-forwarded-for", "203.0.113.9"),
                ("accept", "*/*"),
                ("x-app", "1"),
            ]),
            Hop::Plain,
        );
        assert_eq!(from_raw, general, "the same headers either way");
    }

    #[test]
    fn decimals() {
        for n in [0u64, 7, 10, 255, 1024, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }

    #[test]
    fn grpc_keeps_te_trailers() {
        let h = forwarded(headers(&[("te", "trailers"), ("content-type", "application/grpc")]), Hop::Grpc);
        assert_eq!(h["te"], "trailers");
    }

    #[test]
    fn a_chunked_body_is_said_once_and_the_callers_length_dropped() {
        let h = headers(&[("content-length", "5"), ("content-type", "text/plain")]);
        let added = Added::of(&h, &caller(), Hop::Plain);
        let mut written = Vec::new();
        write_request_head(&mut written, &http::Method::POST, "/", None, &h, &added, &HeaderValue::from_static("r:1"), BodyHeader::Chunked);
        let text = String::from_utf8(written).unwrap();
        assert!(text.contains("transfer-encoding: chunked\r\n") && !text.contains("content-length"), "{text}");
        assert!(text.ends_with("\r\n\r\n"));
    }
}
