//! The one error type of the plugin library, and its CNI error code.
//!
//! Every failure maps to a code of the CNI specification (1–7, 11, 50, 51) or to one of the
//! project's own codes (100 and up, listed in the README). The protocol module turns it into
//! the spec's error JSON.

use std::io;

use crate::net::{NetError, NetNsError};
use crate::version;

/// Project error codes (100 and up). Keep the README's table in step.
pub mod codes {
    /// The address pool of a range has no free address left.
    pub const POOL_EXHAUSTED: u32 = 100;
    /// CNI_IFNAME already exists inside the container's namespace.
    pub const INTERFACE_EXISTS: u32 = 101;
    /// A kernel networking operation (netlink, sysctl) failed.
    pub const KERNEL: u32 = 102;
    /// A delegated plugin could not be found, run, or understood.
    pub const DELEGATE: u32 = 103;
    /// CHECK found the container's network differing from what ADD made.
    pub const CHECK_MISMATCH: u32 = 104;
    /// The IPAM store on disk is unreadable (refusing to guess: that could double-book).
    pub const STORE_CORRUPT: u32 = 105;
    /// The host end's derived name is held by a link that is not this attachment's.
    pub const HOST_NAME_TAKEN: u32 = 106;
}

/// Anything that can go wrong while serving one CNI call.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config's `cniVersion` is not one this plugin speaks (code 1).
    #[error("incompatible CNI version {version}: this plugin supports {}", version::supported_strings().join(", "))]
    IncompatibleVersion {
        /// The version asked for.
        version: String,
    },
    /// The command does not exist in the config's version (code 1).
    #[error("{command} is not part of CNI {version}: it needs cniVersion {needs} or later")]
    VerbNotInVersion {
        /// The command.
        command: &'static str,
        /// The config's version.
        version: String,
        /// The first version that has it.
        needs: &'static str,
    },
    /// A field is set to something this plugin does not support (code 2).
    #[error("unsupported field {field}: {reason}")]
    UnsupportedField {
        /// Field name.
        field: String,
        /// Why.
        reason: String,
    },
    /// A CNI_* variable is missing or wrong (code 4). The message names the variable.
    #[error("invalid environment variable {var}: {reason}")]
    InvalidEnv {
        /// Variable name.
        var: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A file could not be read or written (code 5).
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Input is not valid JSON (code 6).
    #[error("cannot decode {what}: {source}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// The parser's complaint.
        source: serde_json::Error,
    },
    /// The network configuration is wrong (code 7).
    #[error("invalid network configuration: {0}")]
    InvalidConfig(String),
    /// The request may succeed if retried later (code 11).
    #[error("{0}")]
    TryAgain(String),
    /// The plugin cannot serve ADD now (code 50, from STATUS).
    #[error("{0}")]
    NotAvailable(String),
    /// The IPAM library refused.
    #[error(transparent)]
    Ipam(#[from] jalur_ipam::Error),
    /// CNI_IFNAME already exists in the container (code 101).
    #[error("interface {ifname} already exists in network namespace {netns}")]
    InterfaceExists {
        /// The interface name.
        ifname: String,
        /// The namespace path.
        netns: String,
    },
    /// A kernel operation failed (code 102).
    #[error("{} failed: {}", .0.op, .0.source)]
    Kernel(#[from] NetError),
    /// The container's network namespace is unusable (code 4: it is CNI_NETNS that is wrong).
    #[error("invalid environment variable CNI_NETNS: {0}")]
    Netns(#[from] NetNsError),
    /// A delegated plugin failed; its own code is kept.
    #[error("{plugin}: {msg}")]
    Delegate {
        /// The plugin's type.
        plugin: String,
        /// Its error code (103 when it could not be run at all).
        code: u32,
        /// Its message.
        msg: String,
        /// Its details.
        details: String,
    },
    /// The node has a link under the host end's name that this attachment did not make
    /// (code 106). It is left alone.
    #[error("the node already has a link {name} ({}), which is not the host end of this attachment ({wanted}); jalur leaves it alone. Delete it if you know it is stale", owner.as_deref().map_or_else(|| "no ifalias".to_owned(), |a| format!("ifalias {a:?}")))]
    HostNameTaken {
        /// The derived name.
        name: String,
        /// The link's alias, if any.
        owner: Option<String>,
        /// The alias this attachment's host end would carry.
        wanted: String,
    },
    /// CHECK found a difference (code 104).
    #[error("CHECK: {0}")]
    CheckMismatch(String),
    /// Several independent steps failed (DEL and GC run every step); the first one's code.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Several(Vec<Error>),
}

impl Error {
    /// Shorthand for [`Error::Io`].
    pub fn io(context: impl Into<String>, source: io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// `Ok` when `errors` is empty, else the one error or all of them together.
    pub fn all(mut errors: Vec<Error>) -> Result<()> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(Error::Several(errors)),
        }
    }

    /// The CNI error code.
    pub fn code(&self) -> u32 {
        match self {
            Error::IncompatibleVersion { .. } | Error::VerbNotInVersion { .. } => 1,
            Error::UnsupportedField { .. } => 2,
            Error::InvalidEnv { .. } | Error::Netns(_) => 4,
            Error::Io { .. } => 5,
            Error::Decode { .. } => 6,
            Error::InvalidConfig(_) => 7,
            Error::TryAgain(_) => 11,
            Error::NotAvailable(_) => 50,
            Error::Ipam(e) => match e {
                jalur_ipam::Error::Exhausted { .. } => codes::POOL_EXHAUSTED,
                jalur_ipam::Error::LockTimeout { .. } => 11,
                jalur_ipam::Error::Io { .. } => 5,
                jalur_ipam::Error::Corrupt { .. }
                | jalur_ipam::Error::InvalidState { .. }
                | jalur_ipam::Error::NotRegularFile { .. } => codes::STORE_CORRUPT,
                jalur_ipam::Error::Serialize { .. } => 5,
                _ => 7,
            },
            Error::InterfaceExists { .. } => codes::INTERFACE_EXISTS,
            Error::Kernel(_) => codes::KERNEL,
            Error::Delegate { code, .. } => *code,
            Error::CheckMismatch(_) => codes::CHECK_MISMATCH,
            Error::HostNameTaken { .. } => codes::HOST_NAME_TAKEN,
            Error::Several(errors) => errors.first().map_or(5, Error::code),
        }
    }

    /// The spec's `details`: the causes below the message, when there are any.
    pub fn details(&self) -> String {
        if let Error::Delegate { details, .. } = self {
            return details.clone();
        }
        let mut out = Vec::new();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            let text = c.to_string();
            if !self.to_string().contains(&text) {
                out.push(text);
            }
            cause = c.source();
        }
        out.join(": ")
    }
}

/// Result alias of the plugin library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
