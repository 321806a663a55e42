//! Which master serves which key, for batching reads per node on a Redis Cluster: the key's
//! hash slot (CRC16/XMODEM of the key or its `{hash tag}`, mod 16384) and a `CLUSTER SLOTS`
//! map. A stale map only costs a fallback: the caller retries through slot routing.

use std::collections::HashMap;

use ::redis::Value;

pub(super) const SLOTS: usize = 16_384;

/// CRC16/XMODEM (poly 0x1021, init 0), the checksum Redis Cluster hashes keys with.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The hash slot of `key`: only the part between the first `{` and the next `}` counts, if
/// that part is not empty.
pub(super) fn key_slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|&b| b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16(hashed) % SLOTS as u16
}

/// For every slot, a representative slot of the master serving it (the first slot of that
/// master's first range): routing a pipeline to the representative reaches that master.
pub(super) struct SlotOwners {
    rep: Vec<Option<u16>>,
}

impl SlotOwners {
    /// From a `CLUSTER SLOTS` reply: `[[start, end, [host, port, id, ...], replicas...], ...]`.
    pub(super) fn parse(reply: &Value) -> Option<Self> {
        let Value::Array(ranges) = reply else {
            return None;
        };
        let mut rep = vec![None; SLOTS];
        let mut first_slot: HashMap<(Vec<u8>, i64), u16> = HashMap::new();
        for range in ranges {
            let Value::Array(fields) = range else {
                return None;
            };
            let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                return None;
            };
            let host = match master.first()? {
                Value::BulkString(h) => h.clone(),
                Value::SimpleString(h) => h.clone().into_bytes(),
                _ => return None,
            };
            let Some(Value::Int(port)) = master.get(1) else {
                return None;
            };
            let (start, end) = (u16::try_from(*start).ok()?, u16::try_from(*end).ok()?);
            if start > end || usize::from(end) >= SLOTS {
                return None;
            }
            let r = *first_slot.entry((host, *port)).or_insert(start);
            for slot in start..=end {
                rep[usize::from(slot)] = Some(r);
            }
        }
        Some(SlotOwners { rep })
    }

    /// The representative slot of `key`'s master; `None` if no master serves its slot.
    pub(super) fn rep_of(&self, key: &[u8]) -> Option<u16> {
        self.rep[usize::from(key_slot(key))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from `CLUSTER KEYSLOT` on redis-server 7.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"123456789"), 12739);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"{user1000}.following"), 3443);
        assert_eq!(key_slot(b"foo{}{bar}"), 8363); // an empty tag hashes the whole key
    }

    #[test]
    fn owners_from_cluster_slots() {
        let node = |port: i64| {
            Value::Array(vec![
                Value::BulkString(b"127.0.0.1".to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let reply = Value::Array(vec![
            Value::Array(vec![Value::Int(0), Value::Int(5460), node(7000)]),
            Value::Array(vec![Value::Int(5461), Value::Int(10922), node(7001)]),
            Value::Array(vec![Value::Int(10923), Value::Int(16383), node(7000)]),
        ]);
        let owners = SlotOwners::parse(&reply).expect("parses");
        assert_eq!(owners.rep_of(b"bar"), Some(0)); // slot 5061, on 7000
        assert_eq!(owners.rep_of(b"foo"), Some(0)); // slot 12182, on 7000 too
        assert_eq!(owners.rep_of(b"123456789"), Some(0));
        assert_eq!(owners.rep[6000], Some(5461));
        assert!(SlotOwners::parse(&Value::Nil).is_none());
    }
}
