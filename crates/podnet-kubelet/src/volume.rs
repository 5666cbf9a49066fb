//! Pod volumes on the node, as kubelet lays them out under the pod's directory
//! (`<pod dir>/volumes/kubernetes.io~<kind>/<name>`): emptyDir (a directory, or tmpfs for
//! `medium: Memory`), configMap, secret, downwardAPI and projected (service-account token, CA bundle,
//! namespace) written with kubelet's atomic writer so updates appear all at once, and hostPath with its
//! type checks. Then each container's `volumeMounts` become bind mounts.

use crate::process::{RuntimeFacts, field_value, format_map};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, DownwardAPIVolumeFile, KeyToPath, Pod, Secret, Volume,
};
use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct VolumeError(pub String);

fn err(msg: impl Into<String>) -> VolumeError {
    VolumeError(msg.into())
}

/// Mints a service-account token: (audience, expiration seconds) to the token.
pub type TokenFn<'a> = dyn Fn(Option<&str>, i64) -> Result<String, String> + 'a;

/// What volumes may read, fetched by the caller.
pub struct VolumeSources<'a> {
    pub config_maps: &'a BTreeMap<String, ConfigMap>,
    pub secrets: &'a BTreeMap<String, Secret>,
    /// Mints a service-account token for the pod: (audience, expiration seconds) to the token.
    pub token: &'a TokenFn<'a>,
    /// What the downward API reads that is not in the pod object (its addresses).
    pub facts: &'a RuntimeFacts,
}

/// A volume ready on the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub name: String,
    pub path: PathBuf,
    /// configMap, secret, downwardAPI and projected volumes are always mounted read-only.
    pub read_only: bool,
    /// The volume is a tmpfs podnet mounted (unmounted on teardown).
    pub tmpfs: bool,
}

/// A bind mount for a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: PathBuf,
    pub destination: String,
    pub read_only: bool,
}

/// Sets up every volume of the pod under `pod_dir` (idempotent: projected volumes are rewritten when
/// their content changed; emptyDirs keep their content).
pub fn setup(pod: &Pod, pod_dir: &Path, src: &VolumeSources) -> Result<Vec<Prepared>, VolumeError> {
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.clone())
        .unwrap_or_default();
    volumes
        .iter()
        .map(|v| setup_one(pod, pod_dir, v, src))
        .collect()
}

fn kind_dir(pod_dir: &Path, kind: &str, name: &str) -> PathBuf {
    pod_dir
        .join("volumes")
        .join(format!("kubernetes.io~{kind}"))
        .join(name)
}

fn setup_one(
    pod: &Pod,
    pod_dir: &Path,
    v: &Volume,
    src: &VolumeSources,
) -> Result<Prepared, VolumeError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = &v.name;
    let fail = |what: String| {
        err(format!(
            "MountVolume.SetUp failed for volume \"{name}\" : {what}"
        ))
    };
    if let Some(e) = &v.empty_dir {
        let path = kind_dir(pod_dir, "empty-dir", name);
        mkdir(&path).map_err(fail)?;
        let memory = e.medium.as_deref() == Some("Memory");
        if memory && !is_mountpoint(&path) {
            let size = e
                .size_limit
                .as_ref()
                .and_then(|q| crate::process::quantity(&q.0).ok())
                .map(|b| format!(",size={}", b as u64))
                .unwrap_or_default();
            nix::mount::mount(
                Some("tmpfs"),
                &path,
                Some("tmpfs"),
                nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
                Some(format!("mode=0777{size}").as_str()),
            )
            .map_err(|e| fail(format!("mount tmpfs on {}: {e}", path.display())))?;
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))
            .map_err(|e| fail(e.to_string()))?;
        return Ok(Prepared {
            name: name.clone(),
            path,
            read_only: false,
            tmpfs: memory,
        });
    }
    if let Some(h) = &v.host_path {
        check_host_path(&h.path, h.type_.as_deref().unwrap_or("")).map_err(fail)?;
        return Ok(Prepared {
            name: name.clone(),
            path: PathBuf::from(&h.path),
            read_only: false,
            tmpfs: false,
        });
    }
    let (kind, files) = if let Some(c) = &v.config_map {
        let files = match src.config_maps.get(&c.name) {
            Some(cm) => key_files(
                &config_map_data(cm),
                c.items.as_deref(),
                c.default_mode,
                &c.name,
            )
            .map_err(fail)?,
            None if c.optional == Some(true) => BTreeMap::new(),
            None => return Err(fail(format!("configmap \"{}\" not found", c.name))),
        };
        ("configmap", files)
    } else if let Some(s) = &v.secret {
        let secret_name = s.secret_name.clone().unwrap_or_default();
        let files = match src.secrets.get(&secret_name) {
            Some(sec) => key_files(
                &secret_data(sec),
                s.items.as_deref(),
                s.default_mode,
                &secret_name,
            )
            .map_err(fail)?,
            None if s.optional == Some(true) => BTreeMap::new(),
            None => return Err(fail(format!("secret \"{secret_name}\" not found"))),
        };
        ("secret", files)
    } else if let Some(d) = &v.downward_api {
        (
            "downward-api",
            downward_files(
                pod,
                d.items.as_deref().unwrap_or_default(),
                d.default_mode,
                src.facts,
            )
            .map_err(fail)?,
        )
    } else if let Some(p) = &v.projected {
        let mut files = BTreeMap::new();
        for source in p.sources.iter().flatten() {
            if let Some(t) = &source.service_account_token {
                let token =
                    (src.token)(t.audience.as_deref(), t.expiration_seconds.unwrap_or(3600))
                        .map_err(|e| fail(format!("get service account token: {e}")))?;
                files.insert(
                    t.path.clone(),
                    (token.into_bytes(), mode(p.default_mode, 0o644)),
                );
            }
            if let Some(c) = &source.config_map {
                match src.config_maps.get(&c.name) {
                    Some(cm) => files.extend(
                        key_files(
                            &config_map_data(cm),
                            c.items.as_deref(),
                            p.default_mode,
                            &c.name,
                        )
                        .map_err(fail)?,
                    ),
                    None if c.optional == Some(true) => {}
                    None => {
                        return Err(fail(format!("configmap \"{}\" not found", c.name)));
                    }
                }
            }
            if let Some(s) = &source.secret {
                match src.secrets.get(&s.name) {
                    Some(sec) => files.extend(
                        key_files(
                            &secret_data(sec),
                            s.items.as_deref(),
                            p.default_mode,
                            &s.name,
                        )
                        .map_err(fail)?,
                    ),
                    None if s.optional == Some(true) => {}
                    None => return Err(fail(format!("secret \"{}\" not found", s.name))),
                }
            }
            if let Some(d) = &source.downward_api {
                files.extend(
                    downward_files(
                        pod,
                        d.items.as_deref().unwrap_or_default(),
                        p.default_mode,
                        src.facts,
                    )
                    .map_err(fail)?,
                );
            }
        }
        ("projected", files)
    } else {
        return Err(fail(format!(
            "volume type not supported by podnet (supported: emptyDir, hostPath, configMap, secret, downwardAPI, projected) in pod {ns}/{}",
            pod.metadata.name.as_deref().unwrap_or("")
        )));
    };
    let path = kind_dir(pod_dir, kind, name);
    write_atomic(&path, &files).map_err(fail)?;
    Ok(Prepared {
        name: name.clone(),
        path,
        read_only: true,
        tmpfs: false,
    })
}

fn mkdir(path: &Path) -> Result<(), String> {
    std::fs::create_dir_all(path).map_err(|e| format!("create {}: {e}", path.display()))
}

fn is_mountpoint(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let target = path.to_string_lossy();
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| m == target)
}

/// Unmounts what [`setup`] mounted (tmpfs emptyDirs) and removes the pod's volume directories.
pub fn teardown(pod_dir: &Path) -> Vec<String> {
    let mut errors = Vec::new();
    let root = pod_dir.join("volumes");
    if let Ok(kinds) = std::fs::read_dir(&root) {
        for k in kinds.flatten() {
            for v in std::fs::read_dir(k.path()).into_iter().flatten().flatten() {
                let p = v.path();
                if is_mountpoint(&p)
                    && let Err(e) = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH)
                {
                    errors.push(format!("unmount {}: {e}", p.display()));
                }
            }
        }
    }
    if let Err(e) = std::fs::remove_dir_all(&root)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        errors.push(format!("remove {}: {e}", root.display()));
    }
    errors
}

fn check_host_path(path: &str, kind: &str) -> Result<(), String> {
    use std::os::unix::fs::FileTypeExt;
    let p = Path::new(path);
    if !p.is_absolute() {
        return Err(format!("hostPath {path:?} must be absolute"));
    }
    let meta = std::fs::metadata(p);
    let is = |ok: bool, what: &str| {
        if ok {
            Ok(())
        } else {
            Err(format!(
                "hostPath type check failed: {path} is not a {what}"
            ))
        }
    };
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" => {
            if meta.is_err() {
                std::fs::create_dir_all(p).map_err(|e| format!("create {path}: {e}"))?;
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755))
                    .map_err(|e| format!("chmod {path}: {e}"))?;
            }
            is(p.is_dir(), "directory")
        }
        "FileOrCreate" => {
            if meta.is_err() {
                if let Some(parent) = p.parent() {
                    mkdir(parent)?;
                }
                std::fs::File::create(p).map_err(|e| format!("create {path}: {e}"))?;
            }
            is(p.is_file(), "file")
        }
        "Directory" => is(meta.map(|m| m.is_dir()).unwrap_or(false), "directory"),
        "File" => is(meta.map(|m| m.is_file()).unwrap_or(false), "file"),
        "Socket" => is(
            meta.map(|m| m.file_type().is_socket()).unwrap_or(false),
            "socket",
        ),
        "CharDevice" => is(
            meta.map(|m| m.file_type().is_char_device())
                .unwrap_or(false),
            "character device",
        ),
        "BlockDevice" => is(
            meta.map(|m| m.file_type().is_block_device())
                .unwrap_or(false),
            "block device",
        ),
        other => Err(format!("hostPath type {other:?} is not supported")),
    }
}

fn config_map_data(cm: &ConfigMap) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().into_bytes()))
        .collect();
    for (k, v) in cm.binary_data.iter().flatten() {
        out.insert(k.clone(), v.0.clone());
    }
    out
}

fn secret_data(s: &Secret) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in s.string_data.iter().flatten() {
        out.insert(k.clone(), v.clone().into_bytes());
    }
    out
}

fn mode(specific: Option<i32>, default: u32) -> u32 {
    specific.map_or(default, |m| (m as u32) & 0o7777)
}

type Files = BTreeMap<String, (Vec<u8>, u32)>;

/// The files of a configMap or secret source: every key, or the listed items (a listed key that is
/// missing is an error, as kubelet's).
fn key_files(
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
    object: &str,
) -> Result<Files, String> {
    let default = mode(default_mode, 0o644);
    let mut out = Files::new();
    match items {
        Some(items) if !items.is_empty() => {
            for item in items {
                let bytes = data.get(&item.key).ok_or_else(|| {
                    format!(
                        "configmap references non-existent config key: {} (in {object})",
                        item.key
                    )
                })?;
                check_rel_path(&item.path)?;
                out.insert(item.path.clone(), (bytes.clone(), mode(item.mode, default)));
            }
        }
        _ => {
            for (k, v) in data {
                check_rel_path(k)?;
                out.insert(k.clone(), (v.clone(), default));
            }
        }
    }
    Ok(out)
}

fn downward_files(
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: Option<i32>,
    facts: &RuntimeFacts,
) -> Result<Files, String> {
    let default = mode(default_mode, 0o644);
    let mut out = Files::new();
    for item in items {
        check_rel_path(&item.path)?;
        let value = if let Some(f) = &item.field_ref {
            match f.field_path.as_str() {
                "metadata.labels" => format_map(pod.metadata.labels.as_ref()),
                "metadata.annotations" => format_map(pod.metadata.annotations.as_ref()),
                path => field_value(pod, path, facts).map_err(|e| e.0)?,
            }
        } else if let Some(r) = &item.resource_field_ref {
            let container = r.container_name.clone().unwrap_or_default();
            let spec_c = pod
                .spec
                .as_ref()
                .and_then(|s| s.containers.iter().find(|c| c.name == container))
                .ok_or_else(|| format!("downwardAPI {}: no container {container:?}", item.path))?;
            let env = Container {
                env: Some(vec![k8s_openapi::api::core::v1::EnvVar {
                    name: "V".into(),
                    value_from: Some(k8s_openapi::api::core::v1::EnvVarSource {
                        resource_field_ref: Some(r.clone()),
                        ..Default::default()
                    }),
                    ..Default::default()
                }]),
                ..spec_c.clone()
            };
            crate::process::environment(pod, &env, &Default::default(), facts)
                .map_err(|e| e.0)?
                .into_iter()
                .find(|(k, _)| k == "V")
                .map(|(_, v)| v)
                .unwrap_or_default()
        } else {
            continue;
        };
        out.insert(
            item.path.clone(),
            (value.into_bytes(), mode(item.mode, default)),
        );
    }
    Ok(out)
}

/// A projected file's path: relative, no `..`, not starting with `..` (kubelet's rule; `..data` and
/// the timestamped directories are the writer's).
pub fn check_rel_path(p: &str) -> Result<(), String> {
    let path = Path::new(p);
    if p.is_empty()
        || path.is_absolute()
        || p.starts_with("..")
        || path
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(format!(
            "invalid path {p:?}: must be relative and may not contain '..'"
        ));
    }
    Ok(())
}

/// Kubelet's atomic writer: the files go into a fresh `..<timestamp>` directory, then the `..data`
/// symlink is swapped to it with a rename, so a reader sees the old set or the new set, never a mix;
/// each top-level name is a symlink through `..data`. Unchanged content is left alone.
pub fn write_atomic(dir: &Path, files: &Files) -> Result<(), String> {
    mkdir(dir)?;
    let data_link = dir.join("..data");
    if let Ok(current) = std::fs::read_link(&data_link)
        && same_content(&dir.join(&current), files)
    {
        return Ok(());
    }
    let stamp = jiff::Timestamp::now()
        .strftime("..%Y_%m_%d_%H_%M_%S.%f")
        .to_string();
    let target = dir.join(&stamp);
    mkdir(&target)?;
    for (rel, (bytes, m)) in files {
        let file = target.join(rel);
        if let Some(parent) = file.parent() {
            mkdir(parent)?;
        }
        std::fs::write(&file, bytes).map_err(|e| format!("write {}: {e}", file.display()))?;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(*m))
            .map_err(|e| format!("chmod {}: {e}", file.display()))?;
    }
    let tmp_link = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp_link);
    symlink(&stamp, &tmp_link).map_err(|e| format!("link {}: {e}", tmp_link.display()))?;
    let old = std::fs::read_link(&data_link).ok();
    std::fs::rename(&tmp_link, &data_link)
        .map_err(|e| format!("swap {}: {e}", data_link.display()))?;
    // Top-level names point through ..data; stale ones go.
    let tops: std::collections::BTreeSet<String> = files
        .keys()
        .filter_map(|k| k.split('/').next().map(str::to_string))
        .collect();
    for top in &tops {
        let link = dir.join(top);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(format!("..data/{top}"), &link)
                .map_err(|e| format!("link {}: {e}", link.display()))?;
        }
    }
    for e in std::fs::read_dir(dir).map_err(|e| e.to_string())?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !tops.contains(&name) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    if let Some(old) = old {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(())
}

fn same_content(current: &Path, files: &Files) -> bool {
    let mut count = 0;
    for (rel, (bytes, m)) in files {
        let p = current.join(rel);
        match (std::fs::read(&p), std::fs::metadata(&p)) {
            (Ok(b), Ok(meta)) if &b == bytes && meta.permissions().mode() & 0o7777 == *m => {
                count += 1
            }
            _ => return false,
        }
    }
    // No extra files either.
    count == files.len() && count_files(current) == files.len()
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                count_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

/// A container's bind mounts from its `volumeMounts` (subPath resolved inside the volume, never out
/// of it).
pub fn container_mounts(
    container: &Container,
    prepared: &[Prepared],
) -> Result<Vec<Mount>, VolumeError> {
    let mut out = Vec::new();
    for vm in container.volume_mounts.iter().flatten() {
        let vol = prepared.iter().find(|p| p.name == vm.name).ok_or_else(|| {
            err(format!(
                "container {}: volumeMount {:?} names no volume of the pod",
                container.name, vm.name
            ))
        })?;
        let mut source = vol.path.clone();
        if let Some(sub) = vm.sub_path.as_deref().filter(|s| !s.is_empty()) {
            check_rel_path(sub)
                .map_err(|e| err(format!("container {}: subPath: {e}", container.name)))?;
            source = vol.path.join(sub);
            if std::fs::symlink_metadata(&source).is_err() {
                // Resolved inside the volume: a container's symlink must not steer where it is made.
                crate::inroot::mkdir_in_root(&vol.path, sub)
                    .map_err(|e| err(format!("create subPath {}: {e}", source.display())))?;
            }
            // A symlink inside the volume must not lead out of it (CVE-2017-1002101).
            let real = std::fs::canonicalize(&source)
                .map_err(|e| err(format!("resolve subPath {}: {e}", source.display())))?;
            let root = std::fs::canonicalize(&vol.path)
                .map_err(|e| err(format!("resolve volume {}: {e}", vol.path.display())))?;
            if !real.starts_with(&root) {
                return Err(err(format!(
                    "container {}: subPath {sub:?} leads outside volume {}",
                    container.name, vm.name
                )));
            }
            source = real;
        }
        out.push(Mount {
            source,
            destination: vm.mount_path.clone(),
            read_only: vm.read_only.unwrap_or(false) || vol.read_only,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
