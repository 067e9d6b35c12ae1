//! A broker's own Kafka-protocol client for broker-to-broker and
//! broker-to-controller calls: one connection, one request at a time,
//! kafka-protocol's structs on the wire.
//!
//! Lives on: any shard (each call site owns its link).

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
