//! Per-lab PKI: a CA, the API server's serving certificate (SANs 127.0.0.1, the advertise address,
//! `kubernetes`, `kubernetes.default`, `kubernetes.default.svc`, `kubernetes.default.svc.cluster.local`,
//! `localhost`, the first service IP), a bearer token for the cluster's administrator and the key that
//! signs service-account and node tokens (ECDSA P-256, ES256). Files in the PKI directory: `ca.crt`,
//! `ca.key`, `apiserver.crt`, `apiserver.key`, `token`, `sa.key` (keys and token mode 0600). Existing
//! files are reused, so a lab keeps its identity (and the tokens it issued stay valid) across restarts.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// Why PKI material could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("certificate generation: {0}")]
    Gen(#[from] rcgen::Error),
    #[error("{0}")]
    Invalid(String),
}

/// The material in memory.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub token: String,
    /// PKCS#8 PEM of the service-account token signing key.
    pub sa_key_pem: String,
}

const CA_CN: &str = "podnet-ca";

fn ca_params() -> Result<CertificateParams, PkiError> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_CN);
    dn.push(DnType::OrganizationName, "podnet");
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2124, 1, 1);
    Ok(p)
}

/// Issues a certificate for `names` (DNS names and IP addresses) signed by the CA.
pub fn issue(
    ca_key_pem: &str,
    common_name: &str,
    names: &[String],
    server: bool,
) -> Result<(String, String), PkiError> {
    let ca_key = KeyPair::from_pem(ca_key_pem)?;
    let issuer = Issuer::new(ca_params()?, ca_key);
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    p.distinguished_name = dn;
    for n in names {
        match n.parse::<IpAddr>() {
            Ok(ip) => p.subject_alt_names.push(SanType::IpAddress(ip)),
            Err(_) => p
                .subject_alt_names
                .push(SanType::DnsName(n.clone().try_into()?)),
        }
    }
    p.extended_key_usages = if server {
        vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth]
    } else {
        vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth]
    };
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    p.not_before = rcgen::date_time_ymd(2024, 1, 1);
    p.not_after = rcgen::date_time_ymd(2124, 1, 1);
    let cert = p.signed_by(&key, &issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The serving certificate's names.
pub fn server_names(
    advertise: Ipv4Addr,
    first_service_ip: Ipv4Addr,
    extra: &[String],
) -> Vec<String> {
    let mut names: Vec<String> = vec![
        "127.0.0.1".into(),
        advertise.to_string(),
        first_service_ip.to_string(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        "kubernetes.default.svc.cluster.local".into(),
        "localhost".into(),
    ];
    for e in extra {
        if !names.contains(e) {
            names.push(e.clone());
        }
    }
    names
}

fn random_token() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..48)
        .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)]))
        .collect()
}

impl Pki {
    /// Generates fresh material in memory.
    pub fn generate(server_names: &[String]) -> Result<Pki, PkiError> {
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca_params()?.self_signed(&ca_key)?;
        let ca_key_pem = ca_key.serialize_pem();
        let (server_cert_pem, server_key_pem) =
            issue(&ca_key_pem, "kube-apiserver", server_names, true)?;
        Ok(Pki {
            ca_cert_pem: ca_cert.pem(),
            ca_key_pem,
            server_cert_pem,
            server_key_pem,
            token: random_token(),
            sa_key_pem: KeyPair::generate()?.serialize_pem(),
        })
    }

    /// Loads the material from `dir`, generating and writing whatever is missing.
    pub fn load_or_generate(dir: &Path, server_names: &[String]) -> Result<Pki, PkiError> {
        std::fs::create_dir_all(dir).map_err(|e| PkiError::Io {
            op: "create",
            path: dir.into(),
            source: e,
        })?;
        let read = |f: &str| -> Result<Option<String>, PkiError> {
            let p = dir.join(f);
            match std::fs::read_to_string(&p) {
                Ok(s) => Ok(Some(s)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(PkiError::Io {
                    op: "read",
                    path: p,
                    source: e,
                }),
            }
        };
        let (ca_cert_pem, ca_key_pem) = match (read("ca.crt")?, read("ca.key")?) {
            (Some(c), Some(k)) => (c, k),
            _ => {
                let key = KeyPair::generate()?;
                let cert = ca_params()?.self_signed(&key)?;
                let (c, k) = (cert.pem(), key.serialize_pem());
                write(dir, "ca.crt", &c, 0o644)?;
                write(dir, "ca.key", &k, 0o600)?;
                (c, k)
            }
        };
        let (server_cert_pem, server_key_pem) =
            match (read("apiserver.crt")?, read("apiserver.key")?) {
                (Some(c), Some(k)) => (c, k),
                _ => {
                    let (c, k) = issue(&ca_key_pem, "kube-apiserver", server_names, true)?;
                    write(dir, "apiserver.crt", &c, 0o644)?;
                    write(dir, "apiserver.key", &k, 0o600)?;
                    (c, k)
                }
            };
        let token = match read("token")? {
            Some(t) if !t.trim().is_empty() => t.trim().to_string(),
            _ => {
                let t = random_token();
                write(dir, "token", &t, 0o600)?;
                t
            }
        };
        let sa_key_pem = match read("sa.key")? {
            Some(k) if !k.trim().is_empty() => k,
            _ => {
                let k = KeyPair::generate()?.serialize_pem();
                write(dir, "sa.key", &k, 0o600)?;
                k
            }
        };
        Ok(Pki {
            ca_cert_pem,
            ca_key_pem,
            server_cert_pem,
            server_key_pem,
            token,
            sa_key_pem,
        })
    }

    /// The rustls server configuration for the serving certificate.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, PkiError> {
        let certs: Vec<_> = rustls_pemfile::certs(&mut self.server_cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| PkiError::Invalid(format!("serving certificate: {e}")))?;
        let key = rustls_pemfile::private_key(&mut self.server_key_pem.as_bytes())
            .map_err(|e| PkiError::Invalid(format!("serving key: {e}")))?
            .ok_or_else(|| PkiError::Invalid("no serving key".into()))?;
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| PkiError::Invalid(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| PkiError::Invalid(format!("serving certificate: {e}")))?;
        // kubectl speaks HTTP/2 when offered; websocket upgrades for exec need HTTP/1.1, which
        // kubectl requests itself for those connections
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(cfg)
    }

    /// A rustls client configuration trusting only the lab CA (for talking to nodes).
    pub fn client_config(&self) -> Result<rustls::ClientConfig, PkiError> {
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls_pemfile::certs(&mut self.ca_cert_pem.as_bytes()) {
            let c = c.map_err(|e| PkiError::Invalid(format!("CA certificate: {e}")))?;
            roots
                .add(c)
                .map_err(|e| PkiError::Invalid(format!("CA certificate: {e}")))?;
        }
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| PkiError::Invalid(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth())
    }
}

fn write(dir: &Path, name: &str, content: &str, mode: u32) -> Result<(), PkiError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let io = |op, e| PkiError::Io {
        op,
        path: path.clone(),
        source: e,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| io("create", e))?;
    f.write_all(content.as_bytes())
        .map_err(|e| io("write", e))?;
    f.sync_all().map_err(|e| io("sync", e))?;
    std::fs::rename(&tmp, &path).map_err(|e| io("rename", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_and_reuses_material() {
        let dir = tempfile::tempdir().unwrap();
        let names = server_names(
            Ipv4Addr::new(10, 100, 0, 1),
            Ipv4Addr::new(10, 96, 0, 1),
            &[],
        );
        let a = Pki::load_or_generate(dir.path(), &names).unwrap();
        let b = Pki::load_or_generate(dir.path(), &names).unwrap();
        assert_eq!(a.ca_cert_pem, b.ca_cert_pem);
        assert_eq!(a.token, b.token);
        assert_eq!(a.sa_key_pem, b.sa_key_pem);
        assert!(crate::auth::Signer::new(&a.sa_key_pem).is_ok());
        assert!(a.server_config().is_ok());
        assert!(a.client_config().is_ok());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(dir.path().join("ca.key"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
    }
}
