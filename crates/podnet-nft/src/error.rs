#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("nf_tables netlink: {0}")]
    Io(std::io::Error),
    #[error("nf_tables netlink: {0}")]
    Decode(String),
    #[error("nf_tables: {}", podnet_errno(*errno))]
    Kernel { errno: i32 },
    #[error("run {program}: {cause}")]
    Spawn {
        program: String,
        cause: std::io::Error,
    },
    /// `nft` rejected the script; its stderr says why (e.g. `Could not process rule: File exists`).
    #[error("nft: {stderr}")]
    Rejected { stderr: String, exists: bool },
    /// A line of a script that the netlink writer does not compile (see `nl::parse`).
    #[error("cannot compile to nf_tables messages: {0}")]
    Unsupported(crate::nl::parse::ParseError),
    /// The kernel refused a command of a batch; nothing of the batch was applied.
    #[error("nf_tables refused `{command}`: {}", podnet_errno(*errno))]
    Refused { command: String, errno: i32 },
    #[error("{0:?} is not a valid nftables identifier")]
    BadIdentifier(String),
}

fn podnet_errno(errno: i32) -> String {
    let s = std::io::Error::from_raw_os_error(errno).to_string();
    s.split(" (os error").next().unwrap_or_default().to_string()
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}
