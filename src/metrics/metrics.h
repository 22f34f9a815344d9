// Prometheus metrics of the daemon (prometheus-cpp core), rendered as text for GET /metrics.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <memory>
#include <string>

namespace unifn::metrics {

class Metrics {
 public:
  Metrics();
  // One answered invocation: its status code, its duration and how its instance started.
  void record_invocation(const std::string& function, int code, double seconds, const std::string& start);
  void set_queue_depth(const std::string& function, double depth);
  void set_instances(const std::string& function, double idle, double busy);
  void record_snapshot(const std::string& function, bool from_disk);
  void record_accel_op(const std::string& backend, const std::string& op);
  void record_accel_fallback(const std::string& function, const std::string& from, const std::string& to);
  void set_backend_available(const std::string& backend, bool available);
  std::string serialize() const;  // Prometheus text exposition format 0.0.4

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Family<prometheus::Counter>& invocations_;
  prometheus::Family<prometheus::Histogram>& duration_;
  prometheus::Family<prometheus::Counter>& starts_;
  prometheus::Family<prometheus::Gauge>& queue_;
  prometheus::Family<prometheus::Gauge>& instances_;
  prometheus::Family<prometheus::Counter>& snapshots_;
  prometheus::Family<prometheus::Counter>& accel_ops_;
  prometheus::Family<prometheus::Counter>& fallbacks_;
  prometheus::Family<prometheus::Gauge>& available_;
};

}  // namespace unifn::metrics
