//! Pushing a layout's images into a registry (the lab's loopback mirror), with skopeo.
//!
//! Each image goes to `<registry>/<its full reference>` (`127.0.0.1:PORT/docker.io/library/nginx:
//! latest`): one repository namespace per upstream registry, so `registry.k8s.io/echoserver:1.4` and
//! `k8s.gcr.io/echoserver:1.4` (which differ in their annotations) do not collide; the lab's
//! `hosts.toml` maps each upstream onto its namespace with `override_path`. Before pushing, the
//! registry is asked for the tag's digest (one HEAD request): what it already holds is not pushed
//! again, so a registry storage shared by every lab is filled once per build.
//! `--preserve-digests` makes skopeo fail rather than rewrite a manifest: the digests the
//! registry serves are the ones the build printed.

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layout::read_index;
use crate::lock::{lock, lock_path};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// What a publish did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Published {
    /// References pushed now.
    pub pushed: Vec<String>,
    /// References the registry already held with the same digest.
    pub present: Vec<String>,
}

/// Splits `host/path/name:tag` into (`host/path/name`, `tag`).
pub fn split_tag(reference: &str) -> Option<(&str, &str)> {
    let slash = reference.rfind('/').map_or(0, |i| i + 1);
    let colon = reference[slash..].rfind(':')? + slash;
    Some((&reference[..colon], &reference[colon + 1..]))
}

/// Pushes every image of the layout at `layout_dir` to `registry` (`127.0.0.1:PORT`, plain HTTP)
/// unless the registry already has that digest under that name.
pub fn publish(
    layout_dir: &Path,
    registry: &str,
    progress: &mut dyn FnMut(&str),
) -> Result<Published> {
    // Shared: a build rewriting the layout waits until the push is done, and the other way round.
    let _lock = lock(&lock_path(layout_dir), false, progress)?;
    let mut out = Published::default();
    for named in read_index(layout_dir)? {
        let (repo, tag) = split_tag(&named.reference).ok_or_else(|| {
            Error::Invalid(format!(
                "{} in {}: no tag",
                named.reference,
                layout_dir.display()
            ))
        })?;
        if registry_digest(registry, repo, tag).as_ref() == Some(&named.manifest) {
            out.present.push(named.reference);
            continue;
        }
        progress(&format!(
            "pushing {} ({}) to {registry}",
            named.reference,
            named.manifest.short()
        ));
        let src = format!("oci:{}:{}", layout_dir.display(), named.reference);
        let dst = format!("docker://{registry}/{}", named.reference);
        let result = Command::new("skopeo")
            .args([
                "copy",
                "--quiet",
                "--preserve-digests",
                "--retry-times",
                "2",
                "--dest-tls-verify=false",
            ])
            .arg(&src)
            .arg(&dst)
            .output()
            .map_err(|e| Error::Command {
                what: format!("push {} to {registry}", named.reference),
                detail: format!("start skopeo: {e}"),
            })?;
        if !result.status.success() {
            return Err(Error::Command {
                what: format!(
                    "push {} to {registry} (skopeo copy {src} {dst})",
                    named.reference
                ),
                detail: format!(
                    "{}: {}",
                    result.status,
                    String::from_utf8_lossy(&result.stderr).trim()
                ),
            });
        }
        out.pushed.push(named.reference);
    }
    Ok(out)
}

/// The digest `registry` serves for `repo:tag` (plain HTTP HEAD), `None` if it has none or cannot
/// say.
pub fn registry_digest(registry: &str, repo: &str, tag: &str) -> Option<Digest> {
    let mut stream = TcpStream::connect(registry).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .ok()?;
    write!(
        stream,
        "HEAD /v2/{repo}/manifests/{tag} HTTP/1.1\r\nHost: {registry}\r\nAccept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).ok()?;
    if status.split_whitespace().nth(1) != Some("200") {
        return None;
    }
    for _ in 0..100 {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("docker-content-digest")
        {
            return Digest::parse(value.trim());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn tags_split_after_the_last_slash() {
        assert_eq!(
            split_tag("docker.io/library/nginx:latest"),
            Some(("docker.io/library/nginx", "latest"))
        );
        assert_eq!(
            split_tag("127.0.0.1:5000/podnet/pause:3.10"),
            Some(("127.0.0.1:5000/podnet/pause", "3.10"))
        );
        assert_eq!(split_tag("127.0.0.1:5000/podnet/pause"), None);
    }

    /// A registry that answers one HEAD: the digest header is read, a 404 is "none".
    #[test]
    fn the_registry_digest_comes_from_the_head_response() {
        let d = Digest::of(b"m");
        for (status, want) in [("200 OK", Some(d.clone())), ("404 Not Found", None)] {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap().to_string();
            let digest = d.clone();
            let server = std::thread::spawn(move || {
                let (mut s, _) = l.accept().unwrap();
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut first = String::new();
                r.read_line(&mut first).unwrap();
                assert_eq!(
                    first,
                    "HEAD /v2/docker.io/library/nginx/manifests/latest HTTP/1.1\r\n"
                );
                loop {
                    let mut l = String::new();
                    r.read_line(&mut l).unwrap();
                    if l == "\r\n" {
                        break;
                    }
                }
                // One write, and its error ignored: a client that has read a 404's status line
                // closes at once, and a later piece of the answer would meet a closed socket.
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: 0\r\nDocker-Content-Digest: {digest}\r\n\r\n"
                );
                let _ = s.write_all(answer.as_bytes());
            });
            assert_eq!(
                registry_digest(&addr, "docker.io/library/nginx", "latest"),
                want
            );
            server.join().unwrap();
        }
        // Nobody listening: none, quickly.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        drop(l);
        assert_eq!(registry_digest(&addr, "x", "y"), None);
    }
}
