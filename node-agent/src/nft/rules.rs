//! Jalur's rules as nf_tables expressions, each with its `nft` spelling.
//!
//! Matches are compiled the way `nft` compiles them (checked against `nft` itself by the
//! kernel tests), so that `nft list` shows them as the rules they stand for.

use ipnet::IpNet;

use super::expr::{Expr, MetaKey, NFT_RETURN, NF_DROP};
use super::Masquerade;

/// `NFPROTO_IPV4` and `NFPROTO_IPV6`.
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;

/// One rule: its expressions and its `nft` spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rule {
    pub(super) exprs: Vec<Expr>,
    pub(super) text: String,
}

/// Per family, IPv4 then IPv6 (only for a family that has sources): one `return` per
/// no-masquerade destination, then one `masquerade` per source. A packet toward an exempt
/// destination leaves the chain before any masquerade rule, whatever its source; so this is
/// exactly "source in `sources` and destination in none of `no_masquerade`", in
/// `|sources| + |no_masquerade|` rules rather than one per pair.
pub(super) fn masquerade_rules(m: &Masquerade) -> Vec<Rule> {
    let mut rules = Vec::new();
    for v4 in [true, false] {
        let of_family = |nets: &[IpNet]| -> Vec<IpNet> {
            nets.iter()
                .filter(|n| matches!(n, IpNet::V4(_)) == v4)
                .map(IpNet::trunc)
                .collect()
        };
        let sources = of_family(&m.sources);
        if sources.is_empty() {
            continue;
        }
        let ip = if v4 { "ip" } else { "ip6" };
        for dst in of_family(&m.no_masquerade) {
            let mut exprs = nfproto(v4);
            exprs.extend(prefix_match(&dst, Direction::Destination));
            exprs.push(Expr::Verdict(NFT_RETURN));
            rules.push(Rule {
                exprs,
                text: format!("{ip} daddr {dst} return"),
            });
        }
        for src in sources {
            let mut exprs = nfproto(v4);
            exprs.extend(prefix_match(&src, Direction::Source));
            exprs.push(Expr::Masq);
            rules.push(Rule {
                exprs,
                text: format!("{ip} saddr {src} masquerade"),
            });
        }
    }
    rules
}

/// `iifname "PREFIX*" fib saddr . iif oif missing drop`.
pub(super) fn anti_spoof_rule(prefix: &str) -> Rule {
    Rule {
        exprs: vec![
            Expr::Meta(MetaKey::IifName),
            Expr::CmpEq(prefix.as_bytes().to_vec()),
            Expr::FibSaddrIifPresent,
            Expr::CmpEq(vec![0; 4]),
            Expr::Verdict(NF_DROP),
        ],
        text: format!("iifname \"{prefix}*\" fib saddr . iif oif missing drop"),
    }
}

/// `meta nfproto ipv4|ipv6`: what `ip saddr …` in an `inet` table implies.
fn nfproto(v4: bool) -> Vec<Expr> {
    let proto = if v4 { NFPROTO_IPV4 } else { NFPROTO_IPV6 };
    vec![Expr::Meta(MetaKey::NfProto), Expr::CmpEq(vec![proto])]
}

#[derive(Debug, Clone, Copy)]
enum Direction {
    Source,
    Destination,
}

/// `ip saddr|daddr NET` (or `ip6 …`) as `nft` compiles it: a byte-aligned prefix loads and
/// compares only its bytes; any other loads the whole address and masks it first. `/0`
/// matches everything and needs no expression.
fn prefix_match(net: &IpNet, direction: Direction) -> Vec<Expr> {
    let (offset, addr): (u32, Vec<u8>) = match (net, direction) {
        (IpNet::V4(n), Direction::Source) => (12, n.network().octets().to_vec()),
        (IpNet::V4(n), Direction::Destination) => (16, n.network().octets().to_vec()),
        (IpNet::V6(n), Direction::Source) => (8, n.network().octets().to_vec()),
        (IpNet::V6(n), Direction::Destination) => (24, n.network().octets().to_vec()),
    };
    let bits = usize::from(net.prefix_len());
    if bits == 0 {
        return Vec::new();
    }
    if bits % 8 == 0 {
        let len = bits / 8;
        return vec![
            Expr::Payload {
                offset,
                len: len as u32,
            },
            Expr::CmpEq(addr[..len].to_vec()),
        ];
    }
    let mask = match net {
        IpNet::V4(n) => n.netmask().octets().to_vec(),
        IpNet::V6(n) => n.netmask().octets().to_vec(),
    };
    vec![
        Expr::Payload {
            offset,
            len: addr.len() as u32,
        },
        Expr::Mask(mask),
        Expr::CmpEq(addr),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn byte_aligned_prefix_loads_only_its_bytes() {
        assert_eq!(
            prefix_match(&net("10.244.0.0/16"), Direction::Source),
            [
                Expr::Payload { offset: 12, len: 2 },
                Expr::CmpEq(vec![10, 244])
            ]
        );
        assert_eq!(
            prefix_match(&net("192.0.2.7/32"), Direction::Destination),
            [
                Expr::Payload { offset: 16, len: 4 },
                Expr::CmpEq(vec![192, 0, 2, 7])
            ]
        );
        assert!(prefix_match(&net("0.0.0.0/0"), Direction::Source).is_empty());
    }

    #[test]
    fn unaligned_prefix_is_masked_and_host_bits_ignored() {
        assert_eq!(
            prefix_match(&net("10.97.1.2/12"), Direction::Destination),
            [
                Expr::Payload { offset: 16, len: 4 },
                Expr::Mask(vec![255, 240, 0, 0]),
                Expr::CmpEq(vec![10, 96, 0, 0])
            ]
        );
        let v6 = prefix_match(&net("fd00::/7"), Direction::Destination);
        assert_eq!(
            v6[0],
            Expr::Payload {
                offset: 24,
                len: 16
            }
        );
        let mut mask = vec![0; 16];
        mask[0] = 0xfe;
        assert_eq!(v6[1], Expr::Mask(mask));
        let mut network = vec![0; 16];
        network[0] = 0xfc;
        assert_eq!(v6[2], Expr::CmpEq(network));
    }

    #[test]
    fn masquerade_rules_exempt_first_per_family() {
        let m = Masquerade {
            sources: vec![net("10.244.0.0/16"), net("fd00:10:244::/56")],
            no_masquerade: vec![
                net("10.244.0.0/16"),
                net("fd00:10:244::/56"),
                net("10.96.0.1/12"),
            ],
        };
        let texts: Vec<String> = masquerade_rules(&m).into_iter().map(|r| r.text).collect();
        assert_eq!(
            texts,
            [
                "ip daddr 10.244.0.0/16 return",
                "ip daddr 10.96.0.0/12 return",
                "ip saddr 10.244.0.0/16 masquerade",
                "ip6 daddr fd00:10:244::/56 return",
                "ip6 saddr fd00:10:244::/56 masquerade",
            ]
        );
    }

    #[test]
    fn a_family_without_sources_gets_no_rules() {
        let m = Masquerade {
            sources: vec![net("10.244.0.0/16")],
            no_masquerade: vec![net("fd00::/8")],
        };
        let texts: Vec<String> = masquerade_rules(&m).into_iter().map(|r| r.text).collect();
        assert_eq!(texts, ["ip saddr 10.244.0.0/16 masquerade"]);
    }

    #[test]
    fn ipv6_rules_check_the_family_then_the_prefix() {
        let m = Masquerade {
            sources: vec![net("fd00:10:244::/56")],
            no_masquerade: vec![net("fd00::/8")],
        };
        let rules = masquerade_rules(&m);
        assert_eq!(
            rules[0].exprs,
            [
                Expr::Meta(MetaKey::NfProto),
                Expr::CmpEq(vec![10]),
                Expr::Payload { offset: 24, len: 1 },
                Expr::CmpEq(vec![0xfd]),
                Expr::Verdict(NFT_RETURN),
            ]
        );
        assert_eq!(
            rules[1].exprs,
            [
                Expr::Meta(MetaKey::NfProto),
                Expr::CmpEq(vec![10]),
                Expr::Payload { offset: 8, len: 7 },
                Expr::CmpEq(vec![0xfd, 0, 0, 0x10, 0x02, 0x44, 0]),
                Expr::Masq,
            ]
        );
    }

    #[test]
    fn anti_spoof_compares_the_prefix_without_nul() {
        let rule = anti_spoof_rule("jl");
        assert_eq!(
            rule.exprs,
            [
                Expr::Meta(MetaKey::IifName),
                Expr::CmpEq(b"jl".to_vec()),
                Expr::FibSaddrIifPresent,
                Expr::CmpEq(vec![0; 4]),
                Expr::Verdict(NF_DROP),
            ]
        );
        assert_eq!(
            rule.text,
            "iifname \"jl*\" fib saddr . iif oif missing drop"
        );
    }
}
