//! The wire: gossip topics, the sync request-response protocol and their byte encodings
//! (docs/PROTOCOL.md "Wire"). Everything a peer sends is decoded here, once, with every
//! length checked against a limit before anything is allocated.

pub use super::compact::{CompactBlock, MAX_BLOCKTXN_INDEXES};
use crate::consensus::Network;
use crate::primitives::encode::{DecodeError, Reader};
use crate::primitives::header::HEADER_SIZE;
use crate::primitives::{Block, BlockHeader, Hash256, Transaction, U256};
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use std::io;

/// Version carried in [`Status`]; peers with another version are disconnected.
pub const PROTOCOL_VERSION: u32 = 1;
/// Most headers in one `Headers` response (and the most a `GetHeaders` may ask for).
pub const MAX_HEADERS: usize = 2_000;
/// Most hashes in one `GetBlocks` request.
pub const MAX_BLOCKS_PER_REQUEST: usize = 16;
/// Most hashes in a block locator.
pub const MAX_LOCATOR: usize = 101;
/// Largest request frame (a full locator is 3.3 kB).
pub const MAX_REQUEST_BYTES: usize = 16 * 1024;
/// Largest response frame. A `Blocks` response stops adding blocks before it would pass
/// this (it always carries at least one block, and one block is at most 4 MB).
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// Gossip payloads larger than this are dropped by gossipsub before validation: the
/// largest valid block (4,000,000 bytes) plus room to spare.
pub const MAX_GOSSIP_BYTES: usize = 4_000_000 + 64 * 1024;

/// A gossip topic. There is no "unknown" variant: a message on any other topic never
/// reaches the node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Newly mined blocks (canonical block encoding).
    Blocks,
    /// Unconfirmed transactions (canonical transaction encoding).
    Transactions,
    /// Newly mined blocks as compact blocks ([`CompactBlock`]).
    CompactBlocks,
}

impl Topic {
    /// Every topic (a node subscribes to all three).
    pub const ALL: [Topic; 3] = [Topic::Blocks, Topic::Transactions, Topic::CompactBlocks];

    /// The topic string for a network, e.g. `quarry/regtest/blocks/1`.
    pub fn name(self, network: Network) -> String {
        let kind = match self {
            Topic::Blocks => "blocks",
            Topic::Transactions => "txs",
            Topic::CompactBlocks => "cmpctblocks",
        };
        format!("quarry/{}/{kind}/1", network.name())
    }

    /// What a message on this topic is called in penalties and logs.
    pub fn gossip_name(self) -> &'static str {
        match self {
            Topic::Blocks => "gossiped block",
            Topic::Transactions => "gossiped transaction",
            Topic::CompactBlocks => "gossiped compact block",
        }
    }

    /// The topic with this name on this network, if any.
    pub fn parse(name: &str, network: Network) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.name(network) == name)
    }
}

/// The request-response protocol id for sync on a network.
pub fn sync_protocol(network: Network) -> StreamProtocol {
    match network {
        Network::Regtest => StreamProtocol::new("/quarry/regtest/sync/1"),
        Network::Dev => StreamProtocol::new("/quarry/dev/sync/1"),
    }
}

/// The Kademlia protocol id for a network (keeps networks' DHTs apart).
pub fn kad_protocol(network: Network) -> StreamProtocol {
    match network {
        Network::Regtest => StreamProtocol::new("/quarry/regtest/kad/1"),
        Network::Dev => StreamProtocol::new("/quarry/dev/kad/1"),
    }
}

/// The identify protocol version string for a network.
pub fn identify_protocol(network: Network) -> String {
    format!("/quarry/{}/id/1", network.name())
}

/// A gossip message, decoded.
#[derive(Clone, Debug)]
pub enum GossipMessage {
    /// A block (not yet validated).
    Block(Block),
    /// A transaction (not yet validated).
    Tx(Transaction),
    /// A compact block (not yet rebuilt).
    Compact(CompactBlock),
}

impl GossipMessage {
    /// Decodes a payload received on `topic`.
    pub fn decode(topic: Topic, data: &[u8], max_block: usize, max_tx: usize) -> Result<Self, DecodeError> {
        Ok(match topic {
            Topic::Blocks => GossipMessage::Block(Block::decode(data, max_block)?),
            Topic::Transactions => GossipMessage::Tx(Transaction::decode(data, max_tx)?),
            Topic::CompactBlocks => GossipMessage::Compact(CompactBlock::decode(data, max_block)?),
        })
    }
}

/// The content-addressed gossip message id: SHA-256 of the payload (not SHA-256d: this is
/// an id for deduplication, never a consensus hash). The same block published by two peers
/// is one message.
pub fn message_id(data: &[u8]) -> Vec<u8> {
    crate::primitives::hash::sha256(data).to_vec()
}

/// What a peer tells about itself on connect (and in answer to a `Status` request).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// [`PROTOCOL_VERSION`].
    pub version: u32,
    /// The network's genesis block id: peers on another chain are disconnected.
    pub genesis: Hash256,
    /// Active tip.
    pub tip: Hash256,
    /// Its height.
    pub height: u32,
    /// Cumulative work of the active chain.
    pub chain_work: U256,
}

/// Encoded size of a [`Status`] (without the tag byte).
pub const STATUS_SIZE: usize = 4 + 32 + 32 + 4 + 32;

impl Status {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(self.genesis.as_bytes());
        out.extend_from_slice(self.tip.as_bytes());
        out.extend_from_slice(&self.height.to_le_bytes());
        out.extend_from_slice(&self.chain_work.to_le_bytes());
    }

    fn decode_from(r: &mut Reader<'_>) -> Result<Status, DecodeError> {
        Ok(Status {
            version: r.u32("status version")?,
            genesis: Hash256(r.array("status genesis")?),
            tip: Hash256(r.array("status tip")?),
            height: r.u32("status height")?,
            chain_work: U256::from_le_bytes(&r.array("status chain work")?),
        })
    }
}

/// A sync request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Tag 0: here is my status; send yours.
    Status(Status),
    /// Tag 1: headers of your active chain after the first locator hash you have.
    GetHeaders {
        /// Block locator, newest first (at most [`MAX_LOCATOR`]).
        locator: Vec<Hash256>,
        /// Most headers wanted (at most [`MAX_HEADERS`]).
        max: u32,
    },
    /// Tag 2: these blocks, by id (at most [`MAX_BLOCKS_PER_REQUEST`]).
    GetBlocks(Vec<Hash256>),
    /// Tag 3: the transactions at these indexes (ascending, at most
    /// [`MAX_BLOCKTXN_INDEXES`]) of a block you announced compactly.
    GetBlockTxn {
        /// The block id.
        block: Hash256,
        /// Transaction indexes in the block, strictly ascending.
        indexes: Vec<u32>,
    },
}

/// A sync response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// Tag 0: my status.
    Status(Status),
    /// Tag 1: consecutive headers, each the parent of the next.
    Headers(Vec<BlockHeader>),
    /// Tag 2: the requested blocks that the responder has, in request order (blocks it does
    /// not have are left out, and it may stop early to stay under [`MAX_RESPONSE_BYTES`]).
    Blocks(Vec<Block>),
    /// Tag 3: the responder is too busy to answer now; ask again later or elsewhere.
    Busy,
    /// Tag 4: the transactions asked for by a `GetBlockTxn`, in its order (none if the
    /// responder does not have the block).
    BlockTxn {
        /// The block id.
        block: Hash256,
        /// The transactions.
        txs: Vec<Transaction>,
    },
}

fn invalid(what: &'static str, detail: String) -> DecodeError {
    DecodeError::Invalid { what, detail }
}

impl Request {
    /// Canonical encoding (a tag byte, then the fields).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Request::Status(s) => {
                out.push(0);
                s.encode_to(&mut out);
            }
            Request::GetHeaders { locator, max } => {
                out.push(1);
                out.extend_from_slice(&(locator.len() as u32).to_le_bytes());
                for h in locator {
                    out.extend_from_slice(h.as_bytes());
                }
                out.extend_from_slice(&max.to_le_bytes());
            }
            Request::GetBlocks(hashes) => {
                out.push(2);
                out.extend_from_slice(&(hashes.len() as u32).to_le_bytes());
                for h in hashes {
                    out.extend_from_slice(h.as_bytes());
                }
            }
            Request::GetBlockTxn { block, indexes } => {
                out.push(3);
                out.extend_from_slice(block.as_bytes());
                out.extend_from_slice(&(indexes.len() as u32).to_le_bytes());
                for i in indexes {
                    out.extend_from_slice(&i.to_le_bytes());
                }
            }
        }
        out
    }

    /// Decodes a request, enforcing every limit.
    pub fn decode(bytes: &[u8]) -> Result<Request, DecodeError> {
        if bytes.len() > MAX_REQUEST_BYTES {
            return Err(DecodeError::TooLarge { what: "request", got: bytes.len(), max: MAX_REQUEST_BYTES });
        }
        let mut r = Reader::new(bytes);
        let tag = r.take(1, "request tag")?[0];
        let req = match tag {
            0 => Request::Status(Status::decode_from(&mut r)?),
            1 => {
                let n = r.count("locator", 32)?;
                if n > MAX_LOCATOR {
                    return Err(invalid("locator", format!("{n} hashes, at most {MAX_LOCATOR}")));
                }
                let locator =
                    (0..n).map(|_| r.array("locator hash").map(Hash256)).collect::<Result<_, _>>()?;
                let max = r.u32("max headers")?;
                if max as usize > MAX_HEADERS {
                    return Err(invalid("max headers", format!("{max}, at most {MAX_HEADERS}")));
                }
                Request::GetHeaders { locator, max }
            }
            2 => {
                let n = r.count("block hashes", 32)?;
                if n > MAX_BLOCKS_PER_REQUEST {
                    return Err(invalid("block hashes", format!("{n}, at most {MAX_BLOCKS_PER_REQUEST}")));
                }
                Request::GetBlocks(
                    (0..n).map(|_| r.array("block hash").map(Hash256)).collect::<Result<_, _>>()?,
                )
            }
            3 => {
                let block = Hash256(r.array("blocktxn block")?);
                let n = r.count("blocktxn indexes", 4)?;
                if n == 0 || n > MAX_BLOCKTXN_INDEXES {
                    return Err(invalid("blocktxn indexes", format!("{n}, 1 to {MAX_BLOCKTXN_INDEXES}")));
                }
                let indexes: Vec<u32> = (0..n).map(|_| r.u32("blocktxn index")).collect::<Result<_, _>>()?;
                if let Some(w) = indexes.windows(2).find(|w| w[1] <= w[0]) {
                    return Err(invalid("blocktxn indexes", format!("must ascend: {} after {}", w[1], w[0])));
                }
                Request::GetBlockTxn { block, indexes }
            }
            t => {
                return Err(invalid(
                    "request tag",
                    format!("{t} (known: 0 status, 1 getheaders, 2 getblocks, 3 getblocktxn)"),
                ))
            }
        };
        r.finish("request")?;
        Ok(req)
    }
}

impl Response {
    /// Canonical encoding (a tag byte, then the fields).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Response::Status(s) => {
                out.push(0);
                s.encode_to(&mut out);
            }
            Response::Headers(headers) => {
                out.push(1);
                out.extend_from_slice(&(headers.len() as u32).to_le_bytes());
                for h in headers {
                    out.extend_from_slice(&h.to_bytes());
                }
            }
            Response::Blocks(blocks) => {
                out.push(2);
                out.extend_from_slice(&(blocks.len() as u32).to_le_bytes());
                for b in blocks {
                    crate::primitives::encode::put_var_bytes(&mut out, &b.encode());
                }
            }
            Response::Busy => out.push(3),
            Response::BlockTxn { block, txs } => {
                out.push(4);
                out.extend_from_slice(block.as_bytes());
                out.extend_from_slice(&(txs.len() as u32).to_le_bytes());
                for tx in txs {
                    tx.encode_to(&mut out);
                }
            }
        }
        out
    }

    /// Decodes a response, enforcing every limit (`max_block`: the network's block size limit).
    pub fn decode(bytes: &[u8], max_block: usize) -> Result<Response, DecodeError> {
        if bytes.len() > MAX_RESPONSE_BYTES {
            return Err(DecodeError::TooLarge {
                what: "response",
                got: bytes.len(),
                max: MAX_RESPONSE_BYTES,
            });
        }
        let mut r = Reader::new(bytes);
        let tag = r.take(1, "response tag")?[0];
        let resp = match tag {
            0 => Response::Status(Status::decode_from(&mut r)?),
            1 => {
                let n = r.count("headers", HEADER_SIZE)?;
                if n > MAX_HEADERS {
                    return Err(invalid("headers", format!("{n}, at most {MAX_HEADERS}")));
                }
                let headers = (0..n)
                    .map(|_| BlockHeader::from_bytes(r.take(HEADER_SIZE, "header")?))
                    .collect::<Result<_, _>>()?;
                Response::Headers(headers)
            }
            2 => {
                let n = r.count("blocks", 4)?;
                if n > MAX_BLOCKS_PER_REQUEST {
                    return Err(invalid("blocks", format!("{n}, at most {MAX_BLOCKS_PER_REQUEST}")));
                }
                let blocks = (0..n)
                    .map(|_| Block::decode(r.var_bytes("block")?, max_block))
                    .collect::<Result<_, _>>()?;
                Response::Blocks(blocks)
            }
            3 => Response::Busy,
            4 => {
                let block = Hash256(r.array("blocktxn block")?);
                let n = r.count("blocktxn transactions", crate::primitives::tx::MIN_ENCODED_TX_SIZE)?;
                if n > MAX_BLOCKTXN_INDEXES {
                    return Err(invalid(
                        "blocktxn transactions",
                        format!("{n}, at most {MAX_BLOCKTXN_INDEXES}"),
                    ));
                }
                let txs = (0..n).map(|_| Transaction::decode_from(&mut r)).collect::<Result<_, _>>()?;
                Response::BlockTxn { block, txs }
            }
            t => {
                return Err(invalid(
                    "response tag",
                    format!("{t} (known: 0 status, 1 headers, 2 blocks, 3 busy, 4 blocktxn)"),
                ))
            }
        };
        r.finish("response")?;
        Ok(resp)
    }
}

/// A response's name, for messages.
pub fn response_name(r: &Response) -> &'static str {
    match r {
        Response::Status(_) => "status",
        Response::Headers(_) => "headers",
        Response::Blocks(_) => "blocks",
        Response::Busy => "busy",
        Response::BlockTxn { .. } => "blocktxn",
    }
}

/// Reads one frame: a u32 LE length, then that many bytes (at most `max`; reading stops at
/// the claimed length, so a lying length cannot make us allocate more than was sent).
pub async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T, max: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_le_bytes(len) as usize;
    if len > max {
        return Err(bad_data(DecodeError::TooLarge { what: "sync frame", got: len, max }));
    }
    let mut buf = Vec::with_capacity(len.min(64 * 1024));
    (&mut *io).take(len as u64).read_to_end(&mut buf).await?;
    if buf.len() != len {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("frame ended after {} of {len} bytes", buf.len()),
        ));
    }
    Ok(buf)
}

/// Writes one frame (u32 LE length, bytes) and closes the write side.
pub async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, bytes: &[u8]) -> io::Result<()> {
    io.write_all(&(bytes.len() as u32).to_le_bytes()).await?;
    io.write_all(bytes).await?;
    io.close().await
}

/// A sync request as the codec hands it to the service: the request, or why the peer's
/// bytes are not one (an oversized frame, a count over a limit, an unknown tag, ...).
/// libp2p-request-response drops a stream whose `read_request` fails without telling the
/// behaviour's user (0.29 only logs it at debug level: the request has no id yet), so an
/// error there would cost the sender nothing; as a value, the service penalises it. Only
/// [`SyncRequest::Request`] is ever written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncRequest {
    /// A well-formed request.
    Request(Request),
    /// Bytes that do not decode as a request within the limits.
    Malformed(DecodeError),
}

impl From<Request> for SyncRequest {
    fn from(r: Request) -> SyncRequest {
        SyncRequest::Request(r)
    }
}

/// The request-response codec of the sync protocol.
#[derive(Clone, Debug)]
pub struct SyncCodec {
    /// The network's block size limit.
    pub max_block: usize,
}

fn bad_data(e: DecodeError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// The decoding error behind a transport error of the sync protocol, if it is one: the
/// codec reports every undecodable or oversized message as `InvalidData` wrapping a
/// [`DecodeError`] (one that arrives unwrapped is described by its text).
pub fn decode_failure(e: &io::Error) -> Option<DecodeError> {
    if e.kind() != io::ErrorKind::InvalidData {
        return None;
    }
    Some(match e.get_ref().and_then(|inner| inner.downcast_ref::<DecodeError>()) {
        Some(d) => d.clone(),
        None => DecodeError::Invalid { what: "sync message", detail: e.to_string() },
    })
}

#[async_trait::async_trait]
impl libp2p::request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = SyncRequest;
    type Response = Response;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        let frame = match read_frame(io, MAX_REQUEST_BYTES).await {
            Ok(frame) => frame,
            // An oversized frame is the peer's fault; a cut-short one may be the connection's.
            Err(e) => return decode_failure(&e).map(SyncRequest::Malformed).ok_or(e),
        };
        Ok(Request::decode(&frame).map_or_else(SyncRequest::Malformed, SyncRequest::Request))
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        Response::decode(&read_frame(io, MAX_RESPONSE_BYTES).await?, self.max_block).map_err(bad_data)
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, req: SyncRequest) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        match req {
            SyncRequest::Request(req) => write_frame(io, &req.encode()).await,
            SyncRequest::Malformed(e) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a malformed request is only ever received, never sent: {e}"),
            )),
        }
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, res: Response) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &res.encode()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn topics_round_trip_and_differ_per_network() {
        for n in Network::ALL {
            for t in Topic::ALL {
                assert_eq!(Topic::parse(&t.name(n), n), Some(t));
            }
        }
        assert_eq!(Topic::Blocks.name(Network::Regtest), "quarry/regtest/blocks/1");
        assert_eq!(Topic::parse(&Topic::Blocks.name(Network::Dev), Network::Regtest), None);
    }

    #[test]
    fn oversized_requests_and_responses_are_refused() {
        let locator = vec![Hash256::ZERO; MAX_LOCATOR + 1];
        let e = Request::decode(&Request::GetHeaders { locator, max: 10 }.encode()).unwrap_err();
        assert!(e.to_string().contains("at most 101"), "{e}");
        let e = Request::decode(&Request::GetHeaders { locator: vec![], max: 2001 }.encode()).unwrap_err();
        assert!(e.to_string().contains("2001"), "{e}");
        let e = Request::decode(&Request::GetBlocks(vec![Hash256::ZERO; 17]).encode()).unwrap_err();
        assert!(e.to_string().contains("17"), "{e}");
        // A count claiming more headers than bytes follow is refused before allocating.
        let mut b = vec![1u8];
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(Response::decode(&b, 4_000_000), Err(DecodeError::CountTooLarge { .. })));
        assert!(Request::decode(&[9]).unwrap_err().to_string().contains("request tag"));
    }

    #[test]
    fn frames_refuse_lying_lengths() {
        let mut bytes = (100u32).to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 10]);
        let mut io = futures::io::Cursor::new(bytes);
        let e = futures::executor::block_on(read_frame(&mut io, 1000)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        let mut io = futures::io::Cursor::new((5000u32).to_le_bytes().to_vec());
        let e = futures::executor::block_on(read_frame(&mut io, 1000)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    /// An oversized frame or a request over a count limit reaches the service as a value
    /// (libp2p would drop a failed `read_request` unreported); a cut-short frame stays an
    /// error (it may be the connection's fault), and a good request decodes.
    #[test]
    fn the_codec_hands_malformed_requests_up_as_values() {
        use libp2p::request_response::Codec;
        let read = |bytes: Vec<u8>| {
            let mut io = futures::io::Cursor::new(bytes);
            let mut codec = SyncCodec { max_block: 4_000_000 };
            futures::executor::block_on(codec.read_request(&sync_protocol(Network::Regtest), &mut io))
        };
        let frame = |body: Vec<u8>| {
            let mut v = (body.len() as u32).to_le_bytes().to_vec();
            v.extend(body);
            v
        };
        let oversized = Request::GetHeaders { locator: vec![Hash256::ZERO; 600], max: 10 }.encode();
        assert!(oversized.len() > MAX_REQUEST_BYTES);
        match read(frame(oversized)).unwrap() {
            SyncRequest::Malformed(DecodeError::TooLarge { what: "sync frame", got, max }) => {
                assert_eq!((got, max), (19_209, MAX_REQUEST_BYTES))
            }
            other => panic!("{other:?}"),
        }
        let over_count = Request::GetBlocks(vec![Hash256::ZERO; MAX_BLOCKS_PER_REQUEST + 1]).encode();
        match read(frame(over_count)).unwrap() {
            SyncRequest::Malformed(e) => assert!(e.to_string().contains("17, at most 16"), "{e}"),
            other => panic!("{other:?}"),
        }
        let mut short = frame(vec![1; 40]);
        short.truncate(20);
        assert_eq!(read(short).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        let good = Request::GetBlocks(vec![Hash256::ZERO]);
        assert_eq!(read(frame(good.encode())).unwrap(), SyncRequest::Request(good));
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = Request::decode(&bytes);
            let _ = Response::decode(&bytes, 4_000_000);
            let _ = GossipMessage::decode(Topic::Blocks, &bytes, 4_000_000, 1_000_000);
            let _ = GossipMessage::decode(Topic::Transactions, &bytes, 4_000_000, 1_000_000);
        }

        #[test]
        fn requests_round_trip(locator in proptest::collection::vec(any::<[u8; 32]>(), 0..MAX_LOCATOR), max in 0u32..2000, h in any::<[u8;32]>(), height in any::<u32>()) {
            let locator: Vec<Hash256> = locator.into_iter().map(Hash256).collect();
            for req in [
                Request::GetHeaders { locator: locator.clone(), max },
                Request::GetBlocks(locator.iter().take(16).copied().collect()),
                Request::GetBlockTxn { block: Hash256(h), indexes: (0..=max).step_by(7).collect() },
                Request::Status(Status { version: 1, genesis: Hash256(h), tip: Hash256(h), height, chain_work: U256::from_le_bytes(&h) }),
            ] {
                prop_assert_eq!(Request::decode(&req.encode()).unwrap(), req);
            }
        }
    }
}
