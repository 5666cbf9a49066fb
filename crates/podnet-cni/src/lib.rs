//! `podnet-cni`: a CNI 1.1 plugin (also 0.3.0 to 1.0.0) that connects a container to a node bridge
//! through a veth pair, with a built-in durable IPAM, nftables masquerade and host ports.
//!
//! The binary is a thin shell around [`run`]: environment and stdin in, stdout text and exit code out
//! ([`exec`] is that shell, so a test crate can build the very same executable).

mod addressing;
mod attachment;
mod delegate;
mod fail;
pub mod firewall;
pub mod host;
mod pod;
mod recover;
mod undo;
mod verbs;

use podnet_types::cni::config::sniff_version;
use podnet_types::cni::{CniError, CniVersion, Command, ErrorCode, NetConf, Request};
use serde_json::json;

/// What the plugin prints on stdout and the exit code it returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub stdout: String,
    pub code: i32,
}

/// The plugin executable: reads the process environment and stdin, prints the result, exits.
pub fn exec() -> ! {
    use std::io::{Read, Write};
    let mut stdin = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut stdin) {
        let err = CniError::new(ErrorCode::Io, format!("read configuration from stdin: {e}"));
        println!("{}", err.to_json(CniVersion::LATEST.as_str()));
        std::process::exit(1);
    }
    if std::env::var_os("CNI_COMMAND").is_none() {
        // Run by hand: say what this is, as the reference plugins do.
        eprintln!(
            "podnet-cni {}: CNI plugin (protocol versions 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0)",
            env!("CARGO_PKG_VERSION")
        );
    }
    let outcome = run(|k| std::env::var(k).ok(), &stdin);
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(outcome.stdout.as_bytes());
    if !outcome.stdout.is_empty() {
        let _ = out.write_all(b"\n");
    }
    let _ = out.flush();
    std::process::exit(outcome.code);
}

/// Runs one invocation: `env` reads `CNI_*` variables, `stdin` is the configuration.
pub fn run(env: impl Fn(&str) -> Option<String>, stdin: &[u8]) -> Outcome {
    // Errors are printed in the version the runtime speaks, when it can be told at all.
    let answer_version = sniff_version(stdin)
        .filter(|v| v.parse::<CniVersion>().is_ok())
        .unwrap_or_else(|| CniVersion::LATEST.as_str().to_string());
    match dispatch(env, stdin) {
        Ok(stdout) => Outcome { stdout, code: 0 },
        Err(e) => Outcome {
            stdout: e.to_json(&answer_version),
            code: 1,
        },
    }
}

fn dispatch(env: impl Fn(&str) -> Option<String>, stdin: &[u8]) -> Result<String, CniError> {
    let req = Request::from_env(env)?;
    if req.command == Command::Version {
        return Ok(version_reply(stdin));
    }
    let parsed = match NetConf::parse_for(req.command, stdin) {
        Ok(p) => p,
        // Without a network name (or any JSON at all) nothing podnet made can be found, and no ADD
        // can have made anything with this input. Failing would only make the runtime retry forever.
        Err(e) if req.command == Command::Del => {
            log(&req, &format!("nothing to undo: {e}"));
            return Ok(String::new());
        }
        Err(e) => return Err(e),
    };
    for e in req.ignored.iter().chain(&parsed.ignored) {
        log(
            &req,
            &format!("ignored (not needed for {}): {e}", req.command.as_str()),
        );
    }
    let conf = parsed.conf;
    let v = conf.cni_version;
    let allowed = match req.command {
        Command::Check => v.allows_check(),
        Command::Status | Command::Gc => v.allows_status_and_gc(),
        _ => true,
    };
    if !allowed {
        return Err(CniError::new(
            ErrorCode::IncompatibleVersion,
            format!("config version {v} does not allow {}", req.command.as_str()),
        ));
    }
    match req.command {
        Command::Add => {
            for note in &conf.runtime.ignored {
                log(&req, note);
            }
            verbs::add::add(&req, &conf).map(|result| result.to_string())
        }
        Command::Del => verbs::del::del(&req, &conf).map(|()| String::new()),
        Command::Check => verbs::check::check(&req, &conf).map(|()| String::new()),
        Command::Gc => verbs::gc::gc(&req, &conf).map(|()| String::new()),
        Command::Status => verbs::status::status(&req, &conf).map(|()| String::new()),
        Command::Version => unreachable!("answered above"),
    }
}

/// The plugin's log: one line on stderr, which runtimes put in their own log (containerd, CRI-O and
/// podman pass a plugin's stderr through), naming the verb and the attachment.
pub(crate) fn log(req: &Request, msg: &str) {
    let who = match (req.command, &req.container_id) {
        (Command::Add | Command::Del | Command::Check, Some(_)) => format!(" {}", req.subject()),
        _ => String::new(),
    };
    eprintln!("podnet-cni: {}{who}: {msg}", req.command.as_str());
}

fn version_reply(stdin: &[u8]) -> String {
    let asked = sniff_version(stdin).unwrap_or_else(|| CniVersion::LATEST.as_str().to_string());
    let supported: Vec<&str> = CniVersion::SUPPORTED.iter().map(|v| v.as_str()).collect();
    json!({ "cniVersion": asked, "supportedVersions": supported }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn invoke(vars: &[(&str, &str)], stdin: &str) -> Outcome {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        run(|k| m.get(k).cloned(), stdin.as_bytes())
    }

    #[test]
    fn version_lists_every_supported_version() {
        let out = invoke(&[("CNI_COMMAND", "VERSION")], r#"{"cniVersion":"0.4.0"}"#);
        assert_eq!(out.code, 0);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(
            v["supportedVersions"],
            json!(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
        );
    }

    #[test]
    fn errors_are_spec_shaped_json_in_the_callers_version() {
        let out = invoke(
            &[("CNI_COMMAND", "ADD")],
            r#"{"cniVersion":"0.3.1","name":"n","ipam":{"subnet":"10.0.0.0/24"}}"#,
        );
        assert_eq!(out.code, 1);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(v["cniVersion"], "0.3.1");
        assert_eq!(v["code"], 4);
        assert!(v["msg"].as_str().unwrap().contains("CNI_CONTAINERID"));
    }

    #[test]
    fn verbs_newer_than_the_config_version_are_refused() {
        let conf = r#"{"cniVersion":"1.0.0","name":"n","ipam":{"subnet":"10.0.0.0/24"}}"#;
        let out = invoke(&[("CNI_COMMAND", "STATUS")], conf);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(v["code"], 1, "{}", out.stdout);
        let conf = r#"{"cniVersion":"0.3.1","name":"n","ipam":{"subnet":"10.0.0.0/24"}}"#;
        let out = invoke(
            &[
                ("CNI_COMMAND", "CHECK"),
                ("CNI_CONTAINERID", "c"),
                ("CNI_NETNS", "/x"),
                ("CNI_IFNAME", "eth0"),
            ],
            conf,
        );
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(v["code"], 1, "{}", out.stdout);
    }

    #[test]
    fn del_with_nothing_to_identify_succeeds_and_says_so() {
        let env = [
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
        ];
        for stdin in [
            "",
            "not json",
            "[1]",
            r#"{"cniVersion":"1.0.0"}"#,
            r#"{"name":"a/b"}"#,
        ] {
            let out = invoke(&env, stdin);
            assert_eq!(
                out,
                Outcome {
                    stdout: String::new(),
                    code: 0
                },
                "{stdin:?}"
            );
        }
        // ADD refuses the same input, naming the field.
        let mut add = env.to_vec();
        add[0] = ("CNI_COMMAND", "ADD");
        add.push(("CNI_NETNS", "/x"));
        let out = invoke(&add, r#"{"cniVersion":"1.0.0"}"#);
        assert_eq!(out.code, 1);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(v["code"], 7);
        assert!(v["msg"].as_str().unwrap().starts_with("name:"));
    }
}
