//! podnet's echo server: the body of the `registry.k8s.io/echoserver:1.4` substitute.
//!
//! The upstream image is nginx with a Lua handler that prints what it received in a fixed text
//! format; tutorials (seed 003) show that output and learners compare against it. This crate answers
//! every request in the same format:
//!
//! ```text
//! CLIENT VALUES:
//! client_address=10.244.2.5
//! command=GET
//! real path=/
//! query=nil
//! request_version=1.1
//! request_uri=http://10.244.1.4:8080/
//!
//! SERVER VALUES:
//! server_version=podnet-echoserver: 0.1.0
//!
//! HEADERS RECEIVED:
//! accept=*/*
//! host=10.244.1.4:8080
//! user-agent=curl/7.88.1
//! BODY:
//! -no body in request-
//! ```
//!
//! `server_version` names podnet's server, not nginx: the substitute never claims to be the upstream.
//! The library holds the HTTP/1.1 parsing and the rendering (pure, unit-tested); `main.rs` holds the
//! sockets. std only, so the binary links statically and runs alone in an image layer.

use std::io::{self, BufRead, Read};
use std::net::{IpAddr, SocketAddr};

/// Longest request line or header line accepted.
pub const MAX_LINE: u64 = 16 * 1024;
/// Most header lines accepted in one request.
pub const MAX_HEADERS: usize = 200;
/// Largest request body accepted (it is echoed back whole).
pub const MAX_BODY: u64 = 16 * 1024 * 1024;

/// What the server says it is, in `server_version=`.
pub const SERVER_VERSION: &str = concat!("podnet-echoserver: ", env!("CARGO_PKG_VERSION"));

/// A request line and its headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    /// The request target as sent (`/path?query`).
    pub target: String,
    /// `1.1` or `1.0`.
    pub version: String,
    /// Header names lowercased (as nginx's Lua API reports them), values trimmed, in arrival order.
    pub headers: Vec<(String, String)>,
}

#[derive(Debug)]
pub enum ReadError {
    /// The client closed the connection before sending anything: the normal end of a keep-alive
    /// connection.
    Closed,
    /// The request is malformed; the text goes into the 400 response.
    Bad(String),
    Io(io::Error),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> ReadError {
        ReadError::Io(e)
    }
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Closed => write!(f, "connection closed"),
            ReadError::Bad(why) => write!(f, "bad request: {why}"),
            ReadError::Io(e) => write!(f, "read request: {e}"),
        }
    }
}

/// Reads one line (without its `\r\n`), at most [`MAX_LINE`] bytes. `None` at end of input.
fn read_line<R: BufRead>(r: &mut R) -> Result<Option<String>, ReadError> {
    let mut buf = Vec::new();
    let n = r.by_ref().take(MAX_LINE + 1).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        return Err(if n as u64 > MAX_LINE {
            ReadError::Bad("line too long".into())
        } else {
            ReadError::Bad("connection closed inside a line".into())
        });
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| ReadError::Bad("line is not UTF-8".into()))
}

/// Reads a request line and its headers. Blank lines before the request line are skipped, as
/// RFC 9112 asks servers to.
pub fn read_head<R: BufRead>(r: &mut R) -> Result<Head, ReadError> {
    let line = loop {
        match read_line(r)? {
            None => return Err(ReadError::Closed),
            Some(l) if l.is_empty() => continue,
            Some(l) => break l,
        }
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(proto), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Bad(format!("request line {line:?}")));
    };
    let version = match proto {
        "HTTP/1.1" => "1.1",
        "HTTP/1.0" => "1.0",
        other => return Err(ReadError::Bad(format!("protocol {other:?}"))),
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) || target.is_empty() {
        return Err(ReadError::Bad(format!("request line {line:?}")));
    }
    let mut headers = Vec::new();
    loop {
        let Some(line) = read_line(r)? else {
            return Err(ReadError::Bad(
                "connection closed inside the headers".into(),
            ));
        };
        if line.is_empty() {
            break;
        }
        if headers.len() == MAX_HEADERS {
            return Err(ReadError::Bad("too many headers".into()));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(ReadError::Bad(format!("header line {line:?}")));
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(ReadError::Bad(format!("header name {name:?}")));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    Ok(Head {
        method: method.to_string(),
        target: target.to_string(),
        version: version.to_string(),
        headers,
    })
}

impl Head {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Whether the connection stays open after the response (HTTP/1.1 unless `close`; HTTP/1.0 only
    /// with `keep-alive`).
    pub fn keep_alive(&self) -> bool {
        if self.version == "1.1" {
            !self.has_token("connection", "close")
        } else {
            self.has_token("connection", "keep-alive")
        }
    }

    /// Whether the client waits for `100 Continue` before sending the body (curl does for large ones).
    pub fn expects_continue(&self) -> bool {
        self.has_token("expect", "100-continue")
    }

    fn chunked(&self) -> bool {
        self.has_token("transfer-encoding", "chunked")
    }

    fn content_length(&self) -> Result<u64, ReadError> {
        let mut lengths = self.headers.iter().filter(|(n, _)| n == "content-length");
        let Some((_, first)) = lengths.next() else {
            return Ok(0);
        };
        // Differing lengths are the request-smuggling shape: refuse them.
        if lengths.any(|(_, v)| v != first) {
            return Err(ReadError::Bad("conflicting Content-Length headers".into()));
        }
        first
            .parse()
            .map_err(|_| ReadError::Bad(format!("Content-Length {first:?}")))
    }

    /// The host part of the Host header (no port), or `fallback` when there is none, as nginx's
    /// `$host`.
    pub fn host(&self, fallback: &str) -> String {
        match self.header("host") {
            Some(h) if !h.is_empty() => {
                let h = if let Some(rest) = h.strip_prefix('[') {
                    // [v6]:port
                    rest.split(']').next().unwrap_or(rest)
                } else {
                    h.split(':').next().unwrap_or(h)
                };
                h.to_ascii_lowercase()
            }
            _ => fallback.to_string(),
        }
    }
}

/// Reads the body `head` announces: `Content-Length` bytes, or a chunked body (trailers dropped).
pub fn read_body<R: BufRead>(r: &mut R, head: &Head) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    if head.chunked() {
        loop {
            let line = read_line(r)?.ok_or_else(|| ReadError::Bad("body ended early".into()))?;
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = u64::from_str_radix(size_text, 16)
                .map_err(|_| ReadError::Bad(format!("chunk size {size_text:?}")))?;
            if size == 0 {
                // Trailer section, up to the empty line.
                while read_line(r)?.is_some_and(|l| !l.is_empty()) {}
                return Ok(body);
            }
            if body.len() as u64 + size > MAX_BODY {
                return Err(ReadError::Bad("body too large".into()));
            }
            let before = body.len();
            r.by_ref().take(size).read_to_end(&mut body)?;
            if (body.len() - before) as u64 != size {
                return Err(ReadError::Bad("body ended early".into()));
            }
            if read_line(r)?.is_none_or(|l| !l.is_empty()) {
                return Err(ReadError::Bad("chunk not followed by CRLF".into()));
            }
        }
    }
    let len = head.content_length()?;
    if len > MAX_BODY {
        return Err(ReadError::Bad("body too large".into()));
    }
    r.by_ref().take(len).read_to_end(&mut body)?;
    if body.len() as u64 != len {
        return Err(ReadError::Bad("body ended early".into()));
    }
    Ok(body)
}

/// The response body for one request: what the client sent, in echoserver 1.4's format.
/// `client` is the peer's address, `local` the address the connection arrived on.
/// The answer to a UDP datagram: who answered and whom it saw.
pub fn udp_reply(hostname: &str, client: IpAddr) -> String {
    format!(
        "hostname={hostname}\nclient_address={}\n",
        canonical(client)
    )
}

pub fn render(head: &Head, body: &[u8], client: IpAddr, local: SocketAddr) -> Vec<u8> {
    let query = head.target.split_once('?').map(|(_, q)| q).unwrap_or("nil");
    let host = head.host(&local.ip().to_string());
    let mut out = String::new();
    out.push_str("CLIENT VALUES:\n");
    out.push_str(&format!("client_address={}\n", canonical(client)));
    out.push_str(&format!("command={}\n", head.method));
    out.push_str(&format!("real path={}\n", head.target));
    out.push_str(&format!("query={query}\n"));
    out.push_str(&format!("request_version={}\n", head.version));
    out.push_str(&format!(
        "request_uri=http://{host}:{}{}\n",
        local.port(),
        head.target
    ));
    out.push_str("\nSERVER VALUES:\n");
    out.push_str(&format!("server_version={SERVER_VERSION}\n"));
    out.push_str("\nHEADERS RECEIVED:\n");
    // Sorted by name; a repeated header prints its values joined, in arrival order.
    let mut names: Vec<&str> = head.headers.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let values: Vec<&str> = head
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect();
        out.push_str(&format!("{name}={}\n", values.join(", ")));
    }
    out.push_str("BODY:\n");
    let mut bytes = out.into_bytes();
    if body.is_empty() {
        bytes.extend_from_slice(b"-no body in request-\n");
    } else {
        bytes.extend_from_slice(body);
    }
    bytes
}

/// An IPv4 client seen through a dual-stack socket is shown as IPv4, as nginx shows it.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The full HTTP response for `body` (status 200), or without the body for HEAD.
pub fn response(head: &Head, body: &[u8]) -> Vec<u8> {
    let connection = if head.keep_alive() {
        "keep-alive"
    } else {
        "close"
    };
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nServer: podnet-echoserver/{}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n",
        env!("CARGO_PKG_VERSION"),
        body.len()
    )
    .into_bytes();
    if head.method != "HEAD" {
        out.extend_from_slice(body);
    }
    out
}

/// A `400 Bad Request` naming what was wrong; the connection closes after it.
pub fn bad_request(why: &str) -> Vec<u8> {
    let body = format!("bad request: {why}\n");
    format!(
        "HTTP/1.1 400 Bad Request\r\nServer: podnet-echoserver/{}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        env!("CARGO_PKG_VERSION"),
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn head(raw: &str) -> Head {
        read_head(&mut Cursor::new(raw.as_bytes())).unwrap()
    }

    const LOCAL: &str = "10.244.1.4:8080";

    fn text(raw: &str, client: &str) -> String {
        let mut r = Cursor::new(raw.as_bytes());
        let h = read_head(&mut r).unwrap();
        let body = read_body(&mut r, &h).unwrap();
        String::from_utf8(render(
            &h,
            &body,
            client.parse().unwrap(),
            LOCAL.parse().unwrap(),
        ))
        .unwrap()
    }

    #[test]
    fn a_curl_get_renders_as_seed_003_shows() {
        let out = text(
            "GET / HTTP/1.1\r\nHost: 10.244.1.4:8080\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n",
            "10.244.2.5",
        );
        let want = format!(
            "CLIENT VALUES:\nclient_address=10.244.2.5\ncommand=GET\nreal path=/\nquery=nil\nrequest_version=1.1\nrequest_uri=http://10.244.1.4:8080/\n\nSERVER VALUES:\nserver_version={SERVER_VERSION}\n\nHEADERS RECEIVED:\naccept=*/*\nhost=10.244.1.4:8080\nuser-agent=curl/7.88.1\nBODY:\n-no body in request-\n"
        );
        assert_eq!(out, want);
    }

    #[test]
    fn query_path_and_host_without_port_follow_nginx() {
        let out = text(
            "GET /a/b?x=1&y=2 HTTP/1.0\r\nHost: Echo.Example\r\n\r\n",
            "10.0.0.9",
        );
        assert!(out.contains("real path=/a/b?x=1&y=2\n"), "{out}");
        assert!(out.contains("query=x=1&y=2\n"), "{out}");
        assert!(out.contains("request_version=1.0\n"), "{out}");
        // $host drops the port and lowercases; the port is the one the connection arrived on.
        assert!(
            out.contains("request_uri=http://echo.example:8080/a/b?x=1&y=2\n"),
            "{out}"
        );
    }

    #[test]
    fn without_a_host_header_the_local_address_stands_in() {
        let out = text("GET / HTTP/1.0\r\n\r\n", "10.0.0.9");
        assert!(
            out.contains("request_uri=http://10.244.1.4:8080/\n"),
            "{out}"
        );
    }

    #[test]
    fn headers_are_sorted_and_repeats_joined() {
        let out = text(
            "GET / HTTP/1.1\r\nX-B: 2\r\nx-a: 1\r\nX-B: 3\r\n\r\n",
            "10.0.0.9",
        );
        assert!(
            out.contains("HEADERS RECEIVED:\nx-a=1\nx-b=2, 3\nBODY:\n"),
            "{out}"
        );
    }

    #[test]
    fn a_body_is_echoed_as_sent() {
        let out = text(
            "POST /p HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world",
            "10.0.0.9",
        );
        assert!(out.contains("command=POST\n"));
        assert!(out.ends_with("BODY:\nhello world"), "{out}");
    }

    #[test]
    fn a_chunked_body_is_decoded() {
        let out = text(
            "PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: x\r\n\r\n",
            "10.0.0.9",
        );
        assert!(out.ends_with("BODY:\nhello world"), "{out}");
    }

    #[test]
    fn a_mapped_ipv4_client_is_shown_as_ipv4() {
        let out = text("GET / HTTP/1.1\r\n\r\n", "::ffff:10.1.2.3");
        assert!(out.contains("client_address=10.1.2.3\n"), "{out}");
    }

    #[test]
    fn keep_alive_follows_the_version_and_connection_header() {
        assert!(head("GET / HTTP/1.1\r\n\r\n").keep_alive());
        assert!(!head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive());
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive());
        assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive());
    }

    #[test]
    fn two_requests_on_one_connection_are_read_in_turn() {
        let raw = "GET /1 HTTP/1.1\r\n\r\n\r\nGET /2 HTTP/1.1\r\n\r\n";
        let mut r = Cursor::new(raw.as_bytes());
        assert_eq!(read_head(&mut r).unwrap().target, "/1");
        assert_eq!(read_head(&mut r).unwrap().target, "/2");
        assert!(matches!(read_head(&mut r), Err(ReadError::Closed)));
    }

    #[test]
    fn malformed_requests_are_refused() {
        for raw in [
            "GET /\r\n\r\n",
            "GET / HTTP/2.0\r\n\r\n",
            "G(T / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nno colon\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\n",
            "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
        ] {
            let r = read_head(&mut Cursor::new(raw.as_bytes()));
            assert!(matches!(r, Err(ReadError::Bad(_))), "{raw:?}: {r:?}");
        }
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_LINE as usize));
        assert!(matches!(
            read_head(&mut Cursor::new(long.as_bytes())),
            Err(ReadError::Bad(_))
        ));
    }

    #[test]
    fn conflicting_lengths_and_short_bodies_are_refused() {
        let h = head("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n");
        assert!(matches!(
            read_body(&mut Cursor::new(b"abcd".as_slice()), &h),
            Err(ReadError::Bad(_))
        ));
        let h = head("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n");
        assert!(matches!(
            read_body(&mut Cursor::new(b"abc".as_slice()), &h),
            Err(ReadError::Bad(_))
        ));
    }

    #[test]
    fn head_requests_get_headers_only() {
        let h = head("HEAD / HTTP/1.1\r\n\r\n");
        let resp = String::from_utf8(response(&h, b"12345")).unwrap();
        assert!(resp.contains("Content-Length: 5\r\n"));
        assert!(resp.ends_with("\r\n\r\n"));
    }

    #[test]
    fn udp_reply_names_server_and_client() {
        assert_eq!(
            udp_reply("echo-1", "10.244.2.5".parse().unwrap()),
            "hostname=echo-1\nclient_address=10.244.2.5\n"
        );
    }
}
