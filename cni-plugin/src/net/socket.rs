//! A blocking rtnetlink socket: send one request, collect its answer.
//!
//! This owns the wire exchange with the kernel (sequence numbers, acks, multipart dumps,
//! errno mapping). It knows nothing of links or routes: the sibling modules build the
//! messages, and so does the agent for the kinds only it uses (its VXLAN device and FDB). A socket is bound to the network namespace of the thread that created it, for
//! its whole life (see [`super::netns`]).

use std::io;

use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use nix::errno::Errno;

use super::NetError;

/// One rtnetlink socket in the namespace it was opened in.
pub struct Netlink {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Netlink {
    /// Opens a socket in the calling thread's current network namespace.
    pub fn open() -> Result<Self, NetError> {
        let ctx = |source| NetError::new("open rtnetlink socket", source);
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(ctx)?;
        socket.bind_auto().map_err(ctx)?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(ctx)?;
        // Strict checking makes the kernel honour the filters of dump requests.
        let _ = socket.set_netlink_get_strict_chk(true);
        Ok(Netlink {
            socket,
            seq: 0,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Sends a request that expects an ack (or an error) and nothing else.
    pub fn ack(
        &mut self,
        op: &dyn Fn() -> String,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<(), NetError> {
        self.exchange(msg, NLM_F_REQUEST | NLM_F_ACK | flags, &mut |_| {})
            .map_err(|e| NetError::new(op(), e))
    }

    /// Sends a dump request and returns every message of the answer.
    pub fn dump(
        &mut self,
        op: &dyn Fn() -> String,
        msg: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, NetError> {
        let mut out = Vec::new();
        self.exchange(msg, NLM_F_REQUEST | NLM_F_DUMP, &mut |m| out.push(m))
            .map_err(|e| NetError::new(op(), e))?;
        Ok(out)
    }

    /// Sends a request that answers with exactly one message (e.g. `RTM_GETLINK` by name).
    /// `Ok(None)` when the kernel answers `ENODEV`/`ENOENT`/`ESRCH`.
    pub fn get(
        &mut self,
        op: &dyn Fn() -> String,
        msg: RouteNetlinkMessage,
    ) -> Result<Option<RouteNetlinkMessage>, NetError> {
        let mut out = None;
        match self.exchange(msg, NLM_F_REQUEST, &mut |m| out = Some(m)) {
            Ok(()) => Ok(out),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(NetError::new(op(), e)),
        }
    }

    fn exchange(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        on_message: &mut dyn FnMut(RouteNetlinkMessage),
    ) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut packet = NetlinkMessage::from(msg);
        packet.header.flags = flags;
        packet.header.sequence_number = seq;
        packet.finalize();
        let mut out = vec![0; packet.buffer_len()];
        packet.serialize(&mut out);
        self.socket.send(&out, 0)?;

        let multipart_expected = flags & NLM_F_DUMP == NLM_F_DUMP;
        let ack_expected = flags & NLM_F_ACK != 0;
        loop {
            let n = self.socket.recv(&mut &mut self.buf[..], 0)?;
            let mut offset = 0;
            while offset < n {
                let bytes = &self.buf[offset..n];
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let len = reply.header.length as usize;
                if len == 0 {
                    break;
                }
                offset += (len + 3) & !3;
                if reply.header.sequence_number != seq {
                    continue; // a stale answer to an earlier request
                }
                match reply.payload {
                    NetlinkPayload::Error(err) => {
                        return match err.code {
                            None => Ok(()),
                            Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                        };
                    }
                    NetlinkPayload::Done(_) => return Ok(()),
                    NetlinkPayload::InnerMessage(inner) => {
                        on_message(inner);
                        if !multipart_expected && !ack_expected {
                            return Ok(());
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// The errnos the kernel uses for "no such object".
pub(crate) fn is_not_found(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::ENODEV | Errno::ENOENT | Errno::ESRCH | Errno::EADDRNOTAVAIL)
    )
}
