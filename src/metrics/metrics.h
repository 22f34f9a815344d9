// Prometheus metrics of the daemon (prometheus-cpp core), rendered as text for GET /metrics.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace prometheus {
class Counter;
class Registry;
}  // namespace prometheus

namespace unifn::metrics {

// Every method is thread-safe (prometheus-cpp's families and metrics lock internally).
// Series:
//   unifn_invocations_total{function,code}            counter
//   unifn_invocation_duration_seconds{function}       histogram, buckets from 50 µs to 10 s
//   unifn_starts_total{function,kind}                 counter, kind is warm|restored|cold
//   unifn_queue_depth{function}                       gauge
//   unifn_instances{function,state}                   gauge, state is idle|busy
//   unifn_snapshot_builds_total{function,source}      counter, source is cold_boot|disk
//   unifn_accel_ops_total{backend,op}                 counter
//   unifn_accel_fallbacks_total{function,from,to}     counter
//   unifn_accel_backend_available{backend}            gauge, 0 or 1
//   unifn_platform{name}                              gauge, 1 for the platform guests run on
//   unifn_log_dropped_lines_total                     counter, read from log::global() at each
//   scrape
class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // One answered invocation: its HTTP status code, its duration, and how the instance that served
  // it started ("warm", "restored" or "cold"; empty when no instance ran it, e.g. a 429).
  void record_invocation(std::string_view function, int code, double seconds,
                         std::string_view start_kind);
  // An invocation refused before it reached the runtime (413, 503): counted, but no duration.
  void record_rejection(std::string_view function, int code);
  void set_queue_depth(std::string_view function, double depth);
  void set_instances(std::string_view function, double idle, double busy);
  // Drops the gauges of a function that no longer exists, so that they do not linger at old values.
  void remove_function_gauges(std::string_view function);
  // A snapshot made by booting the image (from_disk false) or loaded from the state directory.
  void record_snapshot(std::string_view function, bool from_disk);
  void record_snapshot_build(std::string_view function) { record_snapshot(function, false); }
  void record_accel_op(std::string_view backend, std::string_view op);
  // The series record_accel_op increments, to keep: finding it by its labels costs about 0.5 µs,
  // which next to a VT-x exit is not small. Valid as long as this Metrics.
  prometheus::Counter& accel_op_counter(std::string_view backend, std::string_view op);
  void record_accel_fallback(std::string_view function, std::string_view from, std::string_view to);
  void set_backend_available(std::string_view backend, bool available);
  // The platform chosen at start ("kvm" or "sandbox"); it does not change while the daemon runs.
  void set_platform(std::string_view name);

  std::string serialize() const;  // the text exposition format 0.0.4
  static constexpr const char* content_type = "text/plain; version=0.0.4; charset=utf-8";

  prometheus::Registry& registry();  // for other modules that want their own families

 private:
  struct Families;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Families> f_;
};

}  // namespace unifn::metrics
