//! What a command of `jalur-agent` fails with, as `main` logs it (once, by its `Display`:
//! every error of the agent, like the libraries' `NetError`, spells its cause in its own
//! message and also carries it as its `source`).

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use jalur_cni_plugin::net::NetError;

use crate::install_cni::InstallError;
use crate::source::kube::ClientError;

/// Why a command of `jalur-agent` failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `run` without a node name.
    #[error("--node-name (or NODE_NAME) is required")]
    NoNodeName,
    /// No client of the Kubernetes API.
    #[error(transparent)]
    Kube(#[from] ClientError),
    /// The metrics address cannot be listened on.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// `--metrics-addr`.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The reconciler's netlink socket cannot be opened.
    #[error(transparent)]
    Netlink(#[from] NetError),
    /// The async runtime cannot be started.
    #[error(transparent)]
    Runtime(io::Error),
    /// `install-cni` failed.
    #[error(transparent)]
    InstallCni(#[from] InstallError),
    /// Some steps of `uninstall` failed.
    #[error(transparent)]
    Uninstall(#[from] UninstallError),
}

/// A step of `jalur-agent uninstall` that failed.
#[derive(Debug, thiserror::Error)]
pub enum UninstallStep {
    /// The agent's routes and the overlay device.
    #[error("removing routes and devices: {0}")]
    Routes(#[source] NetError),
    /// Jalur's nftables table.
    #[error("removing the nftables table: {0}")]
    Firewall(#[source] NetError),
    /// The conflist and the readiness mark.
    #[error("removing the CNI config: {0}")]
    CniConfig(#[source] io::Error),
    /// The IPAM store.
    #[error("removing the IPAM store {}: {source}", path.display())]
    IpamStore {
        /// Its dir.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The plugin binaries (`--cni-bin-dir`).
    #[error(transparent)]
    Binaries(#[from] InstallError),
}

/// Every step of `uninstall` that failed (each was tried; the others were done), in order,
/// spelled one after the other, `; ` between them.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct UninstallError(pub Vec<UninstallStep>);

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn uninstall_reports_every_failed_step_in_one_line_with_its_cause_kept() {
        let e = Error::from(UninstallError(vec![
            UninstallStep::CniConfig(io::Error::other("read-only file system")),
            UninstallStep::IpamStore {
                path: "/var/lib/jalur/ipam".into(),
                source: io::Error::other("busy"),
            },
        ]));
        assert_eq!(
            e.to_string(),
            "removing the CNI config: read-only file system; \
             removing the IPAM store /var/lib/jalur/ipam: busy"
        );
        let Error::Uninstall(UninstallError(steps)) = &e else {
            panic!("{e:?}");
        };
        assert_eq!(steps[1].source().unwrap().to_string(), "busy");
    }

    #[test]
    fn a_listen_failure_names_the_address_and_keeps_the_cause() {
        let e = Error::Listen {
            addr: "127.0.0.1:9402".parse().unwrap(),
            source: io::Error::from(io::ErrorKind::AddrInUse),
        };
        assert!(
            e.to_string()
                .starts_with("cannot listen on 127.0.0.1:9402: "),
            "{e}"
        );
        assert_eq!(
            e.source().unwrap().to_string(),
            io::Error::from(io::ErrorKind::AddrInUse).to_string()
        );
    }
}
