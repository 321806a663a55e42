//! The way back: each scan has a results stream, `technic:v1:queue:{NAME}:results:SCAN`, in
//! the queue's hash tag. Workers `XADD` an encoded report (and renew the stream's TTL in the
//! same script, so the stream of a scan whose coordinator died still expires; the script
//! drops the report of a scan in the cancelled set, so a deleted stream stays deleted); the
//! coordinator `XREAD`s every stream of its running scans in one blocking call and deletes a
//! stream when its scan ends. The payload is opaque here: what a report says is the
//! transport's business (`cluster/transport.rs`).

use ::redis::streams::StreamReadReply;
use ::redis::Value;

use super::RedisStreamsQueue;
use crate::cluster::queue::QueueError;
use crate::redis_link::Use;

/// KEYS: results stream, cancelled set. ARGV: scan id, payload, TTL (ms). Sent as `EVAL`
/// (it rides in pipelines, where a missing script could not be loaded on the fly).
const PUBLISH: &str = r"
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 0 end
redis.call('XADD', KEYS[1], '*', 'r', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1";

/// Entries returned by one read, at most.
const READ_COUNT: usize = 512;

/// One entry of a results stream.
pub struct ResultEntry {
    pub scan_id: String,
    /// The stream entry id: the cursor to read after.
    pub id: String,
    pub payload: Vec<u8>,
}

impl RedisStreamsQueue {
    fn results_key(&self, scan_id: &str) -> String {
        format!("{}:results:{scan_id}", self.keys.prefix)
    }

    /// Appends `PUBLISH` of a report to a pipeline (reply ignored).
    pub(super) fn add_publish(&self, pipe: &mut ::redis::Pipeline, scan_id: &str, payload: &[u8]) {
        let ttl = self.opts.results_ttl.as_millis().max(1) as u64;
        pipe.cmd("EVAL")
            .arg(PUBLISH)
            .arg(2)
            .arg(self.results_key(scan_id))
            .arg(&self.keys.cancelled)
            .arg(scan_id)
            .arg(payload)
            .arg(ttl)
            .ignore();
    }

    /// Appends a report to a scan's results stream now, unless the scan was cancelled or
    /// abandoned: nobody reads it then, and appending would recreate a deleted stream.
    pub async fn publish_result(&self, scan_id: &str, payload: &[u8]) -> Result<(), QueueError> {
        let mut pipe = ::redis::pipe();
        self.add_publish(&mut pipe, scan_id, payload);
        let pipe = &pipe;
        self.call("publish result", Use::Shared, |mut c| async move {
            pipe.query_async::<()>(&mut c).await
        })
        .await
    }

    /// Queues a report for the handle's next round trip, ahead of the shard's ack (see
    /// `Outbox`): accepted at once; sent by the next pull or renew, and put back for the
    /// one after if that fails.
    pub fn stage_result(&self, scan_id: &str, payload: Vec<u8>) {
        super::lock(&self.outbox).report(scan_id.to_string(), payload);
    }

    /// Waits (up to the queue's block time) for entries after the given cursors, one
    /// `(scan id, last entry id)` per followed scan; `reader` names the blocking connection.
    pub async fn read_results(
        &self,
        reader: &str,
        cursors: &[(String, String)],
    ) -> Result<Vec<ResultEntry>, QueueError> {
        if cursors.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = cursors.iter().map(|(s, _)| self.results_key(s)).collect();
        let ids: Vec<&str> = cursors.iter().map(|(_, id)| id.as_str()).collect();
        let block = self.opts.block.as_millis() as u64;
        let (keys_ref, ids_ref) = (&keys, &ids);
        let reply: Option<StreamReadReply> = self
            .call("read results", Use::Blocking(reader), |mut c| async move {
                ::redis::cmd("XREAD")
                    .arg("COUNT")
                    .arg(READ_COUNT)
                    .arg("BLOCK")
                    .arg(block)
                    .arg("STREAMS")
                    .arg(keys_ref)
                    .arg(ids_ref)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let prefix = format!("{}:results:", self.keys.prefix);
        let mut out = Vec::new();
        for k in reply.map(|r| r.keys).unwrap_or_default() {
            let Some(scan_id) = k.key.strip_prefix(&prefix) else {
                continue;
            };
            for sid in k.ids {
                let payload = match sid.map.get("r") {
                    Some(Value::BulkString(b)) => b.clone(),
                    _ => Vec::new(),
                };
                out.push(ResultEntry {
                    scan_id: scan_id.to_string(),
                    id: sid.id,
                    payload,
                });
            }
        }
        Ok(out)
    }

    /// Every entry of a scan's results stream (what a new owner reads), oldest first.
    pub async fn read_all_results(&self, scan_id: &str) -> Result<Vec<ResultEntry>, QueueError> {
        let key = self.results_key(scan_id);
        let mut out: Vec<ResultEntry> = Vec::new();
        loop {
            let start = out
                .last()
                .map_or_else(|| "-".to_string(), |e| format!("({}", e.id));
            let (key, start) = (&key, &start);
            let page: ::redis::streams::StreamRangeReply = self
                .call("read past results", Use::Shared, |mut c| async move {
                    ::redis::cmd("XRANGE")
                        .arg(key)
                        .arg(start)
                        .arg("+")
                        .arg("COUNT")
                        .arg(READ_COUNT)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            let n = page.ids.len();
            out.extend(page.ids.into_iter().map(|sid| ResultEntry {
                scan_id: scan_id.to_string(),
                payload: match sid.map.get("r") {
                    Some(Value::BulkString(b)) => b.clone(),
                    _ => Vec::new(),
                },
                id: sid.id,
            }));
            if n < READ_COUNT {
                return Ok(out);
            }
        }
    }

    /// Deletes a scan's results stream (its scan ended). Late reports recreate it, with the
    /// TTL, and are never read.
    pub async fn drop_results(&self, scan_id: &str) {
        let key = self.results_key(scan_id);
        let key = &key;
        if let Err(e) = self
            .call("drop results", Use::Shared, |mut c| async move {
                ::redis::cmd("UNLINK")
                    .arg(key)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
        {
            // The TTL removes it.
            self.on_error("drop results", &e);
        }
    }

    /// Forgets a reading coordinator's blocking connection.
    pub async fn close_reader(&self, reader: &str) {
        self.links.drop_consumer(reader).await;
    }
}
