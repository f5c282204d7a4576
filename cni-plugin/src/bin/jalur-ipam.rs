//! `jalur-ipam`: the CNI IPAM plugin (host-local's config format, crash-safe store).
fn main() {
    cni_plugin::skel::main(&cni_plugin::ipam_local::LocalIpam)
}
