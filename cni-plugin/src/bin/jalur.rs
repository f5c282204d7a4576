//! `jalur`: the CNI network plugin (routed veth, no bridge).
fn main() {
    jalur_cni_plugin::skel::main(&jalur_cni_plugin::cmd::Jalur)
}
