//! The few nf_tables expressions Jalur's rules are made of, as values, and their netlink
//! encoding (attribute numbers from `linux/netfilter/nf_tables.h`).
//!
//! Every expression works on register 1 (`NFT_REG_1`) or sets the verdict register; the
//! doc comment of each variant is how `nft --debug=netlink` prints it.

use super::wire::Attrs;

/// `NFT_REG_VERDICT` and `NFT_REG_1`.
const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;

/// `NFTA_LIST_ELEM`, `NFTA_EXPR_NAME`, `NFTA_EXPR_DATA`.
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
/// `NFTA_DATA_VALUE`, `NFTA_DATA_VERDICT`, `NFTA_VERDICT_CODE`.
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
/// `enum nft_meta_attributes`.
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
/// `enum nft_payload_attributes`; `NFT_PAYLOAD_NETWORK_HEADER`.
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
/// `enum nft_bitwise_attributes`.
const NFTA_BITWISE_SREG: u16 = 1;
const NFTA_BITWISE_DREG: u16 = 2;
const NFTA_BITWISE_LEN: u16 = 3;
const NFTA_BITWISE_MASK: u16 = 4;
const NFTA_BITWISE_XOR: u16 = 5;
/// `enum nft_cmp_attributes`; `NFT_CMP_EQ`.
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFT_CMP_EQ: u32 = 0;
/// `enum nft_fib_attributes`, `NFT_FIB_RESULT_OIF` and `enum nft_fib_flags`.
const NFTA_FIB_DREG: u16 = 1;
const NFTA_FIB_RESULT: u16 = 2;
const NFTA_FIB_FLAGS: u16 = 3;
const NFT_FIB_RESULT_OIF: u32 = 1;
const NFTA_FIB_F_SADDR: u32 = 1 << 0;
const NFTA_FIB_F_IIF: u32 = 1 << 3;
const NFTA_FIB_F_PRESENT: u32 = 1 << 5;
/// `enum nft_immediate_attributes`.
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;

/// `NF_DROP`: the verdict that drops the packet.
pub(super) const NF_DROP: i32 = 0;
/// `NF_ACCEPT`: a base chain's policy.
pub(super) const NF_ACCEPT: i32 = 1;
/// `NFT_RETURN`: leave the chain (in a base chain: its policy applies).
pub(super) const NFT_RETURN: i32 = -5;

/// The `meta` keys used here (`enum nft_meta_keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MetaKey {
    /// `NFT_META_IIFNAME`: the input interface's name, 16 bytes, NUL-padded.
    IifName = 6,
    /// `NFT_META_NFPROTO`: the packet's family (`NFPROTO_IPV4` 2 or `NFPROTO_IPV6` 10).
    NfProto = 15,
}

/// One expression of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Expr {
    /// `[ meta load KEY => reg 1 ]`
    Meta(MetaKey),
    /// `[ payload load LENb @ network header + OFFSET => reg 1 ]`
    Payload {
        /// Byte offset in the IP header.
        offset: u32,
        /// Bytes loaded.
        len: u32,
    },
    /// `[ bitwise reg 1 = ( reg 1 & MASK ) ^ 0x00000000 ]` (the mask's length is the operand's)
    Mask(Vec<u8>),
    /// `[ cmp eq reg 1 DATA ]` (the data's length is the comparison's)
    CmpEq(Vec<u8>),
    /// `[ fib saddr . iif oif present => reg 1 ]`: 1 when the packet's source address is
    /// routed back through the interface it arrived on, else 0 (one byte, the rest of the
    /// 4-byte register zeroed; `nft` compares all 4 bytes).
    FibSaddrIifPresent,
    /// `[ immediate reg 0 VERDICT ]`
    Verdict(i32),
    /// `[ masq ]`
    Masq,
}

impl Expr {
    fn name(&self) -> &'static str {
        match self {
            Expr::Meta(_) => "meta",
            Expr::Payload { .. } => "payload",
            Expr::Mask(_) => "bitwise",
            Expr::CmpEq(_) => "cmp",
            Expr::FibSaddrIifPresent => "fib",
            Expr::Verdict(_) => "immediate",
            Expr::Masq => "masq",
        }
    }

    /// Writes the expression's own attributes (the content of `NFTA_EXPR_DATA`).
    fn write_data(&self, a: &mut Attrs) {
        match self {
            Expr::Meta(key) => {
                a.u32(NFTA_META_DREG, NFT_REG_1)
                    .u32(NFTA_META_KEY, *key as u32);
            }
            Expr::Payload { offset, len } => {
                a.u32(NFTA_PAYLOAD_DREG, NFT_REG_1)
                    .u32(NFTA_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER)
                    .u32(NFTA_PAYLOAD_OFFSET, *offset)
                    .u32(NFTA_PAYLOAD_LEN, *len);
            }
            Expr::Mask(mask) => {
                a.u32(NFTA_BITWISE_SREG, NFT_REG_1)
                    .u32(NFTA_BITWISE_DREG, NFT_REG_1)
                    .u32(NFTA_BITWISE_LEN, mask.len() as u32)
                    .nest(NFTA_BITWISE_MASK, |d| {
                        d.bytes(NFTA_DATA_VALUE, mask);
                    })
                    .nest(NFTA_BITWISE_XOR, |d| {
                        d.bytes(NFTA_DATA_VALUE, &vec![0; mask.len()]);
                    });
            }
            Expr::CmpEq(data) => {
                a.u32(NFTA_CMP_SREG, NFT_REG_1)
                    .u32(NFTA_CMP_OP, NFT_CMP_EQ)
                    .nest(NFTA_CMP_DATA, |d| {
                        d.bytes(NFTA_DATA_VALUE, data);
                    });
            }
            Expr::FibSaddrIifPresent => {
                a.u32(NFTA_FIB_DREG, NFT_REG_1)
                    .u32(NFTA_FIB_RESULT, NFT_FIB_RESULT_OIF)
                    .u32(
                        NFTA_FIB_FLAGS,
                        NFTA_FIB_F_SADDR | NFTA_FIB_F_IIF | NFTA_FIB_F_PRESENT,
                    );
            }
            Expr::Verdict(code) => {
                a.u32(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT)
                    .nest(NFTA_IMMEDIATE_DATA, |d| {
                        d.nest(NFTA_DATA_VERDICT, |v| {
                            v.u32(NFTA_VERDICT_CODE, *code as u32);
                        });
                    });
            }
            Expr::Masq => {}
        }
    }
}

/// A rule's `NFTA_RULE_EXPRESSIONS` content: one `NFTA_LIST_ELEM` per expression.
pub(super) fn encode_list(exprs: &[Expr], out: &mut Attrs) {
    for expr in exprs {
        out.nest(NFTA_LIST_ELEM, |elem| {
            elem.str(NFTA_EXPR_NAME, expr.name());
            if *expr != Expr::Masq {
                elem.nest(NFTA_EXPR_DATA, |data| expr.write_data(data));
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(exprs: &[Expr]) -> Vec<u8> {
        let mut a = Attrs::new();
        encode_list(exprs, &mut a);
        a.into_bytes()
    }

    #[test]
    fn cmp_encodes_register_op_and_value() {
        assert_eq!(
            encode(&[Expr::CmpEq(vec![2])]),
            [
                44, 0, 1, 0x80, // NFTA_LIST_ELEM, nested
                8, 0, 1, 0, b'c', b'm', b'p', 0, // NFTA_EXPR_NAME "cmp"
                32, 0, 2, 0x80, // NFTA_EXPR_DATA, nested
                8, 0, 1, 0, 0, 0, 0, 1, // NFTA_CMP_SREG reg 1
                8, 0, 2, 0, 0, 0, 0, 0, // NFTA_CMP_OP eq
                12, 0, 3, 0x80, // NFTA_CMP_DATA, nested
                5, 0, 1, 0, 2, 0, 0, 0, // NFTA_DATA_VALUE 0x02 (+ padding)
            ]
        );
    }

    #[test]
    fn return_verdict_is_minus_five_big_endian() {
        let bytes = encode(&[Expr::Verdict(NFT_RETURN)]);
        assert_eq!(&bytes[bytes.len() - 4..], &[0xff, 0xff, 0xff, 0xfb]);
        let name = b"immediate\0";
        assert_eq!(&bytes[8..8 + name.len()], name);
    }

    #[test]
    fn masq_has_a_name_only() {
        assert_eq!(
            encode(&[Expr::Masq]),
            [16, 0, 1, 0x80, 9, 0, 1, 0, b'm', b'a', b's', b'q', 0, 0, 0, 0]
        );
    }

    #[test]
    fn fib_asks_saddr_iif_oif_present() {
        let bytes = encode(&[Expr::FibSaddrIifPresent]);
        // NFTA_FIB_FLAGS is the last attribute: SADDR | IIF | PRESENT.
        assert_eq!(&bytes[bytes.len() - 8..], &[8, 0, 3, 0, 0, 0, 0, 0x29]);
    }
}
