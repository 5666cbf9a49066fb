//! A container's process as kubelet and containerd decide it: command line, environment, working
//! directory and user, from the pod spec, the objects it refers to, and the image's configuration.
//!
//! Pure: the caller fetches the ConfigMaps and Secrets the pod names and reads the root filesystem's
//! `/etc/passwd` and `/etc/group`; everything here is a function of those inputs.

use k8s_openapi::api::core::v1::{ConfigMap, Container, EnvVar, Pod, Secret};
use std::collections::BTreeMap;

/// The parts of an image's configuration that shape its process (OCI image config `config`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageProcess {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `NAME=value` entries.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    /// `user`, `uid`, `user:group` or `uid:gid`; empty means root.
    pub user: Option<String>,
}

/// A Service as it shows in a container's environment (Docker-link style variables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEnv {
    pub name: String,
    pub cluster_ip: String,
    /// (port name, port, protocol as `TCP`/`UDP`/`SCTP`).
    pub ports: Vec<(String, i32, String)>,
}

/// What the downward API may read that is not in the pod object itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeFacts {
    pub host_ip: Option<String>,
    pub pod_ips: Vec<String>,
}

/// The objects a pod's environment may name, fetched by the caller from the pod's namespace.
#[derive(Debug, Clone, Default)]
pub struct EnvSources {
    pub config_maps: BTreeMap<String, ConfigMap>,
    pub secrets: BTreeMap<String, Secret>,
    pub services: Vec<ServiceEnv>,
}

/// Why a container's configuration cannot be made: kubelet reports it as `CreateContainerConfigError`
/// with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The process a container runs, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub args: Vec<String>,
    /// `NAME=value`, image entries first, overridden by the pod's by name, order kept.
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

/// Resolves a container's process. `passwd` and `group` are the contents of the image's `/etc/passwd`
/// and `/etc/group` (empty when absent).
pub fn resolve(
    pod: &Pod,
    container: &Container,
    image: &ImageProcess,
    sources: &EnvSources,
    facts: &RuntimeFacts,
    passwd: &str,
    group: &str,
) -> Result<Process, ConfigError> {
    let pod_env = environment(pod, container, sources, facts)?;
    let vars: BTreeMap<&str, &str> = pod_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let expand_all = |list: &[String]| list.iter().map(|s| expand(s, &vars)).collect::<Vec<_>>();
    let command = container.command.clone().unwrap_or_default();
    let args = container.args.clone().unwrap_or_default();
    // Kubernetes' rule: command replaces the image's entrypoint and drops its cmd; args alone replace
    // only the cmd.
    let argv = match (command.is_empty(), args.is_empty()) {
        (true, true) => image.entrypoint.iter().chain(&image.cmd).cloned().collect(),
        (true, false) => image
            .entrypoint
            .iter()
            .cloned()
            .chain(expand_all(&args))
            .collect(),
        (false, _) => expand_all(&command)
            .into_iter()
            .chain(expand_all(&args))
            .collect::<Vec<_>>(),
    };
    if argv.is_empty() {
        return Err(ConfigError(
            "no command specified: the container has no command and its image no entrypoint or cmd"
                .into(),
        ));
    }
    let env = merge_env(&image.env, &pod_env);
    let cwd = container
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| image.working_dir.clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    let (uid, gid, additional_gids) = user(pod, container, image, passwd, group)?;
    Ok(Process {
        args: argv,
        env,
        cwd,
        uid,
        gid,
        additional_gids,
    })
}

/// Image entries first; a pod variable replaces the image's of the same name in place, new ones follow
/// in the pod's order (containerd's merge).
fn merge_env(image: &[String], pod: &[(String, String)]) -> Vec<String> {
    let mut out: Vec<(String, String)> = image
        .iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.clone(), String::new()),
        })
        .collect();
    for (k, v) in pod {
        match out.iter_mut().find(|(name, _)| name == k) {
            Some(slot) => slot.1 = v.clone(),
            None => out.push((k.clone(), v.clone())),
        }
    }
    out.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// The pod-defined environment of a container in kubelet's order: service variables, then `envFrom`
/// sources in order, then `env` entries in order (each may refer to earlier ones with `$(NAME)`).
/// A later definition of a name replaces an earlier one.
pub fn environment(
    pod: &Pod,
    container: &Container,
    sources: &EnvSources,
    facts: &RuntimeFacts,
) -> Result<Vec<(String, String)>, ConfigError> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| match env
        .iter_mut()
        .find(|(name, _)| *name == k)
    {
        Some(slot) => slot.1 = v,
        None => env.push((k, v)),
    };
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    for svc in &sources.services {
        // The `kubernetes` Service's variables are always there; others only with service links on.
        if links || svc.name == "kubernetes" {
            for (k, v) in service_variables(svc) {
                set(&mut env, k, v);
            }
        }
    }
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(r) = &from.config_map_ref {
            match sources.config_maps.get(&r.name) {
                Some(cm) => {
                    for (k, v) in cm.data.iter().flatten() {
                        set(&mut env, format!("{prefix}{k}"), v.clone());
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(ConfigError(format!("configmap \"{}\" not found", r.name))),
            }
        }
        if let Some(r) = &from.secret_ref {
            match sources.secrets.get(&r.name) {
                Some(s) => {
                    for (k, v) in secret_data(s) {
                        set(&mut env, format!("{prefix}{k}"), v);
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(ConfigError(format!("secret \"{}\" not found", r.name))),
            }
        }
    }
    for var in container.env.iter().flatten() {
        let value = match (&var.value, &var.value_from) {
            (Some(v), _) => {
                let vars: BTreeMap<&str, &str> =
                    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                Some(expand(v, &vars))
            }
            (None, Some(_)) => value_from(pod, container, var, namespace, sources, facts)?,
            (None, None) => Some(String::new()),
        };
        if let Some(v) = value {
            set(&mut env, var.name.clone(), v);
        }
    }
    Ok(env)
}

/// One `env[].valueFrom`; `None` when an optional source is missing (the variable is then not set).
fn value_from(
    pod: &Pod,
    container: &Container,
    var: &EnvVar,
    namespace: &str,
    sources: &EnvSources,
    facts: &RuntimeFacts,
) -> Result<Option<String>, ConfigError> {
    let from = var.value_from.as_ref().expect("checked by the caller");
    if let Some(f) = &from.field_ref {
        return field_value(pod, &f.field_path, facts).map(Some);
    }
    if let Some(r) = &from.resource_field_ref {
        return resource_value(pod, container, r).map(Some);
    }
    if let Some(r) = &from.config_map_key_ref {
        let optional = r.optional == Some(true);
        let Some(cm) = sources.config_maps.get(&r.name) else {
            return if optional {
                Ok(None)
            } else {
                Err(ConfigError(format!("configmap \"{}\" not found", r.name)))
            };
        };
        let value = cm
            .data
            .as_ref()
            .and_then(|d| d.get(&r.key))
            .cloned()
            .or_else(|| {
                cm.binary_data
                    .as_ref()
                    .and_then(|d| d.get(&r.key))
                    .map(|b| String::from_utf8_lossy(&b.0).into_owned())
            });
        return match value {
            Some(v) => Ok(Some(v)),
            None if optional => Ok(None),
            None => Err(ConfigError(format!(
                "couldn't find key {} in ConfigMap {namespace}/{}",
                r.key, r.name
            ))),
        };
    }
    if let Some(r) = &from.secret_key_ref {
        let optional = r.optional == Some(true);
        let Some(secret) = sources.secrets.get(&r.name) else {
            return if optional {
                Ok(None)
            } else {
                Err(ConfigError(format!("secret \"{}\" not found", r.name)))
            };
        };
        return match secret_data(secret).remove(&r.key) {
            Some(v) => Ok(Some(v)),
            None if optional => Ok(None),
            None => Err(ConfigError(format!(
                "couldn't find key {} in Secret {namespace}/{}",
                r.key, r.name
            ))),
        };
    }
    Err(ConfigError(format!(
        "env {}: valueFrom has no source podnet supports (fieldRef, resourceFieldRef, configMapKeyRef, secretKeyRef)",
        var.name
    )))
}

fn secret_data(secret: &Secret) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect();
    // stringData is write-only on a real server, but a caller may hand us an object that has it.
    for (k, v) in secret.string_data.iter().flatten() {
        out.insert(k.clone(), v.clone());
    }
    out
}

/// The downward API's field paths (`fieldRef.fieldPath`), as kubelet supports them for env.
pub fn field_value(pod: &Pod, path: &str, facts: &RuntimeFacts) -> Result<String, ConfigError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let indexed = |prefix: &str, map: Option<&BTreeMap<String, String>>| -> Option<String> {
        let key = path
            .strip_prefix(prefix)?
            .strip_prefix("['")?
            .strip_suffix("']")?;
        Some(map.and_then(|m| m.get(key)).cloned().unwrap_or_default())
    };
    if let Some(v) = indexed("metadata.labels", meta.labels.as_ref()) {
        return Ok(v);
    }
    if let Some(v) = indexed("metadata.annotations", meta.annotations.as_ref()) {
        return Ok(v);
    }
    let value = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into()),
        "status.hostIP" | "status.hostIPs" => facts.host_ip.clone().unwrap_or_default(),
        "status.podIP" => facts.pod_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" => facts.pod_ips.join(","),
        other => {
            return Err(ConfigError(format!("unsupported fieldPath: {other}")));
        }
    };
    Ok(value)
}

/// `key="value"` lines sorted by key, as the downward API writes label and annotation maps.
pub fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn quote(v: &str) -> String {
    serde_json::to_string(v).expect("strings serialize")
}

/// `resourceFieldRef`: a container's limit or request divided by the divisor, rounded up (kubelet's
/// rule). An unset limit reads as the node's allocatable, which kubelet substitutes; podnet reports 0
/// for it rather than guessing.
fn resource_value(
    pod: &Pod,
    container: &Container,
    r: &k8s_openapi::api::core::v1::ResourceFieldSelector,
) -> Result<String, ConfigError> {
    let target = match r.container_name.as_deref().filter(|c| !c.is_empty()) {
        Some(name) => pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|c| c.name == name))
            .ok_or_else(|| ConfigError(format!("resourceFieldRef: no container {name:?}")))?,
        None => container,
    };
    let (kind, resource) = r
        .resource
        .split_once('.')
        .ok_or_else(|| ConfigError(format!("unsupported resource: {}", r.resource)))?;
    let res = target.resources.as_ref();
    let map = match kind {
        "limits" => res.and_then(|r| r.limits.as_ref()),
        "requests" => res.and_then(|r| r.requests.as_ref()),
        _ => return Err(ConfigError(format!("unsupported resource: {}", r.resource))),
    };
    let value = map
        .and_then(|m| m.get(resource))
        .map(|q| quantity(&q.0))
        .transpose()?
        .unwrap_or(0.0);
    let divisor = match &r.divisor {
        Some(d) => quantity(&d.0)?,
        None => 1.0,
    };
    if divisor <= 0.0 {
        return Err(ConfigError(format!(
            "resourceFieldRef {}: divisor must be positive",
            r.resource
        )));
    }
    Ok(format!("{}", (value / divisor).ceil() as i64))
}

/// A Kubernetes quantity as a number (`500m` = 0.5, `64Mi` = 67108864, `1e3` = 1000).
pub fn quantity(text: &str) -> Result<f64, ConfigError> {
    let bad = || ConfigError(format!("invalid quantity {text:?}"));
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    let base: f64 = num.parse().map_err(|_| bad())?;
    let factor = match suffix {
        "" => 1.0,
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0f64.powi(2),
        "Gi" => 1024.0f64.powi(3),
        "Ti" => 1024.0f64.powi(4),
        "Pi" => 1024.0f64.powi(5),
        "Ei" => 1024.0f64.powi(6),
        s if s.starts_with(['e', 'E']) => {
            let exp: i32 = s[1..].parse().map_err(|_| bad())?;
            10f64.powi(exp)
        }
        _ => return Err(bad()),
    };
    Ok(base * factor)
}

/// The variables a Service gives containers of its namespace (`NGINX_SERVICE_HOST`, `NGINX_PORT`, ...).
pub fn service_variables(svc: &ServiceEnv) -> Vec<(String, String)> {
    let name = svc.name.to_uppercase().replace('-', "_");
    let mut out = Vec::new();
    let Some((first_name, first_port, first_proto)) = svc.ports.first() else {
        return out;
    };
    let _ = first_name;
    out.push((format!("{name}_SERVICE_HOST"), svc.cluster_ip.clone()));
    out.push((format!("{name}_SERVICE_PORT"), first_port.to_string()));
    for (port_name, port, _) in &svc.ports {
        if !port_name.is_empty() {
            out.push((
                format!(
                    "{name}_SERVICE_PORT_{}",
                    port_name.to_uppercase().replace('-', "_")
                ),
                port.to_string(),
            ));
        }
    }
    let ip = &svc.cluster_ip;
    out.push((
        format!("{name}_PORT"),
        format!("{}://{ip}:{first_port}", first_proto.to_lowercase()),
    ));
    for (_, port, proto) in &svc.ports {
        let lower = proto.to_lowercase();
        let prefix = format!("{name}_PORT_{port}_{}", proto.to_uppercase());
        out.push((prefix.clone(), format!("{lower}://{ip}:{port}")));
        out.push((format!("{prefix}_PROTO"), lower));
        out.push((format!("{prefix}_PORT"), port.to_string()));
        out.push((format!("{prefix}_ADDR"), ip.clone()));
    }
    out
}

/// Kubernetes' `$(VAR)` expansion: a defined name is replaced, an undefined one is left as written,
/// `$$` is a literal `$`.
pub fn expand(input: &str, vars: &BTreeMap<&str, &str>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                b'$' => {
                    out.push('$');
                    i += 2;
                    continue;
                }
                b'(' => {
                    if let Some(close) = input[i + 2..].find(')') {
                        let name = &input[i + 2..i + 2 + close];
                        match vars.get(name) {
                            Some(v) => out.push_str(v),
                            None => out.push_str(&input[i..i + 3 + close]),
                        }
                        i += 3 + close;
                        continue;
                    }
                }
                _ => {}
            }
        }
        let ch = input[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// uid, gid and additional gids: the container's securityContext, else the pod's, else the image's
/// `User` resolved against its `/etc/passwd` and `/etc/group`; plus the pod's supplementalGroups and
/// fsGroup, and the groups the user belongs to in `/etc/group` (containerd's behaviour).
fn user(
    pod: &Pod,
    container: &Container,
    image: &ImageProcess,
    passwd: &str,
    group: &str,
) -> Result<(u32, u32, Vec<u32>), ConfigError> {
    let csc = container.security_context.as_ref();
    let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let run_as_user = csc
        .and_then(|s| s.run_as_user)
        .or_else(|| psc.and_then(|s| s.run_as_user));
    let run_as_group = csc
        .and_then(|s| s.run_as_group)
        .or_else(|| psc.and_then(|s| s.run_as_group));
    let image_user = image.user.as_deref().unwrap_or("").trim();
    let (uid, mut gid, user_name) = match run_as_user {
        Some(uid) => {
            let uid = id(uid, "runAsUser")?;
            // With runAsUser alone, the gid is the user's primary group in the image, else 0.
            let entry = passwd_entries(passwd).find(|e| e.1 == uid);
            (uid, entry.as_ref().map_or(0, |e| e.2), entry.map(|e| e.0))
        }
        None if image_user.is_empty() => (0, 0, Some("root".to_string())),
        None => {
            let (u, g) = match image_user.split_once(':') {
                Some((u, g)) => (u, Some(g)),
                None => (image_user, None),
            };
            let (uid, primary, name) = match u.parse::<u32>() {
                Ok(uid) => {
                    let entry = passwd_entries(passwd).find(|e| e.1 == uid);
                    (uid, entry.as_ref().map_or(0, |e| e.2), entry.map(|e| e.0))
                }
                Err(_) => {
                    let e = passwd_entries(passwd).find(|e| e.0 == u).ok_or_else(|| {
                        ConfigError(format!(
                            "unable to find user {u}: no matching entries in passwd file"
                        ))
                    })?;
                    (e.1, e.2, Some(e.0))
                }
            };
            let gid = match g {
                None => primary,
                Some(g) => match g.parse::<u32>() {
                    Ok(gid) => gid,
                    Err(_) => group_entries(group)
                        .find(|e| e.0 == g)
                        .map(|e| e.1)
                        .ok_or_else(|| {
                            ConfigError(format!(
                                "unable to find group {g}: no matching entries in group file"
                            ))
                        })?,
                },
            };
            (uid, gid, name)
        }
    };
    if let Some(g) = run_as_group {
        gid = id(g, "runAsGroup")?;
    }
    let mut extra: Vec<u32> = Vec::new();
    if let Some(name) = &user_name {
        for (_, g, members) in group_entries(group) {
            if members.iter().any(|m| m == name) && g != gid {
                extra.push(g);
            }
        }
    }
    for g in psc
        .and_then(|s| s.supplemental_groups.clone())
        .unwrap_or_default()
        .into_iter()
        .chain(psc.and_then(|s| s.fs_group))
    {
        extra.push(id(g, "supplementalGroups")?);
    }
    extra.sort_unstable();
    extra.dedup();
    Ok((uid, gid, extra))
}

fn id(v: i64, what: &str) -> Result<u32, ConfigError> {
    u32::try_from(v).map_err(|_| ConfigError(format!("{what} {v} is out of range")))
}

/// (name, uid, gid) of each well-formed `/etc/passwd` line.
fn passwd_entries(passwd: &str) -> impl Iterator<Item = (String, u32, u32)> + '_ {
    passwd.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4).then_some(())?;
        Some((f[0].to_string(), f[2].parse().ok()?, f[3].parse().ok()?))
    })
}

/// (name, gid, members) of each well-formed `/etc/group` line.
fn group_entries(group: &str) -> impl Iterator<Item = (String, u32, Vec<String>)> + '_ {
    group.lines().filter_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 3).then_some(())?;
        let members = f
            .get(3)
            .map(|m| {
                m.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Some((f[0].to_string(), f[2].parse().ok()?, members))
    })
}

#[cfg(test)]
mod tests;
