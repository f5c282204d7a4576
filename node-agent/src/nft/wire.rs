//! The nf_tables wire: netlink attributes, nfnetlink messages, batches, and a blocking
//! `NETLINK_NETFILTER` socket that sends one batch and reads an acknowledgement for every
//! message in it.
//!
//! Netlink headers are in host byte order; nf_tables attribute integers are big-endian (the
//! kernel reads them with `ntohl`).

use std::collections::HashMap;
use std::io;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use nix::errno::Errno;
use nix::sys::socket::MsgFlags;

use jalur_cni_plugin::net::NetError;

const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLA_F_NESTED: u16 = 0x8000;

pub(super) use netlink_packet_core::{
    NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REQUEST,
};

/// `NFNL_MSG_BATCH_BEGIN` / `_END` (`linux/netfilter/nfnetlink.h`).
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
/// `NFNL_SUBSYS_NFTABLES`: the high byte of every nf_tables message type.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFPROTO_UNSPEC`, the family of the batch delimiters.
const NFPROTO_UNSPEC: u8 = 0;

/// `enum nf_tables_msg_types`.
pub(super) const NFT_MSG_NEWTABLE: u8 = 0;
pub(super) const NFT_MSG_GETTABLE: u8 = 1;
pub(super) const NFT_MSG_DELTABLE: u8 = 2;
pub(super) const NFT_MSG_NEWCHAIN: u8 = 3;
pub(super) const NFT_MSG_GETCHAIN: u8 = 4;
pub(super) const NFT_MSG_NEWRULE: u8 = 6;
pub(super) const NFT_MSG_GETRULE: u8 = 7;

/// A netlink attribute stream under construction (`struct nlattr`s, each padded to 4 bytes).
#[derive(Debug, Default)]
pub(super) struct Attrs(Vec<u8>);

impl Attrs {
    pub(super) fn new() -> Self {
        Attrs::default()
    }

    /// An attribute with a raw payload.
    pub(super) fn bytes(&mut self, kind: u16, data: &[u8]) -> &mut Self {
        let len = u16::try_from(4 + data.len()).expect("netlink attribute over 64 KiB");
        self.0.extend_from_slice(&len.to_ne_bytes());
        self.0.extend_from_slice(&kind.to_ne_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(align4(self.0.len()), 0);
        self
    }

    /// A big-endian `u32` attribute (`NLA_U32` of nf_tables, e.g. `NFTA_META_KEY`).
    pub(super) fn u32(&mut self, kind: u16, value: u32) -> &mut Self {
        self.bytes(kind, &value.to_be_bytes())
    }

    /// A NUL-terminated string attribute (`NLA_STRING`).
    pub(super) fn str(&mut self, kind: u16, value: &str) -> &mut Self {
        let mut data = Vec::with_capacity(value.len() + 1);
        data.extend_from_slice(value.as_bytes());
        data.push(0);
        self.bytes(kind, &data)
    }

    /// A nested attribute (`NLA_F_NESTED` set) whose content `fill` writes.
    pub(super) fn nest(&mut self, kind: u16, fill: impl FnOnce(&mut Attrs)) -> &mut Self {
        let mut inner = Attrs::new();
        fill(&mut inner);
        self.bytes(kind | NLA_F_NESTED, &inner.0)
    }

    pub(super) fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

pub(super) fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// One nf_tables message of a batch, and the `nft` command it stands for (the `op` of the
/// error it may cause).
#[derive(Debug, Clone)]
pub(super) struct Request {
    /// `NFT_MSG_*`.
    pub(super) kind: u8,
    /// `NLM_F_*` beyond `NLM_F_REQUEST | NLM_F_ACK`.
    pub(super) flags: u16,
    /// `nfgen_family` (`NFPROTO_*`).
    pub(super) family: u8,
    /// The attributes, already encoded.
    pub(super) attrs: Vec<u8>,
    /// The equivalent `nft` command.
    pub(super) op: String,
}

/// Appends one netlink message with an `nfgenmsg` header.
fn push_message(
    out: &mut Vec<u8>,
    kind: u16,
    flags: u16,
    seq: u32,
    family: u8,
    res_id: u16,
    attrs: &[u8],
) {
    let len = NLMSG_HDRLEN + 4 + attrs.len();
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel
    out.push(family);
    out.push(0); // NFNETLINK_V0
    out.extend_from_slice(&res_id.to_be_bytes());
    out.extend_from_slice(attrs);
    out.resize(align4(out.len()), 0);
}

fn message_type(kind: u8) -> u16 {
    NFNL_SUBSYS_NFTABLES << 8 | u16::from(kind)
}

/// Appends `request` as message `seq`, asking for an ack.
fn push_request(out: &mut Vec<u8>, request: &Request, seq: u32) {
    push_message(
        out,
        message_type(request.kind),
        NLM_F_REQUEST | NLM_F_ACK | request.flags,
        seq,
        request.family,
        0,
        &request.attrs,
    );
}

/// One request on its own (not in a batch): `seq`, `NLM_F_REQUEST | NLM_F_ACK | flags`.
pub(super) fn encode_single(request: &Request, seq: u32) -> Vec<u8> {
    let mut out = Vec::new();
    push_request(&mut out, request, seq);
    out
}

/// A whole transaction: `BATCH_BEGIN` (sequence `first_seq`), the requests (`first_seq + 1 …`,
/// each asking for an ack), `BATCH_END`.
pub(super) fn encode_batch(requests: &[Request], first_seq: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut seq = first_seq;
    push_message(
        &mut out,
        NFNL_MSG_BATCH_BEGIN,
        NLM_F_REQUEST,
        seq,
        NFPROTO_UNSPEC,
        NFNL_SUBSYS_NFTABLES,
        &[],
    );
    for request in requests {
        seq = seq.wrapping_add(1);
        push_request(&mut out, request, seq);
    }
    push_message(
        &mut out,
        NFNL_MSG_BATCH_END,
        NLM_F_REQUEST,
        seq.wrapping_add(1),
        NFPROTO_UNSPEC,
        NFNL_SUBSYS_NFTABLES,
        &[],
    );
    out
}

/// One `NETLINK_NETFILTER` socket in the namespace of the thread that opened it.
pub(super) struct NfSocket {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl NfSocket {
    /// Opens a socket in the calling thread's current network namespace.
    pub(super) fn open() -> Result<Self, NetError> {
        let ctx = |source| NetError::new("open nfnetlink socket", source);
        let mut socket = Socket::new(NETLINK_NETFILTER).map_err(ctx)?;
        socket.bind_auto().map_err(ctx)?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(ctx)?;
        // Error answers carry only the failed message's header, not the whole rule.
        let _ = socket.set_cap_ack(true);
        Ok(NfSocket {
            socket,
            seq: 0,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Sends `requests` as one transaction. `Ok` when the kernel acknowledged every message
    /// and committed; otherwise the error of the first failing message, with that message's
    /// `op` (or `batch_op` when the batch as a whole failed, e.g. at commit).
    pub(super) fn transact(
        &mut self,
        requests: &[Request],
        batch_op: &str,
    ) -> Result<(), NetError> {
        let first = self.seq.wrapping_add(1);
        self.seq = first.wrapping_add(requests.len() as u32 + 1);
        let packet = encode_batch(requests, first);
        self.size_buffers(packet.len(), requests.len());
        let answers = self
            .exchange(&packet)
            .map_err(|e| NetError::new(batch_op, e))?;
        // An error on BATCH_BEGIN is the batch's own: malformed, or refused at commit.
        if let Some(&errno) = answers.get(&first).filter(|&&errno| errno != 0) {
            return Err(NetError::new(batch_op, io::Error::from_raw_os_error(errno)));
        }
        for (i, request) in requests.iter().enumerate() {
            let seq = first.wrapping_add(i as u32 + 1);
            match answers.get(&seq) {
                Some(0) => {}
                Some(&errno) => {
                    return Err(NetError::new(
                        request.op.clone(),
                        io::Error::from_raw_os_error(errno),
                    ))
                }
                None => {
                    return Err(NetError::new(
                        batch_op,
                        io::Error::other(format!("no acknowledgement for `{}`", request.op)),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Sends one request outside a batch (a `GET`). `Ok(())` when the kernel acknowledged it.
    pub(super) fn request(&mut self, request: &Request) -> Result<(), NetError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let answers = self
            .exchange(&encode_single(request, seq))
            .map_err(|e| NetError::new(request.op.clone(), e))?;
        match answers.get(&seq) {
            Some(0) => Ok(()),
            Some(&errno) => Err(NetError::new(
                request.op.clone(),
                io::Error::from_raw_os_error(errno),
            )),
            None => Err(NetError::new(
                request.op.clone(),
                io::Error::other("no acknowledgement"),
            )),
        }
    }

    /// Sends a dump request (`request.flags` should hold `NLM_F_DUMP`) and hands the
    /// attributes of every message of the answer (after its `nfgenmsg` header) to
    /// `on_message`. `ENOENT` (nothing of that kind, or no such table) is an empty answer.
    pub(super) fn dump(
        &mut self,
        request: &Request,
        on_message: &mut dyn FnMut(&[u8]),
    ) -> Result<(), NetError> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut packet = Vec::new();
        push_message(
            &mut packet,
            message_type(request.kind),
            NLM_F_REQUEST | request.flags,
            seq,
            request.family,
            0,
            &request.attrs,
        );
        let fail = |e| NetError::new(request.op.clone(), e);
        self.socket.send(&packet, 0).map_err(fail)?;
        loop {
            let n = match self.socket.recv(&mut &mut self.buf[..], 0) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(fail(e)),
            };
            match parse_dump(&self.buf[..n], seq, on_message).map_err(fail)? {
                Some(0) => return Ok(()),
                Some(errno) if errno == Errno::ENOENT as i32 => return Ok(()),
                Some(errno) => return Err(fail(io::Error::from_raw_os_error(errno))),
                None => {}
            }
        }
    }

    /// Sizes the socket's buffers for one batch: the send buffer must hold the whole batch
    /// (one datagram), and the receive buffer every ack of it at once, since all are queued
    /// before `send` returns (else the kernel drops some: `ENOBUFS`). An ack costs well under
    /// 1 KiB of buffer. The `…FORCE` options (root) pass the `wmem_max`/`rmem_max` caps; the
    /// plain ones are the best effort otherwise. The kernel doubles the value given.
    fn size_buffers(&self, batch_len: usize, acks: usize) {
        use nix::sys::socket::{setsockopt, sockopt};
        // The kernel takes an int; nix converts with `as`, so cap here.
        let int = |bytes: usize| bytes.min(i32::MAX as usize);
        let send = int(batch_len / 2 + 64 * 1024);
        if setsockopt(&self.socket, sockopt::SndBufForce, &send).is_err() {
            let _ = setsockopt(&self.socket, sockopt::SndBuf, &send);
        }
        let recv = int(acks * 1024 + 64 * 1024);
        if setsockopt(&self.socket, sockopt::RcvBufForce, &recv).is_err() {
            let _ = setsockopt(&self.socket, sockopt::RcvBuf, &recv);
        }
    }

    /// Sends `packet` and returns the errno of every ack or error that came back (0 for an
    /// ack), by sequence number. Other answers (e.g. the table a `GET` returns) are ignored.
    ///
    /// The kernel processes a netfilter netlink message inside `sendmsg` itself, so every
    /// answer is queued before `send` returns: the socket is drained without waiting (as
    /// `nft` does), and a missing answer is an error rather than a hang.
    fn exchange(&mut self, packet: &[u8]) -> io::Result<HashMap<u32, i32>> {
        self.socket.send(packet, 0)?;
        let mut answers = HashMap::new();
        loop {
            let n = match self
                .socket
                .recv(&mut &mut self.buf[..], MsgFlags::MSG_DONTWAIT.bits())
            {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(answers),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            parse_answers(&self.buf[..n], &mut answers)?;
        }
    }
}

/// The netlink messages of one datagram, each as (type, sequence number, the whole message);
/// an `InvalidData` error (`truncated`) for a length that does not fit, and nothing after it.
fn messages<'a>(
    mut bytes: &'a [u8],
    truncated: &'static str,
) -> impl Iterator<Item = io::Result<(u16, u32, &'a [u8])>> {
    std::iter::from_fn(move || {
        if bytes.len() < NLMSG_HDRLEN {
            return None;
        }
        let len = u32::from_ne_bytes(bytes[0..4].try_into().unwrap()) as usize;
        let kind = u16::from_ne_bytes(bytes[4..6].try_into().unwrap());
        let seq = u32::from_ne_bytes(bytes[8..12].try_into().unwrap());
        if len < NLMSG_HDRLEN || len > bytes.len() {
            bytes = &[];
            return Some(Err(io::Error::new(io::ErrorKind::InvalidData, truncated)));
        }
        let message = &bytes[..len];
        bytes = &bytes[align4(len).min(bytes.len())..];
        Some(Ok((kind, seq, message)))
    })
}

/// The errno an `NLMSG_ERROR` message answers with (0: an acknowledgement).
fn errno_of(message: &[u8], truncated: &'static str) -> io::Result<i32> {
    let code = message
        .get(NLMSG_HDRLEN..NLMSG_HDRLEN + 4)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, truncated))?;
    Ok(-i32::from_ne_bytes(code.try_into().unwrap()))
}

/// Hands the attributes of each message of one dump datagram that answers `seq` to
/// `on_message`. `Some(errno)` once the dump ended (`NLMSG_DONE`: 0, or `NLMSG_ERROR`).
fn parse_dump(
    bytes: &[u8],
    seq: u32,
    on_message: &mut dyn FnMut(&[u8]),
) -> io::Result<Option<i32>> {
    const TRUNCATED: &str = "truncated nfnetlink dump";
    for message in messages(bytes, TRUNCATED) {
        let (kind, answers, message) = message?;
        if answers == seq {
            match kind {
                NLMSG_DONE => return Ok(Some(0)),
                NLMSG_ERROR => return errno_of(message, TRUNCATED).map(Some),
                _ => on_message(message.get(NLMSG_HDRLEN + 4..).unwrap_or_default()),
            }
        }
    }
    Ok(None)
}

/// Reads the `NLMSG_ERROR` messages of one datagram into `answers` (sequence → errno).
fn parse_answers(bytes: &[u8], answers: &mut HashMap<u32, i32>) -> io::Result<()> {
    const TRUNCATED: &str = "truncated netlink answer";
    for message in messages(bytes, TRUNCATED) {
        let (kind, seq, message) = message?;
        if kind == NLMSG_ERROR {
            let errno = errno_of(message, TRUNCATED)?;
            answers.entry(seq).or_insert(errno);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_and_nested() {
        let mut a = Attrs::new();
        a.str(1, "jl").u32(2, 1).nest(3, |n| {
            n.bytes(1, &[0xaa]);
        });
        assert_eq!(
            a.into_bytes(),
            [
                7, 0, 1, 0, b'j', b'l', 0, 0, // "jl\0" + 1 byte of padding
                8, 0, 2, 0, 0, 0, 0, 1, // big-endian 1
                12, 0, 3, 0x80, 5, 0, 1, 0, 0xaa, 0, 0, 0, // NLA_F_NESTED
            ]
        );
    }

    #[test]
    fn batch_is_delimited_and_numbered() {
        let request = Request {
            kind: NFT_MSG_DELTABLE,
            flags: 0,
            family: 1,
            attrs: {
                let mut a = Attrs::new();
                a.str(1, "t");
                a.into_bytes()
            },
            op: "nft delete table inet t".into(),
        };
        let bytes = encode_batch(&[request], 7);
        assert_eq!(bytes.len(), 20 + 28 + 20);
        let word = |at: usize| u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap());
        let half = |at: usize| u16::from_ne_bytes(bytes[at..at + 2].try_into().unwrap());
        // BATCH_BEGIN, res_id NFNL_SUBSYS_NFTABLES (big-endian), seq 7.
        assert_eq!((word(0), half(4), half(6), word(8)), (20, 0x10, 1, 7));
        assert_eq!(&bytes[16..20], &[0, 0, 0, 10]);
        // The request: type NFT_MSG_DELTABLE of subsystem 10, REQUEST|ACK, seq 8, family inet.
        assert_eq!((word(20), half(24), half(26), word(28)), (28, 0x0a02, 5, 8));
        assert_eq!(&bytes[36..40], &[1, 0, 0, 0]);
        // BATCH_END, seq 9.
        assert_eq!((word(48), half(52), half(54), word(56)), (20, 0x11, 1, 9));
    }

    #[test]
    fn answers_map_sequence_to_errno() {
        let mut datagram = Vec::new();
        for (seq, code) in [(3u32, 0i32), (4, -(Errno::ENOENT as i32))] {
            datagram.extend_from_slice(&36u32.to_ne_bytes());
            datagram.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
            datagram.extend_from_slice(&0u16.to_ne_bytes());
            datagram.extend_from_slice(&seq.to_ne_bytes());
            datagram.extend_from_slice(&0u32.to_ne_bytes());
            datagram.extend_from_slice(&code.to_ne_bytes());
            datagram.extend_from_slice(&[0; 16]);
        }
        let mut answers = HashMap::new();
        parse_answers(&datagram, &mut answers).unwrap();
        assert_eq!(answers, HashMap::from([(3, 0), (4, Errno::ENOENT as i32)]));
        datagram[36..40].copy_from_slice(&99u32.to_ne_bytes());
        let err = parse_answers(&datagram, &mut answers).unwrap_err();
        assert_eq!(err.to_string(), "truncated netlink answer");
    }

    #[test]
    fn a_dump_hands_over_its_messages_until_done() {
        // A message of another request, one of ours (a 4-byte nfgenmsg, then one
        // attribute), then NLMSG_DONE.
        let mut datagram = Vec::new();
        let mut message = |kind: u16, seq: u32, body: &[u8]| {
            let len = (NLMSG_HDRLEN + body.len()) as u32;
            datagram.extend_from_slice(&len.to_ne_bytes());
            datagram.extend_from_slice(&kind.to_ne_bytes());
            datagram.extend_from_slice(&[0; 2]);
            datagram.extend_from_slice(&seq.to_ne_bytes());
            datagram.extend_from_slice(&[0; 4]);
            datagram.extend_from_slice(body);
        };
        message(0x0a00, 6, &[1, 0, 0, 0]);
        message(0x0a00, 7, &[1, 0, 0, 0, 5, 0, 1, 0, 0xaa, 0, 0, 0]);
        message(NLMSG_DONE, 7, &[0; 4]);
        let mut seen = Vec::new();
        let end = parse_dump(&datagram, 7, &mut |attrs| seen.push(attrs.to_vec())).unwrap();
        assert_eq!(end, Some(0));
        assert_eq!(seen, [vec![5, 0, 1, 0, 0xaa, 0, 0, 0]]);
        let end = parse_dump(&datagram[..datagram.len() - 20], 7, &mut |_| {}).unwrap();
        assert_eq!(end, None, "the dump goes on in the next datagram");
    }
}
