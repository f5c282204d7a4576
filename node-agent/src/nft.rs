//! Jalur's own nftables table (family `inet`): pod masquerading and anti-spoofing.
//!
//! Spoken directly over `NETLINK_NETFILTER` in nf_tables batches, built by hand: no `nft`
//! binary is run and no nftables library is linked. The caller describes the table as a
//! [`FirewallSpec`] value; [`apply`] replaces the whole table in one transaction (the `nft -f`
//! idiom `add table; delete table; add table { … }`), so the kernel never holds a half-built
//! table nor lacks one. Errors are [`NetError`]s whose `op` is the `nft` command that failed.
//! Like the rest of the netlink code (`jalur_cni_plugin::net`), every call acts in the network
//! namespace of the calling thread.

mod expr;
mod fingerprint;
mod rules;
mod wire;

use std::fmt::Write as _;
use std::io;

use ipnet::IpNet;

use self::expr::NF_ACCEPT;
use self::rules::{anti_spoof_rule, masquerade_rules, Rule};
use self::wire::{
    Attrs, NfSocket, Request, NFT_MSG_DELTABLE, NFT_MSG_GETTABLE, NFT_MSG_NEWCHAIN,
    NFT_MSG_NEWRULE, NFT_MSG_NEWTABLE, NLM_F_APPEND, NLM_F_CREATE,
};
use jalur_cni_plugin::net::{found, NetError};

pub use self::fingerprint::fingerprint;

/// What Jalur's own nftables table (family `inet`) holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallSpec {
    /// The table's name ([`crate::firewall::TABLE`] for the agent).
    pub table: String,
    /// Masquerade to the node's address the traffic leaving pods for outside the cluster.
    /// `None`: no `postrouting` chain.
    pub masquerade: Option<Masquerade>,
    /// Drop packets arriving on an interface whose name starts with this prefix (`"jl"`)
    /// whose source address does not route back through that same interface (anti-spoofing,
    /// IPv4 and IPv6): `iifname "jl*" fib saddr . iif oif missing drop`, in a `prerouting`
    /// chain at priority -150 (before kube-proxy's DNAT at -100). `None`: no such chain.
    pub anti_spoof_ifprefix: Option<String>,
}

/// Which traffic is masqueraded: source in `sources`, destination in none of
/// `no_masquerade`. Each family's CIDRs only apply to that family's packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Masquerade {
    /// The cluster's pod CIDRs.
    pub sources: Vec<IpNet>,
    /// Destinations never masqueraded: the cluster CIDRs again, plus operator-given ones.
    pub no_masquerade: Vec<IpNet>,
}

/// The chain that masquerades (`type nat hook postrouting priority srcnat`).
const POSTROUTING: Chain = Chain {
    name: "postrouting",
    kind: "nat",
    hook: Hook::PostRouting,
    priority: 100,
};

/// The chain that drops spoofed sources (`type filter hook prerouting priority -150`).
const ANTISPOOF: Chain = Chain {
    name: "antispoof",
    kind: "filter",
    hook: Hook::PreRouting,
    priority: -150,
};

/// `NF_INET_PRE_ROUTING` and `NF_INET_POST_ROUTING`.
#[derive(Debug, Clone, Copy)]
enum Hook {
    PreRouting = 0,
    PostRouting = 4,
}

/// A base chain with policy accept.
#[derive(Debug, Clone, Copy)]
struct Chain {
    name: &'static str,
    kind: &'static str,
    hook: Hook,
    priority: i32,
}

impl Chain {
    fn head(&self) -> String {
        let hook = match self.hook {
            Hook::PreRouting => "prerouting",
            Hook::PostRouting => "postrouting",
        };
        format!(
            "type {} hook {hook} priority {}; policy accept;",
            self.kind, self.priority
        )
    }
}

/// `NFPROTO_INET`: the family of the table.
const NFPROTO_INET: u8 = 1;
/// `IFNAMSIZ - 1`: the longest interface name.
const MAX_IFNAME: usize = 15;

/// `NFTA_TABLE_NAME`.
const NFTA_TABLE_NAME: u16 = 1;
/// `enum nft_chain_attributes` and `enum nft_hook_attributes`.
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
/// `enum nft_rule_attributes`.
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;

impl FirewallSpec {
    /// The table as `nft -f` input: what [`apply`] installs, for logs and comparisons.
    pub fn nft_text(&self) -> String {
        let mut out = format!("table inet {} {{\n", self.table);
        for (chain, rules) in self.chains() {
            let _ = writeln!(out, "\tchain {} {{\n\t\t{}", chain.name, chain.head());
            for rule in rules {
                let _ = writeln!(out, "\t\t{}", rule.text);
            }
            out.push_str("\t}\n");
        }
        out.push_str("}\n");
        out
    }

    /// The chains and their rules, in order.
    fn chains(&self) -> Vec<(Chain, Vec<Rule>)> {
        let mut chains = Vec::new();
        if let Some(masquerade) = &self.masquerade {
            chains.push((POSTROUTING, masquerade_rules(masquerade)));
        }
        if let Some(prefix) = &self.anti_spoof_ifprefix {
            chains.push((ANTISPOOF, vec![anti_spoof_rule(prefix)]));
        }
        chains
    }

    /// The transaction that replaces the table: `add table; delete table; add table`, then
    /// the chains and rules.
    fn requests(&self) -> Result<Vec<Request>, NetError> {
        if let Some(prefix) = &self.anti_spoof_ifprefix {
            if prefix.is_empty() || prefix.len() > MAX_IFNAME || prefix.contains('\0') {
                return Err(NetError::new(
                    format!(
                        "nft add rule inet {} antispoof iifname \"{prefix}*\"",
                        self.table
                    ),
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "the interface prefix must be 1 to 15 bytes",
                    ),
                ));
            }
        }
        let table = self.table.as_str();
        let mut requests = vec![
            add_table(table),
            table_request(NFT_MSG_DELTABLE, 0, table, "delete"),
            add_table(table),
        ];
        for (chain, rules) in self.chains() {
            requests.push(add_chain(table, &chain));
            requests.extend(rules.iter().map(|rule| add_rule(table, chain.name, rule)));
        }
        Ok(requests)
    }
}

/// Installs `spec.table` exactly as `spec` describes it, replacing whatever table of that name
/// was there, in one atomic transaction. Idempotent.
pub fn apply(spec: &FirewallSpec) -> Result<(), NetError> {
    let requests = spec.requests()?;
    let batch_op = format!("nft -f - (replace table inet {})", spec.table);
    NfSocket::open()?.transact(&requests, &batch_op)
}

/// `nft delete table inet TABLE`; `Ok(false)` when there was no such table.
pub fn delete(table: &str) -> Result<bool, NetError> {
    let request = table_request(NFT_MSG_DELTABLE, 0, table, "delete");
    let op = request.op.clone();
    found(NfSocket::open()?.transact(&[request], &op))
}

/// `nft list table inet TABLE` succeeds: the table exists.
pub fn exists(table: &str) -> Result<bool, NetError> {
    let request = table_request(NFT_MSG_GETTABLE, 0, table, "list");
    found(NfSocket::open()?.request(&request))
}

fn table_request(kind: u8, flags: u16, table: &str, verb: &str) -> Request {
    let mut attrs = Attrs::new();
    attrs.str(NFTA_TABLE_NAME, table);
    Request {
        kind,
        flags,
        family: NFPROTO_INET,
        attrs: attrs.into_bytes(),
        op: format!("nft {verb} table inet {table}"),
    }
}

/// `nft add table inet TABLE`: creates it, or leaves an existing one as it is.
fn add_table(table: &str) -> Request {
    table_request(NFT_MSG_NEWTABLE, NLM_F_CREATE, table, "add")
}

fn add_chain(table: &str, chain: &Chain) -> Request {
    let mut attrs = Attrs::new();
    attrs
        .str(NFTA_CHAIN_TABLE, table)
        .str(NFTA_CHAIN_NAME, chain.name)
        .nest(NFTA_CHAIN_HOOK, |hook| {
            hook.u32(NFTA_HOOK_HOOKNUM, chain.hook as u32)
                .u32(NFTA_HOOK_PRIORITY, chain.priority as u32);
        })
        .u32(NFTA_CHAIN_POLICY, NF_ACCEPT as u32)
        .str(NFTA_CHAIN_TYPE, chain.kind);
    Request {
        kind: NFT_MSG_NEWCHAIN,
        flags: NLM_F_CREATE,
        family: NFPROTO_INET,
        attrs: attrs.into_bytes(),
        op: format!(
            "nft add chain inet {table} {} {{ {} }}",
            chain.name,
            chain.head()
        ),
    }
}

fn add_rule(table: &str, chain: &str, rule: &Rule) -> Request {
    let mut attrs = Attrs::new();
    attrs
        .str(NFTA_RULE_TABLE, table)
        .str(NFTA_RULE_CHAIN, chain)
        .nest(NFTA_RULE_EXPRESSIONS, |list| {
            expr::encode_list(&rule.exprs, list)
        });
    Request {
        kind: NFT_MSG_NEWRULE,
        flags: NLM_F_CREATE | NLM_F_APPEND,
        family: NFPROTO_INET,
        attrs: attrs.into_bytes(),
        op: format!("nft add rule inet {table} {chain} {}", rule.text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table the agent wants for a dual-stack cluster that keeps Services unmasqueraded.
    fn spec() -> FirewallSpec {
        use clap::Parser;
        let args = crate::cli::Cli::parse_from([
            "jalur-agent",
            "--cluster-cidr=10.244.0.0/16",
            "--cluster-cidr=fd00:10:244::/56",
            "--no-masquerade-cidr=10.96.0.0/12",
        ])
        .run;
        crate::firewall::spec(&args, &[])
    }

    #[test]
    fn transaction_replaces_the_table() {
        let ops: Vec<String> = spec()
            .requests()
            .unwrap()
            .into_iter()
            .map(|r| r.op)
            .collect();
        assert_eq!(
            ops[..3],
            [
                "nft add table inet jalur",
                "nft delete table inet jalur",
                "nft add table inet jalur"
            ]
        );
        assert_eq!(
            ops[3],
            "nft add chain inet jalur postrouting \
             { type nat hook postrouting priority 100; policy accept; }"
        );
        assert_eq!(
            ops[4],
            "nft add rule inet jalur postrouting ip daddr 10.244.0.0/16 return"
        );
        assert_eq!(
            ops[9],
            "nft add chain inet jalur antispoof \
             { type filter hook prerouting priority -150; policy accept; }"
        );
        assert_eq!(
            ops[10],
            "nft add rule inet jalur antispoof iifname \"jl*\" fib saddr . iif oif missing drop"
        );
        assert_eq!(ops.len(), 11);
    }

    #[test]
    fn empty_spec_is_an_empty_table() {
        let spec = FirewallSpec {
            table: "t".into(),
            masquerade: None,
            anti_spoof_ifprefix: None,
        };
        assert_eq!(spec.nft_text(), "table inet t {\n}\n");
        assert_eq!(spec.requests().unwrap().len(), 3);
    }

    #[test]
    fn bad_interface_prefix_is_refused() {
        for prefix in ["", "a-very-long-prefix"] {
            let mut spec = spec();
            spec.anti_spoof_ifprefix = Some(prefix.into());
            let err = spec.requests().unwrap_err();
            assert_eq!(err.source.kind(), io::ErrorKind::InvalidInput, "{err}");
        }
    }

    #[test]
    fn nft_text_lists_chains_and_rules() {
        let text = spec().nft_text();
        assert!(
            text.starts_with(
                "table inet jalur {\n\tchain postrouting {\n\t\t\
                 type nat hook postrouting priority 100; policy accept;\n\t\t\
                 ip daddr 10.244.0.0/16 return\n"
            ),
            "{text}"
        );
        assert!(
            text.ends_with(
                "\tchain antispoof {\n\t\ttype filter hook prerouting priority -150; \
                 policy accept;\n\t\tiifname \"jl*\" fib saddr . iif oif missing drop\n\t}\n}\n"
            ),
            "{text}"
        );
    }
}
