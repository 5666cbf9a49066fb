//! TLS for the HTTPS listener: the certificate is chosen by SNI at each handshake from the snapshot
//! current at that moment (a Secret changed takes effect for the next connection); ALPN offers h2
//! and http/1.1. Certificates come from PEM (a `kubernetes.io/tls` Secret's `tls.crt`/`tls.key`).

use crate::config::Snapshot;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::Arc;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("read the certificate chain: {0}")]
    Chain(std::io::Error),
    #[error("no certificate in the chain")]
    NoCert,
    #[error("read the private key: {0}")]
    Key(std::io::Error),
    #[error("no private key")]
    NoKey,
    #[error("unsupported private key: {0}")]
    Unsupported(rustls::Error),
    #[error("the private key does not belong to the certificate: {0}")]
    Mismatch(rustls::Error),
}

/// A certificate and key from PEM, checked to belong together.
pub fn certified_key(chain_pem: &[u8], key_pem: &[u8]) -> Result<Arc<CertifiedKey>, CertError> {
    let chain = rustls_pemfile::certs(&mut &chain_pem[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(CertError::Chain)?;
    if chain.is_empty() {
        return Err(CertError::NoCert);
    }
    let key = rustls_pemfile::private_key(&mut &key_pem[..])
        .map_err(CertError::Key)?
        .ok_or(CertError::NoKey)?;
    let signer =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(CertError::Unsupported)?;
    let ck = CertifiedKey::new(chain, signer);
    ck.keys_match().map_err(CertError::Mismatch)?;
    Ok(Arc::new(ck))
}

#[derive(Debug)]
struct BySni(watch::Receiver<Arc<Snapshot>>);

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.borrow().certs.find(hello.server_name())
    }
}

/// The acceptor of the HTTPS listener.
pub fn acceptor(config: watch::Receiver<Arc<Snapshot>>) -> TlsAcceptor {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(BySni(config)));
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    TlsAcceptor::from(Arc::new(cfg))
}
