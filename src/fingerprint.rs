//! FNV-1a 64: a hash that is the same in every build, platform and process (unlike std's
//! hasher), for keys and validators that another process or a later run must recompute
//! identically. Not for anything an attacker chooses to collide.

/// An incremental FNV-1a 64 hasher.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn write(&mut self, bytes: &[u8]) -> &mut Self {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
        self
    }

    /// Writes `part` and a separator, so `["ab", "c"]` and `["a", "bc"]` differ.
    pub fn part(&mut self, part: &[u8]) -> &mut Self {
        self.write(part).write(&[0xff])
    }

    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// FNV-1a 64 of `bytes`.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    Fnv::default().write(bytes).finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_and_parts() {
        // Reference values of FNV-1a 64.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        let parts = |p: &[&str]| {
            let mut h = Fnv::default();
            for x in p {
                h.part(x.as_bytes());
            }
            h.finish()
        };
        assert_ne!(parts(&["ab", "c"]), parts(&["a", "bc"]));
    }
}
