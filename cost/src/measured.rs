//! The measured figures the replay uses by default, each with where it comes from. The report
//! should say when it replaces one.

use crate::replay::Measured;

/// From `spec.replicas` 1 to the first message processed, seconds, rounded up to the replay's
/// 1 s step. BENCHMARKS.md, "Scale from zero with KEDA" (real KEDA 2.20.2 and HPA, pods started
/// by the kubelet stand-in, no image pull or scheduling): first message → first processed 1.1 s
/// median with a 1 s polling interval, of which 0.3 s is publish → `spec.replicas` 1 (the poll),
/// and 0.21 s the pair (function + daprd) start; the rest is daprd's subscription, the
/// consumer-group join and the first fetch. 1.1 − 0.3 = 0.8 s, so 1 s. A cluster adds scheduling
/// and, on a new node, the image pull: keda/create-task.yaml assumes 2–5 s for the sidecar; use
/// [`CLUSTER_COLD_START_S`] to see it.
pub const COLD_START_S: u32 = 1;

/// A cold start on a cluster with the images cached on the node (an assumption: the upper end
/// of the 2–5 s keda/create-task.yaml gives for the sidecar, plus the consumer-group join).
pub const CLUSTER_COLD_START_S: u32 = 5;

/// Messages one replica processes per second, for the consumers of `task-create` and
/// `task-events`. BENCHMARKS.md, "Sustained creations through create-task", platform: 30,000
/// creations offered at 500/s for 60 s, every consumer's backlog drained 14.93 s after the load
/// (one replica each), so each kept up with 30000 / 74.93 s ≈ 400 messages per second.
pub const RATE_PER_REPLICA: f64 = 400.0;

/// The notifier's rate: one webhook call per message, through an output binding. BENCHMARKS.md
/// measures reminder due → webhook received (p99 within 1 s for 1,000 reminders due in the same
/// minute) but no sustained rate: 100 per second is an assumption.
pub const NOTIFIER_RATE_PER_REPLICA: f64 = 100.0;

/// Partitions of each topic: manifests/base/kafka-topics/topics.txt.
pub fn partitions(topic: &str) -> u64 {
    match topic {
        "task-create" => 12,
        "task-events" => 6,
        "reminders" => 3,
        _ => 1,
    }
}

/// The measured figures for the function named `name` (its app-id).
pub fn for_function(name: &str) -> Measured {
    let (topic, rate) = match name {
        "create-task" => ("task-create", RATE_PER_REPLICA),
        "notifier" => ("reminders", NOTIFIER_RATE_PER_REPLICA),
        _ => ("task-events", RATE_PER_REPLICA),
    };
    Measured { partitions: partitions(topic), cold_start_s: COLD_START_S, rate_per_replica: rate }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_function_gets_its_topic_s_partitions() {
        assert_eq!(for_function("create-task").partitions, 12);
        assert_eq!(for_function("audit-writer").partitions, 6);
        assert_eq!(for_function("fire-reminder").partitions, 6);
        assert_eq!(for_function("notifier").partitions, 3);
        assert_eq!(for_function("notifier").rate_per_replica, NOTIFIER_RATE_PER_REPLICA);
    }
}
