//! kube-rs clients for the test server, and raw requests through them.

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::TestServer;

impl TestServer {
    /// A kube-rs client from the test kubeconfig (TLS with the lab CA, bearer token).
    pub async fn client(&self) -> Client {
        let kc = Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig");
        let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("client config");
        Client::try_from(cfg).expect("client")
    }

    /// A client without credentials.
    pub async fn anonymous_client(&self) -> Client {
        let text = std::fs::read_to_string(&self.kubeconfig)
            .unwrap()
            .replace(&format!("token: {}", self.pki.token), "token: nope");
        let kc: Kubeconfig = Kubeconfig::from_yaml(&text).expect("kubeconfig");
        let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
            .await
            .expect("client config");
        Client::try_from(cfg).expect("client")
    }
}

/// Sends a raw request; returns status, content type and body.
pub async fn raw(
    client: &Client,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, String, serde_json::Value, Vec<u8>) {
    let mut b = http::Request::builder()
        .method(method)
        .uri(path)
        .header("Accept", "application/json");
    if let Some(ct) = content_type {
        b = b.header("Content-Type", ct);
    }
    let req = b.body(body).unwrap();
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .expect("send");
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .map(|c| c.to_bytes().to_vec())
        .unwrap_or_default();
    let v = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, ct, v, bytes)
}
