//! What an image says about itself: the OCI annotations (and, the same map, the config labels),
//! with `io.podnet.image.substitute-for` naming the upstream image a substitute stands in for.

use crate::digest::Digest;
use crate::layout;
use crate::recipe::{self, BASE_REF, ImageRecipe, Ref, SOURCE_DATE_EPOCH};
use std::collections::BTreeMap;

/// The key `podnet image list` shows as SUBSTITUTE.
pub const SUBSTITUTE_KEY: &str = "io.podnet.image.substitute-for";
/// The hash of the image's recipe and its layers' keys.
pub const RECIPE_KEY: &str = "io.podnet.image.recipe";

/// What the image says about itself: both the manifest's annotations and the config's labels.
pub fn annotations(
    image: &ImageRecipe,
    r: &Ref,
    versions: &BTreeMap<String, String>,
    image_key: &Digest,
    base_digest: Option<&Digest>,
) -> BTreeMap<String, String> {
    let podnet = env!("CARGO_PKG_VERSION");
    let version_of = |pkg: &str| {
        if pkg == "podnet" {
            Some(podnet.to_string())
        } else {
            versions
                .get(pkg)
                .map(|v| recipe::upstream_version(v).to_string())
        }
    };
    let what = recipe::describe(image.what, version_of);
    let mut a = BTreeMap::new();
    let (title, description) = match r.substitute_for {
        Some(upstream) => (
            format!("{} (podnet substitute)", image.name),
            format!(
                "podnet substitute for {upstream}: {what}, built locally; not the upstream image"
            ),
        ),
        None => (
            format!("podnet {}", image.name),
            format!("podnet's own image: {what}, built locally"),
        ),
    };
    a.insert("org.opencontainers.image.title".into(), title);
    a.insert("org.opencontainers.image.description".into(), description);
    let version = match image.version_of {
        Some(pkg) => versions
            .get(pkg)
            .cloned()
            .unwrap_or_else(|| "unknown".into()),
        None => podnet.to_string(),
    };
    a.insert("org.opencontainers.image.version".into(), version);
    a.insert(
        "org.opencontainers.image.created".into(),
        layout::rfc3339(SOURCE_DATE_EPOCH),
    );
    a.insert(
        "org.opencontainers.image.source".into(),
        format!(
            "podnet {podnet} crates/podnet-images/src/recipe.rs, image recipe {:?} (recipe {})",
            image.name,
            image_key.short()
        ),
    );
    if image.layers.first() == Some(&"base") && r.reference != BASE_REF {
        a.insert("org.opencontainers.image.base.name".into(), BASE_REF.into());
        if let Some(d) = base_digest {
            a.insert("org.opencontainers.image.base.digest".into(), d.to_string());
        }
    } else {
        // The Debian base itself (mmdebstrap), busybox and pause start from nothing.
        a.insert(
            "org.opencontainers.image.base.name".into(),
            "scratch".into(),
        );
    }
    if let Some(upstream) = r.substitute_for {
        a.insert(SUBSTITUTE_KEY.into(), upstream.into());
    }
    a.insert(RECIPE_KEY.into(), image_key.to_string());
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versions() -> BTreeMap<String, String> {
        [("nginx", "1.22.1-9+deb12u12"), ("bash", "5.2.15-2+b7")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn substitutes_say_what_they_are_and_what_they_stand_in_for() {
        let nginx = recipe::image("nginx").unwrap();
        let key = Digest::of(b"k");
        let base = Digest::of(b"base");
        let a = annotations(nginx, &nginx.refs[1], &versions(), &key, Some(&base));
        assert_eq!(a[SUBSTITUTE_KEY], "docker.io/library/nginx:alpine");
        assert_eq!(
            a["org.opencontainers.image.description"],
            "podnet substitute for docker.io/library/nginx:alpine: Debian 12 nginx 1.22.1 serving its default page on :80, logging to stdout, built locally; not the upstream image"
        );
        assert_eq!(a["org.opencontainers.image.version"], "1.22.1-9+deb12u12");
        assert_eq!(
            a["org.opencontainers.image.created"],
            "2026-01-01T00:00:00Z"
        );
        assert_eq!(a["org.opencontainers.image.base.name"], BASE_REF);
        assert_eq!(a["org.opencontainers.image.base.digest"], base.as_str());
        assert!(a["org.opencontainers.image.source"].contains("recipe.rs"));
        assert_eq!(a[RECIPE_KEY], key.as_str());
    }

    #[test]
    fn podnets_own_names_carry_no_substitute_key() {
        let pause = recipe::image("pause").unwrap();
        let own = pause
            .refs
            .iter()
            .find(|r| r.substitute_for.is_none())
            .unwrap();
        let a = annotations(pause, own, &BTreeMap::new(), &Digest::of(b"k"), None);
        assert!(!a.contains_key(SUBSTITUTE_KEY));
        assert_eq!(a["org.opencontainers.image.base.name"], "scratch");
        assert_eq!(
            a["org.opencontainers.image.version"],
            env!("CARGO_PKG_VERSION")
        );
        let sub = pause
            .refs
            .iter()
            .find(|r| r.substitute_for.is_some())
            .unwrap();
        let a = annotations(pause, sub, &BTreeMap::new(), &Digest::of(b"k"), None);
        assert_eq!(a[SUBSTITUTE_KEY], "registry.k8s.io/pause:3.10");
    }
}
