//! SPDY/3.1 framing, as kubectl's port-forward speaks it (draft-mbelshe-httpbis-spdy, version 3.1):
//! control frames (SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS,
//! WINDOW_UPDATE) and DATA frames, with name/value header blocks compressed by one zlib stream per
//! direction that starts from SPDY/3's preset dictionary.
//!
//! Pure: bytes in, frames out, and back. The input is untrusted (it comes from any authenticated
//! client), so every length is checked against what is there and against fixed bounds, nothing
//! panics, and a malformed frame is an error the session answers with GOAWAY.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

/// The largest frame payload accepted. SPDY's length field allows 16 MiB; kubectl writes DATA
/// frames of at most 32 KiB (Go's io.Copy buffer), so 1 MiB leaves room without letting a peer make
/// us buffer much.
pub const MAX_FRAME_PAYLOAD: usize = 1 << 20;
/// The largest decompressed header block accepted (a bound on zlib's expansion, too).
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// The most name/value pairs in one header block.
pub const MAX_HEADER_PAIRS: usize = 256;

const VERSION: u16 = 3;
const FLAG_FIN: u8 = 0x01;
const FLAG_UNIDIRECTIONAL: u8 = 0x02;

/// RST_STREAM status codes used here.
pub const PROTOCOL_ERROR: u32 = 1;
pub const REFUSED_STREAM: u32 = 3;
pub const CANCEL: u32 = 5;

/// A frame's name/value pairs, names lower-case as SPDY/3 requires.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

impl Headers {
    /// The first value of `name` (case-insensitive; SPDY joins repeated values with NUL).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.split('\0').next().unwrap_or(""))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        fin: bool,
        unidirectional: bool,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    /// SETTINGS: (flags, id, value) entries; read and ignored by the port-forward session.
    Settings(Vec<(u8, u32, u32)>),
    Ping(u32),
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        fin: bool,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        fin: bool,
        data: Bytes,
    },
    /// A control frame of a type this codec does not know (the spec says to ignore it).
    Unknown {
        kind: u16,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpdyError {
    #[error("SPDY frame of {0} bytes is larger than the {MAX_FRAME_PAYLOAD} allowed")]
    FrameTooLarge(usize),
    #[error("SPDY control frame of version {0}, want 3")]
    Version(u16),
    #[error("SPDY {kind} frame of {len} bytes is too short")]
    Short { kind: &'static str, len: usize },
    #[error("SPDY header block: {0}")]
    HeaderBlock(String),
    #[error("SPDY header compression: {0}")]
    Zlib(String),
}

/// SPDY/3's zlib dictionary (section 2.6.10.1 of the draft): header names and common values, each
/// preceded by its length as a 32-bit big-endian number, then a tail of common value fragments.
pub fn dictionary() -> &'static [u8] {
    static DICT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    DICT.get_or_init(|| {
        const WORDS: &[&str] = &[
            "options",
            "head",
            "post",
            "put",
            "delete",
            "trace",
            "accept",
            "accept-charset",
            "accept-encoding",
            "accept-language",
            "accept-ranges",
            "age",
            "allow",
            "authorization",
            "cache-control",
            "connection",
            "content-base",
            "content-encoding",
            "content-language",
            "content-length",
            "content-location",
            "content-md5",
            "content-range",
            "content-type",
            "date",
            "etag",
            "expect",
            "expires",
            "from",
            "host",
            "if-match",
            "if-modified-since",
            "if-none-match",
            "if-range",
            "if-unmodified-since",
            "last-modified",
            "location",
            "max-forwards",
            "pragma",
            "proxy-authenticate",
            "proxy-authorization",
            "range",
            "referer",
            "retry-after",
            "server",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "user-agent",
            "vary",
            "via",
            "warning",
            "www-authenticate",
            "method",
            "get",
            "status",
            "200 OK",
            "version",
            "HTTP/1.1",
            "url",
            "public",
            "set-cookie",
            "keep-alive",
            "origin",
        ];
        const TAIL: &str = concat!(
            "100101201202205206300302303304305306307402405406407408409410411412413414415416417",
            "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently",
            "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error",
            "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct ",
            "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,",
            "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,",
            "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8",
            "charset=iso-8859-1,utf-,*,enq=0.",
        );
        let mut d = Vec::with_capacity(1423);
        for w in WORDS {
            d.extend_from_slice(&(w.len() as u32).to_be_bytes());
            d.extend_from_slice(w.as_bytes());
        }
        d.extend_from_slice(TAIL.as_bytes());
        d
    })
}

/// Reads frames from one direction of a connection. Holds that direction's zlib state, so one
/// decoder serves one connection, in order.
pub struct Decoder {
    inflate: Decompress,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            inflate: Decompress::new(true),
        }
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

impl Decoder {
    /// Takes one whole frame off the front of `buf`; `Ok(None)` when more bytes are needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, SpdyError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let len = (u32::from_be_bytes([0, buf[5], buf[6], buf[7]])) as usize;
        if len > MAX_FRAME_PAYLOAD {
            return Err(SpdyError::FrameTooLarge(len));
        }
        if buf.len() < 8 + len {
            return Ok(None);
        }
        let head = buf.split_to(8);
        let payload = buf.split_to(len).freeze();
        let flags = head[4];
        let fin = flags & FLAG_FIN != 0;
        if head[0] & 0x80 == 0 {
            return Ok(Some(Frame::Data {
                stream_id: be32(&head[..4]) & 0x7fff_ffff,
                fin,
                data: payload,
            }));
        }
        let version = u16::from_be_bytes([head[0], head[1]]) & 0x7fff;
        if version != VERSION {
            return Err(SpdyError::Version(version));
        }
        let kind = u16::from_be_bytes([head[2], head[3]]);
        let p = &payload[..];
        let need = |name: &'static str, n: usize| {
            if p.len() < n {
                Err(SpdyError::Short {
                    kind: name,
                    len: p.len(),
                })
            } else {
                Ok(())
            }
        };
        let sid = |b: &[u8]| be32(b) & 0x7fff_ffff;
        Ok(Some(match kind {
            1 => {
                need("SYN_STREAM", 10)?;
                Frame::SynStream {
                    stream_id: sid(p),
                    associated_to: sid(&p[4..]),
                    priority: p[8] >> 5,
                    fin,
                    unidirectional: flags & FLAG_UNIDIRECTIONAL != 0,
                    headers: self.header_block(&p[10..])?,
                }
            }
            2 => {
                need("SYN_REPLY", 4)?;
                Frame::SynReply {
                    stream_id: sid(p),
                    fin,
                    headers: self.header_block(&p[4..])?,
                }
            }
            3 => {
                need("RST_STREAM", 8)?;
                Frame::RstStream {
                    stream_id: sid(p),
                    status: be32(&p[4..]),
                }
            }
            4 => {
                need("SETTINGS", 4)?;
                let n = be32(p) as usize;
                let entries = &p[4..];
                if n > entries.len() / 8 {
                    return Err(SpdyError::Short {
                        kind: "SETTINGS",
                        len: p.len(),
                    });
                }
                Frame::Settings(
                    entries
                        .chunks_exact(8)
                        .take(n)
                        .map(|e| {
                            (
                                e[0],
                                u32::from_be_bytes([0, e[1], e[2], e[3]]),
                                be32(&e[4..]),
                            )
                        })
                        .collect(),
                )
            }
            6 => {
                need("PING", 4)?;
                Frame::Ping(be32(p))
            }
            7 => {
                need("GOAWAY", 8)?;
                Frame::GoAway {
                    last_good_stream_id: sid(p),
                    status: be32(&p[4..]),
                }
            }
            8 => {
                need("HEADERS", 4)?;
                Frame::Headers {
                    stream_id: sid(p),
                    fin,
                    headers: self.header_block(&p[4..])?,
                }
            }
            9 => {
                need("WINDOW_UPDATE", 8)?;
                Frame::WindowUpdate {
                    stream_id: sid(p),
                    delta: be32(&p[4..]) & 0x7fff_ffff,
                }
            }
            kind => Frame::Unknown { kind },
        }))
    }

    /// Inflates one header block (the zlib stream continues from the previous block) and parses it.
    fn header_block(&mut self, compressed: &[u8]) -> Result<Headers, SpdyError> {
        let raw = self.inflate_block(compressed)?;
        parse_header_block(&raw)
    }

    fn inflate_block(&mut self, input: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let mut out: Vec<u8> = Vec::with_capacity(1024);
        let mut pos = 0usize;
        // Each round consumes input or produces output; the bound only guards against a zlib
        // that does neither.
        for _ in 0..10_000 {
            if out.capacity() - out.len() < 1024 {
                if out.len() > MAX_HEADER_BLOCK {
                    return Err(SpdyError::HeaderBlock(format!(
                        "more than {MAX_HEADER_BLOCK} bytes once inflated"
                    )));
                }
                out.reserve(4096);
            }
            let in0 = self.inflate.total_in();
            let out0 = out.len();
            let spare = out.capacity() - out.len();
            match self
                .inflate
                .decompress_vec(&input[pos..], &mut out, FlushDecompress::Sync)
            {
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.inflate
                        .set_dictionary(dictionary())
                        .map_err(|e| SpdyError::Zlib(format!("preset dictionary: {e}")))?;
                }
                Err(e) => return Err(SpdyError::Zlib(e.to_string())),
            }
            pos += (self.inflate.total_in() - in0) as usize;
            let produced = out.len() - out0;
            // Done when the input is used up and the output did not fill what was offered (so
            // nothing is left inside zlib).
            if pos >= input.len() && produced < spare {
                return Ok(out);
            }
            if pos > input.len() {
                return Err(SpdyError::Zlib("inflate read past its input".into()));
            }
        }
        Err(SpdyError::Zlib("inflate made no progress".into()))
    }
}

/// Parses an inflated name/value block: a 32-bit count, then per pair a 32-bit length and the name,
/// a 32-bit length and the value.
pub fn parse_header_block(mut b: &[u8]) -> Result<Headers, SpdyError> {
    let err = |m: &str| SpdyError::HeaderBlock(m.to_string());
    if b.len() < 4 {
        return Err(err("no pair count"));
    }
    let n = b.get_u32() as usize;
    if n > MAX_HEADER_PAIRS {
        return Err(SpdyError::HeaderBlock(format!(
            "{n} pairs, more than {MAX_HEADER_PAIRS}"
        )));
    }
    let take = |b: &mut &[u8], what: &str| -> Result<String, SpdyError> {
        if b.len() < 4 {
            return Err(SpdyError::HeaderBlock(format!("{what} length cut off")));
        }
        let len = b.get_u32() as usize;
        if len > b.len() {
            return Err(SpdyError::HeaderBlock(format!(
                "{what} of {len} bytes, {} left",
                b.len()
            )));
        }
        let s = String::from_utf8(b[..len].to_vec())
            .map_err(|_| SpdyError::HeaderBlock(format!("{what} is not UTF-8")))?;
        b.advance(len);
        Ok(s)
    };
    let mut pairs = Vec::with_capacity(n);
    for _ in 0..n {
        let name = take(&mut b, "name")?;
        if name.is_empty() {
            return Err(err("empty name"));
        }
        let value = take(&mut b, "value")?;
        pairs.push((name, value));
    }
    Ok(Headers(pairs))
}

/// Serialises a name/value block (names lower-cased).
pub fn header_block_bytes(h: &Headers) -> Vec<u8> {
    let mut out = Vec::new();
    out.put_u32(h.0.len() as u32);
    for (n, v) in &h.0 {
        out.put_u32(n.len() as u32);
        out.extend(n.bytes().map(|c| c.to_ascii_lowercase()));
        out.put_u32(v.len() as u32);
        out.extend_from_slice(v.as_bytes());
    }
    out
}

/// Writes frames for one direction of a connection; holds that direction's zlib state.
pub struct Encoder {
    deflate: Compress,
    primed: bool,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder {
            deflate: Compress::new(Compression::default(), true),
            primed: false,
        }
    }
}

impl Encoder {
    /// Appends `frame` to `out`. DATA payloads and header blocks beyond the protocol's 24-bit
    /// length are refused.
    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) -> Result<(), SpdyError> {
        let fin = |f: bool| if f { FLAG_FIN } else { 0 };
        let (kind, flags, payload): (u16, u8, Vec<u8>) = match frame {
            Frame::Data {
                stream_id,
                fin: f,
                data,
            } => {
                if data.len() > MAX_FRAME_PAYLOAD {
                    return Err(SpdyError::FrameTooLarge(data.len()));
                }
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u8(fin(*f));
                out.put_uint(data.len() as u64, 3);
                out.extend_from_slice(data);
                return Ok(());
            }
            Frame::SynStream {
                stream_id,
                associated_to,
                priority,
                fin: f,
                unidirectional,
                headers,
            } => {
                let mut p = Vec::new();
                p.put_u32(stream_id & 0x7fff_ffff);
                p.put_u32(associated_to & 0x7fff_ffff);
                p.put_u8((priority & 7) << 5);
                p.put_u8(0);
                p.extend(self.deflate_block(headers)?);
                let uni = if *unidirectional {
                    FLAG_UNIDIRECTIONAL
                } else {
                    0
                };
                (1, fin(*f) | uni, p)
            }
            Frame::SynReply {
                stream_id,
                fin: f,
                headers,
            } => {
                let mut p = Vec::new();
                p.put_u32(stream_id & 0x7fff_ffff);
                p.extend(self.deflate_block(headers)?);
                (2, fin(*f), p)
            }
            Frame::RstStream { stream_id, status } => {
                let mut p = Vec::new();
                p.put_u32(stream_id & 0x7fff_ffff);
                p.put_u32(*status);
                (3, 0, p)
            }
            Frame::Settings(entries) => {
                let mut p = Vec::new();
                p.put_u32(entries.len() as u32);
                for (f, id, v) in entries {
                    p.put_u8(*f);
                    p.put_uint(u64::from(*id & 0xff_ffff), 3);
                    p.put_u32(*v);
                }
                (4, 0, p)
            }
            Frame::Ping(id) => (6, 0, id.to_be_bytes().to_vec()),
            Frame::GoAway {
                last_good_stream_id,
                status,
            } => {
                let mut p = Vec::new();
                p.put_u32(last_good_stream_id & 0x7fff_ffff);
                p.put_u32(*status);
                (7, 0, p)
            }
            Frame::Headers {
                stream_id,
                fin: f,
                headers,
            } => {
                let mut p = Vec::new();
                p.put_u32(stream_id & 0x7fff_ffff);
                p.extend(self.deflate_block(headers)?);
                (8, fin(*f), p)
            }
            Frame::WindowUpdate { stream_id, delta } => {
                let mut p = Vec::new();
                p.put_u32(stream_id & 0x7fff_ffff);
                p.put_u32(delta & 0x7fff_ffff);
                (9, 0, p)
            }
            Frame::Unknown { kind } => (*kind, 0, Vec::new()),
        };
        if payload.len() > 0xff_ffff {
            return Err(SpdyError::FrameTooLarge(payload.len()));
        }
        out.put_u16(0x8000 | VERSION);
        out.put_u16(kind);
        out.put_u8(flags);
        out.put_uint(payload.len() as u64, 3);
        out.extend_from_slice(&payload);
        Ok(())
    }

    fn deflate_block(&mut self, h: &Headers) -> Result<Vec<u8>, SpdyError> {
        if !self.primed {
            self.deflate
                .set_dictionary(dictionary())
                .map_err(|e| SpdyError::Zlib(format!("preset dictionary: {e}")))?;
            self.primed = true;
        }
        let raw = header_block_bytes(h);
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut pos = 0usize;
        for _ in 0..10_000 {
            if out.capacity() - out.len() < 64 {
                out.reserve(raw.len() + 64);
            }
            let in0 = self.deflate.total_in();
            let spare = out.capacity() - out.len();
            let out0 = out.len();
            self.deflate
                .compress_vec(&raw[pos..], &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::Zlib(e.to_string()))?;
            pos += (self.deflate.total_in() - in0) as usize;
            if pos >= raw.len() && out.len() - out0 < spare {
                return Ok(out);
            }
        }
        Err(SpdyError::Zlib("deflate made no progress".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(frames: &[Frame]) -> Vec<Frame> {
        let mut enc = Encoder::default();
        let mut buf = BytesMut::new();
        for f in frames {
            enc.encode(f, &mut buf).unwrap();
        }
        let mut dec = Decoder::default();
        let mut out = Vec::new();
        while let Some(f) = dec.decode(&mut buf).unwrap() {
            out.push(f);
        }
        assert!(buf.is_empty());
        out
    }

    fn h(pairs: &[(&str, &str)]) -> Headers {
        Headers(
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
        )
    }

    #[test]
    fn dictionary_is_spdy3s() {
        let d = dictionary();
        assert_eq!(d.len(), 1423);
        assert!(d.starts_with(b"\0\0\0\x07options\0\0\0\x04head"));
        assert!(d.ends_with(b",*,enq=0."));
    }

    #[test]
    fn every_frame_kind_round_trips() {
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                associated_to: 0,
                priority: 0,
                fin: false,
                unidirectional: false,
                headers: h(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]),
            },
            Frame::SynReply {
                stream_id: 1,
                fin: false,
                headers: Headers::default(),
            },
            Frame::Data {
                stream_id: 3,
                fin: true,
                data: Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n"),
            },
            Frame::RstStream {
                stream_id: 3,
                status: CANCEL,
            },
            Frame::Settings(vec![(0, 7, 65536)]),
            Frame::Ping(7),
            Frame::Headers {
                stream_id: 5,
                fin: true,
                headers: h(&[("a", "b\0c")]),
            },
            Frame::WindowUpdate {
                stream_id: 5,
                delta: 1000,
            },
            Frame::GoAway {
                last_good_stream_id: 5,
                status: 0,
            },
        ];
        assert_eq!(roundtrip(&frames), frames);
    }

    #[test]
    fn header_values_join_repeats_with_nul() {
        let hd = h(&[("StreamType", "data\0x")]);
        assert_eq!(hd.get("streamtype"), Some("data"));
        assert_eq!(hd.get("port"), None);
    }

    #[test]
    fn header_names_go_out_lower_case() {
        let f = Frame::SynReply {
            stream_id: 1,
            fin: false,
            headers: h(&[("Port", "80")]),
        };
        match &roundtrip(&[f])[0] {
            Frame::SynReply { headers, .. } => assert_eq!(headers.0[0].0, "port"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn waits_for_a_whole_frame() {
        let mut enc = Encoder::default();
        let mut all = BytesMut::new();
        enc.encode(&Frame::Ping(9), &mut all).unwrap();
        let mut dec = Decoder::default();
        let mut part = BytesMut::from(&all[..7]);
        assert_eq!(dec.decode(&mut part).unwrap(), None);
        part.extend_from_slice(&all[7..]);
        assert_eq!(dec.decode(&mut part).unwrap(), Some(Frame::Ping(9)));
    }

    #[test]
    fn refuses_oversized_frames_and_wrong_versions() {
        let mut dec = Decoder::default();
        let mut b = BytesMut::from(&[0, 0, 0, 1, 0, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            dec.decode(&mut b),
            Err(SpdyError::FrameTooLarge(_))
        ));
        let mut b = BytesMut::from(&[0x80, 2, 0, 6, 0, 0, 0, 4, 0, 0, 0, 1][..]);
        assert_eq!(dec.decode(&mut b), Err(SpdyError::Version(2)));
        let mut b = BytesMut::from(&[0x80, 3, 0, 3, 0, 0, 0, 4, 0, 0, 0, 1][..]);
        assert!(matches!(dec.decode(&mut b), Err(SpdyError::Short { .. })));
    }

    #[test]
    fn refuses_bad_header_blocks() {
        assert!(parse_header_block(&[0, 0, 0, 1, 0, 0, 0, 9, b'a']).is_err());
        assert!(parse_header_block(&[0, 0, 1, 0]).is_err());
        assert!(parse_header_block(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert_eq!(parse_header_block(&[0, 0, 0, 0]), Ok(Headers::default()));
    }

    #[test]
    fn a_zlib_bomb_is_refused() {
        // A header block that inflates far past the bound.
        let mut c = Compress::new(Compression::best(), true);
        c.set_dictionary(dictionary()).unwrap();
        let big = vec![b'a'; 1 << 20];
        let mut z = Vec::with_capacity(1 << 20);
        c.compress_vec(&big, &mut z, FlushCompress::Sync).unwrap();
        let mut p = vec![0, 0, 0, 1];
        p.extend(z);
        let mut b = BytesMut::new();
        b.put_u16(0x8003);
        b.put_u16(2);
        b.put_u8(0);
        b.put_uint(p.len() as u64, 3);
        b.extend_from_slice(&p);
        let mut dec = Decoder::default();
        assert!(matches!(dec.decode(&mut b), Err(SpdyError::HeaderBlock(_))));
    }

    fn arb_headers() -> impl Strategy<Value = Headers> {
        prop::collection::vec(("[a-z][a-z0-9-]{0,20}", "[ -~]{0,40}"), 0..8).prop_map(Headers)
    }

    fn arb_frame() -> impl Strategy<Value = Frame> {
        let sid = 0u32..0x7fff_ffff;
        prop_oneof![
            (
                sid.clone(),
                any::<bool>(),
                prop::collection::vec(any::<u8>(), 0..2000)
            )
                .prop_map(|(stream_id, fin, d)| Frame::Data {
                    stream_id,
                    fin,
                    data: Bytes::from(d)
                }),
            (
                sid.clone(),
                sid.clone(),
                0u8..8,
                any::<bool>(),
                any::<bool>(),
                arb_headers()
            )
                .prop_map(
                    |(stream_id, associated_to, priority, fin, unidirectional, headers)| {
                        Frame::SynStream {
                            stream_id,
                            associated_to,
                            priority,
                            fin,
                            unidirectional,
                            headers,
                        }
                    }
                ),
            (sid.clone(), any::<bool>(), arb_headers()).prop_map(|(stream_id, fin, headers)| {
                Frame::SynReply {
                    stream_id,
                    fin,
                    headers,
                }
            }),
            (sid.clone(), any::<u32>())
                .prop_map(|(stream_id, status)| Frame::RstStream { stream_id, status }),
            any::<u32>().prop_map(Frame::Ping),
            (sid.clone(), 0u32..0x7fff_ffff)
                .prop_map(|(stream_id, delta)| Frame::WindowUpdate { stream_id, delta }),
        ]
    }

    proptest! {
        #[test]
        fn frames_round_trip_in_any_split(frames in prop::collection::vec(arb_frame(), 1..12), cut in 1usize..64) {
            let mut enc = Encoder::default();
            let mut wire = BytesMut::new();
            for f in &frames {
                enc.encode(f, &mut wire).unwrap();
            }
            // Fed in pieces, as a websocket or TCP delivers it.
            let mut dec = Decoder::default();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for chunk in wire.chunks(cut) {
                buf.extend_from_slice(chunk);
                while let Some(f) = dec.decode(&mut buf).unwrap() {
                    got.push(f);
                }
            }
            prop_assert_eq!(got, frames);
        }

        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
            let mut dec = Decoder::default();
            let mut buf = BytesMut::from(&bytes[..]);
            for _ in 0..64 {
                match dec.decode(&mut buf) {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }

        #[test]
        fn mutated_frames_never_panic(frames in prop::collection::vec(arb_frame(), 1..6), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut enc = Encoder::default();
            let mut wire = BytesMut::new();
            for f in &frames {
                enc.encode(f, &mut wire).unwrap();
            }
            let i = at.index(wire.len());
            wire[i] = byte;
            let mut dec = Decoder::default();
            for _ in 0..64 {
                match dec.decode(&mut wire) {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
}
