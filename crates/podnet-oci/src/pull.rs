//! Pulling an image into the store: resolve, fetch the config, then every missing layer in parallel,
//! each streamed straight from the network into the verifying unpacker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;

use crate::auth::Keychain;
use crate::digest::Digest;
use crate::hosts::{Endpoint, Hosts};
use crate::manifest::{self, Decoded, Platform};
use crate::reference::Reference;
use crate::registry::{Registry, RegistryError};
use crate::store::{ImageRecord, LayerRecord, Store, StoreError};
use crate::transport::Dialer;

/// How many layers are fetched at once (containerd's CRI default is 3).
const PARALLEL_LAYERS: usize = 3;
/// Attempts per layer on transient failures (connection lost, 5xx), with doubling back-off.
const LAYER_ATTEMPTS: u32 = 4;
const BACKOFF: Duration = Duration::from_millis(250);
/// A blob body that sends nothing for this long is given up (and retried).
const BODY_IDLE: Duration = Duration::from_secs(60);

/// What a pull reports as it goes.
#[derive(Debug, Clone)]
pub enum Progress {
    /// The manifest is known: the layers with their compressed sizes.
    Resolved {
        reference: String,
        digest: Digest,
        layers: Vec<(Digest, u64)>,
    },
    /// Bytes of a layer received so far.
    Layer {
        digest: Digest,
        done: u64,
        total: u64,
    },
    /// A layer is committed (`cached`: it was already in the store).
    LayerDone { digest: Digest, cached: bool },
    /// A layer attempt failed and will be retried.
    Retry {
        digest: Digest,
        attempt: u32,
        error: String,
    },
}

pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Per-pull settings.
#[derive(Clone, Default)]
pub struct PullOptions {
    /// Extra credentials for this pull (a pod's imagePullSecrets); they win over the puller's own.
    pub credentials: Option<Keychain>,
    pub progress: Option<ProgressFn>,
}

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("pull {reference}: {source}")]
    Registry {
        reference: String,
        #[source]
        source: Box<RegistryError>,
    },
    #[error("pull {reference}: {source}")]
    Store {
        reference: String,
        #[source]
        source: Box<StoreError>,
    },
    #[error("pull {reference}: {detail}")]
    Image { reference: String, detail: String },
}

/// Pulls images into a store. One per process is enough; it is `Send + Sync` and pools connections.
pub struct Puller {
    store: Store,
    dialer: Dialer,
    hosts: Hosts,
    keychain: Keychain,
    registry: Arc<Registry>,
    platform: Platform,
}

impl Puller {
    /// `dialer` makes every TCP connection (see [`Dialer`]); `hosts` the mirrors and insecure hosts;
    /// `keychain` the node's own credentials (a docker `config.json`).
    pub fn new(store: Store, dialer: Dialer, hosts: Hosts, keychain: Keychain) -> Puller {
        let registry = Arc::new(Registry::new(
            dialer.clone(),
            hosts.clone(),
            keychain.clone(),
        ));
        Puller {
            store,
            dialer,
            hosts,
            keychain,
            registry,
            platform: Platform::linux_amd64(),
        }
    }

    /// Pull for another platform than linux/amd64.
    pub fn with_platform(mut self, platform: Platform) -> Puller {
        self.platform = platform;
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Pull `reference` (already normalised) into the store and record it under that name.
    pub async fn pull(
        &self,
        reference: &Reference,
        opts: &PullOptions,
    ) -> Result<ImageRecord, PullError> {
        let registry = match &opts.credentials {
            Some(extra) if !extra.is_empty() => {
                let mut k = self.keychain.clone();
                k.merge(extra);
                Arc::new(Registry::new(self.dialer.clone(), self.hosts.clone(), k))
            }
            _ => self.registry.clone(),
        };
        let name = reference.to_string();
        let serr = |source| PullError::Store {
            reference: name.clone(),
            source: Box::new(source),
        };
        let rerr = |source| PullError::Registry {
            reference: name.clone(),
            source: Box::new(source),
        };
        let store = self.store.clone();
        let _gc = blocking(move || store.gc_lock(false)).await.map_err(serr)?;

        let doc = registry
            .manifest(
                reference,
                &reference.manifest_reference(),
                reference.digest(),
            )
            .await
            .map_err(rerr)?;
        let mut index_digest = None;
        let mut extra_annotations = BTreeMap::new();
        let (doc, manifest) = match manifest::decode(doc.media_type.as_deref(), &doc.bytes)
            .map_err(|e| self.image_err(&name, e))?
        {
            Decoded::Image(m) => (doc, m),
            Decoded::Index(index) => {
                let chosen = manifest::select(&index, &self.platform)
                    .map_err(|e| self.image_err(&name, e))?;
                let child =
                    manifest::descriptor_digest(chosen).map_err(|e| self.image_err(&name, e))?;
                if let Some(a) = chosen.annotations() {
                    extra_annotations.extend(a.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                if let Some(a) = index.annotations() {
                    for (k, v) in a {
                        extra_annotations
                            .entry(k.clone())
                            .or_insert_with(|| v.clone());
                    }
                }
                self.store.put_blob(&doc.digest, &doc.bytes).map_err(serr)?;
                index_digest = Some(doc.digest.clone());
                let child_doc = registry
                    .manifest(reference, &child.to_string(), Some(&child))
                    .await
                    .map_err(rerr)?;
                match manifest::decode(child_doc.media_type.as_deref(), &child_doc.bytes)
                    .map_err(|e| self.image_err(&name, e))?
                {
                    Decoded::Image(m) => (child_doc, m),
                    Decoded::Index(_) => {
                        return Err(PullError::Image {
                            reference: name,
                            detail: format!("index entry {child} is itself an index"),
                        });
                    }
                }
            }
        };
        self.store.put_blob(&doc.digest, &doc.bytes).map_err(serr)?;

        // The config: small, fetched whole and verified.
        let config_digest =
            manifest::descriptor_digest(manifest.config()).map_err(|e| self.image_err(&name, e))?;
        let config_bytes = if self.store.has_blob(&config_digest) {
            self.store.read_blob(&config_digest).map_err(serr)?
        } else {
            let b = registry
                .small_blob(&doc.endpoint, reference, &config_digest)
                .await
                .map_err(rerr)?;
            self.store.put_blob(&config_digest, &b).map_err(serr)?;
            b
        };
        let config =
            manifest::decode_config(&config_bytes).map_err(|e| self.image_err(&name, e))?;
        let layers = layer_records(&manifest, &config).map_err(|detail| PullError::Image {
            reference: name.clone(),
            detail,
        })?;
        if let Some(p) = &opts.progress {
            p(&Progress::Resolved {
                reference: name.clone(),
                digest: doc.digest.clone(),
                layers: layers.iter().map(|l| (l.digest.clone(), l.size)).collect(),
            });
        }

        // Layers: several at once; the first error stops the rest.
        let endpoints: Vec<Endpoint> = {
            let mut v = vec![doc.endpoint.clone()];
            v.extend(
                registry
                    .endpoints(reference)
                    .map_err(rerr)?
                    .into_iter()
                    .filter(|e| e.pull && *e != doc.endpoint),
            );
            v
        };
        let sem = Arc::new(tokio::sync::Semaphore::new(PARALLEL_LAYERS));
        let mut tasks = tokio::task::JoinSet::new();
        for layer in layers.clone() {
            let job = LayerJob {
                store: self.store.clone(),
                registry: registry.clone(),
                reference: reference.clone(),
                endpoints: endpoints.clone(),
                layer,
                progress: opts.progress.clone(),
            };
            let sem = sem.clone();
            tasks.spawn(async move {
                let _permit = sem.acquire_owned().await.expect("never closed");
                job.run().await
            });
        }
        while let Some(res) = tasks.join_next().await {
            let res = res.map_err(|e| PullError::Image {
                reference: name.clone(),
                detail: format!("layer task failed: {e}"),
            })?;
            if let Err(e) = res {
                tasks.abort_all();
                return Err(e);
            }
        }

        let record = make_record(
            name.clone(),
            doc.digest.clone(),
            index_digest,
            doc.media_type.clone(),
            &manifest,
            &config,
            config_digest,
            layers,
            extra_annotations,
        );
        self.store.put_image(&record).map_err(serr)?;
        Ok(record)
    }

    fn image_err(&self, name: &str, e: manifest::ManifestError) -> PullError {
        PullError::Image {
            reference: name.to_string(),
            detail: e.to_string(),
        }
    }
}

/// The record of an image whose blobs and snapshots are all in the store.
#[allow(clippy::too_many_arguments)]
pub(crate) fn make_record(
    name: String,
    digest: Digest,
    index_digest: Option<Digest>,
    media_type: Option<String>,
    manifest: &oci_spec::image::ImageManifest,
    config: &oci_spec::image::ImageConfiguration,
    config_digest: Digest,
    layers: Vec<LayerRecord>,
    extra_annotations: BTreeMap<String, String>,
) -> ImageRecord {
    let mut annotations: BTreeMap<String, String> = manifest
        .annotations()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    for (k, v) in extra_annotations {
        annotations.entry(k).or_insert(v);
    }
    let labels: BTreeMap<String, String> = config
        .config()
        .as_ref()
        .and_then(|c| c.labels().clone())
        .unwrap_or_default()
        .into_iter()
        .collect();
    ImageRecord {
        version: crate::store::CURRENT_RECORD_VERSION,
        reference: name,
        digest,
        index_digest,
        media_type: manifest
            .media_type()
            .as_ref()
            .map(|m| m.to_string())
            .or(media_type)
            .unwrap_or_else(|| manifest::OCI_MANIFEST.to_string()),
        config: config_digest,
        size: manifest.config().size() + layers.iter().map(|l| l.size).sum::<u64>(),
        layers,
        platform: Platform {
            os: config.os().to_string(),
            architecture: config.architecture().to_string(),
            variant: config.variant().clone(),
        },
        created: config.created().clone(),
        substitute_for: ImageRecord::substitute_marker(&annotations, &labels),
        annotations,
        labels,
        stored_at: crate::store::now(),
    }
}

/// The layers of a manifest paired with the config's diffIDs.
pub(crate) fn layer_records(
    manifest: &oci_spec::image::ImageManifest,
    config: &oci_spec::image::ImageConfiguration,
) -> Result<Vec<LayerRecord>, String> {
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != manifest.layers().len() {
        return Err(format!(
            "manifest has {} layers but the config lists {} diffIDs",
            manifest.layers().len(),
            diff_ids.len()
        ));
    }
    manifest
        .layers()
        .iter()
        .zip(diff_ids)
        .map(|(d, diff)| {
            let media_type = d.media_type().to_string();
            Ok(LayerRecord {
                digest: manifest::descriptor_digest(d).map_err(|e| e.to_string())?,
                diff_id: diff
                    .parse()
                    .map_err(|e: crate::digest::DigestError| e.to_string())?,
                size: d.size(),
                compression: manifest::layer_compression(&media_type).map_err(|e| e.to_string())?,
                media_type,
            })
        })
        .collect()
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(StoreError::Invalid {
            what: "store task".into(),
            detail: e.to_string(),
        })
    })
}

struct LayerJob {
    store: Store,
    registry: Arc<Registry>,
    reference: Reference,
    endpoints: Vec<Endpoint>,
    layer: LayerRecord,
    progress: Option<ProgressFn>,
}

/// Feeds the blocking unpacker from the async body.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    cur: Bytes,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur.split_to(n));
        Ok(n)
    }
}

impl LayerJob {
    async fn run(self) -> Result<(), PullError> {
        let name = self.reference.to_string();
        let digest = self.layer.digest.clone();
        let report = |p: Progress| {
            if let Some(f) = &self.progress {
                f(&p)
            }
        };
        let (nb, ns) = crate::ingest::missing(&self.store, &self.layer);
        if !nb && !ns {
            report(Progress::LayerDone {
                digest,
                cached: true,
            });
            return Ok(());
        }
        // Locked by diffID: the snapshot is what concurrent pulls share (the same content may come
        // compressed differently, under another blob digest).
        let store = self.store.clone();
        let d = self.layer.diff_id.clone();
        let _lock = blocking(move || store.layer_lock(&d))
            .await
            .map_err(|source| PullError::Store {
                reference: name.clone(),
                source: Box::new(source),
            })?;
        // Someone else may have done it while we waited for the lock.
        let (need_blob, need_snapshot) = crate::ingest::missing(&self.store, &self.layer);
        if !need_blob && !need_snapshot {
            report(Progress::LayerDone {
                digest,
                cached: true,
            });
            return Ok(());
        }
        if !need_blob {
            // Only the snapshot is missing (an unpack was killed): unpack from the stored blob.
            let store = self.store.clone();
            let layer = self.layer.clone();
            let image = name.clone();
            blocking(move || {
                let p = store.blob_path(&layer.digest);
                let f = std::fs::File::open(&p).map_err(crate::store::io("open blob", &p))?;
                crate::ingest::ingest_layer(
                    &store,
                    &image,
                    &layer,
                    std::io::BufReader::with_capacity(1 << 20, f),
                    false,
                    true,
                )
            })
            .await
            .map_err(|source| PullError::Store {
                reference: name.clone(),
                source: Box::new(source),
            })?;
            report(Progress::LayerDone {
                digest,
                cached: false,
            });
            return Ok(());
        }
        // Each endpoint in order (the one that served the manifest first); transient failures are
        // retried on the same endpoint with back-off, a missing blob moves on to the next one.
        let mut first_error = None;
        for ep in &self.endpoints {
            let mut attempt = 0;
            let err = loop {
                attempt += 1;
                match self.attempt(ep, need_snapshot).await {
                    Ok(()) => {
                        report(Progress::LayerDone {
                            digest: digest.clone(),
                            cached: false,
                        });
                        return Ok(());
                    }
                    Err(e) => {
                        let transient = matches!(&e, PullError::Registry { source, .. } if source.is_transient());
                        if !transient || attempt >= LAYER_ATTEMPTS {
                            break e;
                        }
                        report(Progress::Retry {
                            digest: digest.clone(),
                            attempt,
                            error: e.to_string(),
                        });
                        tokio::time::sleep(BACKOFF * 2u32.pow(attempt - 1)).await;
                    }
                }
            };
            let next = matches!(&err, PullError::Registry { source, .. }
                if source.is_transient() || matches!(**source, RegistryError::Status { status: 404, .. }));
            first_error.get_or_insert(err);
            if !next {
                break;
            }
        }
        Err(first_error.expect("there is at least one endpoint"))
    }

    async fn attempt(&self, ep: &Endpoint, need_snapshot: bool) -> Result<(), PullError> {
        let name = self.reference.to_string();
        let rerr = |source| PullError::Registry {
            reference: name.clone(),
            source: Box::new(source),
        };
        let mut body = self
            .registry
            .open_blob(ep, &self.reference, &self.layer.digest)
            .await
            .map_err(rerr)?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let store = self.store.clone();
        let layer = self.layer.clone();
        let image = name.clone();
        let writer = tokio::task::spawn_blocking(move || {
            let reader = ChannelReader {
                rx,
                cur: Bytes::new(),
            };
            crate::ingest::ingest_layer(&store, &image, &layer, reader, true, need_snapshot)
        });
        let url = format!(
            "{ep}/{}/blobs/{}",
            self.reference.repository(),
            self.layer.digest
        );
        let mut done = 0u64;
        let mut transport_error = None;
        loop {
            let frame = match tokio::time::timeout(BODY_IDLE, body.frame()).await {
                Ok(f) => f.map(|r| r.map_err(|e| e.to_string())),
                Err(_) => Some(Err(format!("no data for {} s", BODY_IDLE.as_secs()))),
            };
            match frame {
                None => break,
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        done += data.len() as u64;
                        if let Some(p) = &self.progress {
                            p(&Progress::Layer {
                                digest: self.layer.digest.clone(),
                                done,
                                total: self.layer.size,
                            });
                        }
                        if tx.send(Ok(data)).await.is_err() {
                            break; // the unpacker stopped; its error says why
                        }
                    }
                }
                Some(Err(e)) => {
                    let msg = format!(
                        "connection lost after {done} of {} bytes: {e}",
                        self.layer.size
                    );
                    let _ = tx.send(Err(std::io::Error::other(msg.clone()))).await;
                    transport_error = Some(msg);
                    break;
                }
            }
        }
        drop(tx);
        let result = writer.await.unwrap_or_else(|e| {
            Err(StoreError::Invalid {
                what: "unpack task".into(),
                detail: e.to_string(),
            })
        });
        if let Some(cause) = transport_error {
            return Err(rerr(RegistryError::Transport { url, cause }));
        }
        if done < self.layer.size && result.is_err() {
            // A short body: the registry went away mid-blob; worth another attempt.
            return Err(rerr(RegistryError::Transport {
                url,
                cause: format!("body ended after {done} of {} bytes", self.layer.size),
            }));
        }
        result.map_err(|source| PullError::Store {
            reference: name,
            source: Box::new(source),
        })
    }
}
