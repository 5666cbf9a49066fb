//! The routing model: which backend answers a request, from its host and path. Independent of the
//! Ingress object (an Ingress, or later a Gateway API HTTPRoute, is translated into [`Rule`]s), pure,
//! and built once per configuration so a lookup is a hash probe plus a walk over one host's rules.
//!
//! Precedence, as Kubernetes defines it for Ingress:
//! - hosts: a request's host picks one group of rules, the first of: the rules for exactly that host;
//!   for the wildcard `*.` + its parent domain (a wildcard covers exactly one label: `*.foo.com`
//!   matches `bar.foo.com`, not `foo.com` nor `baz.bar.foo.com`); the rules without a host. The host is
//!   compared case-insensitively, without a port or a trailing dot;
//! - paths within the group: the longest matching path wins; between an Exact and a Prefix path of
//!   the same length, Exact. Exact matches the whole path, case-sensitively. Prefix matches element
//!   by element (split on `/`): `/foo` matches `/foo`, `/foo/` and `/foo/bar`, not `/foobar`; a
//!   trailing slash on the rule is ignored; `/` matches every path;
//! - among identical rules the first given wins (callers order them: oldest Ingress first);
//! - nothing matches: the default backend if there is one.

use std::collections::HashMap;

/// How a rule's path is compared with a request's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathMatch {
    Exact(String),
    /// Kept as its elements (the rule's path split on `/`, empty elements dropped).
    Prefix(Vec<String>),
}

impl PathMatch {
    pub fn exact(path: &str) -> PathMatch {
        PathMatch::Exact(path.to_string())
    }

    pub fn prefix(path: &str) -> PathMatch {
        PathMatch::Prefix(elements(path).map(str::to_string).collect())
    }

    /// The rule's length for precedence: characters of the normalised path.
    fn len(&self) -> usize {
        match self {
            PathMatch::Exact(p) => p.len(),
            PathMatch::Prefix(els) => els.iter().map(|e| e.len() + 1).sum(),
        }
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(p) => p == path,
            PathMatch::Prefix(els) => {
                let mut req = elements(path);
                els.iter().all(|e| req.next() == Some(e.as_str()))
            }
        }
    }
}

fn elements(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|e| !e.is_empty())
}

/// A rule's host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostMatch {
    /// Any host (a rule without one).
    Any,
    Exact(String),
    /// `*.example.com`, kept as `example.com`.
    Wildcard(String),
}

impl HostMatch {
    /// From an Ingress rule's `host` (empty: any host).
    pub fn parse(host: &str) -> HostMatch {
        let host = normalise_host(host);
        if host.is_empty() {
            HostMatch::Any
        } else if let Some(parent) = host.strip_prefix("*.") {
            HostMatch::Wildcard(parent.to_string())
        } else {
            HostMatch::Exact(host)
        }
    }
}

/// Lowercase, without a port and a trailing dot (`Foo.COM.:8080` -> `foo.com`).
pub fn normalise_host(host: &str) -> String {
    let host = if host.starts_with('[') {
        host.split_inclusive(']').next().unwrap_or(host)
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// One routing rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule<B> {
    pub host: HostMatch,
    pub path: PathMatch,
    pub backend: B,
}

/// The rules of one host group, longest path first (Exact before Prefix at equal length, then in
/// the order given).
#[derive(Debug, Clone)]
struct Group<B> {
    rules: Vec<(PathMatch, B)>,
}

impl<B> Group<B> {
    fn find(&self, path: &str) -> Option<&B> {
        self.rules
            .iter()
            .find(|(m, _)| m.matches(path))
            .map(|(_, b)| b)
    }
}

/// A routing table, built from rules once and then only read.
#[derive(Debug, Clone)]
pub struct RouteTable<B> {
    exact: HashMap<String, Group<B>>,
    wildcard: HashMap<String, Group<B>>,
    any: Option<Group<B>>,
    default: Option<B>,
}

/// What a lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a, B> {
    Rule(&'a B),
    Default(&'a B),
    NotFound,
}

impl<'a, B> Lookup<'a, B> {
    pub fn backend(self) -> Option<&'a B> {
        match self {
            Lookup::Rule(b) | Lookup::Default(b) => Some(b),
            Lookup::NotFound => None,
        }
    }
}

impl<B: Clone> RouteTable<B> {
    pub fn new(rules: Vec<Rule<B>>, default: Option<B>) -> RouteTable<B> {
        let mut exact: HashMap<String, Vec<(PathMatch, B)>> = HashMap::new();
        let mut wildcard: HashMap<String, Vec<(PathMatch, B)>> = HashMap::new();
        let mut any: Vec<(PathMatch, B)> = Vec::new();
        for r in rules {
            let list = match r.host {
                HostMatch::Any => &mut any,
                HostMatch::Exact(h) => exact.entry(h).or_default(),
                HostMatch::Wildcard(h) => wildcard.entry(h).or_default(),
            };
            list.push((r.path, r.backend));
        }
        let group = |mut rules: Vec<(PathMatch, B)>| {
            // stable: equal rules keep the order given, so the first one wins
            rules.sort_by_key(|(m, _)| {
                (
                    std::cmp::Reverse(m.len()),
                    !matches!(m, PathMatch::Exact(_)),
                )
            });
            Group { rules }
        };
        RouteTable {
            exact: exact.into_iter().map(|(h, r)| (h, group(r))).collect(),
            wildcard: wildcard.into_iter().map(|(h, r)| (h, group(r))).collect(),
            any: (!any.is_empty()).then(|| group(any)),
            default,
        }
    }

    /// The backend for a request: `host` as the request names it (a Host header or :authority, any
    /// case, maybe with a port), `path` without the query.
    pub fn lookup(&self, host: &str, path: &str) -> Lookup<'_, B> {
        let host = normalise_host(host);
        let group = self.exact.get(&host).or_else(|| {
            host.split_once('.')
                .and_then(|(_, parent)| self.wildcard.get(parent))
        });
        let found = group.or(self.any.as_ref()).and_then(|g| g.find(path));
        match (found, &self.default) {
            (Some(b), _) => Lookup::Rule(b),
            (None, Some(d)) => Lookup::Default(d),
            (None, None) => Lookup::NotFound,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(host: &str, path: PathMatch, b: &'static str) -> Rule<&'static str> {
        Rule {
            host: HostMatch::parse(host),
            path,
            backend: b,
        }
    }

    #[test]
    fn kubernetes_path_examples() {
        // the table of https://kubernetes.io/docs/concepts/services-networking/ingress/#examples
        let cases: &[(PathMatch, &str, bool)] = &[
            (PathMatch::prefix("/"), "/anything", true),
            (PathMatch::exact("/foo"), "/foo", true),
            (PathMatch::exact("/foo"), "/bar", false),
            (PathMatch::exact("/foo"), "/foo/", false),
            (PathMatch::exact("/foo/"), "/foo", false),
            (PathMatch::prefix("/foo"), "/foo", true),
            (PathMatch::prefix("/foo"), "/foo/", true),
            (PathMatch::prefix("/foo/"), "/foo", true),
            (PathMatch::prefix("/foo/"), "/foo/", true),
            (PathMatch::prefix("/aaa/bb"), "/aaa/bbb", false),
            (PathMatch::prefix("/aaa/bbb"), "/aaa/bbb", true),
            (PathMatch::prefix("/aaa/bbb/"), "/aaa/bbb", true),
            (PathMatch::prefix("/aaa/bbb"), "/aaa/bbb/", true),
            (PathMatch::prefix("/aaa/bbb"), "/aaa/bbb/ccc", true),
            (PathMatch::prefix("/aaa/bbb"), "/aaa/bbbxyz", false),
        ];
        for (m, path, want) in cases {
            assert_eq!(m.matches(path), *want, "{m:?} {path}");
        }
        // /, /aaa -> /aaa/ccc goes to /aaa; /, /aaa, /aaa/bbb -> /aaa/bbb; Exact /foo beats Prefix /foo
        let t = RouteTable::new(
            vec![
                rule("", PathMatch::prefix("/"), "root"),
                rule("", PathMatch::prefix("/aaa"), "aaa"),
                rule("", PathMatch::prefix("/aaa/bbb"), "bbb"),
                rule("", PathMatch::prefix("/foo"), "foo-prefix"),
                rule("", PathMatch::exact("/foo"), "foo-exact"),
            ],
            None,
        );
        assert_eq!(t.lookup("x", "/aaa/ccc"), Lookup::Rule(&"aaa"));
        assert_eq!(t.lookup("x", "/aaa/bbb"), Lookup::Rule(&"bbb"));
        assert_eq!(t.lookup("x", "/ccc"), Lookup::Rule(&"root"));
        assert_eq!(t.lookup("x", "/foo"), Lookup::Rule(&"foo-exact"));
        assert_eq!(t.lookup("x", "/foo/x"), Lookup::Rule(&"foo-prefix"));
    }

    #[test]
    fn hosts_exact_then_wildcard_then_any_then_default() {
        let t = RouteTable::new(
            vec![
                rule("foo.bar.com", PathMatch::prefix("/"), "exact"),
                rule("*.bar.com", PathMatch::prefix("/"), "wild"),
                rule("", PathMatch::prefix("/api"), "any"),
            ],
            Some("default"),
        );
        assert_eq!(t.lookup("Foo.Bar.COM:8443", "/x"), Lookup::Rule(&"exact"));
        assert_eq!(t.lookup("foo.bar.com.", "/x"), Lookup::Rule(&"exact"));
        assert_eq!(t.lookup("baz.bar.com", "/x"), Lookup::Rule(&"wild"));
        // a wildcard covers one label only
        assert_eq!(t.lookup("a.baz.bar.com", "/api"), Lookup::Rule(&"any"));
        assert_eq!(t.lookup("bar.com", "/api/v1"), Lookup::Rule(&"any"));
        assert_eq!(t.lookup("bar.com", "/other"), Lookup::Default(&"default"));
        // a host with rules does not fall through to the hostless ones
        assert_eq!(t.lookup("foo.bar.com", "/api"), Lookup::Rule(&"exact"));
        let none: RouteTable<&str> = RouteTable::new(vec![], None);
        assert_eq!(none.lookup("x", "/"), Lookup::NotFound);
        assert_eq!(t.lookup("[::1]:80", "/api"), Lookup::Rule(&"any"));
    }

    #[test]
    fn the_first_of_identical_rules_wins() {
        let t = RouteTable::new(
            vec![
                rule("a.com", PathMatch::prefix("/x"), "first"),
                rule("a.com", PathMatch::prefix("/x/"), "second"),
            ],
            None,
        );
        assert_eq!(t.lookup("a.com", "/x/y"), Lookup::Rule(&"first"));
    }

    /// A slow, obviously right oracle: every rule of the chosen host group that matches, ranked.
    fn oracle<'a>(rules: &'a [Rule<usize>], host: &str, path: &str) -> Option<&'a usize> {
        let host = normalise_host(host);
        let in_group = |h: &HostMatch| match h {
            HostMatch::Exact(e) => *e == host,
            HostMatch::Wildcard(p) => host.split_once('.').is_some_and(|(_, rest)| rest == p),
            HostMatch::Any => true,
        };
        let kind = |h: &HostMatch| match h {
            HostMatch::Exact(_) => 0,
            HostMatch::Wildcard(_) => 1,
            HostMatch::Any => 2,
        };
        let best_kind = rules
            .iter()
            .filter(|r| in_group(&r.host))
            .map(|r| kind(&r.host))
            .min()?;
        let matching: Vec<&Rule<usize>> = rules
            .iter()
            .filter(|r| in_group(&r.host) && kind(&r.host) == best_kind)
            .filter(|r| r.path.matches(path))
            .collect();
        let best = matching.iter().map(|r| r.path.len()).max()?;
        let top: Vec<_> = matching
            .into_iter()
            .filter(|r| r.path.len() == best)
            .collect();
        top.iter()
            .find(|r| matches!(r.path, PathMatch::Exact(_)))
            .or(top.first())
            .map(|r| &r.backend)
    }

    fn seg() -> impl Strategy<Value = String> {
        prop_oneof![Just("a"), Just("ab"), Just("b"), Just("")].prop_map(str::to_string)
    }

    fn path() -> impl Strategy<Value = String> {
        (proptest::collection::vec(seg(), 0..4), any::<bool>())
            .prop_map(|(s, slash)| format!("/{}{}", s.join("/"), if slash { "/" } else { "" }))
    }

    fn host() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(""),
            Just("x.com"),
            Just("*.x.com"),
            Just("a.x.com"),
            Just("*.a.x.com"),
            Just("y.com")
        ]
        .prop_map(str::to_string)
    }

    proptest! {
        #[test]
        fn the_table_agrees_with_the_oracle(
            specs in proptest::collection::vec((host(), path(), any::<bool>()), 0..12),
            req_host in prop_oneof![Just("x.com"), Just("a.x.com"), Just("b.a.x.com"), Just("A.X.com:80"), Just("z.com")],
            req_path in path(),
        ) {
            let rules: Vec<Rule<usize>> = specs
                .iter()
                .enumerate()
                .map(|(i, (h, p, exact))| Rule {
                    host: HostMatch::parse(h),
                    path: if *exact { PathMatch::exact(p) } else { PathMatch::prefix(p) },
                    backend: i,
                })
                .collect();
            let table = RouteTable::new(rules.clone(), None);
            prop_assert_eq!(table.lookup(req_host, &req_path).backend(), oracle(&rules, req_host, &req_path));
        }

        /// An Exact rule for the very path always answers it, whatever else its host has.
        #[test]
        fn exact_wins(
            others in proptest::collection::vec(path(), 0..8),
            p in path(),
        ) {
            let mut rules: Vec<Rule<usize>> = others
                .iter()
                .enumerate()
                .map(|(i, o)| Rule { host: HostMatch::Any, path: PathMatch::prefix(o), backend: i })
                .collect();
            rules.push(Rule { host: HostMatch::Any, path: PathMatch::exact(&p), backend: 999 });
            let t = RouteTable::new(rules, None);
            // a Prefix rule may be as long as the Exact one (its elements plus slashes) and still
            // lose: Exact beats Prefix at equal length, and no matching prefix is longer
            prop_assert_eq!(t.lookup("h", &p), Lookup::Rule(&999));
        }
    }
}
