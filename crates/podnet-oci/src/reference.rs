//! Image references, normalised as Docker and containerd do (the `distribution/reference` grammar).
//!
//! `nginx` is `docker.io/library/nginx:latest`; `index.docker.io/x/y` is `docker.io/x/y:latest`;
//! `localhost:5000/a` keeps its registry; `name@sha256:...` has a digest and no implied tag; `name:tag@digest`
//! keeps both (the digest decides what is pulled). Pure: no IO.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;

/// The registry Docker Hub images live in, as references spell it.
pub const DOCKER_HUB: &str = "docker.io";
const NAME_TOTAL_MAX: usize = 255;

/// A normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid image reference {input:?}: {reason}")]
pub struct ReferenceError {
    pub input: String,
    pub reason: String,
}

impl Reference {
    /// Parse and normalise a reference as `docker pull` accepts it.
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        let err = |reason: &str| ReferenceError {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        if input.is_empty() {
            return Err(err("empty"));
        }
        if input.len() == 64 && input.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err(
                "a 64-digit hexadecimal string is an image ID, not a reference",
            ));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => (
                r,
                Some(d.parse::<Digest>().map_err(|e| err(&e.to_string()))?),
            ),
            None => (input, None),
        };
        // A tag is what follows the last ':' when no '/' follows it (else the ':' belongs to a port).
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if name.len() > NAME_TOTAL_MAX {
            return Err(err("name longer than 255 characters"));
        }
        if let Some(t) = tag {
            check_tag(t).map_err(&err)?;
        }
        let (registry, path) = split_registry(name);
        check_registry(registry).map_err(|r| err(&r))?;
        let registry = if registry == "index.docker.io" || registry == "registry-1.docker.io" {
            DOCKER_HUB
        } else {
            registry
        };
        if path.is_empty() {
            return Err(err("no repository name"));
        }
        for component in path.split('/') {
            check_path_component(component).map_err(|r| err(&r))?;
        }
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_string()
        };
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_string()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_string()),
        };
        Ok(Reference {
            registry: registry.to_string(),
            repository,
            tag,
            digest,
        })
    }

    /// Build a reference from parts already normalised (e.g. a record in the store).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The registry host (with port), `docker.io` for Docker Hub.
    pub fn registry(&self) -> &str {
        &self.registry
    }
    /// The repository path inside the registry (`library/nginx`).
    pub fn repository(&self) -> &str {
        &self.repository
    }
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }
    /// What the registry is asked for: the digest when there is one, else the tag.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_string(),
        }
    }
    /// `registry/repository` without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
    /// The short form Docker prints: `nginx:latest`, `user/app:1`, `quay.io/x/y:2`.
    pub fn familiar(&self) -> String {
        let first = self.repository.split('/').next().unwrap_or("");
        // Docker would drop `docker.io/` even when the rest then reads as a registry; we keep it.
        let ambiguous = first.contains(['.', ':']) || first == "localhost";
        let name = if self.registry == DOCKER_HUB && !ambiguous {
            self.repository
                .strip_prefix("library/")
                .filter(|r| !r.contains('/'))
                .unwrap_or(&self.repository)
                .to_string()
        } else {
            self.name()
        };
        let mut s = name;
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(&d.to_string());
        }
        s
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

/// Docker's rule: the first component is a registry when it has a '.' or ':', is `localhost`, or has an
/// uppercase letter (repository paths are lowercase); otherwise the image lives on Docker Hub.
fn split_registry(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (first, rest)
        }
        _ => (DOCKER_HUB, name),
    }
}

fn check_tag(tag: &str) -> Result<(), &'static str> {
    let mut bytes = tag.bytes();
    let first_ok = matches!(bytes.next(), Some(b) if b.is_ascii_alphanumeric() || b == b'_');
    if !first_ok || tag.len() > 128 {
        return Err("tag must start with a letter, digit or '_' and be at most 128 characters");
    }
    if !bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')) {
        return Err("tag may hold only letters, digits, '_', '.' and '-'");
    }
    Ok(())
}

fn check_registry(registry: &str) -> Result<(), String> {
    // host[:port]; host is DNS labels or a bracketed IPv6 address.
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("registry {registry:?}: unclosed '['"))?;
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("registry {registry:?}: bad IPv6 address"));
        }
        match after.strip_prefix(':') {
            Some(p) => ("x", Some(p)),
            None if after.is_empty() => ("x", None),
            None => return Err(format!("registry {registry:?}: junk after ']'")),
        }
    } else {
        match registry.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (registry, None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("registry {registry:?}: bad port"));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if !host.split('.').all(label_ok) {
        return Err(format!("registry {registry:?}: bad host name"));
    }
    Ok(())
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn check_path_component(c: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "repository component {c:?}: use lowercase letters and digits, separated by '.', '_', '__' or '-'"
        ))
    };
    let b = c.as_bytes();
    if b.is_empty() {
        return bad();
    }
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    let mut i = 0;
    while i < b.len() {
        if !alnum(b[i]) {
            return bad();
        }
        while i < b.len() && alnum(b[i]) {
            i += 1;
        }
        if i == b.len() {
            break;
        }
        // A separator, then more alphanumerics.
        let sep_start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return bad(),
        }
        if i == b.len() || i == sep_start {
            return bad();
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn normalises_like_docker() {
        let cases = [
            ("nginx", "docker.io/library/nginx:latest"),
            ("nginx:alpine", "docker.io/library/nginx:alpine"),
            ("library/nginx", "docker.io/library/nginx:latest"),
            ("user/app:1.0", "docker.io/user/app:1.0"),
            ("index.docker.io/user/app", "docker.io/user/app:latest"),
            ("docker.io/nginx", "docker.io/library/nginx:latest"),
            (
                "registry.k8s.io/echoserver:1.4",
                "registry.k8s.io/echoserver:1.4",
            ),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/a/b/c:t", "localhost:5000/a/b/c:t"),
            ("127.0.0.1:5000/busybox", "127.0.0.1:5000/busybox:latest"),
            ("[::1]:5000/busybox", "[::1]:5000/busybox:latest"),
            ("Host/app", "Host/app:latest"),
            (
                "a__b/c-d--e.f_g:T_1.x-y",
                "docker.io/a__b/c-d--e.f_g:T_1.x-y",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                Reference::parse(input).unwrap().to_string(),
                want,
                "{input}"
            );
        }
    }

    #[test]
    fn digests_with_and_without_tags() {
        let r = Reference::parse(&format!("busybox@{D}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{D}"));
        assert_eq!(r.manifest_reference(), D);
        let r = Reference::parse(&format!("busybox:1.36@{D}")).unwrap();
        assert_eq!(r.tag(), Some("1.36"));
        assert_eq!(r.manifest_reference(), D);
        assert_eq!(r.familiar(), format!("busybox:1.36@{D}"));
    }

    #[test]
    fn rejects_what_docker_rejects() {
        for bad in [
            "",
            "UPPER",
            "nginx:",
            ":tag",
            "a//b",
            "a/",
            "-a",
            "a-",
            "a..b",
            "a___b",
            "nginx:-bad",
            "nginx@sha256:short",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "host:99999999/app",
            "[::1/app",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn familiar_is_the_short_form() {
        assert_eq!(
            Reference::parse("nginx").unwrap().familiar(),
            "nginx:latest"
        );
        assert_eq!(Reference::parse("u/a").unwrap().familiar(), "u/a:latest");
        assert_eq!(
            Reference::parse("quay.io/x/y:2").unwrap().familiar(),
            "quay.io/x/y:2"
        );
    }

    fn component() -> impl Strategy<Value = String> {
        "[a-z0-9]{1,5}((\\.|_|__|-{1,2})[a-z0-9]{1,5}){0,2}"
    }

    fn reference() -> impl Strategy<Value = String> {
        (
            prop::option::of(prop_oneof![
                Just("docker.io".to_string()),
                Just("localhost:5000".to_string()),
                "[a-z]{1,6}\\.[a-z]{2,3}(:[0-9]{1,4})?",
            ]),
            prop::collection::vec(component(), 1..4),
            prop::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..8)),
        )
            .prop_map(|(reg, mut path, tag, dig)| {
                // Without a registry, a first component with a '.' would be read as one (Docker does too).
                if reg.is_none() {
                    path[0] = path[0].replace('.', "-");
                }
                let mut s = String::new();
                if let Some(r) = reg {
                    s.push_str(&r);
                    s.push('/');
                }
                s.push_str(&path.join("/"));
                if let Some(t) = tag {
                    s.push(':');
                    s.push_str(&t);
                }
                if let Some(d) = dig {
                    s.push('@');
                    s.push_str(&Digest::sha256_of(&d).to_string());
                }
                s
            })
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,300}") {
            let _ = Reference::parse(&s);
        }

        #[test]
        fn valid_references_parse_and_normalisation_is_idempotent(s in reference()) {
            let r = Reference::parse(&s).unwrap();
            let again = Reference::parse(&r.to_string()).unwrap();
            prop_assert_eq!(&again, &r);
            prop_assert_eq!(Reference::parse(&r.familiar()).unwrap(), r.clone());
            prop_assert!(r.tag().is_some() || r.digest().is_some());
        }
    }
}
