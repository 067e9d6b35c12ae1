//! Calls from any shard's handler into the controller on shard 0
//! (CreateTopics, DeleteTopics, Metadata's auto-creation, InitProducerId).
//!
//! The call runs as a detached task of the calling shard rather than inside
//! the handler's future. On shard 0 `invoke_on` runs the work in place, so
//! a handler future dropped mid-call (its connection closed, its timeout
//! fired) would otherwise cancel a controller operation between its
//! metadata commit and its broadcast, leaving shards with a stale image.
//! Detached, the operation always finishes; only the answer is dropped.
//!
//! Lives on: every shard; the work itself runs on shard 0.

use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::ResponseError;
use rafka_shard::controller::TopicFailure;
use rafka_shard::shard::Shard;

/// The shard that holds the controller.
pub const CONTROLLER_SHARD: usize = 0;

/// Why a controller call gave no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ControllerCallError {
    /// Shard 0 is stopping (or, a bug, has no controller).
    #[error("the controller is not available")]
    Unavailable,
    /// The deadline passed; the operation still runs to its end.
    #[error("the controller did not answer within {timeout_ms} ms")]
    TimedOut { timeout_ms: u64 },
}

/// Runs `work` on shard 0 and waits for its answer, at most `timeout` if
/// given. `work` returns `None` when shard 0 has no controller.
pub async fn call_controller<F, Fut, R>(
    shard: &Rc<Shard>,
    timeout: Option<Duration>,
    work: F,
) -> Result<R, ControllerCallError>
where
    F: FnOnce(Rc<Shard>) -> Fut + Send + 'static,
    Fut: Future<Output = Option<R>> + 'static,
    R: Send + 'static,
{
    let caller = Rc::clone(shard);
    let task =
        glommio::spawn_local(async move { caller.router.invoke_on(CONTROLLER_SHARD, work).await })
            .detach();
    let joined = match timeout {
        None => task.await,
        Some(timeout) => glommio::timer::timeout(timeout, async { Ok(task.await) })
            .await
            .map_err(|_| ControllerCallError::TimedOut {
                timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            })?,
    };
    match joined {
        Some(Ok(Some(answer))) => Ok(answer),
        // The task was dropped (executor stopping), the route failed, or
        // shard 0 has no controller.
        Some(Ok(None)) | Some(Err(_)) | None => Err(ControllerCallError::Unavailable),
    }
}

/// A request's `timeout_ms` as a deadline for [`call_controller`].
///
/// Zero or negative means "do not wait" in Kafka's old ZooKeeper mode,
/// which answered before the topic existed. Here the controller answers
/// only once every shard serves the change, and timing out at once would
/// tell the client "failed" about an operation that still commits, so such
/// requests wait for the outcome instead.
pub fn request_timeout(timeout_ms: i32) -> Option<Duration> {
    u64::try_from(timeout_ms)
        .ok()
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
}

/// The failure of a topic operation the controller did not answer:
/// NOT_CONTROLLER makes admin clients refresh metadata and retry.
pub fn unanswered(error: ControllerCallError) -> TopicFailure {
    let code = match error {
        ControllerCallError::Unavailable => ResponseError::NotController.code(),
        ControllerCallError::TimedOut { .. } => ResponseError::RequestTimedOut.code(),
    };
    TopicFailure {
        code,
        message: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_timeouts() {
        assert_eq!(request_timeout(30_000), Some(Duration::from_secs(30)));
        assert_eq!(request_timeout(1), Some(Duration::from_millis(1)));
        assert_eq!(request_timeout(0), None);
        assert_eq!(request_timeout(-1), None);
        assert_eq!(request_timeout(i32::MIN), None);
    }

    #[test]
    fn unanswered_operations_are_retriable() {
        let unavailable = unanswered(ControllerCallError::Unavailable);
        assert_eq!(unavailable.code, ResponseError::NotController.code());
        let timed_out = unanswered(ControllerCallError::TimedOut { timeout_ms: 5 });
        assert_eq!(timed_out.code, ResponseError::RequestTimedOut.code());
        assert_eq!(
            timed_out.message,
            "the controller did not answer within 5 ms"
        );
    }
}
