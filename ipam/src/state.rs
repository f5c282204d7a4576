//! The allocation state: its JSON format on disk and the pure operations on it (allocate,
//! release, gc, counting). No I/O here; [`crate::store`] loads, locks and persists it.
//!
//! Format (camelCase):
//! `{"version":1,"allocations":[{"ip":"10.1.0.5","containerId":"...","ifname":"eth0"}],
//!   "lastReserved":{"<range set id>":"10.1.0.5"}}`

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::allocator::next_free;
use crate::error::{Error, Result};
use crate::key::{Allocation, AttachmentKey};
use crate::pool::Pool;

/// The only state format version this crate reads and writes.
pub(crate) const VERSION: u32 = 1;

/// The whole state of one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct State {
    pub version: u32,
    #[serde(default)]
    pub allocations: Vec<Record>,
    /// Round-robin cursor per range set, keyed by [`RangeSet::id`](crate::RangeSet::id).
    #[serde(default)]
    pub last_reserved: BTreeMap<String, IpAddr>,
}

/// One booked address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Record {
    pub ip: IpAddr,
    pub container_id: String,
    pub ifname: String,
}

impl Record {
    fn is_for(&self, key: &AttachmentKey) -> bool {
        self.container_id == key.container_id && self.ifname == key.ifname
    }

    fn key(&self) -> AttachmentKey {
        AttachmentKey::new(self.container_id.clone(), self.ifname.clone())
    }
}

impl Default for State {
    fn default() -> Self {
        State {
            version: VERSION,
            allocations: Vec::new(),
            last_reserved: BTreeMap::new(),
        }
    }
}

impl State {
    /// Checks what serde cannot: the version, and that no address is booked twice.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.version != VERSION {
            return Err(format!(
                "unsupported version {} (expected {VERSION})",
                self.version
            ));
        }
        let mut seen = HashSet::with_capacity(self.allocations.len());
        for r in &self.allocations {
            if !seen.insert(r.ip) {
                return Err(format!("address {} is booked more than once", r.ip));
            }
        }
        Ok(())
    }

    /// Books one address per range set of `pool` for `key` (reusing the ones it already holds
    /// in a set) and advances the cursors. All or nothing: on [`Error::Exhausted`] the state is
    /// untouched. Returns the allocations and whether the state changed.
    pub fn allocate(
        &mut self,
        pool: &Pool,
        key: &AttachmentKey,
    ) -> Result<(Vec<Allocation>, bool)> {
        let held: Vec<IpAddr> = self
            .allocations
            .iter()
            .filter(|r| r.is_for(key))
            .map(|r| r.ip)
            .collect();
        let mut booked: Option<HashSet<IpAddr>> = None;
        let mut out = Vec::with_capacity(pool.range_sets().len());
        let mut new_records = Vec::new();
        let mut new_cursors = Vec::new();
        for set in pool.range_sets() {
            if let Some((ip, range)) = held
                .iter()
                .find_map(|&ip| set.range_for(ip).map(|r| (ip, r)))
            {
                out.push(Allocation {
                    ip,
                    subnet: range.subnet(),
                    gateway: Some(range.gateway()),
                });
                continue;
            }
            let booked =
                booked.get_or_insert_with(|| self.allocations.iter().map(|r| r.ip).collect());
            let id = set.id();
            let cursor = self.last_reserved.get(&id).copied();
            let (ip, range) = next_free(set, cursor, booked).ok_or_else(|| Error::Exhausted {
                ranges: set.to_string(),
            })?;
            booked.insert(ip);
            out.push(Allocation {
                ip,
                subnet: range.subnet(),
                gateway: Some(range.gateway()),
            });
            new_records.push(Record {
                ip,
                container_id: key.container_id.clone(),
                ifname: key.ifname.clone(),
            });
            new_cursors.push((id, ip));
        }
        let changed = !new_records.is_empty();
        self.allocations.extend(new_records);
        self.last_reserved.extend(new_cursors);
        Ok((out, changed))
    }

    /// Unbooks every address of `key`; returns them.
    pub fn release(&mut self, key: &AttachmentKey) -> Vec<IpAddr> {
        let mut released = Vec::new();
        self.allocations.retain(|r| {
            let hit = r.is_for(key);
            if hit {
                released.push(r.ip);
            }
            !hit
        });
        released
    }

    /// Unbooks every address whose key is not in `valid`; returns what it unbooked.
    pub fn gc(&mut self, valid: &HashSet<AttachmentKey>) -> Vec<(AttachmentKey, IpAddr)> {
        let mut released = Vec::new();
        self.allocations.retain(|r| {
            let key = r.key();
            if valid.contains(&key) {
                true
            } else {
                released.push((key, r.ip));
                false
            }
        });
        released
    }

    /// The addresses booked for `key`, in booking order.
    pub fn lookup(&self, key: &AttachmentKey) -> Vec<IpAddr> {
        self.allocations
            .iter()
            .filter(|r| r.is_for(key))
            .map(|r| r.ip)
            .collect()
    }

    /// Every key with its addresses.
    pub fn attachments(&self) -> BTreeMap<AttachmentKey, Vec<IpAddr>> {
        let mut map: BTreeMap<AttachmentKey, Vec<IpAddr>> = BTreeMap::new();
        for r in &self.allocations {
            map.entry(r.key()).or_default().push(r.ip);
        }
        map
    }

    /// Per range set of `pool`: how many of its addresses are not booked.
    pub fn free(&self, pool: &Pool) -> Vec<u128> {
        pool.range_sets()
            .iter()
            .map(|set| {
                let used = self
                    .allocations
                    .iter()
                    .filter(|r| set.range_for(r.ip).is_some_and(|rg| rg.gateway() != r.ip))
                    .count();
                set.capacity().saturating_sub(used as u128)
            })
            .collect()
    }
}
