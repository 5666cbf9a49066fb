//! `podnet image build-substitutes`: build the tutorials' substitute images from Debian's packages
//! (see crates/podnet-images), cached by recipe, into an OCI image layout the lab pushes from.

use anyhow::{Context, Result};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Where built layers are kept between runs (the repository's scripts use .cache/images).
    #[arg(
        long,
        env = "PODNET_IMAGE_CACHE",
        default_value = "/var/cache/podnet/images"
    )]
    cache: PathBuf,
    /// The OCI image layout to write (`podnet up` pushes from the default one).
    #[arg(long, default_value = podnet_images::DEFAULT_OUT_DIR)]
    out: PathBuf,
    /// The static podnet-echoserver binary (scripts/build-static.sh); without it no echoserver image.
    #[arg(long, env = "PODNET_ECHOSERVER")]
    echoserver: Option<PathBuf>,
    /// The static podnet-pause binary; without it no pause image.
    #[arg(long, env = "PODNET_PAUSE")]
    pause: Option<PathBuf>,
    /// The static podnet-dns binary (scripts/build-static.sh); without it no dns image.
    #[arg(long, env = "PODNET_DNS")]
    dns: Option<PathBuf>,
    /// The static podnet-ingress binary (scripts/build-static.sh); without it no ingress image.
    #[arg(long, env = "PODNET_INGRESS")]
    ingress: Option<PathBuf>,
    /// Build only these images (repeatable): debian, nginx, httpd, ubuntu, busybox, echoserver, pause,
    /// dns, ingress.
    #[arg(long)]
    only: Vec<String>,
    /// Debian mirror apt fetches from.
    #[arg(long, env = "PODNET_DEBIAN_MIRROR", default_value = podnet_images::recipe::DEBIAN_MIRROR)]
    debian_mirror: String,
    /// Debian security mirror.
    #[arg(long, env = "PODNET_SECURITY_MIRROR", default_value = podnet_images::recipe::SECURITY_MIRROR)]
    security_mirror: String,
    /// Also push the images to this registry (HOST:PORT, plain HTTP: loopback registries only).
    #[arg(long)]
    push: Option<String>,
}

pub fn build(a: Args) -> Result<()> {
    super::require_root("podnet image build-substitutes")?;
    let opts = podnet_images::Options {
        cache_dir: a.cache,
        out_dir: a.out,
        mirrors: podnet_images::debian::Mirrors {
            debian: a.debian_mirror,
            security: a.security_mirror,
        },
        echoserver: a.echoserver,
        pause: a.pause,
        dns: a.dns,
        ingress: a.ingress,
        only: a.only,
    };
    let mut progress = |line: &str| println!("{line}");
    let report = podnet_images::build(&opts, &mut progress).context("build the substitutes")?;
    for skipped in &report.skipped {
        println!("skipped {skipped}");
    }
    if let Some(registry) = a.push {
        let published = podnet_images::publish::publish(&opts.out_dir, &registry, &mut progress)
            .with_context(|| format!("push the substitutes to {registry}"))?;
        println!(
            "registry {registry}: {} pushed, {} already there",
            published.pushed.len(),
            published.present.len()
        );
    }
    Ok(())
}
