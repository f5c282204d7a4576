//! Many pods at once on one node: distinct addresses, no failure.

use std::collections::HashSet;
use std::thread;

use jalur_tests::network::first_ip;
use jalur_tests::{require_root, Netns, Network};
use serde_json::json;

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn a_hundred_parallel_adds_get_a_hundred_distinct_addresses() {
    require_root();
    let net = Network::new("par", 41, json!([[{"subnet": "10.244.41.0/24"}]]));
    let pods: Vec<Netns> = (0..100).map(|_| Netns::new("p")).collect();
    let results: Vec<serde_json::Value> = thread::scope(|s| {
        let handles: Vec<_> = pods
            .iter()
            .enumerate()
            .map(|(i, pod)| {
                let net = &net;
                s.spawn(move || net.add(&format!("par-{i}"), &pod.path()))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ips: HashSet<String> = results.iter().map(first_ip).collect();
    assert_eq!(ips.len(), 100, "addresses must be distinct");
    assert_eq!(net.allocations().len(), 100);
    assert_eq!(net.node.host_ends().len(), 100);
    thread::scope(|s| {
        for (i, (pod, result)) in pods.iter().zip(&results).enumerate() {
            let net = &net;
            s.spawn(move || net.del(&format!("par-{i}"), &pod.path(), Some(result)));
        }
    });
    net.assert_clean();
}
