use std::fmt;

/// Identifies an object: its resource (`pods`, `apps/deployments`), namespace (empty for
/// cluster-scoped) and name. Ordered by resource, then namespace, then name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(
        resource: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        ObjectKey {
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The redb key. NUL cannot occur in resource, namespace or object names.
    pub(crate) fn encode(&self) -> String {
        format!("{}\0{}\0{}", self.resource, self.namespace, self.name)
    }

    pub(crate) fn decode(s: &str) -> Option<ObjectKey> {
        let mut it = s.splitn(3, '\0');
        Some(ObjectKey::new(it.next()?, it.next()?, it.next()?))
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.resource, self.name)
        } else {
            write!(f, "{} {}/{}", self.resource, self.namespace, self.name)
        }
    }
}
