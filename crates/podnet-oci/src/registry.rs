//! A client for the OCI distribution API: manifests and blobs over the endpoints `hosts.toml` names,
//! with the anonymous/credentialed bearer-token flow and basic auth.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use crate::auth::{Challenge, Keychain, parse_challenge};
use crate::digest::Digest;
use crate::hosts::{Endpoint, Hosts, HostsError, is_loopback};
use crate::manifest::ACCEPT_MANIFESTS;
use crate::reference::Reference;
use crate::transport::{Dialer, HttpClient, client};

const USER_AGENT: &str = concat!("podnet/", env!("CARGO_PKG_VERSION"));
/// Manifests and configs are small; a bigger answer is a broken or hostile registry.
const MAX_DOCUMENT: usize = 8 << 20;
/// How long to wait for response headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{reference}: not found in {tried}")]
    NotFound { reference: String, tried: String },
    #[error("{url}: unauthorized{}: {detail}", if *.had_credentials { " (credentials refused)" } else { " (no credentials for this registry; use --auth-file or imagePullSecrets)" })]
    Unauthorized {
        url: String,
        had_credentials: bool,
        detail: String,
    },
    #[error("GET {url}: {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("GET {url}: {cause}")]
    Transport { url: String, cause: String },
    #[error("token from {realm}: {cause}")]
    Token { realm: String, cause: String },
    #[error("{what}: content digest {actual} does not match {expected}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("{0}")]
    Hosts(#[from] HostsError),
    #[error("{what}: {cause}")]
    Protocol { what: String, cause: String },
}

impl RegistryError {
    /// Worth another endpoint or another try: connection trouble, 5xx, 429, a truncated body.
    pub fn is_transient(&self) -> bool {
        match self {
            RegistryError::Transport { .. } => true,
            RegistryError::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}

/// A manifest or index as fetched, with its verified digest.
#[derive(Debug, Clone)]
pub struct Document {
    pub media_type: Option<String>,
    pub bytes: Vec<u8>,
    pub digest: Digest,
    pub endpoint: Endpoint,
}

/// The distribution client. Cheap to share (`Arc`); tokens are cached per endpoint and repository.
pub struct Registry {
    http: HttpClient,
    hosts: Hosts,
    keychain: Keychain,
    tokens: Mutex<HashMap<String, String>>,
}

impl Registry {
    pub fn new(dialer: Dialer, hosts: Hosts, keychain: Keychain) -> Registry {
        Registry {
            http: client(dialer),
            hosts,
            keychain,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The endpoints for a reference's registry, in the order they are tried.
    pub fn endpoints(&self, r: &Reference) -> Result<Vec<Endpoint>, RegistryError> {
        Ok(self.hosts.endpoints(r.registry())?)
    }

    /// Fetch a manifest or index by tag or digest, trying each capable endpoint in turn (falling through
    /// on connection errors, 5xx and 404). When `want` is given, the content must hash to it.
    pub async fn manifest(
        &self,
        r: &Reference,
        reference: &str,
        want: Option<&Digest>,
    ) -> Result<Document, RegistryError> {
        let by_digest = want.is_some();
        let endpoints: Vec<Endpoint> = self
            .endpoints(r)?
            .into_iter()
            .filter(|e| if by_digest { e.pull } else { e.resolve })
            .collect();
        let mut last: Option<RegistryError> = None;
        let mut not_found = Vec::new();
        for ep in &endpoints {
            let path = format!("/{}/manifests/{reference}", r.repository());
            match self
                .fetch_document(ep, r, &path, Some(ACCEPT_MANIFESTS))
                .await
            {
                Ok((media_type, bytes)) => {
                    let digest = Digest::sha256_of(&bytes);
                    if let Some(w) = want {
                        let actual = match w.algorithm() {
                            crate::digest::Algorithm::Sha256 => digest.clone(),
                            a => {
                                let mut h = crate::digest::Hasher::new(a);
                                h.update(&bytes);
                                h.finish()
                            }
                        };
                        if &actual != w {
                            return Err(RegistryError::DigestMismatch {
                                what: format!("manifest of {r} from {ep}"),
                                expected: w.clone(),
                                actual,
                            });
                        }
                    }
                    return Ok(Document {
                        media_type,
                        bytes,
                        digest,
                        endpoint: ep.clone(),
                    });
                }
                Err(RegistryError::Status { status: 404, .. }) => {
                    tracing::debug!(endpoint = %ep, "manifest not found, next endpoint");
                    not_found.push(ep.to_string());
                }
                // A mirror that fails or refuses us is skipped; the upstream's refusal is final.
                Err(e)
                    if e.is_transient()
                        || (ep.mirror && matches!(e, RegistryError::Unauthorized { .. })) =>
                {
                    tracing::debug!(endpoint = %ep, error = %e, "endpoint failed, next");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        match last {
            Some(e) if not_found.is_empty() => Err(e),
            _ => Err(RegistryError::NotFound {
                reference: r.to_string(),
                tried: if endpoints.is_empty() {
                    "no endpoint (check hosts.toml capabilities)".into()
                } else {
                    endpoints
                        .iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            }),
        }
    }

    /// A small blob (an image config) in memory, verified.
    pub async fn small_blob(
        &self,
        ep: &Endpoint,
        r: &Reference,
        digest: &Digest,
    ) -> Result<Vec<u8>, RegistryError> {
        let path = format!("/{}/blobs/{digest}", r.repository());
        let (_, bytes) = self.fetch_document(ep, r, &path, None).await?;
        let mut h = crate::digest::Hasher::new(digest.algorithm());
        h.update(&bytes);
        let actual = h.finish();
        if &actual != digest {
            return Err(RegistryError::DigestMismatch {
                what: format!("blob {digest} of {r} from {ep}"),
                expected: digest.clone(),
                actual,
            });
        }
        Ok(bytes)
    }

    /// Start streaming a blob: the response body, unverified (the caller hashes as it consumes).
    pub async fn open_blob(
        &self,
        ep: &Endpoint,
        r: &Reference,
        digest: &Digest,
    ) -> Result<Incoming, RegistryError> {
        let path = format!("/{}/blobs/{digest}", r.repository());
        let (url, resp) = self.get(ep, r, &path, None).await?;
        check_status(&url, resp).await.map(|r| r.into_body())
    }

    async fn fetch_document(
        &self,
        ep: &Endpoint,
        r: &Reference,
        path: &str,
        accept: Option<&str>,
    ) -> Result<(Option<String>, Vec<u8>), RegistryError> {
        let (url, resp) = self.get(ep, r, path, accept).await?;
        let resp = check_status(&url, resp).await?;
        let media_type = resp
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = http_body_util::Limited::new(resp.into_body(), MAX_DOCUMENT)
            .collect()
            .await
            .map_err(|e| RegistryError::Transport {
                url: url.clone(),
                cause: format!("read body: {e}"),
            })?
            .to_bytes();
        Ok((media_type, body.to_vec()))
    }

    /// GET with auth: a cached token first; on 401 follow the challenge once and retry.
    async fn get(
        &self,
        ep: &Endpoint,
        r: &Reference,
        path: &str,
        accept: Option<&str>,
    ) -> Result<(String, Response<Incoming>), RegistryError> {
        let mut url = format!("{}{}{}", ep.origin(), ep.path, path);
        if ep.mirror {
            url.push_str(&format!("?ns={}", encode(r.registry())));
        }
        let key = format!("{}|{}", ep.origin(), r.repository());
        let mut auth = self.tokens.lock().unwrap().get(&key).cloned();
        let creds = self.keychain.get(&authority(ep)).or_else(|| {
            // The upstream's own credentials are never sent to a mirror.
            if ep.mirror {
                None
            } else {
                self.keychain.get(r.registry())
            }
        });
        for attempt in 0..2 {
            let resp = self.send(&url, accept, auth.as_deref()).await?;
            if resp.status() != StatusCode::UNAUTHORIZED {
                return Ok((url, resp));
            }
            let header = resp
                .headers()
                .get(hyper::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let detail = body_text(resp).await;
            let unauthorized = |detail: String| RegistryError::Unauthorized {
                url: url.clone(),
                had_credentials: creds.is_some(),
                detail,
            };
            if attempt == 1 {
                return Err(unauthorized(detail));
            }
            let value = match parse_challenge(&header) {
                Some(Challenge::Basic) => match creds {
                    Some(c) => c.basic_header(),
                    None => return Err(unauthorized(detail)),
                },
                Some(Challenge::Bearer {
                    realm,
                    service,
                    scope,
                }) => {
                    let scope =
                        scope.unwrap_or_else(|| format!("repository:{}:pull", r.repository()));
                    let token = self
                        .token(&realm, service.as_deref(), &scope, creds)
                        .await?;
                    format!("Bearer {token}")
                }
                None => return Err(unauthorized(format!("unsupported challenge {header:?}"))),
            };
            self.tokens
                .lock()
                .unwrap()
                .insert(key.clone(), value.clone());
            auth = Some(value);
        }
        unreachable!("the loop returns on its second pass")
    }

    async fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
        creds: Option<&crate::auth::Credentials>,
    ) -> Result<String, RegistryError> {
        let terr = |cause: String| RegistryError::Token {
            realm: realm.to_string(),
            cause,
        };
        if !(realm.starts_with("https://") || realm.starts_with("http://") && realm_plain_ok(realm))
        {
            return Err(terr("realm must be https (or http on loopback)".into()));
        }
        let mut url = format!("{realm}?scope={}", encode(scope));
        if let Some(s) = service {
            url.push_str(&format!("&service={}", encode(s)));
        }
        let auth = creds.map(|c| c.basic_header());
        let resp = self.send(&url, None, auth.as_deref()).await?;
        if !resp.status().is_success() {
            let status = resp.status();
            return Err(terr(format!("{status}: {}", body_text(resp).await)));
        }
        let body = http_body_util::Limited::new(resp.into_body(), 1 << 20)
            .collect()
            .await
            .map_err(|e| terr(e.to_string()))?
            .to_bytes();
        #[derive(serde::Deserialize)]
        struct Tok {
            token: Option<String>,
            access_token: Option<String>,
        }
        let t: Tok = serde_json::from_slice(&body).map_err(|e| terr(e.to_string()))?;
        t.token
            .or(t.access_token)
            .ok_or_else(|| terr("no token in the answer".into()))
    }

    /// One GET, following redirects (blob storage often lives elsewhere). Credentials go only to the
    /// origin they were meant for.
    async fn send(
        &self,
        url: &str,
        accept: Option<&str>,
        auth: Option<&str>,
    ) -> Result<Response<Incoming>, RegistryError> {
        let mut current = url.to_string();
        let origin = origin_of(url);
        for _ in 0..6 {
            let mut req = Request::get(&current).header(hyper::header::USER_AGENT, USER_AGENT);
            if let Some(a) = accept {
                req = req.header(hyper::header::ACCEPT, a);
            }
            if let Some(a) = auth
                && origin_of(&current) == origin
            {
                req = req.header(hyper::header::AUTHORIZATION, a);
            }
            let req = req
                .body(Empty::<Bytes>::new())
                .map_err(|e| RegistryError::Protocol {
                    what: format!("GET {current}"),
                    cause: e.to_string(),
                })?;
            let transport = |cause: String| RegistryError::Transport {
                url: current.clone(),
                cause,
            };
            let resp = tokio::time::timeout(HEADER_TIMEOUT, self.http.request(req))
                .await
                .map_err(|_| transport("no response headers within 60 s".into()))?
                .map_err(|e| transport(error_chain(&e)))?;
            if resp.status().is_redirection()
                && let Some(loc) = resp.headers().get(hyper::header::LOCATION)
            {
                let loc = loc.to_str().unwrap_or("").to_string();
                let next = if loc.starts_with("http://") || loc.starts_with("https://") {
                    loc
                } else if loc.starts_with('/') {
                    format!("{}{loc}", origin_of(&current))
                } else {
                    return Err(transport(format!("unsupported redirect to {loc:?}")));
                };
                if next.starts_with("http://") && !realm_plain_ok(&next) {
                    return Err(transport(format!("refused redirect to plain HTTP {next}")));
                }
                current = next;
                continue;
            }
            return Ok(resp);
        }
        Err(RegistryError::Transport {
            url: url.to_string(),
            cause: "too many redirects".into(),
        })
    }
}

async fn check_status(
    url: &str,
    resp: Response<Incoming>,
) -> Result<Response<Incoming>, RegistryError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = body_text(resp).await;
    if status == StatusCode::FORBIDDEN {
        return Err(RegistryError::Unauthorized {
            url: url.to_string(),
            had_credentials: true,
            detail: body,
        });
    }
    Err(RegistryError::Status {
        url: url.to_string(),
        status: status.as_u16(),
        body,
    })
}

/// The first 300 characters of an error body (registries explain themselves in JSON).
async fn body_text(resp: Response<Incoming>) -> String {
    let bytes = http_body_util::Limited::new(resp.into_body(), 64 << 10)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let s = String::from_utf8_lossy(&bytes);
    let s = s.trim();
    s.chars().take(300).collect()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn origin_of(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let auth = rest.split(['/', '?']).next().unwrap_or(rest);
    format!("{scheme}://{auth}")
}

fn authority(ep: &Endpoint) -> String {
    ep.origin()
        .split_once("://")
        .map(|(_, a)| a.to_string())
        .unwrap_or_default()
}

fn realm_plain_ok(url: &str) -> bool {
    let o = origin_of(url);
    let auth = o.split_once("://").map(|x| x.1).unwrap_or("");
    is_loopback(auth)
}

/// Percent-encode a query value.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
