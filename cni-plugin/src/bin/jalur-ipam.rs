//! `jalur-ipam`: the CNI IPAM plugin (host-local's config format, crash-safe store).
#![forbid(unsafe_code)]

fn main() {
    jalur_cni_plugin::skel::main(&jalur_cni_plugin::ipam_local::LocalIpam)
}
