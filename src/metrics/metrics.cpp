// Metric families of the daemon and their text rendering.
#include "src/metrics/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include "src/log/log.h"

namespace unifn::metrics {

namespace {

// From 50 µs (a warm reuse call) to 10 s (well past any function's timeout), about 2.5x apart.
const prometheus::Histogram::BucketBoundaries kBuckets = {
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10};

prometheus::Labels labels(std::initializer_list<std::pair<const char*, std::string_view>> kv) {
  prometheus::Labels l;
  for (const auto& [k, v] : kv) l.emplace(k, std::string(v));
  return l;
}

}  // namespace

struct Metrics::Families {
  explicit Families(prometheus::Registry& r)
      : invocations(prometheus::BuildCounter()
                        .Name("unifn_invocations_total")
                        .Help("Invocations answered, by function and HTTP status code")
                        .Register(r)),
        duration(prometheus::BuildHistogram()
                     .Name("unifn_invocation_duration_seconds")
                     .Help("Time from dispatch to the function's answer")
                     .Register(r)),
        starts(prometheus::BuildCounter()
                   .Name("unifn_starts_total")
                   .Help("Invocations by how the instance that served them started")
                   .Register(r)),
        queue(prometheus::BuildGauge()
                  .Name("unifn_queue_depth")
                  .Help("Calls waiting for an instance")
                  .Register(r)),
        instances(prometheus::BuildGauge()
                      .Name("unifn_instances")
                      .Help("Instances by state")
                      .Register(r)),
        snapshots(prometheus::BuildCounter()
                      .Name("unifn_snapshot_builds_total")
                      .Help("Snapshots made by booting the image (cold_boot) or loaded from disk")
                      .Register(r)),
        accel_ops(prometheus::BuildCounter()
                      .Name("unifn_accel_ops_total")
                      .Help("Accelerated operations, by backend and operation")
                      .Register(r)),
        fallbacks(prometheus::BuildCounter()
                      .Name("unifn_accel_fallbacks_total")
                      .Help("Functions served by another backend than the one they preferred")
                      .Register(r)),
        available(prometheus::BuildGauge()
                      .Name("unifn_accel_backend_available")
                      .Help("1 when the accelerator backend is usable on this machine")
                      .Register(r)),
        platform(prometheus::BuildGauge()
                     .Name("unifn_platform")
                     .Help("The platform guests run on (1 for the one in use)")
                     .Register(r)) {}
  prometheus::Family<prometheus::Counter>& invocations;
  prometheus::Family<prometheus::Histogram>& duration;
  prometheus::Family<prometheus::Counter>& starts;
  prometheus::Family<prometheus::Gauge>& queue;
  prometheus::Family<prometheus::Gauge>& instances;
  prometheus::Family<prometheus::Counter>& snapshots;
  prometheus::Family<prometheus::Counter>& accel_ops;
  prometheus::Family<prometheus::Counter>& fallbacks;
  prometheus::Family<prometheus::Gauge>& available;
  prometheus::Family<prometheus::Gauge>& platform;
};

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      f_(std::make_unique<Families>(*registry_)) {}

Metrics::~Metrics() = default;

prometheus::Registry& Metrics::registry() { return *registry_; }

void Metrics::record_invocation(std::string_view function, int code, double seconds,
                                std::string_view start_kind) {
  f_->invocations.Add(labels({{"function", function}, {"code", std::to_string(code)}})).Increment();
  f_->duration.Add(labels({{"function", function}}), kBuckets).Observe(seconds);
  if (!start_kind.empty())
    f_->starts.Add(labels({{"function", function}, {"kind", start_kind}})).Increment();
}

void Metrics::record_rejection(std::string_view function, int code) {
  f_->invocations.Add(labels({{"function", function}, {"code", std::to_string(code)}})).Increment();
}

void Metrics::set_queue_depth(std::string_view function, double depth) {
  f_->queue.Add(labels({{"function", function}})).Set(depth);
}

void Metrics::set_instances(std::string_view function, double idle, double busy) {
  f_->instances.Add(labels({{"function", function}, {"state", "idle"}})).Set(idle);
  f_->instances.Add(labels({{"function", function}, {"state", "busy"}})).Set(busy);
}

void Metrics::remove_function_gauges(std::string_view function) {
  // Add() returns the existing series; removing it is the family's only way to forget it.
  f_->queue.Remove(&f_->queue.Add(labels({{"function", function}})));
  f_->instances.Remove(&f_->instances.Add(labels({{"function", function}, {"state", "idle"}})));
  f_->instances.Remove(&f_->instances.Add(labels({{"function", function}, {"state", "busy"}})));
}

void Metrics::record_snapshot(std::string_view function, bool from_disk) {
  f_->snapshots.Add(labels({{"function", function}, {"source", from_disk ? "disk" : "cold_boot"}}))
      .Increment();
}

void Metrics::record_accel_op(std::string_view backend, std::string_view op) {
  accel_op_counter(backend, op).Increment();
}

prometheus::Counter& Metrics::accel_op_counter(std::string_view backend, std::string_view op) {
  return f_->accel_ops.Add(labels({{"backend", backend}, {"op", op}}));
}

void Metrics::record_accel_fallback(std::string_view function, std::string_view from,
                                    std::string_view to) {
  f_->fallbacks.Add(labels({{"function", function}, {"from", from}, {"to", to}})).Increment();
}

void Metrics::set_backend_available(std::string_view backend, bool available) {
  f_->available.Add(labels({{"backend", backend}})).Set(available ? 1 : 0);
}

void Metrics::set_platform(std::string_view name) {
  f_->platform.Add(labels({{"name", name}})).Set(1);
}

std::string Metrics::serialize() const {
  auto families = registry_->Collect();
  // Read from the logger at each scrape: its count lives there, not in a series of ours.
  prometheus::ClientMetric dropped;
  dropped.counter.value = static_cast<double>(log::global().dropped_lines());
  families.push_back({"unifn_log_dropped_lines_total",
                      "Log lines lost: overwritten in the logger's full queue or not written",
                      prometheus::MetricType::Counter,
                      {dropped}});
  return prometheus::TextSerializer().Serialize(families);
}

}  // namespace unifn::metrics
