//! Sysctls under `/proc/sys/net`, in the network namespace of the calling thread.
//!
//! Keys are written with slashes (`net/ipv4/conf/eth0.100/rp_filter`), so that interface
//! names holding dots stay unambiguous.

use std::io;
use std::path::PathBuf;

fn path(key: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(key)
}

/// `sysctl -n KEY` (e.g. `net/ipv4/ip_forward`).
pub fn read(key: &str) -> io::Result<String> {
    Ok(std::fs::read_to_string(path(key))?.trim().to_owned())
}

/// `sysctl -w KEY=VALUE`, skipping the write when the value is already set.
pub fn ensure(key: &str, value: &str) -> io::Result<()> {
    match read(key) {
        Ok(current) if current == value => Ok(()),
        _ => std::fs::write(path(key), value)
            .map_err(|e| io::Error::new(e.kind(), format!("sysctl -w {key}={value}: {e}"))),
    }
}
