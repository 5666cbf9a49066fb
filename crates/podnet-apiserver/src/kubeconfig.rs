//! The user's kubeconfig: install, remove and render the `podnet` cluster, user and context, the way
//! kind does: merged into the first file of `$KUBECONFIG` (else `~/.kube/config`), never touching other
//! entries; the context is made current and the previous current-context is remembered (in the
//! context's `extensions`) and restored on removal.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Value, json};

/// The name of the cluster, user and context podnet adds.
pub const NAME: &str = "podnet";
const PREVIOUS: &str = "podnet.dev/previous-current-context";

#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid kubeconfig: {detail}")]
    Parse { path: PathBuf, detail: String },
    #[error("no kubeconfig location: set KUBECONFIG or HOME")]
    NoLocation,
}

/// The file to edit: the first entry of `$KUBECONFIG`, else `$HOME/.kube/config`.
pub fn default_path() -> Result<PathBuf, KubeconfigError> {
    if let Ok(k) = std::env::var("KUBECONFIG")
        && let Some(first) = k.split(':').find(|s| !s.is_empty())
    {
        return Ok(PathBuf::from(first));
    }
    let home = std::env::var("HOME").map_err(|_| KubeconfigError::NoLocation)?;
    Ok(Path::new(&home).join(".kube").join("config"))
}

/// A kubeconfig holding only podnet's entries.
pub fn render(server: &str, ca_cert_pem: &str, token: &str) -> Value {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_cert_pem.as_bytes());
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": NAME, "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": NAME, "user": {"token": token}}],
        "contexts": [{"name": NAME, "context": {"cluster": NAME, "user": NAME, "namespace": "default"}}],
        "current-context": NAME,
    })
}

/// `render` as YAML text.
pub fn render_yaml(server: &str, ca_cert_pem: &str, token: &str) -> String {
    podnet_apimachinery::yaml::to_string(&render(server, ca_cert_pem, token))
        .expect("kubeconfig serializes")
}

/// Writes a kubeconfig for this server alone to `path`, replacing the file; readable by its owner
/// only, since it carries the cluster's bearer token.
pub fn write_standalone(
    path: &Path,
    server: &str,
    ca_cert_pem: &str,
    token: &str,
) -> Result<(), KubeconfigError> {
    write(path, &render(server, ca_cert_pem, token))
}

/// A kubeconfig for a node's agent: the cluster at `server` (e.g. `https://10.100.0.1:6443`), user
/// `system:node:NAME` with the node's own token (see [`crate::auth::node_credentials`]).
pub fn render_node(server: &str, ca_cert_pem: &str, creds: &crate::auth::NodeCredentials) -> Value {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_cert_pem.as_bytes());
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": NAME, "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": creds.username, "user": {"token": creds.token}}],
        "contexts": [{"name": NAME, "context": {"cluster": NAME, "user": creds.username}}],
        "current-context": NAME,
    })
}

/// Writes [`render_node`] to `path` (mode 0600; the lab puts it in the node's directory).
pub fn write_node(
    path: &Path,
    server: &str,
    ca_cert_pem: &str,
    creds: &crate::auth::NodeCredentials,
) -> Result<(), KubeconfigError> {
    write(path, &render_node(server, ca_cert_pem, creds))
}

fn read(path: &Path) -> Result<Value, KubeconfigError> {
    match std::fs::read(path) {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => {
            Ok(json!({"apiVersion": "v1", "kind": "Config"}))
        }
        Ok(b) => {
            let v =
                podnet_apimachinery::yaml::from_slice(&b).map_err(|e| KubeconfigError::Parse {
                    path: path.into(),
                    detail: e.0,
                })?;
            if !v.is_object() {
                return Err(KubeconfigError::Parse {
                    path: path.into(),
                    detail: "not a mapping".into(),
                });
            }
            Ok(v)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(json!({"apiVersion": "v1", "kind": "Config"}))
        }
        Err(e) => Err(KubeconfigError::Io {
            op: "read",
            path: path.into(),
            source: e,
        }),
    }
}

fn write(path: &Path, v: &Value) -> Result<(), KubeconfigError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |op, e| KubeconfigError::Io {
        op,
        path: path.into(),
        source: e,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io("create directory for", e))?;
    }
    let text = podnet_apimachinery::yaml::to_string(v).map_err(|e| KubeconfigError::Parse {
        path: path.into(),
        detail: e.0,
    })?;
    let tmp = path.with_extension("podnet-tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io("create", e))?;
    f.write_all(text.as_bytes()).map_err(|e| io("write", e))?;
    f.sync_all().map_err(|e| io("sync", e))?;
    std::fs::rename(&tmp, path).map_err(|e| io("rename", e))
}

/// Replaces (or appends) the entry named `name` in the list `key`.
fn upsert(cfg: &mut Value, key: &str, entry: Value) {
    let name = entry["name"].clone();
    if !cfg.get(key).is_some_and(Value::is_array) {
        cfg[key] = json!([]);
    }
    let list = cfg[key].as_array_mut().expect("array");
    match list.iter_mut().find(|e| e["name"] == name) {
        Some(e) => *e = entry,
        None => list.push(entry),
    }
}

fn remove_named(cfg: &mut Value, key: &str, name: &str) {
    if let Some(Value::Array(list)) = cfg.get_mut(key) {
        list.retain(|e| e["name"] != name);
    }
}

/// Merges podnet's cluster, user and context into the kubeconfig at `path` and makes the context current.
pub fn install(
    path: &Path,
    server: &str,
    ca_cert_pem: &str,
    token: &str,
) -> Result<(), KubeconfigError> {
    let mut cfg = read(path)?;
    let ours = render(server, ca_cert_pem, token);
    let previous = cfg
        .get("current-context")
        .and_then(Value::as_str)
        .filter(|c| !c.is_empty() && *c != NAME)
        .map(String::from);
    // keep a previous current-context remembered by an earlier install
    let remembered = cfg
        .get("contexts")
        .and_then(Value::as_array)
        .and_then(|l| l.iter().find(|c| c["name"] == NAME))
        .and_then(|c| c.pointer("/context/extensions"))
        .and_then(Value::as_array)
        .and_then(|x| x.iter().find(|e| e["name"] == PREVIOUS))
        .and_then(|e| e["extension"].as_str())
        .map(String::from);
    upsert(&mut cfg, "clusters", ours["clusters"][0].clone());
    upsert(&mut cfg, "users", ours["users"][0].clone());
    let mut ctx = ours["contexts"][0].clone();
    if let Some(p) = previous.or(remembered) {
        ctx["context"]["extensions"] = json!([{"name": PREVIOUS, "extension": p}]);
    }
    upsert(&mut cfg, "contexts", ctx);
    cfg["current-context"] = json!(NAME);
    if cfg.get("apiVersion").is_none() {
        cfg["apiVersion"] = json!("v1");
    }
    if cfg.get("kind").is_none() {
        cfg["kind"] = json!("Config");
    }
    write(path, &cfg)
}

/// Removes podnet's entries; if podnet's context was current, the remembered previous context becomes
/// current again (or none).
pub fn remove(path: &Path) -> Result<(), KubeconfigError> {
    if !path.exists() {
        return Ok(());
    }
    let mut cfg = read(path)?;
    let previous = cfg
        .get("contexts")
        .and_then(Value::as_array)
        .and_then(|l| l.iter().find(|c| c["name"] == NAME))
        .and_then(|c| c.pointer("/context/extensions"))
        .and_then(Value::as_array)
        .and_then(|x| x.iter().find(|e| e["name"] == PREVIOUS))
        .and_then(|e| e["extension"].as_str())
        .map(String::from);
    remove_named(&mut cfg, "clusters", NAME);
    remove_named(&mut cfg, "users", NAME);
    remove_named(&mut cfg, "contexts", NAME);
    if cfg.get("current-context").and_then(Value::as_str) == Some(NAME) {
        let still_there = |c: &str| {
            cfg.get("contexts")
                .and_then(Value::as_array)
                .is_some_and(|l| l.iter().any(|x| x["name"] == c))
        };
        match previous.filter(|p| still_there(p)) {
            Some(p) => cfg["current-context"] = json!(p),
            None => cfg["current-context"] = json!(""),
        }
    }
    write(path, &cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_and_remove_keep_other_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: other\n  cluster:\n    server: https://10.0.0.1\ncontexts:\n- name: other\n  context:\n    cluster: other\n    user: other\nusers:\n- name: other\n  user:\n    token: x\ncurrent-context: other\n",
        )
        .unwrap();
        install(&path, "https://127.0.0.1:6443", "CA", "tok").unwrap();
        let v = read(&path).unwrap();
        assert_eq!(v["current-context"], NAME);
        assert_eq!(v["clusters"].as_array().unwrap().len(), 2);
        assert_eq!(v["users"][1]["user"]["token"], "tok");
        // a second install keeps the remembered context
        install(&path, "https://127.0.0.1:6443", "CA", "tok2").unwrap();
        let v = read(&path).unwrap();
        assert_eq!(v["clusters"].as_array().unwrap().len(), 2);
        remove(&path).unwrap();
        let v = read(&path).unwrap();
        assert_eq!(v["current-context"], "other");
        assert_eq!(v["clusters"].as_array().unwrap().len(), 1);
        assert_eq!(v["clusters"][0]["name"], "other");
    }

    #[test]
    fn a_standalone_kubeconfig_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kc");
        std::fs::write(&path, "old").unwrap();
        write_standalone(&path, "https://127.0.0.1:6443", "CA", "tok").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(read(&path).unwrap()["users"][0]["user"]["token"], "tok");
    }

    #[test]
    fn install_into_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config");
        install(&path, "https://127.0.0.1:6443", "CA", "tok").unwrap();
        let v = read(&path).unwrap();
        assert_eq!(v["contexts"][0]["context"]["cluster"], NAME);
        remove(&path).unwrap();
        assert_eq!(read(&path).unwrap()["current-context"], "");
    }
}
