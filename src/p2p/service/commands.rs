//! Commands from the rest of the node (publish, addnode, disconnectnode, setnetworkactive,
//! peer and network info, bans).

use super::*;
use crate::consensus::CheckedBlock;
use std::collections::VecDeque;
use std::sync::Arc;

impl Service {
    /// True if a connected peer takes full blocks and not compact ones (an implementation
    /// of protocol version 1's relay only).
    pub(super) fn full_only_peers(&self) -> bool {
        let blocks = gossipsub::IdentTopic::new(Topic::Blocks.name(self.network)).hash();
        let compact = gossipsub::IdentTopic::new(Topic::CompactBlocks.name(self.network)).hash();
        self.swarm
            .behaviour()
            .gossipsub
            .all_peers()
            .any(|(_, topics)| topics.contains(&&blocks) && !topics.contains(&&compact))
    }

    pub(super) fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Publish { topic, data, _held } => {
                if !self.active {
                    return;
                }
                let t = gossipsub::IdentTopic::new(topic.name(self.network));
                match self.swarm.behaviour_mut().gossipsub.publish(t, data) {
                    Ok(_) => debug!(target: "p2p::gossip", ?topic, "published"),
                    Err(e) => debug!(target: "p2p::gossip", ?topic, error = %e, "not published"),
                }
            }
            Command::PublishBlock { announcement, _held } => {
                if !self.active {
                    return;
                }
                let (compact, full) = match announcement {
                    BlockAnnouncement::Full(full) => (None, Some(full)),
                    BlockAnnouncement::Compact { compact, full } => {
                        (Some(compact), full.filter(|_| self.full_only_peers()))
                    }
                    BlockAnnouncement::FullForOthers(full) => (None, self.full_only_peers().then_some(full)),
                };
                for (topic, data) in [(Topic::CompactBlocks, compact), (Topic::Blocks, full)] {
                    let Some(data) = data else { continue };
                    let t = gossipsub::IdentTopic::new(topic.name(self.network));
                    match self.swarm.behaviour_mut().gossipsub.publish(t, data) {
                        Ok(_) => debug!(target: "p2p::gossip", ?topic, "block published"),
                        Err(e) => debug!(target: "p2p::gossip", ?topic, error = %e, "block not published"),
                    }
                }
            }
            Command::ServeBlock(block) => keep_served(&mut self.served, block),
            Command::AddNode { addr, mode, reply } => {
                let result = match mode {
                    AddNodeMode::Add if self.added.contains(&addr) => Err(P2pError::AlreadyAdded(addr)),
                    AddNodeMode::Add => {
                        self.added.push(addr.clone());
                        if self.active {
                            self.dial(addr);
                        }
                        Ok(())
                    }
                    AddNodeMode::Remove => match self.added.iter().position(|a| a == &addr) {
                        Some(i) => {
                            self.added.remove(i);
                            Ok(())
                        }
                        None => Err(P2pError::NotAdded(addr)),
                    },
                    AddNodeMode::OneTry => {
                        self.dial(addr);
                        Ok(())
                    }
                };
                let _ = reply.send(result);
            }
            Command::Disconnect { target, reply } => {
                let found = self
                    .peers
                    .iter()
                    .find(|(id, p)| {
                        id.to_string() == target || p.addr.to_string() == target || p.id.to_string() == target
                    })
                    .map(|(id, _)| *id);
                let result = match found {
                    Some(id) => {
                        let _ = self.swarm.disconnect_peer_id(id);
                        Ok(())
                    }
                    None => Err(P2pError::NotConnected(target)),
                };
                let _ = reply.send(result);
            }
            Command::SetActive { active, reply } => {
                self.active = active;
                if !active {
                    let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
                    for p in connected {
                        let _ = self.swarm.disconnect_peer_id(p);
                    }
                } else {
                    for addr in self.added.clone() {
                        self.dial(addr);
                    }
                    self.last_redial = Instant::now();
                }
                info!(target: "p2p", active, "network activity set");
                let _ = reply.send(active);
            }
            Command::PeerInfo { reply } => {
                let mut out: Vec<PeerInfo> = self
                    .peers
                    .iter()
                    .map(|(pid, p)| PeerInfo {
                        id: p.id,
                        peerid: pid.to_string(),
                        addr: p.addr.to_string(),
                        inbound: p.inbound,
                        direction: if p.inbound { "inbound" } else { "outbound" }.to_string(),
                        score: self.scores.score(pid),
                        startingheight: p.starting_height,
                        tipheight: p.tip_height,
                        bytessent: p.bytes_sent,
                        bytesrecv: p.bytes_recv,
                        pingtime: p.ping.map(|d| d.as_secs_f64()),
                        conntime: p.conntime,
                        subver: p.agent.clone(),
                    })
                    .collect();
                out.sort_by_key(|p| p.id);
                let _ = reply.send(out);
            }
            Command::NetworkInfo { reply } => {
                let me = *self.swarm.local_peer_id();
                let inbound = self.peers.values().filter(|p| p.inbound).count();
                let info = NetworkInfo {
                    peerid: me.to_string(),
                    listenaddrs: self.swarm.listeners().map(|a| format!("{a}/p2p/{me}")).collect(),
                    topics: Topic::ALL.iter().map(|t| t.name(self.network)).collect(),
                    protocols: vec![
                        wire::sync_protocol(self.network).to_string(),
                        wire::kad_protocol(self.network).to_string(),
                        "/meshsub/1.0.0".into(),
                        "/meshsub/1.1.0".into(),
                        "/meshsub/1.2.0".into(),
                        "/ipfs/id/1.0.0".into(),
                        "/ipfs/id/push/1.0.0".into(),
                        "/ipfs/ping/1.0.0".into(),
                    ],
                    connections: self.peers.len(),
                    connections_in: inbound,
                    connections_out: self.peers.len() - inbound,
                    networkactive: self.active,
                    banned: self.bans.entries().count(),
                };
                let _ = reply.send(info);
            }
            Command::ListBanned { reply } => {
                let list = self
                    .bans
                    .entries()
                    .map(|(p, b)| BanInfo {
                        peerid: p.clone(),
                        banned_until: b.until,
                        ban_reason: b.reason.clone(),
                    })
                    .collect();
                let _ = reply.send(list);
            }
            Command::SetBan { peer, add, seconds, reply } => {
                let key = peer.to_string();
                let result = if add {
                    self.bans.ban(&key, now(), seconds, "banned by setban".into());
                    self.swarm.behaviour_mut().blocked.block_peer(peer);
                    let _ = self.swarm.disconnect_peer_id(peer);
                    Ok(())
                } else if self.bans.unban(&key) {
                    self.swarm.behaviour_mut().blocked.unblock_peer(peer);
                    Ok(())
                } else {
                    Err(P2pError::NotBanned(peer))
                };
                let _ = reply.send(result);
            }
            Command::ClearBanned { reply } => {
                let all: Vec<String> = self.bans.entries().map(|(p, _)| p.clone()).collect();
                for p in &all {
                    self.bans.unban(p);
                    if let Ok(id) = p.parse::<PeerId>() {
                        self.swarm.behaviour_mut().blocked.unblock_peer(id);
                    }
                }
                let _ = reply.send(all.len());
            }
        }
    }
}

/// Adds `block` to the blocks the service answers `GetBlockTxn` for, dropping the oldest
/// beyond [`super::SERVED_BLOCKS`] (a block handed over twice is kept once).
fn keep_served(served: &mut VecDeque<Arc<CheckedBlock>>, block: Arc<CheckedBlock>) {
    if served.iter().any(|b| b.hash() == block.hash()) {
        return;
    }
    if served.len() >= super::SERVED_BLOCKS {
        served.pop_front();
    }
    served.push_back(block);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::{check_block, Network};
    use crate::primitives::Amount;
    use crate::testkit::{assemble, coinbase, key, p2pkh_lock};

    /// ARCHITECTURE's bound "blocks served by the network service".
    #[test]
    fn the_service_keeps_the_newest_served_blocks_once_each() {
        let p = Network::Regtest.params();
        let block = |i: u8| {
            let cb = coinbase(1, Amount::ZERO, p2pkh_lock(&key(1)), &[i]);
            Arc::new(
                check_block(assemble(p, p.genesis_hash, p.genesis_time + 1, p.genesis_bits, vec![cb]), p)
                    .unwrap(),
            )
        };
        let mut served = VecDeque::new();
        let blocks: Vec<_> = (0..10).map(block).collect();
        for b in &blocks {
            keep_served(&mut served, b.clone());
            keep_served(&mut served, b.clone());
        }
        let kept: Vec<_> = served.iter().map(|b| b.hash()).collect();
        let newest: Vec<_> = blocks[10 - super::super::SERVED_BLOCKS..].iter().map(|b| b.hash()).collect();
        assert_eq!(kept, newest);
    }
}
