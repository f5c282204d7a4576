//! ADD and DEL of one attachment, sent at the same time, are serialised: whatever order they
//! land in, every pod left wired holds an address booked for it, and no address is wired
//! into two pods.

use std::collections::HashMap;
use std::thread;
use std::time::Duration;

use jalur_tests::{require_root, Netns, Network};
use serde_json::json;

/// The IPv4 addresses on `eth0` inside `pod`, if it has one.
fn wired(pod: &Netns) -> Vec<String> {
    let (ok, out) = pod.try_exec("ip -o -4 addr show dev eth0");
    if !ok {
        return Vec::new();
    }
    out.lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .map(|a| a.split('/').next().unwrap().to_owned())
        .collect()
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn concurrent_add_and_del_of_one_attachment_never_leave_an_unbooked_pod() {
    require_root();
    const PODS: usize = 24;
    const ROUNDS: usize = 3;
    let net = Network::new("race", 59, json!([[{"subnet": "10.244.59.0/24"}]]));
    let pods: Vec<Netns> = (0..PODS).map(|_| Netns::new("p")).collect();
    for round in 0..ROUNDS {
        thread::scope(|s| {
            for (i, pod) in pods.iter().enumerate() {
                let net = &net;
                let cid = format!("race-{i}");
                let stdin = net.stdin("1.1.0", None);
                let (cid2, stdin2) = (cid.clone(), stdin.clone());
                s.spawn(move || net.call("ADD", &cid, &pod.path(), "eth0", &stdin));
                // DEL a little after ADD, staggered across pods and rounds, so that it lands
                // anywhere from before the booking to after the wiring.
                let delay = Duration::from_micros(((i * 7 + round * 3) % 12) as u64 * 250);
                s.spawn(move || {
                    thread::sleep(delay);
                    net.call("DEL", &cid2, &pod.path(), "eth0", &stdin2).ok();
                });
            }
        });
        let booked: HashMap<(String, String), Vec<String>> =
            net.allocations()
                .into_iter()
                .fold(HashMap::new(), |mut m, (cid, ifname, ip)| {
                    m.entry((cid, ifname)).or_default().push(ip);
                    m
                });
        let mut wired_by: HashMap<String, String> = HashMap::new();
        for (i, pod) in pods.iter().enumerate() {
            let cid = format!("race-{i}");
            for ip in wired(pod) {
                let held = booked.get(&(cid.clone(), "eth0".into()));
                assert!(
                    held.is_some_and(|h| h.contains(&ip)),
                    "round {round}: {cid} is wired with {ip}, which is not booked for it ({held:?})"
                );
                if let Some(other) = wired_by.insert(ip.clone(), cid.clone()) {
                    panic!("round {round}: {ip} is wired into {other} and {cid}");
                }
            }
        }
        // Clean up for the next round: DEL every pod (the ones ADD won are still wired).
        for (i, pod) in pods.iter().enumerate() {
            net.del(&format!("race-{i}"), &pod.path(), None);
        }
        net.assert_clean();
    }
}
