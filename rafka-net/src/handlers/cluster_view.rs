//! The cluster as Metadata and DescribeCluster describe it: the registered
//! brokers (with the endpoint of the listener the client came in on), the
//! active controller, and each partition's leader, replicas and ISR.
//!
//! A single node (no quorum) is the whole cluster: itself as the only
//! broker and the controller, every partition led by it. In a cluster a
//! broker that has not committed its own registration yet still lists
//! itself, so a client that reached it can always find it; a
//! controller-only node (`process.roles=controller`) never lists itself.

use rafka_core::metadata::{BrokerImage, MetadataImage, TopicImage};
use rafka_proto::error::ErrorCode;

use super::RequestContext;

/// One broker as clients are told about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerView {
    pub node_id: i32,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
}

/// A partition's leadership as clients are told about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionView {
    /// -1 while the partition has no live leader.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Replicas on fenced brokers.
    pub offline: Vec<i32>,
    /// KIP-966's eligible leader replicas.
    pub elr: Vec<i32>,
}

impl PartitionView {
    /// LEADER_NOT_AVAILABLE while no live broker leads it (its leader is
    /// fenced and no in-sync replica can take over).
    pub fn error_code(&self) -> ErrorCode {
        if self.leader < 0 {
            ErrorCode::LEADER_NOT_AVAILABLE
        } else {
            ErrorCode::NONE
        }
    }
}

/// Every broker, in node id order.
pub fn brokers(ctx: &RequestContext, image: &MetadataImage) -> Vec<BrokerView> {
    let me = ctx.node().node_id;
    let listener = &ctx.session().listener().name;
    // Fenced brokers are left out, as Kafka's metadata cache does.
    let mut out: Vec<BrokerView> = image
        .brokers()
        .filter(|b| !b.fenced)
        .filter_map(|b| registered(b, listener))
        .collect();
    if ctx.config().process_roles.broker && !out.iter().any(|b| b.node_id == me) {
        let (host, port) = ctx.advertised();
        out.push(BrokerView {
            node_id: me,
            host: host.to_string(),
            port,
            rack: ctx.config().rack.clone(),
        });
        out.sort_by_key(|b| b.node_id);
    }
    out
}

/// A registered broker's endpoint for `listener` (Kafka answers on the
/// listener the request came in on; a broker without it is left out).
fn registered(broker: &BrokerImage, listener: &str) -> Option<BrokerView> {
    let endpoint = broker.endpoints.iter().find(|e| e.listener == listener)?;
    Some(BrokerView {
        node_id: broker.node_id,
        host: endpoint.host.clone(),
        port: endpoint.port,
        rack: broker.rack.clone(),
    })
}

/// The active controller: the quorum's leader in a cluster (-1 while none
/// is known, as Kafka answers; clients ask again), this node alone.
pub fn controller_id(ctx: &RequestContext) -> i32 {
    if !ctx.config().quorum_configured() {
        return ctx.node().node_id;
    }
    ctx.shard().image_view().controller().unwrap_or(-1)
}

/// Partition `index` of `topic`: its assigned leadership, or this node.
pub fn partition(
    ctx: &RequestContext,
    image: &MetadataImage,
    topic: &TopicImage,
    index: i32,
) -> PartitionView {
    match topic.leadership(index) {
        Some(l) => {
            let fenced = |id: &i32| image.broker(*id).is_none_or(|b| b.fenced);
            let offline: Vec<i32> = l.replicas.iter().copied().filter(fenced).collect();
            // The ISR and eligible replicas as the controller keeps them,
            // as Kafka shows them.
            PartitionView {
                leader: if fenced(&l.leader) { -1 } else { l.leader },
                leader_epoch: l.leader_epoch,
                replicas: l.replicas.clone(),
                isr: l.isr.clone(),
                offline,
                elr: l.elr.clone(),
            }
        }
        None => {
            let me = ctx.node().node_id;
            PartitionView {
                leader: me,
                leader_epoch: 0,
                replicas: vec![me],
                isr: vec![me],
                offline: Vec::new(),
                elr: Vec::new(),
            }
        }
    }
}

/// The leader epoch of partition `index` of `topic` (0 without a
/// leadership record: a single node never changes leader).
pub fn leader_epoch(topic: &TopicImage, index: i32) -> i32 {
    topic.leadership(index).map_or(0, |l| l.leader_epoch)
}

/// The shard of this node that serves partition `index` of `topic` as
/// its leader: UNKNOWN_TOPIC_OR_PARTITION for no such partition,
/// NOT_LEADER_OR_FOLLOWER when another broker leads it (the client
/// refreshes its metadata and goes there), or when this broker is not let
/// in yet (see [`rafka_shard::image::ImageView::serving`]).
pub fn leader_shard(
    ctx: &RequestContext,
    topic: &TopicImage,
    index: i32,
) -> Result<usize, ErrorCode> {
    let shard = topic
        .shard_of(index)
        .and_then(|shard| usize::try_from(shard).ok())
        .ok_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)?;
    match topic.leadership(index) {
        Some(l) if l.leader != ctx.node().node_id => Err(ErrorCode::NOT_LEADER_OR_FOLLOWER),
        // Led here by the image, but by an earlier process on this disk
        // or while fenced: not before the controller lets this one in.
        Some(_)
            if !ctx
                .shard()
                .image_view()
                .serving(&ctx.image(), ctx.node().node_id) =>
        {
            Err(ErrorCode::NOT_LEADER_OR_FOLLOWER)
        }
        _ => Ok(shard),
    }
}

/// The shard of this node that holds partition `index` of `topic` as a
/// replica (KIP-392: a follower serves consumers that may read from it),
/// once this process is let in; `None` when this broker holds no replica.
pub fn replica_shard(ctx: &RequestContext, topic: &TopicImage, index: i32) -> Option<usize> {
    let me = ctx.node().node_id;
    let replica = topic
        .leadership(index)
        .is_some_and(|l| l.replicas.contains(&me));
    let serving = ctx.shard().image_view().serving(&ctx.image(), me);
    if !replica || !serving {
        return None;
    }
    topic
        .shard_of(index)
        .and_then(|shard| usize::try_from(shard).ok())
}

/// KIP-951: the live leader and its epoch of a partition this broker
/// refused with NOT_LEADER_OR_FOLLOWER, for the refusal to carry.
pub fn leader_hint(
    ctx: &RequestContext,
    image: &MetadataImage,
    topic: &TopicImage,
    partition: i32,
) -> Option<(i32, i32)> {
    let view = self::partition(ctx, image, topic, partition);
    (view.leader >= 0).then_some((view.leader, view.leader_epoch))
}

/// The brokers of `leaders` as clients of this listener reach them (a
/// KIP-951 response's node endpoints).
pub fn endpoints_of(
    ctx: &RequestContext,
    image: &MetadataImage,
    leaders: &std::collections::BTreeSet<i32>,
) -> Vec<BrokerView> {
    brokers(ctx, image)
        .into_iter()
        .filter(|b| leaders.contains(&b.node_id))
        .collect()
}
