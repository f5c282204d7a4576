//! Jalur IPAM (being written).
