//! `podnet image pull|list|inspect|load|rm|prune`: the image store from the command line.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use podnet_oci::{Hosts, ImageRecord, Keychain, Progress, PullOptions, Puller, Reference, Store};
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// The image store (shared by every lab on the machine).
    #[arg(long, global = true, env = "PODNET_IMAGE_STORE", default_value = podnet_oci::store::DEFAULT_ROOT)]
    store: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct RegistryArgs {
    /// Directory of per-registry `hosts.toml` files (containerd's format). Default: the running lab's
    /// `/var/lib/podnet/<lab>/hosts.d`, else /etc/podnet/hosts.d.
    #[arg(long)]
    hosts_dir: Option<PathBuf>,
    /// A registry host (`host[:port]`) that may be reached over plain HTTP. Repeatable.
    #[arg(long = "insecure-registry")]
    insecure: Vec<String>,
    /// A docker-style config.json with credentials. Default: $DOCKER_CONFIG/config.json or
    /// ~/.docker/config.json when present.
    #[arg(long)]
    auth_file: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Pull an image from its registry (or a configured mirror) into the store.
    Pull {
        reference: String,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// List the images in the store.
    #[command(alias = "ls")]
    List {
        /// Output format: table (default) or json.
        #[arg(short = 'o', long, default_value = "table")]
        output: String,
    },
    /// Show an image's record, manifest and config as JSON.
    Inspect { reference: String },
    /// Load images from an OCI layout archive or a docker-archive tar.
    Load { file: PathBuf },
    /// Remove image names (refused while a container uses the image).
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        references: Vec<String>,
    },
    /// Remove blobs and snapshots that no image uses.
    Prune,
    /// Build the substitutes for the tutorials' images (nginx, httpd, ubuntu, busybox, echoserver,
    /// pause) from Debian 12 packages; layers are cached by recipe.
    BuildSubstitutes(super::substitutes::Args),
}

pub fn run(lab: &str, args: Args) -> Result<()> {
    if let Command::BuildSubstitutes(a) = args.command {
        return super::substitutes::build(a);
    }
    let store = Store::open(&args.store)
        .with_context(|| format!("open image store {}", args.store.display()))?;
    match args.command {
        Command::BuildSubstitutes(_) => unreachable!("handled above"),
        Command::Pull {
            reference,
            registry,
        } => pull(lab, &store, &reference, registry),
        Command::List { output } => list(&store, &output),
        Command::Inspect { reference } => inspect(&store, &reference),
        Command::Load { file } => {
            let recs = podnet_oci::load::load_archive(
                &store,
                &file,
                &podnet_oci::Platform::linux_amd64(),
            )?;
            for r in recs {
                println!("loaded {} ({})", r.reference, r.digest);
            }
            Ok(())
        }
        Command::Rm { references } => {
            for r in references {
                let rec = store.remove_image(&r)?;
                println!("removed {} ({})", rec.reference, rec.digest);
            }
            Ok(())
        }
        Command::Prune => {
            let rep = store.prune()?;
            println!(
                "removed {} blobs ({}), {} snapshots, {} temporaries",
                rep.blobs,
                human(rep.bytes),
                rep.snapshots,
                rep.temporaries
            );
            Ok(())
        }
    }
}

fn hosts_dir(lab: &str, flag: Option<PathBuf>) -> PathBuf {
    if let Some(d) = flag {
        return d;
    }
    if podnet_lab::status(lab).ok().flatten().is_some() {
        return Path::new(podnet_lab::paths::DATA_ROOT)
            .join(lab)
            .join("hosts.d");
    }
    PathBuf::from("/etc/podnet/hosts.d")
}

fn keychain(flag: Option<PathBuf>) -> Result<Keychain> {
    let path = flag.or_else(|| {
        let p = match std::env::var_os("DOCKER_CONFIG") {
            Some(d) => PathBuf::from(d).join("config.json"),
            None => PathBuf::from(std::env::var_os("HOME")?).join(".docker/config.json"),
        };
        p.is_file().then_some(p)
    });
    Ok(match path {
        Some(p) => Keychain::from_file(&p)?,
        None => Keychain::empty(),
    })
}

fn pull(lab: &str, store: &Store, reference: &str, reg: RegistryArgs) -> Result<()> {
    let r = Reference::parse(reference)?;
    let hosts = Hosts::new(Some(hosts_dir(lab, reg.hosts_dir)), reg.insecure);
    let puller = Puller::new(
        store.clone(),
        podnet_oci::default_dialer(),
        hosts,
        keychain(reg.auth_file)?,
    );
    let progress: Arc<dyn Fn(&Progress) + Send + Sync> = if std::io::stderr().is_terminal() {
        Arc::new(Bars::new().report())
    } else {
        Arc::new(|p: &Progress| match p {
            Progress::Resolved {
                reference,
                digest,
                layers,
            } => {
                eprintln!("resolved {reference} to {digest} ({} layers)", layers.len())
            }
            Progress::LayerDone {
                digest,
                cached: true,
            } => eprintln!("layer {digest}: already in the store"),
            Progress::LayerDone {
                digest,
                cached: false,
            } => eprintln!("layer {digest}: done"),
            Progress::Retry {
                digest,
                attempt,
                error,
            } => eprintln!("layer {digest}: attempt {attempt} failed, retrying: {error}"),
            Progress::Layer { .. } => {}
        })
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let rec = rt.block_on(puller.pull(
        &r,
        &PullOptions {
            credentials: None,
            progress: Some(progress),
        },
    ))?;
    match &rec.substitute_for {
        Some(up) => println!(
            "pulled {} ({}), a podnet SUBSTITUTE for {up}",
            rec.reference, rec.digest
        ),
        None => println!("pulled {} ({})", rec.reference, rec.digest),
    }
    Ok(())
}

/// Per-layer progress bars on a terminal.
struct Bars {
    multi: indicatif::MultiProgress,
    bars: Mutex<HashMap<String, indicatif::ProgressBar>>,
}

impl Bars {
    fn new() -> Arc<Bars> {
        Arc::new(Bars {
            multi: indicatif::MultiProgress::new(),
            bars: Mutex::new(HashMap::new()),
        })
    }
}

trait Report {
    fn report(self) -> impl Fn(&Progress) + Send + Sync;
}

impl Report for Arc<Bars> {
    fn report(self) -> impl Fn(&Progress) + Send + Sync {
        let style = indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:30}] {bytes}/{total_bytes} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> ");
        move |p: &Progress| {
            let mut bars = self.bars.lock().unwrap();
            match p {
                Progress::Resolved {
                    reference,
                    digest,
                    layers,
                } => {
                    let _ = self.multi.println(format!("{reference}: {digest}"));
                    for (d, size) in layers {
                        let b = self.multi.add(indicatif::ProgressBar::new(*size));
                        b.set_style(style.clone());
                        b.set_prefix(d.short().to_string());
                        bars.insert(d.to_string(), b);
                    }
                }
                Progress::Layer { digest, done, .. } => {
                    if let Some(b) = bars.get(&digest.to_string()) {
                        b.set_position(*done);
                    }
                }
                Progress::LayerDone { digest, cached } => {
                    if let Some(b) = bars.get(&digest.to_string()) {
                        if *cached {
                            b.set_position(b.length().unwrap_or(0));
                        }
                        b.finish_with_message(if *cached { "already there" } else { "done" });
                    }
                }
                Progress::Retry {
                    digest, attempt, ..
                } => {
                    if let Some(b) = bars.get(&digest.to_string()) {
                        b.set_message(format!("retry {attempt}"));
                    }
                }
            }
        }
    }
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn list(store: &Store, output: &str) -> Result<()> {
    let images = store.images()?;
    match output {
        "json" => {
            let v: Vec<_> = images.iter().map(image_json).collect();
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        "table" | "wide" => {
            println!(
                "{:<48} {:<19} {:<12} {:>9} {:<12} {:<20} SUBSTITUTE",
                "REFERENCE", "DIGEST", "IMAGE ID", "SIZE", "PLATFORM", "CREATED"
            );
            for i in &images {
                println!(
                    "{:<48} {:<19} {:<12} {:>9} {:<12} {:<20} {}",
                    i.reference,
                    format!("sha256:{}", i.digest.short()),
                    i.config.short(),
                    human(i.size),
                    i.platform.to_string(),
                    i.created
                        .as_deref()
                        .map(|c| c.get(..19).unwrap_or(c))
                        .unwrap_or("-"),
                    i.substitute_for
                        .as_ref()
                        .map(|s| format!("yes, for {s}"))
                        .unwrap_or_else(|| "-".into())
                );
            }
        }
        other => bail!("-o {other}: use table or json"),
    }
    Ok(())
}

fn image_json(i: &ImageRecord) -> serde_json::Value {
    json!({
        "reference": i.reference,
        "digest": i.digest.to_string(),
        "id": i.config.to_string(),
        "size": i.size,
        "platform": i.platform.to_string(),
        "created": i.created,
        "annotations": i.annotations,
        "labels": i.labels,
        "substitute": i.substitute_for.is_some(),
        "substituteFor": i.substitute_for,
    })
}

fn inspect(store: &Store, reference: &str) -> Result<()> {
    let rec = store.image(reference)?;
    let config: serde_json::Value = serde_json::from_slice(&store.read_blob(&rec.config)?)?;
    let manifest: serde_json::Value = serde_json::from_slice(&store.read_blob(&rec.digest)?)?;
    let mut v = image_json(&rec);
    v["mediaType"] = rec.media_type.clone().into();
    v["indexDigest"] = rec.index_digest.as_ref().map(|d| d.to_string()).into();
    v["layers"] = rec
        .layers
        .iter()
        .map(|l| {
            json!({"digest": l.digest.to_string(), "diffID": l.diff_id.to_string(), "size": l.size,
                   "mediaType": l.media_type, "snapshot": store.snapshot(&l.diff_id).map(|p| p.display().to_string())})
        })
        .collect::<Vec<_>>()
        .into();
    v["manifest"] = manifest;
    v["config"] = config;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}
