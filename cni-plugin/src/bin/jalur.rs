//! `jalur`: the CNI network plugin (routed veth, no bridge).
fn main() {
    cni_plugin::skel::main(&cni_plugin::cmd::Jalur)
}
