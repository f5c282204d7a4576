//! Tests of [`Store`](super::Store): allocation order, idempotence, persistence, crash
//! leftovers, corruption, concurrency and lock timeouts.

use super::*;
use crate::pool::RangeSet;
use crate::range::Range;
use std::os::unix::fs::PermissionsExt;
use std::thread;
use tempfile::TempDir;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn pool(subnets: &[&str]) -> Pool {
    Pool::new(
        subnets
            .iter()
            .map(|s| RangeSet::single(Range::from_subnet(s.parse().unwrap()).unwrap()))
            .collect(),
    )
    .unwrap()
}

fn key(c: &str) -> AttachmentKey {
    AttachmentKey::new(c, "eth0")
}

fn store() -> (TempDir, Store) {
    let tmp = TempDir::new().unwrap();
    let s = Store::open(tmp.path(), "net1").unwrap();
    (tmp, s)
}

fn one(s: &Store, p: &Pool, c: &str) -> IpAddr {
    let a = s.allocate(p, &key(c)).unwrap();
    assert_eq!(a.len(), 1);
    a[0].ip
}

#[test]
fn round_robin_without_immediate_reuse() {
    let (_t, s) = store();
    let p = pool(&["10.1.0.0/24"]);
    assert_eq!(one(&s, &p, "a"), ip("10.1.0.2"));
    assert_eq!(one(&s, &p, "b"), ip("10.1.0.3"));
    assert_eq!(s.release(&key("b")).unwrap(), vec![ip("10.1.0.3")]);
    // Just released .3 is not reused: the cursor moves on.
    assert_eq!(one(&s, &p, "c"), ip("10.1.0.4"));
    assert_eq!(s.release(&key("c")).unwrap(), vec![ip("10.1.0.4")]);
    assert_eq!(one(&s, &p, "d"), ip("10.1.0.5"));
}

#[test]
fn wraps_around_and_never_hands_out_reserved_addresses() {
    let (_t, s) = store();
    let range = Range::new(
        "10.1.0.0/28".parse().unwrap(),
        None,
        None,
        Some(ip("10.1.0.7")),
    )
    .unwrap();
    let p = Pool::new(vec![RangeSet::single(range)]).unwrap();
    let got: Vec<IpAddr> = (0..13).map(|i| one(&s, &p, &format!("k{i}"))).collect();
    let mut sorted = got.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 13, "{got:?}");
    for bad in ["10.1.0.0", "10.1.0.7", "10.1.0.15"] {
        assert!(!got.contains(&ip(bad)), "{bad} handed out: {got:?}");
    }
    // In order: .1-.6, .8-.14.
    assert_eq!(got[0], ip("10.1.0.1"));
    assert_eq!(got[6], ip("10.1.0.8"));
    assert_eq!(got[12], ip("10.1.0.14"));
    let e = s.allocate(&p, &key("full")).unwrap_err();
    assert!(matches!(e, Error::Exhausted { .. }), "{e}");
    // Free .3 and .10; the cursor is at .14, so the walk wraps to .3 first.
    let holder = |a: &str| {
        let idx = got.iter().position(|g| *g == ip(a)).unwrap();
        key(&format!("k{idx}"))
    };
    s.release(&holder("10.1.0.10")).unwrap();
    s.release(&holder("10.1.0.3")).unwrap();
    assert_eq!(one(&s, &p, "x"), ip("10.1.0.3"));
    assert_eq!(one(&s, &p, "y"), ip("10.1.0.10"));
}

#[test]
fn wraps_across_ranges_of_a_set_in_order() {
    let (_t, s) = store();
    let set = RangeSet::new(vec![
        Range::from_subnet("10.1.0.0/30".parse().unwrap()).unwrap(),
        Range::from_subnet("10.2.0.0/29".parse().unwrap()).unwrap(),
    ])
    .unwrap();
    let p = Pool::new(vec![set]).unwrap();
    let got: Vec<IpAddr> = (0..6).map(|i| one(&s, &p, &format!("k{i}"))).collect();
    let want: Vec<IpAddr> = [
        "10.1.0.2", "10.2.0.2", "10.2.0.3", "10.2.0.4", "10.2.0.5", "10.2.0.6",
    ]
    .iter()
    .map(|a| ip(a))
    .collect();
    assert_eq!(got, want);
    s.release(&key("k0")).unwrap();
    assert_eq!(one(&s, &p, "again"), ip("10.1.0.2"));
}

#[test]
fn exhaustion_names_the_range_and_books_nothing() {
    let (_t, s) = store();
    let p = pool(&["10.1.0.0/30"]);
    assert_eq!(one(&s, &p, "a"), ip("10.1.0.2"));
    let e = s.allocate(&p, &key("b")).unwrap_err();
    assert!(matches!(e, Error::Exhausted { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "no free address left in range 10.1.0.0/30 (10.1.0.1-10.1.0.2)"
    );
    // Dual-stack: the v4 set is full, so the v6 address is not booked either.
    let dual = pool(&["10.1.0.0/30", "fd00::/64"]);
    assert!(matches!(
        s.allocate(&dual, &key("b")),
        Err(Error::Exhausted { .. })
    ));
    assert!(s.lookup(&key("b")).unwrap().is_empty());
    assert_eq!(s.free_addresses(&dual).unwrap(), vec![0, (1u128 << 64) - 3]);
}

#[test]
fn dual_stack_gives_one_per_set_in_order() {
    let (_t, s) = store();
    let p = pool(&["10.1.0.0/24", "fd00:1::/64"]);
    let a = s.allocate(&p, &key("a")).unwrap();
    assert_eq!(
        a,
        vec![
            Allocation {
                ip: ip("10.1.0.2"),
                subnet: "10.1.0.0/24".parse().unwrap(),
                gateway: Some(ip("10.1.0.1")),
            },
            Allocation {
                ip: ip("fd00:1::2"),
                subnet: "fd00:1::/64".parse().unwrap(),
                gateway: Some(ip("fd00:1::1")),
            },
        ]
    );
    let b = s.allocate(&p, &key("b")).unwrap();
    assert_eq!(b[0].ip, ip("10.1.0.3"));
    assert_eq!(b[1].ip, ip("fd00:1::3"));
}

#[test]
fn allocate_is_idempotent_per_key() {
    let (_t, s) = store();
    let v4 = pool(&["10.1.0.0/24"]);
    let first = s.allocate(&v4, &key("a")).unwrap();
    assert_eq!(s.allocate(&v4, &key("a")).unwrap(), first);
    // Same container, other interface: a different attachment.
    let other = s.allocate(&v4, &AttachmentKey::new("a", "net1")).unwrap();
    assert_ne!(other[0].ip, first[0].ip);
    // Growing the pool to dual-stack keeps the v4 address and adds only a v6 one.
    let dual = pool(&["10.1.0.0/24", "fd00::/64"]);
    let both = s.allocate(&dual, &key("a")).unwrap();
    assert_eq!(both[0], first[0]);
    assert_eq!(both[1].ip, ip("fd00::2"));
    assert_eq!(s.allocate(&dual, &key("a")).unwrap(), both);
    assert_eq!(s.lookup(&key("a")).unwrap(), vec![first[0].ip, both[1].ip]);
}

#[test]
fn address_outside_pool_is_ignored_but_stays_booked() {
    let (_t, s) = store();
    let old = one(&s, &pool(&["10.1.0.0/24"]), "a");
    let new = one(&s, &pool(&["10.2.0.0/24"]), "a");
    assert_eq!(new, ip("10.2.0.2"));
    assert_eq!(s.lookup(&key("a")).unwrap(), vec![old, new]);
    assert_eq!(s.release(&key("a")).unwrap(), vec![old, new]);
}

#[test]
fn release_is_idempotent_and_does_not_write_when_unchanged() {
    let (_t, s) = store();
    assert!(s.release(&key("nobody")).unwrap().is_empty());
    assert!(
        !s.state_path().exists(),
        "release of nothing wrote the state"
    );
    let p = pool(&["10.1.0.0/24"]);
    let a = one(&s, &p, "a");
    let before = fs::read(s.state_path()).unwrap();
    assert!(s.release(&key("nobody")).unwrap().is_empty());
    assert_eq!(fs::read(s.state_path()).unwrap(), before);
    assert_eq!(s.release(&key("a")).unwrap(), vec![a]);
    assert!(s.release(&key("a")).unwrap().is_empty());
    assert!(s.lookup(&key("a")).unwrap().is_empty());
}

#[test]
fn gc_keeps_valid_and_releases_the_rest() {
    let (_t, s) = store();
    let p = pool(&["10.1.0.0/24", "fd00::/64"]);
    for c in ["a", "b", "c"] {
        s.allocate(&p, &key(c)).unwrap();
    }
    let valid: HashSet<AttachmentKey> = [key("b")].into_iter().collect();
    let released = s.gc(&valid).unwrap();
    assert_eq!(
        released,
        vec![
            (key("a"), ip("10.1.0.2")),
            (key("a"), ip("fd00::2")),
            (key("c"), ip("10.1.0.4")),
            (key("c"), ip("fd00::4")),
        ]
    );
    let att = s.attachments().unwrap();
    assert_eq!(att.len(), 1);
    assert_eq!(att[&key("b")], vec![ip("10.1.0.3"), ip("fd00::3")]);
    assert!(s.gc(&valid).unwrap().is_empty());
}

#[test]
fn state_persists_across_open_in_the_documented_format() {
    let tmp = TempDir::new().unwrap();
    let p = pool(&["10.1.0.0/24"]);
    {
        let s = Store::open(tmp.path(), "net1").unwrap();
        assert_eq!(one(&s, &p, "a"), ip("10.1.0.2"));
    }
    let s = Store::open(tmp.path(), "net1").unwrap();
    assert_eq!(s.lookup(&key("a")).unwrap(), vec![ip("10.1.0.2")]);
    // The cursor persisted too.
    assert_eq!(one(&s, &p, "b"), ip("10.1.0.3"));
    let v: serde_json::Value =
        serde_json::from_slice(&fs::read(s.dir().join("allocations.json")).unwrap()).unwrap();
    assert_eq!(v["version"], 1);
    assert_eq!(v["allocations"][0]["ip"], "10.1.0.2");
    assert_eq!(v["allocations"][0]["containerId"], "a");
    assert_eq!(v["allocations"][0]["ifname"], "eth0");
    assert_eq!(
        v["lastReserved"]["10.1.0.0/24 (10.1.0.1-10.1.0.254)"],
        "10.1.0.3"
    );
    // Another network in the same data dir is independent.
    let other = Store::open(tmp.path(), "net2").unwrap();
    assert_eq!(one(&other, &p, "a"), ip("10.1.0.2"));
}

#[test]
fn directory_is_private() {
    let tmp = TempDir::new().unwrap();
    let s = Store::open(&tmp.path().join("deep/er"), "net1").unwrap();
    for d in [
        s.dir(),
        &tmp.path().join("deep/er"),
        &tmp.path().join("deep"),
    ] {
        let mode = fs::metadata(d).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", d.display());
    }
    assert!(s.lock_path().exists());
}

#[test]
fn network_names_are_validated() {
    let tmp = TempDir::new().unwrap();
    let long = "x".repeat(256);
    for bad in ["", ".", "..", "a/b", "a\0b", long.as_str()] {
        let e = Store::open(tmp.path(), bad).unwrap_err();
        assert!(
            matches!(e, Error::InvalidNetworkName { .. }),
            "{bad:?}: {e}"
        );
    }
    Store::open(tmp.path(), &"x".repeat(255)).unwrap();
    Store::open(tmp.path(), "..a").unwrap();
}

#[test]
fn leftover_temp_file_is_removed_and_state_intact() {
    let (_t, s) = store();
    let p = pool(&["10.1.0.0/24"]);
    let a = one(&s, &p, "a");
    let junk = s.dir().join("allocations.json.tmp.123");
    fs::write(&junk, b"{\"version\":1,\"allocations\":[{\"ip\":\"10.1").unwrap();
    let s = Store::open(s.dir().parent().unwrap(), "net1").unwrap();
    assert_eq!(s.lookup(&key("a")).unwrap(), vec![a]);
    assert_eq!(one(&s, &p, "b"), ip("10.1.0.3"));
    assert!(!junk.exists(), "stale temp file left behind");
    let names: Vec<String> = fs::read_dir(s.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        names.iter().all(|n| n == "allocations.json" || n == "lock"),
        "{names:?}"
    );
}

#[test]
fn corrupt_state_is_an_error_not_empty() {
    let p = pool(&["10.1.0.0/24"]);
    for garbage in [
        &b"{\"version\":1,\"allocations\":[{\"ip\":\"10.1.0.2\",\"contai"[..],
        b"",
        b"\0\0\0\0",
        b"[]",
    ] {
        let (_t, s) = store();
        fs::write(s.state_path(), garbage).unwrap();
        for e in [
            s.allocate(&p, &key("a")).unwrap_err(),
            s.lookup(&key("a")).unwrap_err(),
            s.release(&key("a")).unwrap_err(),
        ] {
            assert!(matches!(e, Error::Corrupt { .. }), "{garbage:?}: {e}");
            assert!(e.to_string().contains("allocations.json"), "{e}");
            assert!(std::error::Error::source(&e).is_some());
        }
        // Untouched.
        assert_eq!(fs::read(s.state_path()).unwrap(), garbage);
    }
}

#[test]
fn invalid_state_is_rejected() {
    let p = pool(&["10.1.0.0/24"]);
    for bad in [
        r#"{"version":2,"allocations":[]}"#,
        r#"{"version":1,"allocations":[{"ip":"10.1.0.2","containerId":"a","ifname":"eth0"},{"ip":"10.1.0.2","containerId":"b","ifname":"eth0"}]}"#,
    ] {
        let (_t, s) = store();
        fs::write(s.state_path(), bad).unwrap();
        let e = s.allocate(&p, &key("c")).unwrap_err();
        assert!(matches!(e, Error::InvalidState { .. }), "{e}");
    }
}

#[test]
fn free_addresses_counts_without_walking() {
    let (_t, s) = store();
    let p = pool(&["10.1.0.0/24", "fd00::/64"]);
    assert_eq!(s.free_addresses(&p).unwrap(), vec![253, (1u128 << 64) - 3]);
    s.allocate(&p, &key("a")).unwrap();
    s.allocate(&p, &key("b")).unwrap();
    // An address outside the pool does not count.
    one(&s, &pool(&["10.9.0.0/24"]), "c");
    assert_eq!(s.free_addresses(&p).unwrap(), vec![251, (1u128 << 64) - 5]);
    let whole = pool(&["::/0"]);
    assert_eq!(s.free_addresses(&whole).unwrap(), vec![u128::MAX - 2 - 2]);
}

#[test]
fn v6_cursor_continues_deep_in_a_huge_range() {
    let (_t, s) = store();
    let range = Range::new(
        "fd00::/64".parse().unwrap(),
        Some(ip("fd00::ffff:ffff:ffff:fffd")),
        None,
        None,
    )
    .unwrap();
    let big = Range::from_subnet("fd01::/48".parse().unwrap()).unwrap();
    let p = Pool::new(vec![RangeSet::new(vec![range, big]).unwrap()]).unwrap();
    assert_eq!(one(&s, &p, "a"), ip("fd00::ffff:ffff:ffff:fffd"));
    assert_eq!(one(&s, &p, "b"), ip("fd00::ffff:ffff:ffff:fffe"));
    assert_eq!(one(&s, &p, "c"), ip("fd01::2"));
    s.release(&key("a")).unwrap();
    assert_eq!(one(&s, &p, "d"), ip("fd01::3"));
}

#[test]
fn concurrent_stores_never_double_book() {
    let tmp = TempDir::new().unwrap();
    let p = pool(&["10.1.0.0/24"]);
    let all = distinct_across_threads(8, 25, |t| {
        // One Store per thread: separate open file descriptions, as across processes.
        let s = Store::open(tmp.path(), "net1").unwrap();
        let p = &p;
        move |i| one(&s, p, &format!("t{t}-{i}"))
    });
    assert_eq!(all.len(), 200);
    let s = Store::open(tmp.path(), "net1").unwrap();
    let att = s.attachments().unwrap();
    assert_eq!(att.len(), 200);
    assert_eq!(att.values().map(Vec::len).sum::<usize>(), 200);
    assert_eq!(s.free_addresses(&p).unwrap(), vec![53]);
}

/// Runs `threads` threads, each booking `per_thread` addresses with the booker `booker(t)`
/// makes for it (in the thread), and returns the distinct addresses booked.
fn distinct_across_threads<B, F>(threads: usize, per_thread: usize, booker: B) -> Vec<IpAddr>
where
    B: Fn(usize) -> F + Sync,
    F: FnMut(usize) -> IpAddr,
{
    let mut all: Vec<IpAddr> = thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let booker = &booker;
                scope.spawn(move || (0..per_thread).map(booker(t)).collect::<Vec<_>>())
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    all.sort();
    all.dedup();
    all
}

#[test]
fn one_store_shared_by_threads_never_double_books() {
    let (_t, s) = store();
    let p = pool(&["10.1.0.0/24"]);
    let (s, p) = (&s, &p);
    let all = distinct_across_threads(4, 20, |t| move |i| one(s, p, &format!("t{t}-{i}")));
    assert_eq!(all.len(), 80);
}

#[test]
fn lock_timeout_when_another_holder_keeps_the_lock() {
    let (_t, s) = store();
    let s = s.with_lock_timeout(Duration::from_millis(100));
    assert_eq!(s.lock_timeout(), Duration::from_millis(100));
    let p = pool(&["10.1.0.0/24"]);
    let holder = File::open(s.lock_path()).unwrap();
    holder.lock().unwrap();
    let started = std::time::Instant::now();
    for e in [
        s.allocate(&p, &key("a")).unwrap_err(),
        s.lookup(&key("a")).unwrap_err(),
    ] {
        match e {
            Error::LockTimeout { ref path, .. } => assert_eq!(path, s.lock_path()),
            other => panic!("expected LockTimeout, got {other}"),
        }
    }
    assert!(started.elapsed() >= Duration::from_millis(200));
    drop(holder);
    assert_eq!(one(&s, &p, "a"), ip("10.1.0.2"));
}

#[test]
fn readers_share_the_lock() {
    let (_t, s) = store();
    let s = s.with_lock_timeout(Duration::from_millis(100));
    let reader = File::open(s.lock_path()).unwrap();
    reader.lock_shared().unwrap();
    assert!(s.lookup(&key("a")).unwrap().is_empty());
    assert!(matches!(
        s.release(&key("a")),
        Err(Error::LockTimeout { .. })
    ));
}

#[test]
fn a_fifo_as_state_or_lock_file_is_refused_at_once() {
    use nix::sys::stat::Mode;
    use std::time::Instant;
    let mkfifo = |p: &Path| nix::unistd::mkfifo(p, Mode::from_bits_truncate(0o600)).unwrap();
    let (_t, s) = store();
    mkfifo(s.state_path());
    let started = Instant::now();
    let err = s.allocate(&pool(&["10.1.0.0/24"]), &key("a")).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(matches!(err, Error::NotRegularFile { .. }), "{err}");
    assert!(err.to_string().contains("allocations.json"), "{err}");

    let tmp = TempDir::new().unwrap();
    fs::create_dir_all(tmp.path().join("net2")).unwrap();
    mkfifo(&tmp.path().join("net2").join(LOCK_FILE));
    let err = Store::open(tmp.path(), "net2").unwrap_err();
    assert!(matches!(err, Error::NotRegularFile { .. }), "{err}");
}
