//! `jalur`: the CNI network plugin (routed veth, no bridge).
#![forbid(unsafe_code)]

fn main() {
    jalur_cni_plugin::skel::main(&jalur_cni_plugin::cmd::Jalur)
}
