//! A bound on inbound handshakes per source address.
//!
//! Before a connection has finished its Noise and Yamux upgrade there is no peer id to
//! score or ban, so libp2p's only defence is a global count of pending inbound connections.
//! One host holding that many half-open sockets would keep every new peer out. This
//! behaviour refuses a new inbound connection while its source address (an IPv4 address,
//! or the /64 of an IPv6 address) already has [`MAX_PENDING_PER_SOURCE`] handshakes in
//! progress. Outbound dials (bootnodes, `addnode`) never count here.

use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    dummy, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};

/// Most inbound handshakes in progress from one source address.
pub const MAX_PENDING_PER_SOURCE: usize = 8;
/// Most inbound handshakes in progress in all (libp2p's connection limits enforce it).
pub const MAX_PENDING_INBOUND: u32 = 64;

/// The address an inbound connection is accounted to: IPv4 as it is, IPv6 by its /64
/// (one host usually holds a whole /64).
fn source_of(addr: &Multiaddr) -> Option<IpAddr> {
    match addr.iter().next()? {
        Protocol::Ip4(ip) => Some(ip.into()),
        Protocol::Ip6(ip) => {
            let mut seg = ip.segments();
            seg[4..].fill(0);
            Some(std::net::Ipv6Addr::from(seg).into())
        }
        _ => None,
    }
}

/// Why an inbound connection was refused.
#[derive(Debug, thiserror::Error)]
#[error("{pending} inbound handshakes already in progress from {addr} (limit {MAX_PENDING_PER_SOURCE})")]
pub struct TooManyPending {
    /// The source address (an IPv6 address's /64 prefix).
    pub addr: IpAddr,
    /// Handshakes in progress from it.
    pub pending: usize,
}

/// The behaviour: counts pending inbound connections per source.
#[derive(Default)]
pub struct InboundGuard {
    pending: HashMap<ConnectionId, IpAddr>,
    per_source: HashMap<IpAddr, usize>,
}

impl InboundGuard {
    fn finish(&mut self, id: ConnectionId) {
        let Some(source) = self.pending.remove(&id) else { return };
        if let Some(n) = self.per_source.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&source);
            }
        }
    }

    /// Handshakes in progress from `source` (for tests and diagnostics).
    pub fn pending_from(&self, source: &IpAddr) -> usize {
        self.per_source.get(source).copied().unwrap_or(0)
    }
}

impl NetworkBehaviour for InboundGuard {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(source) = source_of(remote) else { return Ok(()) };
        let pending = self.pending_from(&source);
        if pending >= MAX_PENDING_PER_SOURCE {
            return Err(ConnectionDenied::new(TooManyPending { addr: source, pending }));
        }
        self.pending.insert(id, source);
        *self.per_source.entry(source).or_default() += 1;
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        _peer: PeerId,
        _local: &Multiaddr,
        _remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.finish(id);
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            // Refused (by us or another behaviour), timed out, or the handshake failed.
            FromSwarm::ListenFailure(f) => self.finish(f.connection_id),
            FromSwarm::ConnectionEstablished(e) => self.finish(e.connection_id),
            _ => {}
        }
    }

    fn on_connection_handler_event(&mut self, _: PeerId, _: ConnectionId, event: THandlerOutEvent<Self>) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_source_is_capped_and_others_are_not() {
        let mut g = InboundGuard::default();
        let local = addr("/ip4/127.0.0.1/tcp/1");
        let evil = addr("/ip4/127.0.0.2/tcp/5000");
        let mut next = 0;
        let mut id = || {
            next += 1;
            ConnectionId::new_unchecked(next)
        };
        let held: Vec<ConnectionId> = (0..MAX_PENDING_PER_SOURCE)
            .map(|_| {
                let i = id();
                g.handle_pending_inbound_connection(i, &local, &evil).unwrap();
                i
            })
            .collect();
        let e = g.handle_pending_inbound_connection(id(), &local, &evil).unwrap_err();
        let e = e.downcast::<TooManyPending>().unwrap();
        assert_eq!((e.pending, e.addr.to_string().as_str()), (MAX_PENDING_PER_SOURCE, "127.0.0.2"));
        // Another address still gets in; a finished handshake frees a slot.
        g.handle_pending_inbound_connection(id(), &local, &addr("/ip4/127.0.0.1/tcp/6000")).unwrap();
        g.finish(held[0]);
        g.handle_pending_inbound_connection(id(), &local, &evil).unwrap();
        assert_eq!(g.pending_from(&"127.0.0.2".parse().unwrap()), MAX_PENDING_PER_SOURCE);
    }

    #[test]
    fn ipv6_sources_are_grouped_by_their_64() {
        let a = source_of(&addr("/ip6/2001:db8:1:2:aaaa::1/tcp/1")).unwrap();
        let b = source_of(&addr("/ip6/2001:db8:1:2:bbbb::9/tcp/1")).unwrap();
        let c = source_of(&addr("/ip6/2001:db8:1:3::1/tcp/1")).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
