//! Embedding contract: start() with several already-bound listeners, from inside another runtime, and a
//! clean shutdown that releases the store.

use std::net::{Ipv4Addr, TcpListener};

use kube::config::{KubeConfigOptions, Kubeconfig};
use podnet_apiserver::{Config, Pki, kubeconfig, pki};

async fn version(url: &str, p: &Pki) -> String {
    let kc =
        Kubeconfig::from_yaml(&kubeconfig::render_yaml(url, &p.ca_cert_pem, &p.token)).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(cfg).unwrap();
    client.apiserver_version().await.unwrap().git_version
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_every_listener_and_starts_inside_a_runtime() {
    let dir = tempfile::tempdir().unwrap();
    // the lab binds one listener per namespace; here two loopback addresses stand in for them
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.2:0").unwrap();
    let (ua, ub) = (
        format!("https://{}", a.local_addr().unwrap()),
        format!("https://{}", b.local_addr().unwrap()),
    );
    let names = pki::server_names(
        Ipv4Addr::new(127, 0, 0, 2),
        Ipv4Addr::new(10, 96, 0, 1),
        &[],
    );
    let material = Pki::load_or_generate(&dir.path().join("pki"), &names).unwrap();
    let cfg = Config::new(dir.path().join("data"), material.clone());
    let handle = podnet_apiserver::start(cfg, vec![a, b]).expect("start inside a runtime");
    assert_eq!(version(&ua, &material).await, "v1.35.0");
    assert_eq!(version(&ub, &material).await, "v1.35.0");
    tokio::task::spawn_blocking(move || handle.shutdown())
        .await
        .unwrap();
    // the store is released: a new server opens the same data directory
    let c = TcpListener::bind("127.0.0.1:0").unwrap();
    let uc = format!("https://{}", c.local_addr().unwrap());
    let handle = podnet_apiserver::start(
        Config::new(dir.path().join("data"), material.clone()),
        vec![c],
    )
    .expect("restart");
    assert_eq!(version(&uc, &material).await, "v1.35.0");
    tokio::task::spawn_blocking(move || handle.shutdown())
        .await
        .unwrap();
}

#[test]
fn a_locked_data_directory_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let material = Pki::generate(&pki::server_names(
        Ipv4Addr::LOCALHOST,
        Ipv4Addr::new(10, 96, 0, 1),
        &[],
    ))
    .unwrap();
    let first = podnet_apiserver::start(
        Config::new(dir.path().join("data"), material.clone()),
        vec![TcpListener::bind("127.0.0.1:0").unwrap()],
    )
    .unwrap();
    let second = podnet_apiserver::start(
        Config::new(dir.path().join("data"), material),
        vec![TcpListener::bind("127.0.0.1:0").unwrap()],
    );
    assert!(matches!(
        second,
        Err(podnet_apiserver::StartError::Store { .. })
    ));
    first.shutdown();
}
