//! Compact JWS (JWT) signing and verification with ES256 (ECDSA P-256, SHA-256), the algorithm of the
//! service-account key in the PKI directory.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _,
    UnparsedPublicKey,
};
use serde_json::{Value, json};

/// Why a key could not be used or a token is not ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("service-account signing key: {0}")]
    Key(String),
    #[error("signing a token failed")]
    Sign,
    #[error("not a JWT")]
    Malformed,
    #[error("unsupported token algorithm {0:?}")]
    Algorithm(String),
    #[error("invalid signature")]
    Signature,
}

/// Signs and verifies tokens with one ES256 key.
pub struct Signer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    /// The key id in token headers: the SHA-256 of the public key, base64url, as kube-apiserver names
    /// its keys.
    pub kid: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").field("kid", &self.kid).finish()
    }
}

impl Signer {
    /// From the PKCS#8 PEM in the PKI directory (`sa.key`).
    pub fn new(pkcs8_pem: &str) -> Result<Signer, JwtError> {
        let der = match rustls_pemfile::private_key(&mut pkcs8_pem.as_bytes()) {
            Ok(Some(rustls::pki_types::PrivateKeyDer::Pkcs8(k))) => k,
            Ok(_) => return Err(JwtError::Key("not a PKCS#8 private key".into())),
            Err(e) => return Err(JwtError::Key(e.to_string())),
        };
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            der.secret_pkcs8_der(),
            &rng,
        )
        .map_err(|e| JwtError::Key(format!("not an ECDSA P-256 key: {e}")))?;
        let kid = B64.encode(ring::digest::digest(
            &ring::digest::SHA256,
            key.public_key().as_ref(),
        ));
        Ok(Signer { key, rng, kid })
    }

    /// `header.claims.signature`.
    pub fn sign(&self, claims: &Value) -> Result<String, JwtError> {
        let header = json!({"alg": "ES256", "kid": self.kid});
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let sig = self
            .key
            .sign(&self.rng, input.as_bytes())
            .map_err(|_| JwtError::Sign)?;
        Ok(format!("{input}.{}", B64.encode(sig.as_ref())))
    }

    /// The claims of a token this key signed; the caller checks times and audiences.
    pub fn verify(&self, token: &str) -> Result<Value, JwtError> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let header: Value = B64
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(JwtError::Malformed)?;
        match header.get("alg").and_then(Value::as_str) {
            Some("ES256") => {}
            other => return Err(JwtError::Algorithm(other.unwrap_or("").to_string())),
        }
        let sig = B64.decode(s).map_err(|_| JwtError::Malformed)?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.key.public_key().as_ref())
            .verify(format!("{h}.{c}").as_bytes(), &sig)
            .map_err(|_| JwtError::Signature)?;
        B64.decode(c)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .filter(Value::is_object)
            .ok_or(JwtError::Malformed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_and_verifies() {
        let pem = rcgen::KeyPair::generate().unwrap().serialize_pem();
        let s = Signer::new(&pem).unwrap();
        let t = s.sign(&json!({"sub": "x", "exp": 5})).unwrap();
        assert_eq!(t.split('.').count(), 3);
        assert_eq!(s.verify(&t).unwrap()["sub"], "x");
        // another key, a changed payload, garbage: refused
        let other = Signer::new(&rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
        assert_eq!(other.verify(&t), Err(JwtError::Signature));
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = B64.encode(json!({"sub": "admin", "exp": 5}).to_string());
        parts[1] = &forged;
        assert_eq!(s.verify(&parts.join(".")), Err(JwtError::Signature));
        assert_eq!(s.verify("abc"), Err(JwtError::Malformed));
        let none = format!("{}.{}.", B64.encode(r#"{"alg":"none"}"#), B64.encode("{}"));
        assert_eq!(s.verify(&none), Err(JwtError::Algorithm("none".into())));
        assert!(Signer::new("not a key").is_err());
    }
}
