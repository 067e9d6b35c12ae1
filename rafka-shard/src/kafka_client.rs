//! A broker's own Kafka-protocol client for broker-to-broker and
//! broker-to-controller calls: one connection, one request at a time,
//! kafka-protocol's structs on the wire; and [`LinkPool`], the idle links
//! a shard keeps to other brokers for one-off calls.
//!
//! Lives on: any shard (each call site owns its link; a pool is one
//! shard's).

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, Request, StrBytes};

use crate::runtime::within;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// One connection to a broker or controller.
pub struct KafkaLink {
    stream: TcpStream,
    correlation_id: i32,
    client_id: &'static str,
    /// Largest response accepted.
    response_bytes_max: usize,
}

impl KafkaLink {
    /// Connects within a second; `None` (logged at debug) otherwise.
    pub async fn open(
        address: &str,
        client_id: &'static str,
        response_bytes_max: usize,
    ) -> Option<KafkaLink> {
        match within(CONNECT_TIMEOUT, TcpStream::connect(address)).await {
            Some(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                Some(KafkaLink {
                    stream,
                    correlation_id: 0,
                    client_id,
                    response_bytes_max,
                })
            }
            Some(Err(error)) => {
                tracing::debug!(address, %error, "connect");
                None
            }
            None => None,
        }
    }

    /// Sends `request` at `version` and reads its response, within
    /// `timeout`. An error leaves the link unusable: drop it.
    pub async fn call<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, String> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let api = ApiKey::try_from(R::KEY).map_err(|_| "an unknown api")?;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(self.client_id)));
        let mut out = BytesMut::new();
        out.extend_from_slice(&[0; 4]);
        header
            .encode(&mut out, api.request_header_version(version))
            .map_err(|e| e.to_string())?;
        request
            .encode(&mut out, version)
            .map_err(|e| e.to_string())?;
        let len = i32::try_from(out.len() - 4).map_err(|_| "a request over 2 GiB")?;
        out[..4].copy_from_slice(&len.to_be_bytes());
        let max = self.response_bytes_max;
        let exchange = async {
            self.stream
                .write_all(&out)
                .await
                .map_err(|e| e.to_string())?;
            let mut size = [0u8; 4];
            self.stream
                .read_exact(&mut size)
                .await
                .map_err(|e| e.to_string())?;
            let size = usize::try_from(i32::from_be_bytes(size))
                .ok()
                .filter(|s| *s <= max)
                .ok_or("a response of a bad size")?;
            let mut body = vec![0u8; size];
            self.stream
                .read_exact(&mut body)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(Bytes::from(body))
        };
        let mut body = within(timeout, exchange)
            .await
            .ok_or("no answer in time")??;
        let header = ResponseHeader::decode(&mut body, api.response_header_version(version))
            .map_err(|e| e.to_string())?;
        if header.correlation_id != self.correlation_id {
            return Err("a response to another request".into());
        }
        R::Response::decode(&mut body, version).map_err(|e| e.to_string())
    }
}

/// Idle links a shard keeps to other brokers for one-off calls
/// (transaction markers to partition leaders, transaction verification
/// with coordinators): a call takes an idle link to the broker or opens
/// one, and puts it back once answered, so the produce path does not pay
/// a TCP connect per call. A failed call drops its link; one that failed
/// on a link kept idle (the peer may have restarted and closed it) is
/// sent once more on a new connection.
#[derive(Default)]
pub struct LinkPool {
    idle: RefCell<HashMap<(i32, String), Vec<KafkaLink>>>,
}

/// Idle links kept per broker: about the calls a shard has in flight to
/// one broker at once.
const IDLE_PER_BROKER_MAX: usize = 4;
/// Largest answer a pooled call accepts.
const POOLED_RESPONSE_BYTES_MAX: usize = 1 << 20;

impl LinkPool {
    /// `request` at `version` to broker `broker` at `address`, within
    /// `timeout` per attempt.
    pub async fn call<R: Request>(
        &self,
        broker: i32,
        address: &str,
        client_id: &'static str,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, String> {
        let key = (broker, address.to_string());
        let idle = self.idle.borrow_mut().get_mut(&key).and_then(Vec::pop);
        let reused = idle.is_some();
        let mut link = match idle {
            Some(link) => link,
            None => self.open(address, client_id).await?,
        };
        let answer = match link.call(request, version, timeout).await {
            Ok(answer) => answer,
            Err(error) if !reused => return Err(error),
            Err(_) => {
                link = self.open(address, client_id).await?;
                link.call(request, version, timeout).await?
            }
        };
        let mut idle = self.idle.borrow_mut();
        let links = idle.entry(key).or_default();
        if links.len() < IDLE_PER_BROKER_MAX {
            links.push(link);
        }
        Ok(answer)
    }

    async fn open(&self, address: &str, client_id: &'static str) -> Result<KafkaLink, String> {
        KafkaLink::open(address, client_id, POOLED_RESPONSE_BYTES_MAX)
            .await
            .ok_or_else(|| format!("no connection to {address}"))
    }
}
