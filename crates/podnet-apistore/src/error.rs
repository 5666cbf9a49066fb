use crate::ObjectKey;

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    AlreadyExists(ObjectKey),
    #[error("{0} not found")]
    NotFound(ObjectKey),
    #[error(
        "{key}: the object has been modified (expected resourceVersion {expected}, found {found})"
    )]
    Conflict {
        key: ObjectKey,
        expected: u64,
        found: u64,
    },
    #[error("too old resource version: {requested} ({oldest})")]
    Gone { requested: u64, oldest: u64 },
    #[error("store format version {found} is not supported (this build reads version {supported})")]
    Format { found: u64, supported: u64 },
    #[error("store I/O: {0}")]
    Io(String),
    #[error("the store is closed")]
    Closed,
}
