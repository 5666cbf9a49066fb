//! Image pull + unpack: `podnet image pull` against `podman pull` of the same ~100 MB multi-layer image
//! from the same loopback registry (Debian's docker-registry), both cold (a fresh store each round),
//! rounds interleaved. Then the set-up time of a container root filesystem (overlay) and the disk used
//! by ten containers of one image.
//!
//! Both stores live on a fresh ext4 file system (a loop-mounted sparse file) made for each tool and
//! round. Why: on a long-used root file system, ext4's inode allocator can spend most of an unpack in
//! its "recently deleted inode" scan (measured here: GNU tar needed 4.6 s on / and 0.27 s on a fresh
//! ext4 for the same 4k-file layer); on / the figure would measure that scan, for both tools alike.
//!
//! Usage: images-bench [--rounds R] [--rootfs N]   (root; see bench/images.sh)

use anyhow::{Context, Result, bail};
use podnet_bench::{arg, ms, p50_p95, ratio_line};
use podnet_oci::manifest::Compression;
use podnet_oci::testing::{Entry, Image, Layer, Layout, TestRegistry};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn image() -> Image {
    let tree = |dir, mb: u64| Layer::new(Compression::Gzip, vec![Entry::Tree(dir, mb << 20)]);
    Image::new(vec![
        Layer::busybox(Compression::Gzip),
        tree("/usr/share", 30),
        tree("/usr/lib/x86_64-linux-gnu", 30),
        tree("/usr/bin", 25),
        tree("/usr/lib/python3.11", 15),
    ])
}

fn du(p: &Path) -> Result<u64> {
    let out = Command::new("du")
        .args(["-s", "-B1", "-x"])
        .arg(p)
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .context("du output")?
        .parse()?)
}

/// A fresh ext4 file system on a loop device, unmounted and deleted on drop.
struct FreshFs {
    image: PathBuf,
    mount: PathBuf,
}

impl FreshFs {
    fn new(dir: &Path, name: &str) -> Result<FreshFs> {
        let image = dir.join(format!("{name}.img"));
        let mount = dir.join(name);
        std::fs::create_dir_all(&mount)?;
        std::fs::File::create(&image)?.set_len(3 << 30)?;
        run(
            Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image),
            "mkfs.ext4",
        )?;
        run(
            Command::new("mount")
                .args(["-o", "loop"])
                .arg(&image)
                .arg(&mount),
            "mount -o loop",
        )?;
        Ok(FreshFs { image, mount })
    }
}

impl Drop for FreshFs {
    fn drop(&mut self) {
        // Overlay mounts podman may have left inside first, then the file system itself.
        let _ = Command::new("umount").arg("-R").arg(&self.mount).output();
        let _ = std::fs::remove_dir(&self.mount);
        let _ = std::fs::remove_file(&self.image);
    }
}

fn run(cmd: &mut Command, what: &str) -> Result<Duration> {
    let started = Instant::now();
    let out = cmd.output().with_context(|| format!("run {what}"))?;
    let took = started.elapsed();
    if !out.status.success() {
        bail!(
            "{what}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(took)
}

/// podman with its own storage and config in `dir` (machine.md: no CAP_SYS_RESOURCE, no journald).
fn podman(dir: &Path) -> Result<Command> {
    let storage = dir.join("storage.conf");
    std::fs::write(
        &storage,
        format!(
            "[storage]\ndriver = \"overlay\"\ngraphroot = \"{0}/graph\"\nrunroot = \"{0}/run\"\n",
            dir.display()
        ),
    )?;
    let conf = dir.join("containers.conf");
    std::fs::write(
        &conf,
        format!(
            "[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\nruntime = \"runc\"\ntmp_dir = \"{0}/tmp\"\nimage_copy_tmp_dir = \"{0}/tmp\"\n[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n",
            dir.display()
        ),
    )?;
    std::fs::create_dir_all(dir.join("tmp"))?;
    let mut c = Command::new("podman");
    c.env("CONTAINERS_STORAGE_CONF", &storage)
        .env("CONTAINERS_CONF", &conf)
        .env("TMPDIR", dir.join("tmp"));
    Ok(c)
}

fn main() -> Result<()> {
    let rounds = arg("--rounds", 5) as usize;
    let rootfs_n = arg("--rootfs", 100) as usize;
    let podnet = std::env::current_exe()?.with_file_name("podnet");
    let work = tempfile::Builder::new()
        .prefix("pnt-images-bench")
        .tempdir()?;

    eprintln!("building the image (5 layers from busybox and /usr) and pushing it...");
    let reg = TestRegistry::start();
    let mut layout = Layout::new(&work.path().join("layout"));
    let built = layout.add("v1", &image());
    layout.push("v1", &reg, "bench/big", &[]);
    let reference = format!("{}/bench/big:v1", reg.host());
    let compressed: u64 = built
        .layers
        .iter()
        .map(|d| {
            std::fs::metadata(layout.dir.join("blobs/sha256").join(d.hex()))
                .map(|m| m.len())
                .unwrap_or(0)
        })
        .sum();

    // `--hold S`: keep the registry up for S seconds (for profiling by hand), then go on.
    let hold = arg("--hold", 0);
    if hold > 0 {
        eprintln!(
            "holding: {reference} (registry storage {})",
            reg.dir.path().display()
        );
        std::thread::sleep(Duration::from_secs(hold));
    }
    let hosts = work.path().join("hosts.d");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let mut unpacked = 0;
    let mut last_store = None;
    for round in 0..rounds {
        let ours_fs = FreshFs::new(work.path(), &format!("podnet-{round}"))?;
        let theirs_fs = FreshFs::new(work.path(), &format!("podman-{round}"))?;
        let store = ours_fs.mount.join("store");
        let mut p = podman(&theirs_fs.mount)?;
        p.args(["pull", "--quiet", "--tls-verify=false", &reference]);
        let mut n = Command::new(&podnet);
        n.args(["image", "--store"])
            .arg(&store)
            .args(["pull", "--hosts-dir"])
            .arg(&hosts)
            .arg(&reference);
        // Interleaved, alternating who goes first.
        if round % 2 == 0 {
            ours.push(run(&mut n, "podnet image pull")?);
            theirs.push(run(&mut p, "podman pull")?);
        } else {
            theirs.push(run(&mut p, "podman pull")?);
            ours.push(run(&mut n, "podnet image pull")?);
        }
        unpacked = du(&store.join("s"))?;
        let _ = podman(&theirs_fs.mount)?
            .args(["rmi", "--all", "--force"])
            .output();
        drop(theirs_fs);
        last_store = Some(ours_fs);
    }
    let last_fs = last_store.context("at least one round")?;
    println!(
        "image: {} layers, {:.1} MB compressed, {:.1} MB unpacked; {rounds} cold rounds each, interleaved",
        built.layers.len(),
        compressed as f64 / 1e6,
        unpacked as f64 / 1e6
    );
    let (o50, o95) = p50_p95(ours.clone());
    let (t50, t95) = p50_p95(theirs.clone());
    println!(
        "{}",
        ratio_line("pull+unpack p50 (vs podman)", o50, t50, 0.5)
    );
    println!(
        "{}",
        ratio_line("pull+unpack p95 (vs podman)", o95, t95, 0.5)
    );

    // Root filesystems from the last round's store.
    let store = podnet_oci::Store::open(last_fs.mount.join("store"))?;
    let mnt = last_fs.mount.join("mnt");
    let mut times = Vec::new();
    for i in 0..rootfs_n {
        let key = format!("pnt-bench-{i}");
        let mp = mnt.join(i.to_string());
        let started = Instant::now();
        store.prepare_rootfs(&reference, &key, &format!("bench container {i}"), &mp)?;
        times.push(started.elapsed());
        store.remove_rootfs(&key)?;
    }
    let (r50, r95) = p50_p95(times);
    let verdict = if r50 < Duration::from_millis(5) {
        "meets"
    } else {
        "MISSES"
    };
    println!(
        "rootfs set-up (overlay, {rootfs_n} runs): p50 {} p95 {} ({verdict} target < 5 ms)",
        ms(r50),
        ms(r95)
    );

    let before = du(store.root())?;
    for i in 0..10 {
        let mp = mnt.join(format!("ten-{i}"));
        store.prepare_rootfs(
            &reference,
            &format!("pnt-ten-{i}"),
            &format!("bench container {i}"),
            &mp,
        )?;
    }
    let after = du(store.root())?;
    for i in 0..10 {
        store.remove_rootfs(&format!("pnt-ten-{i}"))?;
    }
    println!(
        "ten containers of one image: store {:.1} MB before, {:.1} MB after (+{} kB for ten writable layers)",
        before as f64 / 1e6,
        after as f64 / 1e6,
        (after - before) / 1000
    );
    drop(store);
    drop(last_fs);
    drop(reg);
    Ok(())
}
