//! HTTP/1.1 message heads as read: parsed with httparse into spans of the buffer they were read
//! into (nothing copied), each header classified once by the role its name plays for a proxy.

use std::io;
use std::mem::MaybeUninit;
use std::ops::Range;

use super::framing::Framing;

/// Headers a head may have at most.
pub const MAX_HEADERS: usize = 100;

/// What a header name means to the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Goes through as it is.
    Other,
    Connection,
    KeepAlive,
    TransferEncoding,
    ContentLength,
    Te,
    Trailer,
    Upgrade,
    ProxyAuthenticate,
    ProxyAuthorization,
    Host,
    Authorization,
    Expect,
    XForwardedFor,
    XForwardedProto,
    XForwardedHost,
    XForwardedPrefix,
    Forwarded,
}

impl Kind {
    pub fn of(name: &[u8]) -> Kind {
        // By length first: at most two names share one, so a header costs one or two compares.
        let candidates: &[(&[u8], Kind)] = match name.len() {
            2 => &[(b"te", Kind::Te)],
            4 => &[(b"host", Kind::Host)],
            6 => &[(b"expect", Kind::Expect)],
            7 => &[(b"trailer", Kind::Trailer), (b"upgrade", Kind::Upgrade)],
            9 => &[(b"forwarded", Kind::Forwarded)],
            10 => &[(b"connection", Kind::Connection), (b"keep-alive", Kind::KeepAlive)],
            13 => &[(b"authorization", Kind::Authorization)],
            14 => &[(b"content-length", Kind::ContentLength)],
            15 => &[(b"x-forwarded-for", Kind::XForwardedFor)],
            16 => &[(b"x-forwarded-host", Kind::XForwardedHost)],
            17 => &[(b"transfer-encoding", Kind::TransferEncoding), (b"x-forwarded-proto", Kind::XForwardedProto)],
            18 => &[(b"proxy-authenticate", Kind::ProxyAuthenticate), (b"x-forwarded-prefix", Kind::XForwardedPrefix)],
            19 => &[(b"proxy-authorization", Kind::ProxyAuthorization)],
            _ => &[],
        };
        candidates.iter().find(|(known, _)| known.eq_ignore_ascii_case(name)).map_or(Kind::Other, |(_, kind)| *kind)
    }

    /// Describes one connection only (RFC 9110 §7.6.1), so it never crosses a proxy.
    pub fn is_hop_by_hop(self) -> bool {
        matches!(
            self,
            Kind::Connection
                | Kind::KeepAlive
                | Kind::TransferEncoding
                | Kind::Te
                | Kind::Trailer
                | Kind::Upgrade
                | Kind::ProxyAuthenticate
                | Kind::ProxyAuthorization
        )
    }
}

/// One header of a head.
#[derive(Debug, Clone)]
pub struct Field {
    pub name: Range<usize>,
    pub value: Range<usize>,
    pub kind: Kind,
}

/// What a message's `Connection` headers say.
#[derive(Debug, Default, Clone, Copy)]
pub struct ConnectionTokens {
    pub close: bool,
    pub keep_alive: bool,
    /// It names other headers too (hop-by-hop by that naming).
    pub names_others: bool,
    pub upgrade: bool,
}

/// A parsed head: its length in the buffer and its headers.
#[derive(Debug, Default)]
pub struct Head {
    pub len: usize,
    pub http10: bool,
    pub fields: Vec<Field>,
    pub connection: ConnectionTokens,
}

/// A request head.
#[derive(Debug, Default)]
pub struct RequestHead {
    pub head: Head,
    pub method: Range<usize>,
    pub target: Range<usize>,
}

/// A response head.
#[derive(Debug, Default)]
pub struct ResponseHead {
    pub head: Head,
    pub status: u16,
}

impl Head {
    fn of(base: &[u8], len: usize, version: Option<u8>, headers: &[httparse::Header<'_>]) -> Head {
        let at = |s: &[u8]| {
            let start = s.as_ptr() as usize - base.as_ptr() as usize;
            start..start + s.len()
        };
        let mut connection = ConnectionTokens::default();
        let fields = headers
            .iter()
            .map(|h| {
                let kind = Kind::of(h.name.as_bytes());
                if kind == Kind::Connection {
                    read_tokens(h.value, &mut connection);
                }
                Field { name: at(h.name.as_bytes()), value: at(h.value), kind }
            })
            .collect();
        Head { len, http10: version == Some(0), fields, connection }
    }

    /// The values of the headers of `kind`.
    pub fn values<'b>(&'b self, buf: &'b [u8], kind: Kind) -> impl Iterator<Item = &'b [u8]> + 'b {
        self.fields.iter().filter(move |f| f.kind == kind).map(move |f| &buf[f.value.clone()])
    }

    pub fn has(&self, kind: Kind) -> bool {
        self.fields.iter().any(|f| f.kind == kind)
    }

    /// Whether the sender keeps the connection open after this message.
    pub fn keeps_alive(&self) -> bool {
        if self.http10 { self.connection.keep_alive } else { !self.connection.close }
    }

    /// How the body is framed by `Transfer-Encoding` and `Content-Length`; `Ok(None)` when
    /// neither says (RFC 9112 §6.3). Conflicting or invalid framing is an error.
    pub fn framing(&self, buf: &[u8]) -> io::Result<Option<Framing>> {
        let mut codings = self.values(buf, Kind::TransferEncoding);
        if let Some(first) = codings.next() {
            let last = codings.last().unwrap_or(first);
            let chunked_last = last.rsplit(|b| *b == b',').next().is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            if self.has(Kind::ContentLength) {
                return Err(invalid("both Transfer-Encoding and Content-Length"));
            }
            return Ok(Some(if chunked_last { Framing::chunked() } else { Framing::UntilClose }));
        }
        let mut lengths = self.values(buf, Kind::ContentLength);
        match (lengths.next(), lengths.next()) {
            (None, _) => Ok(None),
            (Some(one), None) => std::str::from_utf8(one)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<u64>().ok())
                .map(|n| Some(if n == 0 { Framing::Done } else { Framing::Length(n) }))
                .ok_or_else(|| invalid("invalid Content-Length")),
            (Some(_), Some(_)) => Err(invalid("more than one Content-Length")),
        }
    }
}

fn read_tokens(value: &[u8], tokens: &mut ConnectionTokens) {
    for token in value.split(|b| *b == b',').map(<[u8]>::trim_ascii).filter(|t| !t.is_empty()) {
        if token.eq_ignore_ascii_case(b"close") {
            tokens.close = true;
        } else if token.eq_ignore_ascii_case(b"keep-alive") {
            tokens.keep_alive = true;
        } else if token.eq_ignore_ascii_case(b"upgrade") {
            tokens.upgrade = true;
        } else if !Kind::of(token).is_hop_by_hop() {
            tokens.names_others = true;
        }
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// Parses a request head at the start of `buf`; `Ok(None)` until it is complete.
pub fn request(buf: &[u8]) -> Result<Option<RequestHead>, httparse::Error> {
    let mut slots = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    match httparse::ParserConfig::default().parse_request_with_uninit_headers(&mut parsed, buf, &mut slots)? {
        httparse::Status::Partial => Ok(None),
        httparse::Status::Complete(len) => {
            let span = |s: &str| {
                let start = s.as_ptr() as usize - buf.as_ptr() as usize;
                start..start + s.len()
            };
            let (method, target) = (parsed.method.map(span).unwrap_or_default(), parsed.path.map(span).unwrap_or_default());
            Ok(Some(RequestHead { head: Head::of(buf, len, parsed.version, parsed.headers), method, target }))
        }
    }
}

/// Parses a response head at the start of `buf`; `Ok(None)` until it is complete.
pub fn response(buf: &[u8]) -> io::Result<Option<ResponseHead>> {
    let mut slots = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut []);
    match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut parsed, buf, &mut slots) {
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(len)) => {
            let status = parsed.code.unwrap_or(0);
            if !(100..=999).contains(&status) {
                return Err(invalid("invalid status code"));
            }
            Ok(Some(ResponseHead { head: Head::of(buf, len, parsed.version, parsed.headers), status }))
        }
        Err(err) => Err(io::Error::new(io::ErrorKind::InvalidData, format!("the answer is not HTTP/1.1 ({err})"))),
    }
}

impl ResponseHead {
    /// How the answer's body is framed (RFC 9112 §6.3): none for HEAD, 1xx, 204 and 304; else by
    /// its headers; else to the end of the connection.
    pub fn framing(&self, buf: &[u8], head_request: bool) -> io::Result<Framing> {
        if head_request || self.status < 200 || self.status == 204 || self.status == 304 {
            return Ok(Framing::Done);
        }
        Ok(self.head.framing(buf)?.unwrap_or(Framing::UntilClose))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_found_by_its_name() {
        let names = [
            "connection",
            "keep-alive",
            "transfer-encoding",
            "content-length",
            "te",
            "trailer",
            "upgrade",
            "proxy-authenticate",
            "proxy-authorization",
            "host",
            "authorization",
            "expect",
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-host",
            "x-forwarded-prefix",
            "forwarded",
        ];
        let kinds: std::collections::HashSet<String> = names.iter().map(|n| format!("{:?}", Kind::of(n.as_bytes()))).collect();
        assert_eq!(kinds.len(), names.len(), "each name its own kind");
        assert!(!kinds.contains("Other"));
    }

    #[test]
    fn names_are_classified_whatever_their_case() {
        assert_eq!(Kind::of(b"Content-Length"), Kind::ContentLength);
        assert_eq!(Kind::of(b"X-FORWARDED-FOR"), Kind::XForwardedFor);
        assert_eq!(Kind::of(b"x-app"), Kind::Other);
        assert!(Kind::of(b"Keep-Alive").is_hop_by_hop());
        assert!(!Kind::of(b"Host").is_hop_by_hop());
    }

    #[test]
    fn a_request_head_is_spans_of_its_buffer() {
        let buf = b"POST /a/b?x=1 HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Hop\r\nContent-Length: 3\r\n\r\nabcGET";
        let parsed = request(buf).unwrap().unwrap();
        assert_eq!(&buf[parsed.method.clone()], b"POST");
        assert_eq!(&buf[parsed.target.clone()], b"/a/b?x=1");
        assert_eq!(&buf[parsed.head.len..parsed.head.len + 3], b"abc");
        assert!(parsed.head.connection.keep_alive && parsed.head.connection.names_others);
        assert_eq!(parsed.head.framing(buf).unwrap(), Some(Framing::Length(3)));
        assert!(request(b"GET / HTTP/1.1\r\nHost: h\r\n").unwrap().is_none(), "incomplete");
        assert!(request(b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n").is_err());
    }

    #[test]
    fn framing_refuses_what_smuggling_is_made_of() {
        let framing = |h: &[u8]| request(h).unwrap().unwrap().head.framing(h);
        assert!(framing(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
        assert!(framing(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n").is_err());
        assert!(framing(b"POST / HTTP/1.1\r\nContent-Length: +3\r\n\r\n").is_err());
        assert_eq!(framing(b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").unwrap(), Some(Framing::chunked()));
        assert_eq!(framing(b"GET / HTTP/1.1\r\n\r\n").unwrap(), None);
    }

    #[test]
    fn answers_without_a_body_are_known_by_status_and_method() {
        let buf = b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n";
        assert_eq!(response(buf).unwrap().unwrap().framing(buf, false).unwrap(), Framing::Done);
        let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
        assert_eq!(response(buf).unwrap().unwrap().framing(buf, true).unwrap(), Framing::Done, "HEAD");
        assert_eq!(response(buf).unwrap().unwrap().framing(buf, false).unwrap(), Framing::Length(10));
        let buf = b"HTTP/1.0 200 OK\r\n\r\n";
        let parsed = response(buf).unwrap().unwrap();
        assert_eq!(parsed.framing(buf, false).unwrap(), Framing::UntilClose);
        assert!(!parsed.head.keeps_alive(), "HTTP/1.0 closes unless told");
        assert!(response(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
    }
}
