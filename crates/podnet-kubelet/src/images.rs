//! Images for containers, as kubelet's image manager does it: the pull policy decides whether to pull,
//! pulls go through the node's registry configuration (mirrors, the pod's imagePullSecrets), failures
//! back off (ErrImagePull, then ImagePullBackOff), and events say what happened, naming a podnet
//! substitute as one.

use crate::backoff::Backoff;
use podnet_oci::{ImageRecord, Keychain, PullOptions, Puller, Reference};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Why a container's image is not there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFailure {
    /// `ErrImagePull`, `ImagePullBackOff`, `ErrImageNeverPull` or `InvalidImageName`.
    pub reason: &'static str,
    pub message: String,
}

/// An event to record about the image step: (warning, reason, message).
pub type ImageEvent = (bool, &'static str, String);

pub struct Images {
    puller: Puller,
    /// Per image reference: the last pull without credentials, when it began and what it found.
    /// Pulls of one reference go one at a time, and a pull that began after another was asked for
    /// answers that one too: kubelet's `Always` asks the registry at every container start, and a
    /// burst of starts of one image (a pod's containers, a Deployment scaled up) needs one question
    /// from then on, not one each.
    flights: Mutex<HashMap<String, Arc<Flight>>>,
    backoff: Mutex<Backoff>,
    /// The last pull error per image key, shown while backing off.
    last_error: Mutex<std::collections::HashMap<String, String>>,
}

/// The last pull of one image reference, held while pulling: what callers waiting for it share.
type Flight = Mutex<Option<Pulled>>;

/// One pull's outcome (a failure as its message: waiters get the same words).
#[derive(Clone)]
struct Pulled {
    began: Instant,
    took: Duration,
    result: Result<ImageRecord, String>,
}

/// The policy kubelet applies when none is given: Always for `:latest` or no tag, else IfNotPresent.
pub fn default_policy(image: &str) -> &'static str {
    match Reference::parse(image) {
        Ok(r) if r.digest().is_none() && r.tag().is_none_or(|t| t == "latest") => "Always",
        _ => "IfNotPresent",
    }
}

impl Images {
    pub fn new(puller: Puller) -> Images {
        Images {
            puller,
            flights: Mutex::new(HashMap::new()),
            backoff: Mutex::new(Backoff::default()),
            last_error: Mutex::new(Default::default()),
        }
    }

    pub fn store(&self) -> &podnet_oci::Store {
        self.puller.store()
    }

    /// Makes sure `image` is in the store, by `policy`; `key` scopes the back-off (pod uid + image).
    /// Blocking: call from a blocking thread with a runtime handle.
    pub fn ensure(
        &self,
        handle: &tokio::runtime::Handle,
        image: &str,
        policy: Option<&str>,
        secrets: &Keychain,
        key: &str,
        events: &mut Vec<ImageEvent>,
    ) -> Result<ImageRecord, ImageFailure> {
        let reference = Reference::parse(image).map_err(|e| ImageFailure {
            reason: "InvalidImageName",
            message: format!("Failed to apply default image tag \"{image}\": {e}"),
        })?;
        let policy = policy
            .filter(|p| !p.is_empty())
            .unwrap_or(default_policy(image));
        let present = self.puller.store().image(&reference.to_string()).ok();
        match (policy, present) {
            ("Never", Some(rec)) | ("IfNotPresent", Some(rec)) => {
                events.push((
                    false,
                    "Pulled",
                    format!(
                        "Container image \"{image}\" already present on machine{}",
                        describe(&rec)
                    ),
                ));
                return Ok(rec);
            }
            ("Never", None) => {
                let message =
                    format!("Container image \"{image}\" is not present with pull policy of Never");
                events.push((true, "ErrImageNeverPull", message.clone()));
                events.push((true, "Failed", "Error: ErrImageNeverPull".into()));
                return Err(ImageFailure {
                    reason: "ErrImageNeverPull",
                    message,
                });
            }
            _ => {}
        }
        let now = Instant::now();
        let wait = lock(&self.backoff).remaining(key, now);
        if wait > Duration::ZERO {
            let last = lock(&self.last_error).get(key).cloned().unwrap_or_default();
            // kubelet's words and types: a Normal BackOff, then the Warning the container start
            // records (`Error: ImagePullBackOff`).
            events.push((
                false,
                "BackOff",
                format!("Back-off pulling image \"{image}\""),
            ));
            events.push((true, "Failed", "Error: ImagePullBackOff".into()));
            return Err(ImageFailure {
                reason: "ImagePullBackOff",
                message: format!("Back-off pulling image \"{image}\": {last}"),
            });
        }
        events.push((false, "Pulling", format!("Pulling image \"{image}\"")));
        let started = Instant::now();
        let opts = PullOptions {
            credentials: (!secrets.is_empty()).then(|| secrets.clone()),
            ..Default::default()
        };
        let (pulled, shared) = self.pull(handle, &reference, &opts, policy == "Always");
        match pulled.result {
            Ok(rec) => {
                lock(&self.backoff).forget(key);
                lock(&self.last_error).remove(key);
                let took = pulled.took.as_secs_f64();
                let waited = started.elapsed().as_secs_f64();
                events.push((
                    false,
                    "Pulled",
                    format!(
                        "Successfully pulled image \"{image}\" in {took:.3}s ({waited:.3}s including waiting). Image size: {} bytes.{}",
                        rec.size,
                        describe(&rec)
                    ),
                ));
                Ok(rec)
            }
            Err(e) => {
                let message = format!("Failed to pull image \"{image}\": {e}");
                // One failed pull is one step of the back-off, however many containers (of this
                // pod, under the same key) waited for it.
                if !shared || lock(&self.backoff).remaining(key, Instant::now()).is_zero() {
                    lock(&self.backoff).failed(key, Duration::ZERO, Instant::now());
                }
                lock(&self.last_error).insert(key.to_string(), message.clone());
                events.push((true, "Failed", message.clone()));
                events.push((true, "Failed", "Error: ErrImagePull".into()));
                Err(ImageFailure {
                    reason: "ErrImagePull",
                    message,
                })
            }
        }
    }

    /// Pulls `reference`, or takes the outcome of a pull of it that began after this call (its
    /// registry answer is newer than the ask, as policy Always wants), or, when `fresh` is false
    /// (IfNotPresent), the image another pull put in the store meanwhile. Returns the outcome and
    /// whether it came from another caller's pull.
    fn pull(
        &self,
        handle: &tokio::runtime::Handle,
        reference: &Reference,
        opts: &PullOptions,
        fresh: bool,
    ) -> (Pulled, bool) {
        let run = || {
            let began = Instant::now();
            let result = handle
                .block_on(self.puller.pull(reference, opts))
                .map_err(|e| e.to_string());
            Pulled {
                began,
                took: began.elapsed(),
                result,
            }
        };
        // A pod's own credentials make its pull its own.
        if opts.credentials.is_some() {
            return (run(), false);
        }
        let asked = Instant::now();
        let flight = lock(&self.flights)
            .entry(reference.to_string())
            .or_default()
            .clone();
        let mut last = lock(&flight);
        if let Some(p) = last.as_ref()
            && p.began >= asked
        {
            return (p.clone(), true);
        }
        // IfNotPresent: a pull that ended while this one waited may have brought the image.
        if !fresh && let Ok(rec) = self.puller.store().image(&reference.to_string()) {
            let pulled = Pulled {
                began: asked,
                took: Duration::ZERO,
                result: Ok(rec),
            };
            return (pulled, true);
        }
        let pulled = run();
        *last = Some(pulled.clone());
        (pulled, false)
    }

    /// Forgets back-off state of a pod that is gone.
    pub fn forget_pod(&self, uid: &str) {
        let prefix = format!("{uid}/");
        lock(&self.backoff).retain(|k| !k.starts_with(&prefix));
        lock(&self.last_error).retain(|k, _| !k.starts_with(&prefix));
    }
}

/// ` (podnet substitute for docker.io/library/nginx:latest)` for a substitute, else nothing.
fn describe(rec: &ImageRecord) -> String {
    match &rec.substitute_for {
        Some(up) => {
            format!(" This is podnet's locally built substitute for {up}, not the upstream image.")
        }
        None => String::new(),
    }
}

/// The image ID kubelet reports: `repo@sha256:...`.
pub fn image_id(rec: &ImageRecord) -> String {
    match Reference::parse(&rec.reference) {
        Ok(r) => format!("{}@{}", r.name(), rec.digest),
        Err(_) => rec.digest.to_string(),
    }
}

/// The credentials of a pod's imagePullSecrets (`kubernetes.io/dockerconfigjson` and `dockercfg`).
pub fn keychain_of(secrets: &[k8s_openapi::api::core::v1::Secret]) -> Keychain {
    let mut kc = Keychain::empty();
    for s in secrets {
        let name = s.metadata.name.clone().unwrap_or_default();
        for key in [".dockerconfigjson", ".dockercfg"] {
            if let Some(bytes) = s.data.as_ref().and_then(|d| d.get(key)) {
                // The legacy `.dockercfg` is the `auths` map itself, without the wrapper.
                let json = if key == ".dockercfg" {
                    let mut j = b"{\"auths\":".to_vec();
                    j.extend_from_slice(&bytes.0);
                    j.push(b'}');
                    j
                } else {
                    bytes.0.clone()
                };
                match Keychain::from_json(&format!("secret {name} key {key}"), &json) {
                    Ok(k) => kc.merge(&k),
                    Err(e) => eprintln!("imagePullSecret {name}: {e}"),
                }
            }
        }
    }
    kc
}

/// A lock that outlives a panic of a holder: the data behind these locks stays consistent at every
/// step (a panicking pull leaves the previous outcome in place).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(key: &str, value: &str) -> k8s_openapi::api::core::v1::Secret {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(value);
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "pull"}, "data": {key: b64}
        }))
        .unwrap()
    }

    #[test]
    fn both_secret_formats_give_credentials() {
        // user:pass
        let auth = "dXNlcjpwYXNz";
        let new = secret(
            ".dockerconfigjson",
            &format!(r#"{{"auths":{{"reg.example:5000":{{"auth":"{auth}"}}}}}}"#),
        );
        let legacy = secret(
            ".dockercfg",
            &format!(r#"{{"https://index.docker.io/v1/":{{"auth":"{auth}","email":"a@b"}}}}"#),
        );
        let kc = keychain_of(&[new]);
        assert_eq!(kc.get("reg.example:5000").unwrap().username, "user");
        let kc = keychain_of(&[legacy]);
        let c = kc
            .get("docker.io")
            .expect("credentials of a kubernetes.io/dockercfg secret");
        assert_eq!((c.username.as_str(), c.password.as_str()), ("user", "pass"));
    }

    #[test]
    fn a_failed_pull_then_backs_off_with_kubelets_events() {
        let tmp = tempfile::tempdir().unwrap();
        let store = podnet_oci::Store::open(tmp.path()).unwrap();
        let puller = Puller::new(
            store,
            podnet_oci::default_dialer(),
            podnet_oci::Hosts::new(None, Vec::new()),
            Keychain::empty(),
        );
        let images = Images::new(puller);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // Nothing listens on port 1 of loopback: the pull fails at once.
        let image = "127.0.0.1:1/pnt/none:1";
        let mut events = Vec::new();
        let kc = Keychain::empty();
        let e = images
            .ensure(rt.handle(), image, None, &kc, "uid/img", &mut events)
            .unwrap_err();
        assert_eq!(e.reason, "ErrImagePull");
        assert_eq!(events.last().unwrap().2, "Error: ErrImagePull");
        let mut events = Vec::new();
        let e = images
            .ensure(rt.handle(), image, None, &kc, "uid/img", &mut events)
            .unwrap_err();
        assert_eq!(e.reason, "ImagePullBackOff");
        let words: Vec<(bool, &str, &str)> = events
            .iter()
            .map(|(w, r, m)| (*w, *r, m.as_str()))
            .collect();
        assert_eq!(
            words,
            [
                (
                    false,
                    "BackOff",
                    "Back-off pulling image \"127.0.0.1:1/pnt/none:1\""
                ),
                (true, "Failed", "Error: ImagePullBackOff"),
            ]
        );
    }
}
