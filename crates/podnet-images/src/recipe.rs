//! The recipes: what each substitute is made of and how it runs. Pure data.
//!
//! Layers are shared between images: one Debian 12 base layer (mmdebstrap, minbase, documentation
//! left out as the `-slim` images do), then one layer per image of Debian packages installed on top
//! of it, plus layers holding podnet's own static binaries. busybox and pause have no base under
//! them, like their upstream images.
//!
//! A recipe's text is part of its cache key (see `build.rs`): change a package list, a file or a
//! script here and that layer, and every image using it, is rebuilt.

/// Debian release the substitutes are built from.
pub const SUITE: &str = "bookworm";
pub const DEBIAN_MIRROR: &str = "http://deb.debian.org/debian";
pub const SECURITY_MIRROR: &str = "http://deb.debian.org/debian-security";

/// SOURCE_DATE_EPOCH of every build (2026-01-01T00:00:00Z): passed to mmdebstrap and dpkg, the
/// ceiling of every file time in a layer, and the images' `created` time, so that the digests depend
/// only on the recipes and the package versions.
pub const SOURCE_DATE_EPOCH: u64 = 1_767_225_600;

/// Files dpkg leaves out of every layer (the `-slim` images' list): documentation but the
/// copyright files, manual pages, translations.
pub const DPKG_EXCLUDES: &[&str] = &[
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/lintian/*",
];

/// A file a layer recipe writes (before its script runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct File {
    pub path: &'static str,
    pub mode: u32,
    pub content: &'static str,
}

/// A binary supplied to the build (built by cargo beforehand).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// `podnet-echoserver` (crates/podnet-echoserver), linked statically.
    Echoserver,
    /// `podnet-pause` (crates/podnet-pause), static.
    Pause,
    /// `podnet-dns` (crates/podnet-dns), the cluster DNS server, linked statically.
    Dns,
    /// `podnet-ingress` (crates/podnet-ingress), the ingress controller, linked statically.
    Ingress,
}

impl Input {
    pub fn name(self) -> &'static str {
        match self {
            Input::Echoserver => "podnet-echoserver",
            Input::Pause => "podnet-pause",
            Input::Dns => "podnet-dns",
            Input::Ingress => "podnet-ingress",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// The Debian base: mmdebstrap `--variant=minbase` of [`SUITE`].
    DebianBase,
    /// Debian packages installed on the base with apt-get in a chroot over an overlay; the layer is
    /// the overlay's upper directory. `files` are written first, then `script` runs in the chroot.
    Apt {
        packages: &'static [&'static str],
        files: &'static [File],
        script: &'static str,
    },
    /// Debian's busybox-static binary with its applet links, alone (no base under it).
    Busybox,
    /// One supplied binary at `path`.
    Binary { input: Input, path: &'static str },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerRecipe {
    pub name: &'static str,
    pub kind: LayerKind,
}

/// A name an image is published under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ref {
    /// Fully qualified: `docker.io/library/nginx:latest`.
    pub reference: &'static str,
    /// The upstream image this stands in for; `None` for podnet's own names.
    pub substitute_for: Option<&'static str>,
}

/// How the image runs (its OCI config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunConfig {
    pub entrypoint: &'static [&'static str],
    pub cmd: &'static [&'static str],
    pub env: &'static [&'static str],
    pub working_dir: Option<&'static str>,
    pub exposed_ports: &'static [&'static str],
    pub stop_signal: Option<&'static str>,
    pub user: Option<&'static str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageRecipe {
    /// Short name (`podnet image build-substitutes --only NAME`).
    pub name: &'static str,
    /// Layer names, bottom first.
    pub layers: &'static [&'static str],
    pub refs: &'static [Ref],
    /// What it is, for the description; `{pkg}` is replaced by that package's upstream version
    /// (`{podnet}`: podnet's own version).
    pub what: &'static str,
    /// The package whose version is the image's `org.opencontainers.image.version`; `None`: the
    /// podnet version (images of podnet's own binaries).
    pub version_of: Option<&'static str>,
    pub config: RunConfig,
}

const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The reference of the shared Debian base image (podnet's own name; `.base.name` of the others).
pub const BASE_REF: &str = "localhost/podnet/debian:bookworm";

pub const LAYERS: &[LayerRecipe] = &[
    LayerRecipe {
        name: "base",
        kind: LayerKind::DebianBase,
    },
    LayerRecipe {
        name: "nginx",
        kind: LayerKind::Apt {
            packages: &["nginx"],
            files: &[File {
                path: "/etc/nginx/conf.d/default.conf",
                mode: 0o644,
                content: NGINX_DEFAULT_CONF,
            }],
            script: NGINX_SCRIPT,
        },
    },
    LayerRecipe {
        name: "httpd",
        kind: LayerKind::Apt {
            packages: &["apache2", "curl"],
            files: &[
                File {
                    path: "/usr/local/apache2/conf/httpd.conf",
                    mode: 0o644,
                    content: HTTPD_CONF,
                },
                File {
                    path: "/usr/local/apache2/htdocs/index.html",
                    mode: 0o644,
                    content: "<html><body><h1>It works!</h1></body></html>\n",
                },
                File {
                    path: "/usr/local/apache2/bin/httpd",
                    mode: 0o755,
                    content: HTTPD_WRAPPER,
                },
                File {
                    path: "/usr/local/apache2/bin/httpd-foreground",
                    mode: 0o755,
                    content: HTTPD_FOREGROUND,
                },
            ],
            script: HTTPD_SCRIPT,
        },
    },
    LayerRecipe {
        name: "tools",
        kind: LayerKind::Apt {
            packages: &["curl", "procps", "ca-certificates"],
            files: &[],
            script: "",
        },
    },
    LayerRecipe {
        name: "busybox",
        kind: LayerKind::Busybox,
    },
    LayerRecipe {
        name: "echoserver",
        kind: LayerKind::Binary {
            input: Input::Echoserver,
            path: "/usr/local/bin/podnet-echoserver",
        },
    },
    LayerRecipe {
        name: "pause",
        kind: LayerKind::Binary {
            input: Input::Pause,
            path: "/pause",
        },
    },
    LayerRecipe {
        name: "dns",
        kind: LayerKind::Binary {
            input: Input::Dns,
            path: "/podnet-dns",
        },
    },
    LayerRecipe {
        name: "ingress",
        kind: LayerKind::Binary {
            input: Input::Ingress,
            path: "/podnet-ingress",
        },
    },
];

pub const IMAGES: &[ImageRecipe] = &[
    ImageRecipe {
        name: "debian",
        layers: &["base"],
        refs: &[Ref {
            reference: BASE_REF,
            substitute_for: None,
        }],
        what: "Debian 12 (bookworm) minbase with bash {bash}, the base layer of the substitutes",
        version_of: Some("base-files"),
        config: RunConfig {
            cmd: &["bash"],
            env: &[PATH],
            ..RUN_DEFAULT
        },
    },
    ImageRecipe {
        name: "nginx",
        layers: &["base", "nginx"],
        refs: &[
            Ref {
                reference: "docker.io/library/nginx:latest",
                substitute_for: Some("docker.io/library/nginx:latest"),
            },
            Ref {
                reference: "docker.io/library/nginx:alpine",
                substitute_for: Some("docker.io/library/nginx:alpine"),
            },
        ],
        what: "Debian 12 nginx {nginx} serving its default page on :80, logging to stdout",
        version_of: Some("nginx"),
        config: RunConfig {
            cmd: &["nginx", "-g", "daemon off;"],
            env: &[PATH],
            exposed_ports: &["80/tcp"],
            stop_signal: Some("SIGQUIT"),
            ..RUN_DEFAULT
        },
    },
    ImageRecipe {
        name: "httpd",
        layers: &["base", "httpd"],
        refs: &[Ref {
            reference: "docker.io/library/httpd:latest",
            substitute_for: Some("docker.io/library/httpd:latest"),
        }],
        what: "Debian 12 apache2 {apache2} laid out as the httpd image (/usr/local/apache2), with bash and curl",
        version_of: Some("apache2"),
        config: RunConfig {
            cmd: &["httpd-foreground"],
            env: &[
                "PATH=/usr/local/apache2/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HTTPD_PREFIX=/usr/local/apache2",
            ],
            working_dir: Some("/usr/local/apache2"),
            exposed_ports: &["80/tcp"],
            stop_signal: Some("SIGWINCH"),
            ..RUN_DEFAULT
        },
    },
    ImageRecipe {
        name: "ubuntu",
        layers: &["base", "tools"],
        refs: &[Ref {
            reference: "docker.io/library/ubuntu:latest",
            substitute_for: Some("docker.io/library/ubuntu:latest"),
        }],
        what: "Debian 12 shell image with bash {bash}, coreutils, curl {curl} and procps",
        version_of: Some("bash"),
        config: RunConfig {
            cmd: &["/bin/bash"],
            env: &[PATH],
            ..RUN_DEFAULT
        },
    },
    ImageRecipe {
        name: "busybox",
        layers: &["busybox"],
        refs: &[Ref {
            reference: "docker.io/library/busybox:latest",
            substitute_for: Some("docker.io/library/busybox:latest"),
        }],
        what: "Debian 12 busybox-static {busybox-static} with its applet links, nothing else",
        version_of: Some("busybox-static"),
        config: RunConfig {
            cmd: &["sh"],
            env: &[PATH],
            ..RUN_DEFAULT
        },
    },
    ImageRecipe {
        name: "echoserver",
        layers: &["base", "tools", "echoserver"],
        refs: &[
            Ref {
                reference: "registry.k8s.io/echoserver:1.4",
                substitute_for: Some("registry.k8s.io/echoserver:1.4"),
            },
            Ref {
                reference: "k8s.gcr.io/echoserver:1.4",
                substitute_for: Some("k8s.gcr.io/echoserver:1.4"),
            },
            Ref {
                reference: "localhost/podnet/echoserver:latest",
                substitute_for: None,
            },
        ],
        what: "podnet-echoserver {podnet} on :8080 answering in echoserver 1.4's format, on Debian 12 with bash and curl {curl}",
        version_of: None,
        config: RunConfig {
            cmd: &["/usr/local/bin/podnet-echoserver"],
            env: &[PATH],
            exposed_ports: &["8080/tcp"],
            ..RUN_DEFAULT
        },
    },
    ImageRecipe {
        name: "pause",
        layers: &["pause"],
        refs: &[
            Ref {
                reference: "registry.k8s.io/pause:3.10",
                substitute_for: Some("registry.k8s.io/pause:3.10"),
            },
            Ref {
                reference: "localhost/podnet/pause:latest",
                substitute_for: None,
            },
        ],
        what: "podnet-pause {podnet}, the pod sandbox's first process (holds the namespaces, reaps children)",
        version_of: None,
        config: RunConfig {
            entrypoint: &["/pause"],
            user: Some("65535:65535"),
            ..RUN_DEFAULT
        },
    },
    // podnet's own image, not a substitute: what the kube-dns Deployment (crates/podnet-dns/deploy)
    // runs in place of CoreDNS. The static binary alone; it reads no file but the resolv.conf and
    // service account token the kubelet mounts.
    ImageRecipe {
        name: "dns",
        layers: &["dns"],
        refs: &[Ref {
            reference: "localhost/podnet/dns:latest",
            substitute_for: None,
        }],
        what: "podnet-dns {podnet}, podnet's cluster DNS server (Kubernetes records from the API, other names forwarded)",
        version_of: None,
        config: RunConfig {
            entrypoint: &["/podnet-dns"],
            exposed_ports: &["53/udp", "53/tcp", "8080/tcp", "8181/tcp"],
            stop_signal: Some("SIGTERM"),
            ..RUN_DEFAULT
        },
    },
    // podnet's own ingress controller (deploy/podnet-ingress.yaml): the static binary alone.
    ImageRecipe {
        name: "ingress",
        layers: &["ingress"],
        refs: &[Ref {
            reference: "localhost/podnet/ingress:latest",
            substitute_for: None,
        }],
        what: "podnet-ingress {podnet}, podnet's ingress controller (Ingress rules served by a hyper reverse proxy)",
        version_of: None,
        config: RunConfig {
            entrypoint: &["/podnet-ingress"],
            exposed_ports: &["80/tcp", "443/tcp"],
            stop_signal: Some("SIGTERM"),
            ..RUN_DEFAULT
        },
    },
];

const RUN_DEFAULT: RunConfig = RunConfig {
    entrypoint: &[],
    cmd: &[],
    env: &[],
    working_dir: None,
    exposed_ports: &[],
    stop_signal: None,
    user: None,
};

pub fn layer(name: &str) -> Option<&'static LayerRecipe> {
    LAYERS.iter().find(|l| l.name == name)
}

pub fn image(name: &str) -> Option<&'static ImageRecipe> {
    IMAGES.iter().find(|i| i.name == name)
}

/// The upstream part of a Debian version: `1:1.22.1-9+deb12u12` -> `1.22.1`.
pub fn upstream_version(debian: &str) -> &str {
    let v = debian.split_once(':').map_or(debian, |(_, v)| v);
    v.rsplit_once('-').map_or(v, |(u, _)| u)
}

/// `what` with each `{pkg}` replaced by the package's upstream version (`?` when unknown).
pub fn describe(what: &str, version: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = what;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        out.push_str(&rest[..start]);
        let pkg = &rest[start + 1..start + len];
        out.push_str(&version(pkg).unwrap_or_else(|| "?".into()));
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

// --- nginx: Debian's nginx arranged as the upstream image is ---------------------------------

/// The upstream image's default server: the welcome page from /usr/share/nginx/html.
const NGINX_DEFAULT_CONF: &str = r#"# podnet substitute for the nginx image: its default server, served by Debian's nginx.
server {
    listen       80;
    listen  [::]:80;
    server_name  localhost;

    location / {
        root   /usr/share/nginx/html;
        index  index.html index.htm;
    }

    error_page   500 502 503 504  /50x.html;
    location = /50x.html {
        root   /usr/share/nginx/html;
    }
}
"#;

/// Debian's site is replaced by the upstream default server; the log files are links to the
/// container's stdout and stderr, as in the upstream image.
const NGINX_SCRIPT: &str = r#"
rm -f /etc/nginx/sites-enabled/default
ln -sf /dev/stdout /var/log/nginx/access.log
ln -sf /dev/stderr /var/log/nginx/error.log
grep -q 'Welcome to nginx!' /usr/share/nginx/html/index.html
nginx -t
"#;

// --- httpd: Debian's apache2 arranged as the upstream image is ------------------------------

const HTTPD_CONF: &str = r#"# podnet substitute for the httpd image: Debian's apache2 with the upstream image's layout.
# ServerRoot is /usr/local/apache2 as upstream; the modules are Debian's (modules -> /usr/lib/apache2/modules).
ServerRoot "/usr/local/apache2"
Listen 80

LoadModule mpm_event_module modules/mod_mpm_event.so
LoadModule authn_file_module modules/mod_authn_file.so
LoadModule authn_core_module modules/mod_authn_core.so
LoadModule authz_host_module modules/mod_authz_host.so
LoadModule authz_groupfile_module modules/mod_authz_groupfile.so
LoadModule authz_user_module modules/mod_authz_user.so
LoadModule authz_core_module modules/mod_authz_core.so
LoadModule access_compat_module modules/mod_access_compat.so
LoadModule auth_basic_module modules/mod_auth_basic.so
LoadModule reqtimeout_module modules/mod_reqtimeout.so
LoadModule filter_module modules/mod_filter.so
LoadModule mime_module modules/mod_mime.so
LoadModule env_module modules/mod_env.so
LoadModule headers_module modules/mod_headers.so
LoadModule setenvif_module modules/mod_setenvif.so
LoadModule status_module modules/mod_status.so
LoadModule autoindex_module modules/mod_autoindex.so
LoadModule dir_module modules/mod_dir.so
LoadModule alias_module modules/mod_alias.so

User daemon
Group daemon

ServerAdmin you@example.com
PidFile logs/httpd.pid
DefaultRuntimeDir logs

<Directory />
    AllowOverride none
    Require all denied
</Directory>

DocumentRoot "/usr/local/apache2/htdocs"
<Directory "/usr/local/apache2/htdocs">
    Options Indexes FollowSymLinks
    AllowOverride None
    Require all granted
</Directory>

DirectoryIndex index.html

<Files ".ht*">
    Require all denied
</Files>

# Logs go to the container's stderr and stdout: the logs/ directory stays empty.
ErrorLog /proc/self/fd/2
LogLevel warn

LogFormat "%h %l %u %t \"%r\" %>s %b \"%{Referer}i\" \"%{User-Agent}i\"" combined
LogFormat "%h %l %u %t \"%r\" %>s %b" common
CustomLog /proc/self/fd/1 common

TypesConfig /etc/mime.types
AddType application/x-compress .Z
AddType application/x-gzip .gz .tgz
"#;

/// `httpd` as upstream has it: the server with this ServerRoot and configuration.
const HTTPD_WRAPPER: &str = r#"#!/bin/sh
# podnet substitute: Debian's apache2 run with the httpd image's ServerRoot and configuration.
exec /usr/sbin/apache2 -d /usr/local/apache2 -f conf/httpd.conf "$@"
"#;

/// The upstream image's CMD: apache in the foreground as PID 1, so `kill -HUP 1` restarts it
/// gracefully and its logs are the container's output.
const HTTPD_FOREGROUND: &str = r#"#!/bin/sh
set -e
# A pid file left by a killed container would make apache refuse to start.
rm -f /usr/local/apache2/logs/httpd.pid
exec httpd -DFOREGROUND "$@"
"#;

const HTTPD_SCRIPT: &str = r#"
ln -s /usr/lib/apache2/modules /usr/local/apache2/modules
mkdir -p /usr/local/apache2/logs
chmod 755 /usr/local/apache2 /usr/local/apache2/bin /usr/local/apache2/conf /usr/local/apache2/htdocs /usr/local/apache2/logs
/usr/local/apache2/bin/httpd -t
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_image_names_known_layers_and_substitutes_say_so() {
        for image in IMAGES {
            for l in image.layers {
                assert!(layer(l).is_some(), "{}: unknown layer {l}", image.name);
            }
            for r in image.refs {
                // Fully qualified, with a tag.
                assert!(
                    r.reference.split('/').next().unwrap().contains('.')
                        || r.reference.starts_with("localhost/"),
                    "{}",
                    r.reference
                );
                assert!(
                    r.reference.rsplit('/').next().unwrap().contains(':'),
                    "{}",
                    r.reference
                );
                // Only podnet's own names go without the substitute key.
                assert_eq!(
                    r.substitute_for.is_none(),
                    r.reference.starts_with("localhost/podnet/"),
                    "{}",
                    r.reference
                );
            }
        }
        // Every tutorial image has a substitute.
        for upstream in [
            "docker.io/library/nginx:latest",
            "docker.io/library/nginx:alpine",
            "docker.io/library/httpd:latest",
            "docker.io/library/ubuntu:latest",
            "docker.io/library/busybox:latest",
            "registry.k8s.io/echoserver:1.4",
            "k8s.gcr.io/echoserver:1.4",
            "registry.k8s.io/pause:3.10",
        ] {
            assert!(
                IMAGES
                    .iter()
                    .flat_map(|i| i.refs)
                    .any(|r| r.substitute_for == Some(upstream)),
                "{upstream}"
            );
        }
    }

    #[test]
    fn versions_and_descriptions() {
        assert_eq!(upstream_version("1.22.1-9+deb12u12"), "1.22.1");
        assert_eq!(upstream_version("1:2.4.62-1~deb12u2"), "2.4.62");
        assert_eq!(upstream_version("5.2.15"), "5.2.15");
        let v = |p: &str| (p == "nginx").then(|| "1.22.1".to_string());
        assert_eq!(describe("nginx {nginx} on :80", v), "nginx 1.22.1 on :80");
        assert_eq!(describe("{x} and {nginx}", v), "? and 1.22.1");
        assert_eq!(describe("no braces", v), "no braces");
    }

    #[test]
    fn the_httpd_layout_is_the_tutorials() {
        let LayerKind::Apt { files, .. } = layer("httpd").unwrap().kind else {
            panic!("httpd is an apt layer")
        };
        let conf = files
            .iter()
            .find(|f| f.path.ends_with("httpd.conf"))
            .unwrap();
        assert!(
            conf.content
                .contains("\nCustomLog /proc/self/fd/1 common\n")
        );
        assert!(conf.content.contains("\nErrorLog /proc/self/fd/2\n"));
        let index = files
            .iter()
            .find(|f| f.path.ends_with("index.html"))
            .unwrap();
        assert_eq!(
            index.content,
            "<html><body><h1>It works!</h1></body></html>\n"
        );
    }
}
