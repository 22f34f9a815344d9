// Metric families and their text rendering.
#include "metrics/metrics.h"

#include <prometheus/text_serializer.h>

namespace unifn::metrics {

namespace {
const prometheus::Histogram::BucketBoundaries kBuckets = {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                          0.025,   0.05,   0.1,     0.25,   0.5,   1,      2.5,   5, 10};
}

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      invocations_(prometheus::BuildCounter().Name("unifn_invocations_total").Help("Invocations answered, by function and HTTP code").Register(*registry_)),
      duration_(prometheus::BuildHistogram().Name("unifn_invocation_duration_seconds").Help("Time from dispatch to answer").Register(*registry_)),
      starts_(prometheus::BuildCounter().Name("unifn_starts_total").Help("Invocations by how their instance started").Register(*registry_)),
      queue_(prometheus::BuildGauge().Name("unifn_queue_depth").Help("Calls waiting for an instance").Register(*registry_)),
      instances_(prometheus::BuildGauge().Name("unifn_instances").Help("Instances by state").Register(*registry_)),
      snapshots_(prometheus::BuildCounter().Name("unifn_snapshot_builds_total").Help("Snapshots built (cold boots) or loaded from disk").Register(*registry_)),
      accel_ops_(prometheus::BuildCounter().Name("unifn_accel_ops_total").Help("Accelerator operations by backend and op").Register(*registry_)),
      fallbacks_(prometheus::BuildCounter().Name("unifn_accel_fallbacks_total").Help("Functions that fell back to another backend").Register(*registry_)),
      available_(prometheus::BuildGauge().Name("unifn_accel_backend_available").Help("1 when the backend is usable").Register(*registry_)) {}

void Metrics::record_invocation(const std::string& function, int code, double seconds, const std::string& start) {
  invocations_.Add({{"function", function}, {"code", std::to_string(code)}}).Increment();
  duration_.Add({{"function", function}}, kBuckets).Observe(seconds);
  starts_.Add({{"function", function}, {"kind", start}}).Increment();
}

void Metrics::set_queue_depth(const std::string& function, double depth) { queue_.Add({{"function", function}}).Set(depth); }

void Metrics::set_instances(const std::string& function, double idle, double busy) {
  instances_.Add({{"function", function}, {"state", "idle"}}).Set(idle);
  instances_.Add({{"function", function}, {"state", "busy"}}).Set(busy);
}

void Metrics::record_snapshot(const std::string& function, bool from_disk) {
  snapshots_.Add({{"function", function}, {"source", from_disk ? "disk" : "cold_boot"}}).Increment();
}

void Metrics::record_accel_op(const std::string& backend, const std::string& op) {
  accel_ops_.Add({{"backend", backend}, {"op", op}}).Increment();
}

void Metrics::record_accel_fallback(const std::string& function, const std::string& from, const std::string& to) {
  fallbacks_.Add({{"function", function}, {"from", from}, {"to", to}}).Increment();
}

void Metrics::set_backend_available(const std::string& backend, bool available) {
  available_.Add({{"backend", backend}}).Set(available ? 1 : 0);
}

std::string Metrics::serialize() const { return prometheus::TextSerializer().Serialize(registry_->Collect()); }

}  // namespace unifn::metrics
