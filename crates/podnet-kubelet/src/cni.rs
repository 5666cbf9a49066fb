//! Calling CNI plugins the way containerd does through libcni: the node's first network configuration
//! (`*.conflist`, `*.conf`, `*.json` in lexical order), each plugin of the list exec'd from `CNI_PATH`
//! with the previous plugin's result as `prevResult` and only the capability arguments it declares,
//! the final result cached per attachment so CHECK and DEL get it back (also after a restart), DEL in
//! reverse order, and GC with the attachments still valid. So any CNI plugin chain works here, the
//! reference `bridge` + `host-local` + `portmap` as well as `podnet-cni`.

use serde_json::{Map, Value, json};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A plugin that takes longer than this is killed and the operation fails (containerd has a context
/// deadline for the same reason: a hung plugin must not wedge the node).
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("no network configuration in {0} (cni config uninitialized)")]
    NoConfig(PathBuf),
    #[error("read network configuration {path}: {reason}")]
    Config { path: PathBuf, reason: String },
    #[error("plugin type={plugin:?} failed ({verb}): {message}")]
    Plugin {
        plugin: String,
        verb: &'static str,
        message: String,
    },
    #[error("{op}: {source}")]
    Io {
        op: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> CniError {
    let op = op.into();
    move |source| CniError::Io { op, source }
}

/// A loaded network configuration list.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkList {
    pub name: String,
    pub cni_version: String,
    pub plugins: Vec<Value>,
    pub disable_check: bool,
    pub disable_gc: bool,
    /// The bytes it was loaded from (cached with each attachment, as libcni does).
    pub bytes: Vec<u8>,
    pub source: PathBuf,
}

impl NetworkList {
    /// The first valid configuration in `dir` in lexical order (containerd's choice).
    pub fn load_dir(dir: &Path) -> Result<NetworkList, CniError> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|_| CniError::NoConfig(dir.to_path_buf()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("conflist" | "conf" | "json")
                )
            })
            .collect();
        files.sort();
        let mut last_error = None;
        for f in files {
            match Self::load_file(&f) {
                Ok(list) => return Ok(list),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| CniError::NoConfig(dir.to_path_buf())))
    }

    pub fn load_file(path: &Path) -> Result<NetworkList, CniError> {
        let bytes = std::fs::read(path).map_err(|e| CniError::Config {
            path: path.into(),
            reason: e.to_string(),
        })?;
        Self::parse(&bytes, path)
    }

    pub fn parse(bytes: &[u8], path: &Path) -> Result<NetworkList, CniError> {
        let bad = |reason: &str| CniError::Config {
            path: path.into(),
            reason: reason.to_string(),
        };
        let v: Value = serde_json::from_slice(bytes).map_err(|e| bad(&e.to_string()))?;
        let obj = v.as_object().ok_or_else(|| bad("not a JSON object"))?;
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| bad("no network name"))?
            .to_string();
        let cni_version = obj
            .get("cniVersion")
            .and_then(Value::as_str)
            .unwrap_or("0.2.0")
            .to_string();
        let plugins = match obj.get("plugins") {
            Some(Value::Array(list)) if !list.is_empty() => list.clone(),
            Some(_) => return Err(bad("plugins must be a non-empty list")),
            // A single-plugin `.conf` file is a list of itself.
            None => vec![v.clone()],
        };
        for p in &plugins {
            if p.get("type")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(bad("a plugin has no type"));
            }
        }
        let flag = |k: &str| obj.get(k).and_then(Value::as_bool).unwrap_or(false);
        Ok(NetworkList {
            name,
            cni_version,
            plugins,
            disable_check: flag("disableCheck"),
            disable_gc: flag("disableGC"),
            bytes: bytes.to_vec(),
            source: path.into(),
        })
    }
}

/// One attachment: which container, in which namespace, as which interface, with which arguments.
#[derive(Debug, Clone, Default)]
pub struct Attachment {
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    /// `CNI_ARGS` pairs (kubelet's K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_INFRA_CONTAINER_ID,
    /// K8S_POD_UID).
    pub args: Vec<(String, String)>,
    /// Capability arguments (`portMappings`, `bandwidth`, `dns`, ...), given to the plugins that declare
    /// them under `runtimeConfig`.
    pub capabilities: Map<String, Value>,
}

/// Runs a network list's plugins and keeps their results.
#[derive(Debug, Clone)]
pub struct Cni {
    pub bin_dirs: Vec<PathBuf>,
    /// Where results are cached (`<dir>/results/<network>-<container>-<ifname>`), libcni's layout.
    pub cache_dir: PathBuf,
}

impl Cni {
    /// ADD through every plugin; the final result is cached and returned.
    pub fn add(&self, list: &NetworkList, att: &Attachment) -> Result<Value, CniError> {
        let mut prev: Option<Value> = None;
        for plugin in &list.plugins {
            let conf = plugin_config(list, plugin, prev.as_ref(), &att.capabilities);
            let out = self.exec(&conf, "ADD", att)?;
            let result: Value = serde_json::from_slice(&out).map_err(|e| CniError::Plugin {
                plugin: plugin_type(plugin),
                verb: "add",
                message: format!("invalid result: {e}"),
            })?;
            prev = Some(result);
        }
        let result = prev.unwrap_or(Value::Null);
        self.write_cache(list, att, &result)?;
        Ok(result)
    }

    /// DEL through every plugin in reverse order with the cached result as prevResult; the cache entry
    /// is removed when every plugin succeeded. A plugin's "not found" is the plugin's to tolerate.
    pub fn del(&self, list: &NetworkList, att: &Attachment) -> Result<(), CniError> {
        let cached = self.read_cache(&list.name, att);
        // DEL must work with what ADD used, even if the configuration changed since (libcni's rule).
        let list = cached
            .as_ref()
            .and_then(|c| c.get("config").and_then(Value::as_str))
            .and_then(base64_decode)
            .and_then(|bytes| NetworkList::parse(&bytes, &list.source).ok())
            .unwrap_or_else(|| list.clone());
        let prev = cached.as_ref().and_then(|c| c.get("result")).cloned();
        let caps = cached
            .as_ref()
            .and_then(|c| c.get("capabilityArgs"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_else(|| att.capabilities.clone());
        for plugin in list.plugins.iter().rev() {
            let conf = plugin_config(&list, plugin, prev.as_ref(), &caps);
            self.exec(&conf, "DEL", att)?;
        }
        let _ = std::fs::remove_file(self.cache_file(&list.name, att));
        Ok(())
    }

    /// CHECK (CNI >= 0.4.0, unless disabled) with the cached result.
    pub fn check(&self, list: &NetworkList, att: &Attachment) -> Result<(), CniError> {
        if list.disable_check || version_below(&list.cni_version, (0, 4)) {
            return Ok(());
        }
        let cached = self
            .read_cache(&list.name, att)
            .ok_or_else(|| CniError::Plugin {
                plugin: list.name.clone(),
                verb: "check",
                message: format!(
                    "no cached result for container {} interface {}",
                    att.container_id, att.ifname
                ),
            })?;
        let prev = cached.get("result").cloned();
        for plugin in &list.plugins {
            let conf = plugin_config(list, plugin, prev.as_ref(), &att.capabilities);
            self.exec(&conf, "CHECK", att)?;
        }
        Ok(())
    }

    /// GC: cached attachments not in `valid` are deleted (DEL with their cached result), then every
    /// plugin gets GC with the valid ones (CNI >= 1.1.0, unless disabled). Returns the stale
    /// attachments it removed and the errors it met, each named.
    pub fn gc(
        &self,
        list: &NetworkList,
        valid: &[(String, String)],
    ) -> (Vec<String>, Vec<CniError>) {
        let (removed, mut errors) = self.release_stale(list, valid);
        if !list.disable_gc && !version_below(&list.cni_version, (1, 1)) {
            let attachments: Vec<Value> = valid
                .iter()
                .map(|(id, ifname)| json!({"containerID": id, "ifname": ifname}))
                .collect();
            for plugin in &list.plugins {
                let mut conf = plugin_config(list, plugin, None, &Map::new());
                conf["cni.dev/valid-attachments"] = Value::Array(attachments.clone());
                if let Err(e) = self.exec(&conf, "GC", &Attachment::default()) {
                    errors.push(e);
                }
            }
        }
        (removed, errors)
    }

    /// The first half of [`Cni::gc`]: DEL of the attachments this runtime made (it has their cached
    /// results) that are not in `valid`; attachments made by anyone else are left alone.
    pub fn release_stale(
        &self,
        list: &NetworkList,
        valid: &[(String, String)],
    ) -> (Vec<String>, Vec<CniError>) {
        let mut removed = Vec::new();
        let mut errors = Vec::new();
        for cached in self.cached_attachments(&list.name) {
            let key = (cached.container_id.clone(), cached.ifname.clone());
            if valid.contains(&key) {
                continue;
            }
            match self.del(list, &cached) {
                Ok(()) => removed.push(format!("{}/{}", cached.container_id, cached.ifname)),
                Err(e) => errors.push(e),
            }
        }
        (removed, errors)
    }

    /// STATUS (CNI >= 1.1.0): whether the network is ready for ADDs.
    pub fn status(&self, list: &NetworkList) -> Result<(), CniError> {
        if version_below(&list.cni_version, (1, 1)) {
            return Ok(());
        }
        for plugin in &list.plugins {
            let conf = plugin_config(list, plugin, None, &Map::new());
            self.exec(&conf, "STATUS", &Attachment::default())?;
        }
        Ok(())
    }

    /// The cached result of an attachment, if any.
    pub fn cached_result(&self, network: &str, att: &Attachment) -> Option<Value> {
        self.read_cache(network, att)?.get("result").cloned()
    }

    /// Attachments with a cached result for `network` (what the node had when it last ran).
    pub fn cached_attachments(&self, network: &str) -> Vec<Attachment> {
        let dir = self.cache_dir.join("results");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let prefix = format!("{network}-");
        let mut out = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with(&prefix) {
                continue;
            }
            let Ok(bytes) = std::fs::read(e.path()) else {
                continue;
            };
            let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
                continue;
            };
            if v.get("networkName").and_then(Value::as_str) != Some(network) {
                continue;
            }
            let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let args = v
                .get("cniArgs")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|p| {
                            Some((
                                p.get(0)?.as_str()?.to_string(),
                                p.get(1)?.as_str()?.to_string(),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Attachment {
                container_id: s("containerId"),
                netns: s("netns"),
                ifname: s("ifName"),
                args,
                capabilities: v
                    .get("capabilityArgs")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default(),
            });
        }
        out
    }

    fn cache_file(&self, network: &str, att: &Attachment) -> PathBuf {
        self.cache_dir
            .join("results")
            .join(format!("{network}-{}-{}", att.container_id, att.ifname))
    }

    fn write_cache(
        &self,
        list: &NetworkList,
        att: &Attachment,
        result: &Value,
    ) -> Result<(), CniError> {
        let path = self.cache_file(&list.name, att);
        let dir = path.parent().expect("has a parent");
        std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
        let entry = json!({
            "kind": "cniCacheV1",
            "containerId": att.container_id,
            "config": base64_encode(&list.bytes),
            "ifName": att.ifname,
            "networkName": list.name,
            "netns": att.netns,
            "cniArgs": att.args.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
            "capabilityArgs": att.capabilities,
            "result": result,
        });
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(&entry).expect("serializes"))
            .map_err(io(format!("write {}", tmp.display())))?;
        std::fs::rename(&tmp, &path).map_err(io(format!("publish {}", path.display())))
    }

    fn read_cache(&self, network: &str, att: &Attachment) -> Option<Value> {
        let bytes = std::fs::read(self.cache_file(network, att)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    fn find_plugin(&self, kind: &str) -> Option<PathBuf> {
        if kind.contains('/') {
            return None; // a type is a name on CNI_PATH, never a path
        }
        self.bin_dirs
            .iter()
            .map(|d| d.join(kind))
            .find(|p| p.is_file())
    }

    /// Execs one plugin with the CNI environment and `conf` on stdin; its stdout on success.
    fn exec(
        &self,
        conf: &Value,
        verb: &'static str,
        att: &Attachment,
    ) -> Result<Vec<u8>, CniError> {
        let kind = conf
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let lower = verb.to_lowercase();
        let lower: &'static str = match lower.as_str() {
            "add" => "add",
            "del" => "delete",
            "check" => "check",
            "gc" => "gc",
            _ => "status",
        };
        let fail = |message: String| CniError::Plugin {
            plugin: kind.clone(),
            verb: lower,
            message,
        };
        let bin = self.find_plugin(&kind).ok_or_else(|| {
            fail(format!(
                "failed to find plugin {kind:?} in path {:?}",
                self.bin_dirs
            ))
        })?;
        let path = std::env::join_paths(&self.bin_dirs).unwrap_or_default();
        let args = att
            .args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";");
        let mut child = Command::new(&bin)
            .env_clear()
            .env(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            )
            .env("CNI_COMMAND", verb)
            .env("CNI_CONTAINERID", &att.container_id)
            .env("CNI_NETNS", &att.netns)
            .env("CNI_IFNAME", &att.ifname)
            .env("CNI_ARGS", args)
            .env("CNI_PATH", path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| fail(format!("exec {}: {e}", bin.display())))?;
        let input = serde_json::to_vec(conf).expect("serializes");
        let mut stdin = child.stdin.take().expect("piped");
        // The plugin may exit before reading everything; a broken pipe then shows in its status.
        let _ = stdin.write_all(&input);
        drop(stdin);
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let out_reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stdout.read_to_end(&mut buf);
            buf
        });
        let err_reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stderr.read_to_end(&mut buf);
            buf
        });
        let deadline = Instant::now() + PLUGIN_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2))
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(fail(format!("timed out after {PLUGIN_TIMEOUT:?}")));
                }
                Err(e) => return Err(fail(format!("wait: {e}"))),
            }
        };
        let out = out_reader.join().unwrap_or_default();
        let err = err_reader.join().unwrap_or_default();
        if status.success() {
            return Ok(out);
        }
        // A plugin's error is a JSON object on stdout; fall back to its stderr.
        let message = serde_json::from_slice::<Value>(&out)
            .ok()
            .and_then(|v| {
                let msg = v.get("msg")?.as_str()?.to_string();
                Some(match v.get("details").and_then(Value::as_str) {
                    Some(d) if !d.is_empty() => format!("{msg}: {d}"),
                    _ => msg,
                })
            })
            .unwrap_or_else(|| {
                let text = String::from_utf8_lossy(if err.is_empty() { &out } else { &err });
                format!("{status}: {}", text.trim())
            });
        Err(fail(message))
    }
}

fn plugin_type(plugin: &Value) -> String {
    plugin
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// One plugin's stdin: its own object plus the list's name and version, the previous result, and the
/// capability arguments it declares (libcni's injection rules).
fn plugin_config(
    list: &NetworkList,
    plugin: &Value,
    prev: Option<&Value>,
    capabilities: &Map<String, Value>,
) -> Value {
    let mut conf = plugin.clone();
    conf["name"] = Value::String(list.name.clone());
    conf["cniVersion"] = Value::String(list.cni_version.clone());
    if let Some(prev) = prev {
        conf["prevResult"] = prev.clone();
    }
    let declared = plugin.get("capabilities").and_then(Value::as_object);
    let mut runtime = Map::new();
    for (k, v) in capabilities {
        if declared.and_then(|d| d.get(k)).and_then(Value::as_bool) == Some(true) {
            runtime.insert(k.clone(), v.clone());
        }
    }
    if !runtime.is_empty() {
        conf["runtimeConfig"] = Value::Object(runtime);
    }
    conf
}

fn version_below(version: &str, min: (u32, u32)) -> bool {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let v = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    v < min
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(v: Value) -> NetworkList {
        NetworkList::parse(v.to_string().as_bytes(), Path::new("test.conflist")).unwrap()
    }

    #[test]
    fn capabilities_go_only_to_plugins_that_declare_them() {
        let l = list(json!({"cniVersion": "1.0.0", "name": "n", "plugins": [
            {"type": "podnet-cni"},
            {"type": "portmap", "capabilities": {"portMappings": true}}]}));
        let mut caps = Map::new();
        caps.insert(
            "portMappings".into(),
            json!([{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]),
        );
        caps.insert("bandwidth".into(), json!({}));
        let first = plugin_config(&l, &l.plugins[0], None, &caps);
        assert!(first.get("runtimeConfig").is_none());
        assert_eq!(first["name"], "n");
        assert_eq!(first["cniVersion"], "1.0.0");
        let prev = json!({"ips": []});
        let second = plugin_config(&l, &l.plugins[1], Some(&prev), &caps);
        assert_eq!(second["prevResult"], prev);
        assert_eq!(
            second["runtimeConfig"],
            json!({"portMappings": caps["portMappings"]})
        );
    }

    #[test]
    fn a_single_plugin_conf_is_a_list_of_itself() {
        let l = list(json!({"cniVersion": "0.4.0", "name": "n", "type": "bridge"}));
        assert_eq!(l.plugins.len(), 1);
        assert_eq!(plugin_type(&l.plugins[0]), "bridge");
        assert!(NetworkList::parse(b"{\"name\":\"x\",\"plugins\":[{}]}", Path::new("x")).is_err());
        assert!(NetworkList::parse(b"[]", Path::new("x")).is_err());
    }

    #[test]
    fn versions_compare() {
        assert!(version_below("0.3.1", (0, 4)));
        assert!(!version_below("0.4.0", (0, 4)));
        assert!(version_below("1.0.0", (1, 1)));
        assert!(!version_below("1.1.0", (1, 1)));
    }

    #[test]
    fn plugin_types_are_names_not_paths() {
        let cni = Cni {
            bin_dirs: vec![PathBuf::from("/usr/lib/cni")],
            cache_dir: PathBuf::from("/nonexistent"),
        };
        assert!(cni.find_plugin("../../bin/sh").is_none());
    }
}
