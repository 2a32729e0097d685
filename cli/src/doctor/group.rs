//! Which consumer group this side reads in, and whether the other side reads
//! in it too: the classic mistake, the same group on both sides.
//!
//! Two inputs, because a consumer gets its group in one of two ways:
//!
//! - `--group` (`KAFKA_GROUP`) is **the pod's group**, the base the SDK's
//!   `group_id` is given, as the example consumer reads `KAFKA_GROUP`.
//!   Telepresence copies the pod's environment to the workstation, so the
//!   same value is seen on both sides, and there it is correct: the
//!   consumer appends the intercept ID. Nothing can be checked from it
//!   alone, so it gives information: the group each side needs.
//! - `--group-id` is the `group.id` the consumer here really sets. That one
//!   is checked: on a workstation it must be the workstation's own (one
//!   `group_id` makes for this intercept), or Kafka splits the partitions
//!   between the pod and the workstation and both skip, for good, messages
//!   that were the other's.
//!
//! Reading `KAFKA_GROUP` as the `group.id` itself would fail every
//! workstation that does it right with the copied environment; reading
//! `--group-id` as a base would miss the mistake. Hence two flags.

use telepresence_kafka::Client;

use super::{Check, name};

/// This side's group (for the members and lag checks) and the line.
#[derive(Debug)]
pub(super) struct GroupCheck {
    pub(super) check: Check,
    /// The group the consumer here reads in, or must read in.
    pub(super) group: String,
}

/// The groups as given: `base` from `--group`, `set` from `--group-id`.
/// `tp` is `None` when the environment could not be read: the side is then
/// unknown. `None` when no group is given.
pub(super) fn check(
    tp: Option<&Client>,
    base: Option<&str>,
    set: Option<&str>,
) -> Option<GroupCheck> {
    let given = set.or(base)?;
    let Some(tp) = tp else {
        return Some(GroupCheck {
            check: Check::info(
                name::GROUP,
                format!(
                    "{given}: which group this side needs depends on {}, which could not be read",
                    telepresence_kafka::INTERCEPT_ID_ENV
                ),
            ),
            group: given.to_owned(),
        });
    };
    if !tp.is_workstation() {
        return Some(cluster(tp, given));
    }
    Some(match set {
        Some(set) => workstation_sets(tp, base, set),
        None => workstation_derives(tp, base.unwrap_or(given)),
    })
}

/// The pod, or a process not under Telepresence: there is nothing to
/// compare with, since only a workstation has a group to keep apart.
fn cluster(tp: &Client, group: &str) -> GroupCheck {
    let seen = if tp.is_enabled() {
        format!(
            "{group}: the pod's group; a workstation reads in {group}-<intercept ID> \
             (tp.group_id(\"{group}\") there)"
        )
    } else {
        format!("{group}: not under Telepresence, so every message is processed in this group")
    };
    GroupCheck {
        check: Check::info(name::GROUP, seen),
        group: group.to_owned(),
    }
}

/// A workstation that told its real `group.id`: the check.
fn workstation_sets(tp: &Client, base: Option<&str>, set: &str) -> GroupCheck {
    if tp.is_own_group(set) {
        let pod = match base.or_else(|| pods_group(tp, set)) {
            Some(pod) => format!("the pod reads in {pod}"),
            None => "the pod's group is not known here (give --group)".to_owned(),
        };
        return GroupCheck {
            check: Check::pass(
                name::GROUP,
                format!("{set}: this workstation's own group; {pod}"),
            ),
            group: set.to_owned(),
        };
    }
    let pods = base.unwrap_or(set);
    let own = tp.group_id(pods);
    let whose = if Some(set) == base {
        " but the pod's"
    } else {
        ""
    };
    GroupCheck {
        check: Check::fail(
            name::GROUP,
            format!(
                "{set}: not this workstation's own group{whose}: Kafka splits the partitions \
                 between the consumers of a group, so this workstation and the pod would each \
                 skip, for good, messages that were the other's"
            ),
            format!(
                "set the consumer's group.id to {own} (tp.group_id(\"{pods}\")), this workstation's own group"
            ),
        ),
        group: set.to_owned(),
    }
}

/// A workstation that gave the pod's group only: what it must read in.
fn workstation_derives(tp: &Client, base: &str) -> GroupCheck {
    // A base that already carries this intercept's suffix is the
    // workstation's group given as it is: appending the ID again would name
    // a group nobody uses.
    let (own, pod) = if tp.is_own_group(base) {
        (base.to_owned(), pods_group(tp, base))
    } else {
        (tp.group_id(base), Some(base))
    };
    let pod = pod.map_or("the pod's group is not known here".to_owned(), |pod| {
        format!("the pod in {pod}")
    });
    GroupCheck {
        check: Check::info(
            name::GROUP,
            format!(
                "this workstation must read in {own} (tp.group_id), {pod}; \
                 give --group-id to check the group.id the consumer sets"
            ),
        ),
        group: own,
    }
}

/// The base a workstation's own group was made from, when the ID was not
/// cut short with a hash.
fn pods_group<'a>(tp: &Client, own: &'a str) -> Option<&'a str> {
    own.strip_suffix(&tp.group_id(""))
        .filter(|base| !base.is_empty())
}

#[cfg(test)]
mod tests {
    use super::super::Status;
    use super::*;

    fn workstation() -> Client {
        Client::builder()
            .api_url("http://localhost:9980")
            .intercept_id("abc:orders")
            .build()
            .unwrap()
    }

    fn pod() -> Client {
        Client::builder()
            .api_url("http://localhost:9980")
            .build()
            .unwrap()
    }

    #[test]
    fn a_workstation_in_the_pods_group_fails_and_is_told_its_own() {
        for (base, set) in [(Some("orders"), "orders"), (None, "orders")] {
            let g = check(Some(&workstation()), base, Some(set)).unwrap();
            assert_eq!(g.check.status, Status::Fail, "{base:?}");
            assert_eq!(g.group, "orders");
            assert_eq!(
                g.check.fix.as_deref(),
                Some(
                    "set the consumer's group.id to orders-abc-orders \
                     (tp.group_id(\"orders\")), this workstation's own group"
                )
            );
        }
        let g = check(Some(&workstation()), Some("orders"), Some("orders")).unwrap();
        assert!(
            g.check
                .seen
                .starts_with("orders: not this workstation's own group but the pod's:"),
            "{}",
            g.check.seen
        );
    }

    #[test]
    fn another_workstations_group_is_not_this_ones() {
        let g = check(
            Some(&workstation()),
            Some("orders"),
            Some("orders-xyz-orders"),
        )
        .unwrap();
        assert_eq!(g.check.status, Status::Fail);
        assert!(
            g.check
                .seen
                .starts_with("orders-xyz-orders: not this workstation's own group:"),
            "{}",
            g.check.seen
        );
        assert!(g.check.fix.unwrap().contains("orders-abc-orders"));
    }

    #[test]
    fn a_workstation_in_its_own_group_passes_and_names_the_pods() {
        for base in [Some("orders"), None] {
            let g = check(Some(&workstation()), base, Some("orders-abc-orders")).unwrap();
            assert_eq!(g.check.status, Status::Pass);
            assert_eq!(
                g.check.seen,
                "orders-abc-orders: this workstation's own group; the pod reads in orders"
            );
            assert_eq!(g.group, "orders-abc-orders");
        }
    }

    #[test]
    fn the_pods_group_alone_says_what_each_side_needs() {
        let g = check(Some(&workstation()), Some("orders"), None).unwrap();
        assert_eq!(g.check.status, Status::Info);
        assert_eq!(g.group, "orders-abc-orders");
        assert!(
            g.check.seen.starts_with(
                "this workstation must read in orders-abc-orders (tp.group_id), the pod in orders;"
            ),
            "{}",
            g.check.seen
        );
        // Given its own group as the base, it is not suffixed twice.
        let g = check(Some(&workstation()), Some("orders-abc-orders"), None).unwrap();
        assert_eq!(g.group, "orders-abc-orders");
        assert!(
            g.check.seen.contains("the pod in orders;"),
            "{}",
            g.check.seen
        );

        let g = check(Some(&pod()), Some("orders"), None).unwrap();
        assert_eq!(g.check.status, Status::Info);
        assert_eq!(g.group, "orders");
        assert!(
            g.check.seen.starts_with(
                "orders: the pod's group; a workstation reads in orders-<intercept ID>"
            ),
            "{}",
            g.check.seen
        );
    }

    #[test]
    fn without_telepresence_or_its_environment_nothing_is_compared() {
        let g = check(Some(&Client::disabled()), None, Some("orders")).unwrap();
        assert_eq!(g.check.status, Status::Info);
        assert!(g.check.seen.contains("not under Telepresence"));
        let g = check(None, Some("orders"), None).unwrap();
        assert_eq!(g.check.status, Status::Info);
        assert!(g.check.seen.contains("TELEPRESENCE_INTERCEPT_ID"));
        assert!(check(Some(&pod()), None, None).is_none());
    }
}
