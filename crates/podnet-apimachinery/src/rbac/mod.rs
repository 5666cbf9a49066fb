//! Role-based access control as Kubernetes evaluates it: request attributes, policy rules, subjects,
//! and the decision over a set of roles and bindings (pure: the caller reads the objects). The
//! default roles a cluster starts with are in [`defaults`].

pub mod aggregate;
pub mod defaults;
mod eval;
pub mod request;

pub use eval::{
    Attributes, Bindings, Denial, PolicyRule, User, applies_to, forbidden_message, rule_allows,
    rules_allow,
};

/// The API group of Role, ClusterRole and their bindings.
pub const GROUP: &str = "rbac.authorization.k8s.io";
