//! A FIFO where a namespace or the store's state file should be never blocks the plugin: an
//! error within a second, and nothing left behind.

use std::path::Path;
use std::time::{Duration, Instant};

use jalur_tests::{require_root, CniCall, Netns, Network};
use nix::sys::stat::Mode;
use serde_json::json;

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, Mode::S_IRUSR | Mode::S_IWUSR).expect("mkfifo");
}

fn timed(net: &Network, cid: &str, netns: &str) -> (jalur_tests::CniOutput, Duration) {
    let mut call = CniCall::new("jalur", "ADD", cid, netns, "eth0");
    call.timeout = Some(Duration::from_secs(5));
    let started = Instant::now();
    let out = call.run(&net.node.ns.name, &net.stdin("1.1.0", None));
    (out, started.elapsed())
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn a_fifo_as_cni_netns_is_an_error_at_once() {
    require_root();
    let net = Network::new("fifons", 57, json!([[{"subnet": "10.244.57.0/24"}]]));
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("netns-fifo");
    mkfifo(&fifo);
    let (out, took) = timed(&net, "fifo", &fifo.display().to_string());
    assert!(took < Duration::from_secs(1), "took {took:?}: {out:?}");
    let msg = out.err(4);
    assert!(msg.contains("not a network namespace"), "{msg}");
    // DEL with it is not blocked either.
    let mut del = CniCall::new("jalur", "DEL", "fifo", &fifo.display().to_string(), "eth0");
    del.timeout = Some(Duration::from_secs(5));
    del.run(&net.node.ns.name, &net.stdin("1.1.0", None)).ok();
    net.assert_clean();
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn a_fifo_as_the_store_file_is_an_error_at_once_and_holds_no_lock() {
    require_root();
    let net = Network::new("fifost", 58, json!([[{"subnet": "10.244.58.0/24"}]]));
    let store = net.data_dir.path().join(&net.name);
    std::fs::create_dir_all(&store).unwrap();
    mkfifo(&store.join("allocations.json"));
    let pods: Vec<Netns> = (0..2).map(|_| Netns::new("pod")).collect();
    for (i, pod) in pods.iter().enumerate() {
        // The second call would wait behind the first's lock if the first hung.
        let (out, took) = timed(&net, &format!("fifo-{i}"), &pod.path());
        assert!(took < Duration::from_secs(1), "took {took:?}: {out:?}");
        let msg = out.err(105);
        assert!(
            msg.contains("allocations.json") && msg.contains("not a regular file"),
            "{msg}"
        );
        assert_eq!(pod.links(), vec!["lo".to_owned()]);
    }
    assert_eq!(net.node.host_ends(), Vec::<String>::new());
}
