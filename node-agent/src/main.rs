//! `jalur-agent`: not built yet (issue 3). It exits with a clear message.
fn main() {
    eprintln!("jalur-agent: the node agent is not implemented yet; see the README");
    std::process::exit(2);
}
