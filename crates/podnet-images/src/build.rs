//! The build: each layer built once and cached by content, then the images assembled from the
//! cached layers into one OCI image layout.
//!
//! A layer's cache key hashes its recipe with what it is built from: the Debian base's key covers
//! its recipe, the mirrors and the dpkg exclusions; a package layer's covers its recipe and the
//! base layer's diff id (so, the base's exact package versions); a binary layer's covers the
//! binary's digest. A changed recipe means a new key, so that layer (and every image using it) is
//! built again; the base is not rebuilt for a new Debian point release until its recipe changes
//! (or the cache is removed). Images (configs, manifests, index) are cheap and written every run.

use crate::annotations::annotations;
use crate::busybox::busybox_tree;
use crate::debian::{self, AptStep, Mirrors};
use crate::digest::Digest;
use crate::error::{Error, Result, io_at};
use crate::layout::{self, LayerInfo, Layout, Named};
use crate::lock::{lock, lock_path};
use crate::recipe::{
    self, DPKG_EXCLUDES, ImageRecipe, Input, LayerKind, LayerRecipe, Ref, SOURCE_DATE_EPOCH, SUITE,
};
use crate::tarball::{self, Layer, TreeKind};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Changes whenever the builder makes different bytes from the same recipe.
pub const FORMAT: &str = "podnet-images/1";

/// What to build and where.
#[derive(Debug, Clone)]
pub struct Options {
    /// Built layers, kept between runs (`.cache/images` under the repository in its scripts).
    pub cache_dir: PathBuf,
    /// The OCI image layout written (the lab pushes from it).
    pub out_dir: PathBuf,
    pub mirrors: Mirrors,
    /// The static `podnet-echoserver`; without it the echoserver image is skipped.
    pub echoserver: Option<PathBuf>,
    /// The static `podnet-pause`; without it the pause image is skipped.
    pub pause: Option<PathBuf>,
    /// The static `podnet-dns`; without it the dns image is skipped.
    pub dns: Option<PathBuf>,
    /// The static `podnet-ingress`; without it the ingress image is skipped.
    pub ingress: Option<PathBuf>,
    /// Image names to build (`nginx`, `httpd`, ...); empty: all.
    pub only: Vec<String>,
}

/// One name in the output layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltRef {
    pub image: &'static str,
    pub reference: String,
    pub manifest: Digest,
    pub substitute_for: Option<String>,
}

#[derive(Debug, Default)]
pub struct Report {
    pub refs: Vec<BuiltRef>,
    /// Images left out, with why.
    pub skipped: Vec<String>,
    pub layers_built: Vec<String>,
    pub layers_cached: Vec<String>,
}

/// A layer in the cache.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct LayerMeta {
    key: Digest,
    layer: Layer,
    /// Packages this layer installed or changed (all of them for the base): name -> version.
    packages: BTreeMap<String, String>,
    created_by: String,
}

/// Builds the substitutes `opts` asks for; progress lines go to `progress`.
pub fn build(opts: &Options, progress: &mut dyn FnMut(&str)) -> Result<Report> {
    let started = Instant::now();
    fs::create_dir_all(&opts.cache_dir).map_err(io_at("create", &opts.cache_dir))?;
    let _lock = lock(&opts.cache_dir.join(".lock"), true, progress)?;
    progress(&format!(
        "podnet substitutes: cache {}, output {}",
        opts.cache_dir.display(),
        opts.out_dir.display()
    ));
    let mut report = Report::default();
    let images = select(opts, &mut report)?;
    let mut wanted: Vec<&'static LayerRecipe> = recipe::LAYERS
        .iter()
        .filter(|l| images.iter().any(|i| i.layers.contains(&l.name)))
        .collect();
    // Package layers and busybox are built on the base even when no selected image shows it.
    let needs_base = wanted
        .iter()
        .any(|l| matches!(l.kind, LayerKind::Apt { .. } | LayerKind::Busybox));
    if needs_base && !wanted.iter().any(|l| l.name == "base") {
        wanted.insert(0, recipe::layer("base").expect("base recipe"));
    }

    let mut metas: BTreeMap<&'static str, LayerMeta> = BTreeMap::new();
    let total = wanted.len();
    for (i, l) in wanted.iter().enumerate() {
        let step = format!("[{}/{total}] layer {}", i + 1, l.name);
        let base = metas.get("base").cloned();
        let key = layer_key(l, opts, base.as_ref())?;
        let dir = layer_dir(&opts.cache_dir, l.name, &key);
        if let Some(meta) = read_meta(&dir, &key) {
            progress(&format!(
                "{step}: cached, {} {}",
                mb(meta.layer.size),
                meta.layer.digest.short()
            ));
            report.layers_cached.push(l.name.to_string());
            metas.insert(l.name, meta);
            continue;
        }
        let t = Instant::now();
        let log = opts.cache_dir.join("logs").join(format!("{}.log", l.name));
        fs::create_dir_all(log.parent().expect("has parent"))
            .map_err(io_at("create", &opts.cache_dir))?;
        let _ = fs::remove_file(&log);
        progress(&format!(
            "{step}: building ({}); log {}",
            describe_layer(l),
            log.display()
        ));
        let meta = build_layer(l, opts, base.as_ref(), &key, &dir, &log)?;
        progress(&format!(
            "{step}: built in {:.1} s, {} {}",
            t.elapsed().as_secs_f64(),
            mb(meta.layer.size),
            meta.layer.digest.short()
        ));
        report.layers_built.push(l.name.to_string());
        metas.insert(l.name, meta);
    }

    fs::create_dir_all(&opts.out_dir).map_err(io_at("create", &opts.out_dir))?;
    let _out_lock = lock(&lock_path(&opts.out_dir), true, progress)?;
    let out = Layout::create(&opts.out_dir)?;
    let mut named = Vec::new();
    // The base image first: the others name its digest.
    let base_image = recipe::image("debian").expect("debian recipe");
    let mut base_digest = None;
    let mut ordered: Vec<&ImageRecipe> = Vec::new();
    if metas.contains_key("base") {
        ordered.push(base_image);
    }
    ordered.extend(images.iter().filter(|i| i.name != "debian"));
    for image in ordered {
        let mut line = format!("image {}:", image.name);
        for r in image.refs {
            let digest = write_image(&out, image, r, &metas, base_digest.as_ref(), opts)?;
            line.push_str(&format!(" {} {}", r.reference, digest.short()));
            if image.name == "debian" {
                base_digest = Some(digest.clone());
            }
            named.push(Named {
                reference: r.reference.to_string(),
                size: fs::metadata(out.blob_path(&digest))
                    .map_err(io_at("stat", &out.blob_path(&digest)))?
                    .len(),
                manifest: digest.clone(),
            });
            report.refs.push(BuiltRef {
                image: image.name,
                reference: r.reference.to_string(),
                manifest: digest,
                substitute_for: r.substitute_for.map(str::to_string),
            });
        }
        progress(&line);
    }
    let removed = out.write_index(&named)?;
    progress(&format!(
        "done in {:.1} s: {} names in {} ({} layers built, {} cached{})",
        started.elapsed().as_secs_f64(),
        named.len(),
        opts.out_dir.display(),
        report.layers_built.len(),
        report.layers_cached.len(),
        if removed > 0 {
            format!(", {removed} unused blobs removed")
        } else {
            String::new()
        }
    ));
    Ok(report)
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// The images to build: all, or those named; those whose binary was not supplied are skipped.
fn select(opts: &Options, report: &mut Report) -> Result<Vec<&'static ImageRecipe>> {
    for name in &opts.only {
        if recipe::image(name).is_none() {
            let known: Vec<&str> = recipe::IMAGES.iter().map(|i| i.name).collect();
            return Err(Error::Invalid(format!(
                "no substitute image named {name:?} (known: {})",
                known.join(", ")
            )));
        }
    }
    let mut out = Vec::new();
    for image in recipe::IMAGES {
        if !opts.only.is_empty() && !opts.only.iter().any(|n| n == image.name) {
            continue;
        }
        let missing =
            image
                .layers
                .iter()
                .find_map(|l| match recipe::layer(l).expect("known layer").kind {
                    LayerKind::Binary { input, .. } if input_path(opts, input).is_none() => {
                        Some(input)
                    }
                    _ => None,
                });
        if let Some(input) = missing {
            report.skipped.push(format!(
                "{}: no {} binary given (--{})",
                image.name,
                input.name(),
                input.name().trim_start_matches("podnet-")
            ));
            continue;
        }
        out.push(image);
    }
    Ok(out)
}

fn input_path(opts: &Options, input: Input) -> Option<&Path> {
    match input {
        Input::Echoserver => opts.echoserver.as_deref(),
        Input::Pause => opts.pause.as_deref(),
        Input::Dns => opts.dns.as_deref(),
        Input::Ingress => opts.ingress.as_deref(),
    }
}

fn describe_layer(l: &LayerRecipe) -> String {
    match l.kind {
        LayerKind::DebianBase => format!("mmdebstrap Debian 12 {SUITE} minbase"),
        LayerKind::Apt { packages, .. } => format!("apt-get install {}", packages.join(" ")),
        LayerKind::Busybox => "Debian's busybox-static and its applet links".into(),
        LayerKind::Binary { input, path } => format!("{} at {path}", input.name()),
    }
}

fn layer_key(l: &LayerRecipe, opts: &Options, base: Option<&LayerMeta>) -> Result<Digest> {
    let from = match l.kind {
        LayerKind::DebianBase => format!(
            "{SUITE} {SOURCE_DATE_EPOCH} {:?} {:?}",
            opts.mirrors.sources(),
            DPKG_EXCLUDES
        ),
        LayerKind::Apt { .. } | LayerKind::Busybox => base
            .map(|b| b.layer.diff_id.to_string())
            .expect("the base is built first"),
        LayerKind::Binary { input, .. } => {
            let path = input_path(opts, input).expect("selected images have their inputs");
            Digest::of(&fs::read(path).map_err(io_at("read", path))?).to_string()
        }
    };
    Ok(Digest::of(
        format!("{FORMAT}\n{l:?}\n{SOURCE_DATE_EPOCH}\n{from}").as_bytes(),
    ))
}

fn layer_dir(cache: &Path, name: &str, key: &Digest) -> PathBuf {
    cache
        .join("layers")
        .join(format!("{name}-{}", &key.hex()[..16]))
}

fn read_meta(dir: &Path, key: &Digest) -> Option<LayerMeta> {
    let meta: LayerMeta = serde_json::from_slice(&fs::read(dir.join("layer.json")).ok()?).ok()?;
    let blob = fs::metadata(dir.join("layer.tar.gz")).ok()?;
    (meta.key == *key && blob.len() == meta.layer.size).then_some(meta)
}

/// Builds one layer into `dir` (through `dir.tmp`, renamed when complete).
fn build_layer(
    l: &LayerRecipe,
    opts: &Options,
    base: Option<&LayerMeta>,
    key: &Digest,
    dir: &Path,
    log: &Path,
) -> Result<LayerMeta> {
    let tmp = dir.with_extension("tmp");
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io_at("remove", &tmp))?;
    }
    fs::create_dir_all(&tmp).map_err(io_at("create", &tmp))?;
    let scratch = opts.cache_dir.join("scratch").join(l.name);
    let blob = tmp.join("layer.tar.gz");
    let base_dir = base.map(|b| layer_dir(&opts.cache_dir, "base", &b.key));
    let (layer, packages, created_by) = match l.kind {
        LayerKind::DebianBase => {
            let rootfs = tmp.join("rootfs");
            debian::bootstrap(&opts.mirrors, &rootfs, &tmp.join("apt"), log)?;
            let layer = tarball::write_layer(&rootfs, TreeKind::Plain, SOURCE_DATE_EPOCH, &blob)?;
            let packages = debian::packages(&rootfs)?;
            (
                layer,
                packages,
                format!("mmdebstrap --variant=minbase {SUITE} (podnet-images)"),
            )
        }
        LayerKind::Apt {
            packages,
            files,
            script,
        } => {
            let base_dir = base_dir.expect("base built first");
            let step = AptStep {
                base: &base_dir.join("rootfs"),
                apt: &base_dir.join("apt"),
                scratch: &scratch,
                packages,
                files,
                script,
                log,
                what: &format!(
                    "build layer {}: apt-get install {}",
                    l.name,
                    packages.join(" ")
                ),
            };
            step.run()?;
            let layer = tarball::write_layer(
                &step.upper(),
                TreeKind::OverlayUpper,
                SOURCE_DATE_EPOCH,
                &blob,
            )?;
            let installed = changed_packages(&step.upper(), base)?;
            (
                layer,
                installed,
                format!(
                    "apt-get install {} (podnet-images layer {})",
                    packages.join(" "),
                    l.name
                ),
            )
        }
        LayerKind::Busybox => {
            let base_dir = base_dir.expect("base built first");
            let step = AptStep {
                base: &base_dir.join("rootfs"),
                apt: &base_dir.join("apt"),
                scratch: &scratch,
                packages: &["busybox-static"],
                files: &[],
                script: "",
                log,
                what: "build layer busybox: apt-get install busybox-static",
            };
            step.run()?;
            let installed = changed_packages(&step.upper(), base)?;
            let tree = scratch.join("tree");
            busybox_tree(&step.upper(), &tree)?;
            let layer = tarball::write_layer(&tree, TreeKind::Plain, SOURCE_DATE_EPOCH, &blob)?;
            (
                layer,
                installed,
                "busybox-static with its applet links (podnet-images layer busybox)".into(),
            )
        }
        LayerKind::Binary { input, path } => {
            let src = input_path(opts, input).expect("selected images have their inputs");
            let tree = scratch.join("tree");
            let _ = fs::remove_dir_all(&tree);
            let dst = tree.join(path.trim_start_matches('/'));
            fs::create_dir_all(dst.parent().expect("has parent"))
                .map_err(io_at("create", &tree))?;
            fs::copy(src, &dst).map_err(io_at("copy", src))?;
            fs::set_permissions(&dst, fs::Permissions::from_mode(0o755))
                .map_err(io_at("chmod", &dst))?;
            let layer = tarball::write_layer(&tree, TreeKind::Plain, SOURCE_DATE_EPOCH, &blob)?;
            (
                layer,
                BTreeMap::new(),
                format!(
                    "{} at {path} (podnet-images layer {})",
                    input.name(),
                    l.name
                ),
            )
        }
    };
    let _ = fs::remove_dir_all(&scratch);
    let meta = LayerMeta {
        key: key.clone(),
        layer,
        packages,
        created_by,
    };
    layout::write_atomic(
        &tmp.join("layer.json"),
        &serde_json::to_vec_pretty(&meta).expect("meta serialises"),
    )?;
    // Older builds of this layer (other keys) make way for this one.
    let prefix = format!("{}-", l.name);
    if let Ok(entries) = fs::read_dir(opts.cache_dir.join("layers")) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let rest = name.strip_prefix(&prefix).unwrap_or("");
            // `<name>-<16 hex>` only: `base-` must not match a layer called `base-x`.
            if rest.len() == 16 && rest.bytes().all(|b| b.is_ascii_hexdigit()) {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    fs::rename(&tmp, dir).map_err(io_at("publish", dir))?;
    Ok(meta)
}

/// Packages the step installed or upgraded compared with the base.
fn changed_packages(upper: &Path, base: Option<&LayerMeta>) -> Result<BTreeMap<String, String>> {
    let after = debian::upper_packages(upper)?.unwrap_or_default();
    let before = base.map(|b| &b.packages);
    Ok(after
        .into_iter()
        .filter(|(p, v)| before.and_then(|b| b.get(p)) != Some(v))
        .collect())
}

/// Writes one image (config, manifest) into the layout; returns its manifest digest.
fn write_image(
    out: &Layout,
    image: &ImageRecipe,
    r: &Ref,
    metas: &BTreeMap<&'static str, LayerMeta>,
    base_digest: Option<&Digest>,
    opts: &Options,
) -> Result<Digest> {
    let layers: Vec<&LayerMeta> = image
        .layers
        .iter()
        .map(|l| metas.get(l).expect("layers built"))
        .collect();
    let mut versions: BTreeMap<String, String> = BTreeMap::new();
    for l in &layers {
        versions.extend(l.packages.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    let image_key = Digest::of(
        format!(
            "{FORMAT}\n{image:?}\n{}",
            layers
                .iter()
                .map(|l| l.key.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        )
        .as_bytes(),
    );
    let annotations = annotations(image, r, &versions, &image_key, base_digest);
    let created = layout::rfc3339(SOURCE_DATE_EPOCH);
    let infos: Vec<LayerInfo> = layers
        .iter()
        .map(|l| LayerInfo {
            layer: l.layer.clone(),
            created_by: l.created_by.clone(),
        })
        .collect();
    for (name, l) in image.layers.iter().zip(&layers) {
        let dir = layer_dir(&opts.cache_dir, name, &l.key);
        out.put_file(&dir.join("layer.tar.gz"), &l.layer.digest)?;
    }
    let config = layout::image_config(&image.config, &infos, &annotations, &created)?;
    let (config_digest, config_size) = out.put_bytes(&config)?;
    let layer_list: Vec<Layer> = layers.iter().map(|l| l.layer.clone()).collect();
    let manifest = layout::manifest((&config_digest, config_size), &layer_list, &annotations)?;
    Ok(out.put_bytes(&manifest)?.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(dir: &Path, pause: Option<PathBuf>) -> Options {
        Options {
            cache_dir: dir.join("cache"),
            out_dir: dir.join("out"),
            mirrors: Mirrors::default(),
            echoserver: None,
            pause,
            dns: None,
            ingress: None,
            only: vec![],
        }
    }

    #[test]
    fn a_recipe_change_or_another_input_changes_the_key() {
        let dir = std::env::temp_dir().join(format!("pnt-keys-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("a"), b"binary a").unwrap();
        fs::write(dir.join("b"), b"binary b").unwrap();
        let pause = recipe::layer("pause").unwrap();
        let ka = layer_key(pause, &opts(&dir, Some(dir.join("a"))), None).unwrap();
        let ka2 = layer_key(pause, &opts(&dir, Some(dir.join("a"))), None).unwrap();
        let kb = layer_key(pause, &opts(&dir, Some(dir.join("b"))), None).unwrap();
        assert_eq!(ka, ka2);
        assert_ne!(ka, kb);
        let moved = LayerRecipe {
            name: "pause",
            kind: LayerKind::Binary {
                input: Input::Pause,
                path: "/bin/pause",
            },
        };
        assert_ne!(
            layer_key(&moved, &opts(&dir, Some(dir.join("a"))), None).unwrap(),
            ka
        );
        let base = recipe::layer("base").unwrap();
        let mut other = opts(&dir, None);
        other.mirrors.debian = "http://mirror.example/debian".into();
        assert_ne!(
            layer_key(base, &opts(&dir, None), None).unwrap(),
            layer_key(base, &other, None).unwrap()
        );
        // A package layer follows the base it is built on.
        let meta = |d: &[u8]| LayerMeta {
            key: Digest::of(d),
            layer: Layer {
                digest: Digest::of(d),
                diff_id: Digest::of(d),
                size: 1,
            },
            packages: BTreeMap::new(),
            created_by: String::new(),
        };
        let nginx = recipe::layer("nginx").unwrap();
        assert_ne!(
            layer_key(nginx, &opts(&dir, None), Some(&meta(b"1"))).unwrap(),
            layer_key(nginx, &opts(&dir, None), Some(&meta(b"2"))).unwrap()
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    /// The pause image alone (no Debian needed): built, cached on the second run, the same
    /// digests from a fresh cache, and the layout names both references.
    #[test]
    fn a_binary_image_builds_reproducibly_and_is_cached() {
        let dir = std::env::temp_dir().join(format!("pnt-build-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let bin = dir.join("stand-in-pause");
        fs::write(&bin, b"\x7fELF pretend static binary").unwrap();
        let mut o = opts(&dir, Some(bin.clone()));
        o.only = vec!["pause".into()];
        let mut lines = Vec::new();
        let first = build(&o, &mut |l| lines.push(l.to_string())).unwrap();
        assert_eq!(first.layers_built, ["pause"]);
        assert_eq!(first.refs.len(), 2);
        let second = build(&o, &mut |_| {}).unwrap();
        assert_eq!(second.layers_cached, ["pause"]);
        assert_eq!(first.refs, second.refs);
        assert!(
            lines.iter().any(|l| l.contains("layer pause: built")),
            "{lines:?}"
        );
        let mut fresh = o.clone();
        fresh.cache_dir = dir.join("cache2");
        fresh.out_dir = dir.join("out2");
        assert_eq!(build(&fresh, &mut |_| {}).unwrap().refs, first.refs);
        let index = layout::read_index(&o.out_dir).unwrap();
        let names: Vec<&str> = index.iter().map(|n| n.reference.as_str()).collect();
        assert_eq!(
            names,
            [
                "localhost/podnet/pause:latest",
                "registry.k8s.io/pause:3.10"
            ]
        );
        // Another binary: a new layer, new digests.
        fs::write(&bin, b"\x7fELF another build").unwrap();
        let third = build(&o, &mut |_| {}).unwrap();
        assert_eq!(third.layers_built, ["pause"]);
        assert_ne!(third.refs[0].manifest, first.refs[0].manifest);
        // Unknown names are refused by name.
        o.only = vec!["nginks".into()];
        let e = build(&o, &mut |_| {}).unwrap_err().to_string();
        assert!(e.contains("nginks") && e.contains("nginx"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// podnet's own dns image: the binary alone under podnet's name, not labelled a substitute;
    /// skipped, naming the flag, when the binary is not given.
    #[test]
    fn the_dns_image_is_podnets_own() {
        let dir = std::env::temp_dir().join(format!("pnt-build-dns-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let mut o = opts(&dir, None);
        o.only = vec!["dns".into()];
        let skipped = build(&o, &mut |_| {}).unwrap();
        assert!(skipped.refs.is_empty());
        assert_eq!(skipped.skipped, ["dns: no podnet-dns binary given (--dns)"]);
        let bin = dir.join("stand-in-dns");
        fs::write(&bin, b"\x7fELF pretend podnet-dns").unwrap();
        o.dns = Some(bin);
        let built = build(&o, &mut |_| {}).unwrap();
        assert_eq!(built.layers_built, ["dns"]);
        assert_eq!(built.refs.len(), 1);
        assert_eq!(built.refs[0].reference, "localhost/podnet/dns:latest");
        assert_eq!(built.refs[0].substitute_for, None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
