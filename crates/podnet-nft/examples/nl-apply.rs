//! Applies nft scripts over netlink in the current network namespace, timing each:
//! `nl-apply FILE...` (run under `ip netns exec`). Sets must be declared in an earlier file.
fn main() {
    let mut nl = podnet_nft::Netlink::new();
    for f in std::env::args().skip(1) {
        let text = std::fs::read_to_string(&f).expect("read script");
        let t = std::time::Instant::now();
        let r = nl.apply(&text);
        println!(
            "{f}: {:?} in {:.2} ms",
            r.err(),
            t.elapsed().as_secs_f64() * 1e3
        );
    }
}
