//! The echo server as seed 003 uses it: serving on :8080 in one network namespace, curl from
//! another across a veth pair, the answer naming the client's address and the server's.

use podnet_testkit::{TestNs, link};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server, killed when the test ends (also when it fails).
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn curl(ns: &TestNs, args: &[&str]) -> String {
    // Bounded retries: the server may still be binding its socket.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = ns.try_sh("curl", &[&["-sS", "--max-time", "5"], args].concat());
        if out.status.success() {
            return String::from_utf8(out.stdout).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "curl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn answers_pod_to_pod_as_seed_003_shows() {
    let server_ns = TestNs::new("echo-a");
    let client_ns = TestNs::new("echo-b");
    link(
        &server_ns,
        "eth0",
        "10.77.0.1/24".parse().unwrap(),
        &client_ns,
        "eth0",
        "10.77.0.2/24".parse().unwrap(),
    );
    let _server = Server(
        server_ns
            .command(env!("CARGO_BIN_EXE_podnet-echoserver"))
            .stdout(Stdio::null())
            .spawn()
            .expect("start podnet-echoserver"),
    );
    let out = curl(&client_ns, &["10.77.0.1:8080"]);
    let curl_version = String::from_utf8(
        Command::new("curl")
            .arg("--version")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let ua = curl_version.split_whitespace().nth(1).unwrap();
    let want = format!(
        "CLIENT VALUES:\nclient_address=10.77.0.2\ncommand=GET\nreal path=/\nquery=nil\nrequest_version=1.1\nrequest_uri=http://10.77.0.1:8080/\n\nSERVER VALUES:\nserver_version={}\n\nHEADERS RECEIVED:\naccept=*/*\nhost=10.77.0.1:8080\nuser-agent=curl/{ua}\nBODY:\n-no body in request-\n",
        podnet_echoserver::SERVER_VERSION
    );
    assert_eq!(out, want);

    // A body and a query come back as sent; so does a second request on the same connection.
    let out = curl(
        &client_ns,
        &[
            "-d",
            "hello",
            "10.77.0.1:8080/echo?x=1",
            "10.77.0.1:8080/again",
        ],
    );
    assert!(
        out.contains("command=POST\nreal path=/echo?x=1\nquery=x=1\n"),
        "{out}"
    );
    assert!(out.contains("BODY:\nhelloCLIENT VALUES:"), "{out}");
    assert!(out.contains("real path=/again\n"), "{out}");
}
