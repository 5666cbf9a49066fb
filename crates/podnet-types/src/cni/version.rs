//! CNI specification versions and what each one allows.

use std::fmt;
use std::str::FromStr;

/// A CNI spec version podnet speaks. Older versions (0.1.0, 0.2.0) used a different result shape
/// and are not supported; a config that asks for them gets error 1 (incompatible version).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CniVersion {
    V0_3_0,
    V0_3_1,
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

impl CniVersion {
    /// Every version this plugin supports, oldest first, as VERSION reports them.
    pub const SUPPORTED: [CniVersion; 5] = [
        Self::V0_3_0,
        Self::V0_3_1,
        Self::V0_4_0,
        Self::V1_0_0,
        Self::V1_1_0,
    ];

    pub const LATEST: CniVersion = CniVersion::V1_1_0;

    pub fn as_str(self) -> &'static str {
        match self {
            Self::V0_3_0 => "0.3.0",
            Self::V0_3_1 => "0.3.1",
            Self::V0_4_0 => "0.4.0",
            Self::V1_0_0 => "1.0.0",
            Self::V1_1_0 => "1.1.0",
        }
    }

    /// CHECK and prevResult on DEL arrived in 0.4.0.
    pub fn allows_check(self) -> bool {
        self >= Self::V0_4_0
    }

    /// STATUS and GC arrived in 1.1.0.
    pub fn allows_status_and_gc(self) -> bool {
        self >= Self::V1_1_0
    }

    /// Results up to 0.4.0 carry a `version` field on each IP.
    pub fn ips_carry_version(self) -> bool {
        self < Self::V1_0_0
    }

    /// 1.1.0 added `mtu`, `socketPath`, `pciID` on interfaces and `mtu`, `advmss`, `priority`,
    /// `table`, `scope` on routes.
    pub fn has_extended_fields(self) -> bool {
        self >= Self::V1_1_0
    }
}

impl fmt::Display for CniVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a version string could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("cniVersion {0:?} is not a semantic version")]
    Malformed(String),
    #[error("cniVersion {0:?} is not supported (supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0)")]
    Unsupported(String),
}

impl FromStr for CniVersion {
    type Err = VersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('.').collect();
        let numeric = parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
        if !numeric {
            return Err(VersionError::Malformed(s.to_string()));
        }
        Self::SUPPORTED
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| VersionError::Unsupported(s.to_string()))
    }
}

/// Picks the version to speak from a request's `cniVersion` and `cniVersions`. The runtime has already
/// chosen `cniVersion` (results must be in "the same version supplied on input"), so it wins when we
/// support it. Only when it is missing or unsupported do we fall back to the highest supported entry of
/// `cniVersions`, as the spec's version selection does; unknown entries there are ignored.
pub fn negotiate(
    cni_version: Option<&str>,
    cni_versions: &[String],
) -> Result<CniVersion, VersionError> {
    let from_list = cni_versions
        .iter()
        .filter_map(|v| v.parse::<CniVersion>().ok())
        .max();
    match (cni_version, from_list) {
        (Some(v), listed) => {
            let own = v.parse::<CniVersion>();
            match (own, listed) {
                (Ok(own), _) => Ok(own),
                (Err(_), Some(listed)) => Ok(listed),
                (Err(e), None) => Err(e),
            }
        }
        (None, Some(listed)) => Ok(listed),
        // The spec makes cniVersion required; libcni treats a missing one as 0.1.0, which we do not
        // support, so say that precisely.
        (None, None) => Err(VersionError::Unsupported(
            "0.1.0 (no cniVersion given)".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_supported_version() {
        for v in CniVersion::SUPPORTED {
            assert_eq!(v.as_str().parse::<CniVersion>().unwrap(), v);
        }
    }

    #[test]
    fn rejects_old_and_malformed() {
        assert_eq!(
            "0.2.0".parse::<CniVersion>(),
            Err(VersionError::Unsupported("0.2.0".into()))
        );
        assert_eq!(
            "1.1".parse::<CniVersion>(),
            Err(VersionError::Malformed("1.1".into()))
        );
        assert_eq!(
            "x.y.z".parse::<CniVersion>(),
            Err(VersionError::Malformed("x.y.z".into()))
        );
    }

    #[test]
    fn negotiation_keeps_the_runtime_choice_and_falls_back_to_the_list() {
        let list = vec![
            "0.3.1".to_string(),
            "1.0.0".to_string(),
            "9.9.9".to_string(),
        ];
        assert_eq!(negotiate(Some("0.4.0"), &list), Ok(CniVersion::V0_4_0));
        assert_eq!(negotiate(None, &list), Ok(CniVersion::V1_0_0));
        assert_eq!(negotiate(Some("1.1.0"), &[]), Ok(CniVersion::V1_1_0));
        assert_eq!(negotiate(Some("2.0.0"), &list), Ok(CniVersion::V1_0_0));
        assert!(negotiate(Some("2.0.0"), &[]).is_err());
        assert!(negotiate(None, &[]).is_err());
    }

    #[test]
    fn capabilities_follow_the_spec_history() {
        assert!(!CniVersion::V0_3_1.allows_check());
        assert!(CniVersion::V0_4_0.allows_check());
        assert!(!CniVersion::V1_0_0.allows_status_and_gc());
        assert!(CniVersion::V1_1_0.allows_status_and_gc());
        assert!(CniVersion::V0_4_0.ips_carry_version());
        assert!(!CniVersion::V1_0_0.ips_carry_version());
    }
}
