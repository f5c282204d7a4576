//! Kernel tests of `net::nft`: Jalur's nftables table, applied over netlink and checked with
//! the `nft` tool and with real packets.
//!
//! Every test runs on a fresh thread that has unshared its network namespace, so the test
//! process's own namespace (and the host's ruleset) is never touched; the `nft`, `ip` and
//! `ping` children it starts inherit that thread's namespace. Peers of the behavioural tests
//! live in namespaces made with `ip netns add`, named after the pid and removed on drop, also
//! when the test fails. The tests need root (CI runs them as root).

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use ipnet::IpNet;
use jalur_node_agent::firewall::TABLE as JALUR_TABLE;
use jalur_node_agent::nft::{self, FirewallSpec, Masquerade};
use jalur_tests::{require_root, sh, try_sh};
use nix::sched::{setns, unshare, CloneFlags};

/// Runs `f` on a new thread inside a new, empty network namespace of its own (with `lo` up).
fn in_private_netns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    require_root();
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // Affects only the calling thread, which is ours.
                unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
                sh("ip link set lo up");
                f()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// `nft -f -` with `script` on stdin.
fn nft_load(script: &str) {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("run nft");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(
        child.wait().unwrap().success(),
        "nft -f failed on:\n{script}"
    );
}

/// A namespace made with `ip netns add`, deleted on drop.
struct NamedNetns(String);

impl NamedNetns {
    fn new(tag: &str) -> NamedNetns {
        let name = format!("jalur-nft-{}-{tag}", std::process::id());
        let _ = try_sh(&format!("ip netns del {name} 2>/dev/null"));
        sh(&format!("ip netns add {name}"));
        let ns = NamedNetns(name);
        ns.sh("ip link set lo up");
        ns
    }

    /// Runs a shell command inside this namespace.
    fn sh(&self, cmd: &str) -> String {
        sh(&format!("ip netns exec {} sh -c '{cmd}'", self.0))
    }

    /// `ping` from inside this namespace: did an answer come back?
    /// One echo request, one second for the answer: for pings expected to go unanswered
    /// (or only counted at the receiver).
    fn ping(&self, args: &str) -> bool {
        try_sh(&format!(
            "ip netns exec {} ping -n -q -c 1 -W 1 {args}",
            self.0
        ))
        .0
    }

    /// Pings until one answer comes, for up to 5 s: for pings expected to be answered (a
    /// fresh link's first IPv6 exchange can wait for neighbour discovery).
    fn ping_answered(&self, args: &str) -> bool {
        try_sh(&format!(
            "ip netns exec {} ping -n -q -c 1 -w 5 {args}",
            self.0
        ))
        .0
    }
}

impl Drop for NamedNetns {
    fn drop(&mut self) {
        let _ = try_sh(&format!("ip netns del {}", self.0));
    }
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn full_spec() -> FirewallSpec {
    FirewallSpec {
        table: JALUR_TABLE.into(),
        masquerade: Some(Masquerade {
            sources: vec![net("10.244.0.0/16"), net("fd00:10:244::/56")],
            no_masquerade: vec![
                net("10.244.0.0/16"),
                net("fd00:10:244::/56"),
                net("10.96.0.0/12"),
                net("fc00::/7"),
            ],
        }),
        anti_spoof_ifprefix: Some("jl".into()),
    }
}

fn list_jalur() -> String {
    sh("nft list table inet jalur")
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn apply_replaces_the_table_and_delete_removes_it() {
    in_private_netns(|| {
        // Someone else's table, which must survive everything below.
        nft_load("table inet other {\n chain c {\n type filter hook input priority 0;\n }\n}\n");

        assert!(!nft::exists(JALUR_TABLE).unwrap());
        assert!(!nft::delete(JALUR_TABLE).unwrap());

        let spec = full_spec();
        nft::apply(&spec).unwrap();
        assert!(nft::exists(JALUR_TABLE).unwrap());
        let listed = list_jalur();
        for line in [
            "chain postrouting {",
            "type nat hook postrouting priority srcnat; policy accept;",
            "ip daddr 10.244.0.0/16 return",
            "ip daddr 10.96.0.0/12 return",
            "ip saddr 10.244.0.0/16 masquerade",
            "ip6 daddr fd00:10:244::/56 return",
            "ip6 daddr fc00::/7 return",
            "ip6 saddr fd00:10:244::/56 masquerade",
            "chain antispoof {",
            "hook prerouting priority",
            "iifname \"jl*\" fib saddr . iif oif missing drop",
        ] {
            assert!(listed.contains(line), "missing `{line}` in:\n{listed}");
        }

        // Idempotent: the same table, once.
        nft::apply(&spec).unwrap();
        assert_eq!(list_jalur(), listed);
        assert_eq!(
            sh("nft list tables"),
            "table inet other\ntable inet jalur\n"
        );

        // A changed spec replaces every rule.
        let changed = FirewallSpec {
            masquerade: Some(Masquerade {
                sources: vec![net("10.42.0.0/16")],
                no_masquerade: vec![net("10.42.0.0/16")],
            }),
            anti_spoof_ifprefix: None,
            ..spec
        };
        nft::apply(&changed).unwrap();
        let listed = list_jalur();
        assert!(
            listed.contains("ip saddr 10.42.0.0/16 masquerade"),
            "{listed}"
        );
        for gone in ["10.244.", "fd00:", "antispoof", "fib"] {
            assert!(!listed.contains(gone), "`{gone}` survived in:\n{listed}");
        }

        assert!(nft::delete(JALUR_TABLE).unwrap());
        assert!(!nft::exists(JALUR_TABLE).unwrap());
        assert!(!nft::delete(JALUR_TABLE).unwrap());
        assert_eq!(sh("nft list tables"), "table inet other\n");
    });
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn apply_compiles_like_nft_itself() {
    // The rules' expressions as the kernel holds them, without the handle numbers.
    let debug_listing = || {
        sh("nft --debug=netlink list table inet jalur")
            .lines()
            .map(|line| match line.strip_prefix("inet jalur ") {
                Some(rest) => format!("inet jalur {}", rest.split(' ').next().unwrap()),
                None => line.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let spec = full_spec();
    let ours = in_private_netns(|| {
        nft::apply(&spec).unwrap();
        debug_listing()
    });
    let nfts = in_private_netns(|| {
        nft_load(&spec.nft_text());
        debug_listing()
    });
    assert_eq!(ours, nfts, "ours:\n{ours}\nnft's:\n{nfts}");
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn the_table_never_goes_missing_while_replaced() {
    in_private_netns(|| {
        nft::apply(&full_spec()).unwrap();
        let ns = std::fs::File::open("/proc/thread-self/ns/net").unwrap();
        let done = AtomicBool::new(false);
        let (checks, missing) = (AtomicUsize::new(0), AtomicUsize::new(0));
        std::thread::scope(|scope| {
            scope.spawn(|| {
                // This thread only.
                setns(&ns, CloneFlags::CLONE_NEWNET).expect("setns");
                while !done.load(Ordering::Relaxed) {
                    if !nft::exists(JALUR_TABLE).unwrap() {
                        missing.fetch_add(1, Ordering::Relaxed);
                    }
                    checks.fetch_add(1, Ordering::Relaxed);
                }
            });
            let mut spec = full_spec();
            for i in 0..200u8 {
                if let Some(m) = spec.masquerade.as_mut() {
                    m.sources[0] = net(&format!("10.{i}.0.0/16"));
                }
                let applied = nft::apply(&spec);
                if applied.is_err() {
                    done.store(true, Ordering::Relaxed);
                }
                applied.unwrap();
            }
            done.store(true, Ordering::Relaxed);
        });
        assert!(checks.load(Ordering::Relaxed) > 0);
        assert_eq!(
            missing.load(Ordering::Relaxed),
            0,
            "the table was seen missing"
        );
        assert!(list_jalur().contains("ip saddr 10.199.0.0/16 masquerade"));
    });
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn a_refused_transaction_names_its_command_and_changes_nothing() {
    in_private_netns(|| {
        nft::apply(&full_spec()).unwrap();
        let before = list_jalur();
        // Longer than NFT_NAME_MAXLEN (256): the kernel refuses the first message.
        let long = FirewallSpec {
            table: "t".repeat(300),
            ..full_spec()
        };
        let err = nft::apply(&long).unwrap_err();
        assert!(err.op.starts_with("nft add table inet ttt"), "{err}");
        assert_eq!(list_jalur(), before);
        assert_eq!(sh("nft list tables"), "table inet jalur\n");
    });
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn a_large_table_is_acknowledged_in_full() {
    in_private_netns(|| {
        // 4000 rules: more acks than a default-sized socket buffer holds.
        let exempt: Vec<IpNet> = (0..4000u32)
            .map(|i| net(&format!("10.{}.{}.0/24", 100 + i / 256, i % 256)))
            .collect();
        let spec = FirewallSpec {
            table: JALUR_TABLE.into(),
            masquerade: Some(Masquerade {
                sources: vec![net("10.244.0.0/16")],
                no_masquerade: exempt,
            }),
            anti_spoof_ifprefix: None,
        };
        nft::apply(&spec).unwrap();
        nft::apply(&spec).unwrap();
        let listed = list_jalur();
        assert_eq!(listed.matches(" return").count(), 4000);
        assert!(
            listed.contains("ip daddr 10.115.159.0/24 return"),
            "{listed}"
        );
    });
}

/// Echo requests the calling thread's namespace received: `Icmp: InEchos` and
/// `Icmp6InEchos`.
fn echos_received() -> (u64, u64) {
    let snmp = std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap();
    let mut icmp = snmp.lines().filter(|l| l.starts_with("Icmp: "));
    let (names, values) = (icmp.next().unwrap(), icmp.next().unwrap());
    let at = names
        .split_whitespace()
        .position(|n| n == "InEchos")
        .unwrap();
    let v4 = values.split_whitespace().nth(at).unwrap().parse().unwrap();
    let snmp6 = std::fs::read_to_string("/proc/thread-self/net/snmp6").unwrap();
    let v6 = snmp6
        .lines()
        .find_map(|l| l.strip_prefix("Icmp6InEchos"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (v4, v6)
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn anti_spoofing_drops_forged_sources_only() {
    in_private_netns(|| {
        // This namespace is the node; the pod is behind the veth jl0 with 10.99.0.2 and
        // fd99::2, and also holds addresses the node does not route to it: 10.55.0.9, fd55::9.
        let pod = NamedNetns::new("pod");
        sh(&format!(
            "ip link add jl0 type veth peer name eth0 netns {}",
            pod.0
        ));
        sh("sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0");
        sh("sysctl -qw net.ipv4.conf.jl0.rp_filter=0");
        sh("ip addr add 10.99.0.1/24 dev jl0 && ip addr add fd99::1/64 dev jl0 nodad");
        sh("ip link set jl0 up");
        let mac = sh("ip -o link show dev jl0 | sed 's|.*link/ether \\([^ ]*\\).*|\\1|'");
        pod.sh(&format!(
            "ip link set eth0 up && ip addr add 10.99.0.2/24 dev eth0 && \
             ip addr add 10.55.0.9/32 dev eth0 && ip addr add fd99::2/64 dev eth0 nodad && \
             ip addr add fd55::9/128 dev eth0 nodad && \
             ip neigh replace 10.99.0.1 lladdr {mac} dev eth0 nud permanent && \
             ip neigh replace fd99::1 lladdr {mac} dev eth0 nud permanent",
            mac = mac.trim()
        ));

        // Sends one legitimate and one forged echo request per family; returns which forged
        // ones reached the node.
        let round = |label: &str| -> (bool, bool) {
            assert!(
                pod.ping_answered("10.99.0.1"),
                "{label}: legitimate IPv4 ping failed"
            );
            assert!(
                pod.ping_answered("fd99::1"),
                "{label}: legitimate IPv6 ping failed"
            );
            let before = echos_received();
            pod.ping("-I 10.55.0.9 10.99.0.1");
            pod.ping("-I fd55::9 fd99::1");
            let after = echos_received();
            (after.0 > before.0, after.1 > before.1)
        };

        assert_eq!(
            round("no table"),
            (true, true),
            "control: forged echoes must arrive without the table"
        );
        let spec = FirewallSpec {
            table: JALUR_TABLE.into(),
            masquerade: None,
            anti_spoof_ifprefix: Some("jl".into()),
        };
        nft::apply(&spec).unwrap();
        assert_eq!(round("anti-spoofing on jl*"), (false, false));
        nft::apply(&FirewallSpec {
            anti_spoof_ifprefix: Some("zz".into()),
            ..spec
        })
        .unwrap();
        assert_eq!(round("anti-spoofing on zz*"), (true, true));
        assert!(nft::delete(JALUR_TABLE).unwrap());
        assert_eq!(round("table deleted"), (true, true));
    });
}

#[test]
#[ignore = "kernel tier: needs root; sudo ./scripts/test.sh runs it"]
fn masquerade_hides_pods_except_toward_exempt_destinations() {
    in_private_netns(|| {
        // pod (10.99.0.2, fd99::2) — jl0 [node] up0 — remote (192.0.2.2 and 198.51.100.2,
        // 2001:db8::2 and 2001:db8:1::2). The remote has no route back to the pod network:
        // a ping from the pod is answered only when the node masqueraded it.
        let pod = NamedNetns::new("mpod");
        let remote = NamedNetns::new("remote");
        sh(&format!(
            "ip link add jl0 type veth peer name eth0 netns {}",
            pod.0
        ));
        sh(&format!(
            "ip link add up0 type veth peer name eth0 netns {}",
            remote.0
        ));
        sh("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1");
        sh("ip addr add 10.99.0.1/24 dev jl0 && ip addr add fd99::1/64 dev jl0 nodad");
        sh("ip addr add 192.0.2.1/24 dev up0 && ip addr add 2001:db8::1/64 dev up0 nodad");
        sh("ip link set jl0 up && ip link set up0 up");
        sh("ip route add 198.51.100.0/24 via 192.0.2.2");
        sh("ip -6 route add 2001:db8:1::/64 via 2001:db8::2");
        pod.sh(
            "ip link set eth0 up && ip addr add 10.99.0.2/24 dev eth0 && \
             ip addr add fd99::2/64 dev eth0 nodad && ip route add default via 10.99.0.1 && \
             ip -6 route add default via fd99::1",
        );
        remote.sh(
            "ip link set eth0 up && ip addr add 192.0.2.2/24 dev eth0 && \
             ip addr add 198.51.100.2/32 dev eth0 && ip addr add 2001:db8::2/64 dev eth0 nodad && \
             ip addr add 2001:db8:1::2/128 dev eth0 nodad",
        );

        assert!(
            !pod.ping("192.0.2.2"),
            "control: answered without masquerade"
        );
        assert!(
            !pod.ping("2001:db8::2"),
            "control: answered without masquerade"
        );

        nft::apply(&FirewallSpec {
            table: JALUR_TABLE.into(),
            masquerade: Some(Masquerade {
                sources: vec![net("10.99.0.0/24"), net("fd99::/64")],
                no_masquerade: vec![
                    net("10.99.0.0/24"),
                    net("fd99::/64"),
                    net("198.51.100.0/24"),
                    net("2001:db8:1::/64"),
                ],
            }),
            anti_spoof_ifprefix: Some("jl".into()),
        })
        .unwrap();
        assert!(pod.ping_answered("192.0.2.2"), "IPv4 not masqueraded");
        assert!(pod.ping_answered("2001:db8::2"), "IPv6 not masqueraded");
        assert!(
            !pod.ping("198.51.100.2"),
            "IPv4 exempt destination masqueraded"
        );
        assert!(
            !pod.ping("2001:db8:1::2"),
            "IPv6 exempt destination masqueraded"
        );
        // Pod to node is exempt too, and still works.
        assert!(pod.ping_answered("10.99.0.1") && pod.ping_answered("fd99::1"));
    });
}
