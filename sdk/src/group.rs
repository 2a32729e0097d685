//! Consumer-group IDs for the two sides.
//!
//! In one consumer group, Kafka splits a topic's partitions between the pod
//! and the workstation, and each sees only part of the messages: some that
//! match the intercept never reach the workstation. So the workstation reads
//! in a group of its own, named after its intercept.

/// Group IDs stay within this length (Kafka's limit for topic names, which
/// tools often apply to groups too).
pub(crate) const MAX_GROUP_ID_LEN: usize = 249;

/// `base` in the cluster (empty intercept ID); `base-<intercept ID>` on a
/// workstation, the ID reduced to `[A-Za-z0-9._-]` (other characters become
/// `-`) and shortened with a stable hash suffix if the whole would exceed
/// [`MAX_GROUP_ID_LEN`].
pub(crate) fn group_id(base: &str, intercept_id: &str) -> String {
    if intercept_id.is_empty() {
        return base.to_owned();
    }
    let full = format!("{base}-{}", suffix(intercept_id));
    if full.len() <= MAX_GROUP_ID_LEN {
        return full;
    }
    // Keep distinct intercepts in distinct groups even when cut short.
    let hash = hash_suffix(intercept_id);
    let keep = MAX_GROUP_ID_LEN.saturating_sub(hash.len() + 1);
    let mut cut = full[..keep.min(full.len())].to_owned();
    cut.push('-');
    cut.push_str(&hash);
    cut
}

/// Whether `group` is one that [`group_id`] makes for this intercept, from
/// whatever base: the workstation's own group, not the pod's.
pub(crate) fn is_workstation_group(group: &str, intercept_id: &str) -> bool {
    group.ends_with(&format!("-{}", suffix(intercept_id)))
        || (group.len() == MAX_GROUP_ID_LEN
            && group.ends_with(&format!("-{}", hash_suffix(intercept_id))))
}

/// The intercept ID reduced to `[A-Za-z0-9._-]`.
fn suffix(intercept_id: &str) -> String {
    intercept_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn hash_suffix(intercept_id: &str) -> String {
    format!("{:016x}", fnv1a(intercept_id.as_bytes()))
}

/// FNV-1a: stable across runs and platforms, unlike the standard hasher.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workstation_recognises_its_own_groups() {
        for id in ["4b16:echo", "a/b", &"x".repeat(300)] {
            for base in ["orders", "payments.v2", &"b".repeat(240)] {
                let group = group_id(base, id);
                assert!(is_workstation_group(&group, id), "{group}");
                assert!(!is_workstation_group(base, id), "the pod's group {base}");
            }
        }
        assert!(!is_workstation_group("orders-other", "4b16:echo"));
    }

    #[test]
    fn the_cluster_keeps_its_group() {
        assert_eq!(group_id("orders", ""), "orders");
    }

    #[test]
    fn a_workstation_gets_a_group_of_its_own() {
        assert_eq!(
            group_id("orders", "4b1658c3-9ad3-4b5e-8b80-2ddf48b8bd46:echo-server"),
            "orders-4b1658c3-9ad3-4b5e-8b80-2ddf48b8bd46-echo-server"
        );
        assert_eq!(
            group_id("orders", "workload/container"),
            "orders-workload-container"
        );
        assert_eq!(group_id("orders", "a b é"), "orders-a-b--");
        assert_eq!(group_id("orders", "v1.2_x"), "orders-v1.2_x");
    }

    #[test]
    fn long_ids_are_cut_with_a_stable_distinguishing_hash() {
        let a = group_id("orders", &"a".repeat(300));
        let b = group_id("orders", &format!("{}b", "a".repeat(299)));
        assert_eq!(a.len(), MAX_GROUP_ID_LEN);
        assert_eq!(b.len(), MAX_GROUP_ID_LEN);
        assert_ne!(a, b);
        assert!(a.starts_with("orders-aaa"));
        assert_eq!(a, group_id("orders", &"a".repeat(300)), "stable");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        );
    }
}
