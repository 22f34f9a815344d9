// The metrics registry: each recording shows in the text exposition with its labels and value.
#include <catch2/catch.hpp>

#include <thread>
#include <vector>

#include "src/metrics/metrics.h"

using unifn::metrics::Metrics;

TEST_CASE("invocations: counter by function and code, duration histogram, starts by kind") {
  Metrics m;
  m.record_invocation("echo", 200, 0.00004, "warm");
  m.record_invocation("echo", 200, 0.003, "restored");
  m.record_invocation("echo", 504, 2.0, "cold");
  m.record_invocation("echo", 429, 0.0, "");  // no instance ran it: no start
  m.record_rejection("echo", 413);
  auto t = m.serialize();
  CHECK_THAT(t, Catch::Contains("# TYPE unifn_invocations_total counter"));
  CHECK_THAT(t, Catch::Contains("unifn_invocations_total{code=\"200\",function=\"echo\"} 2"));
  CHECK_THAT(t, Catch::Contains("unifn_invocations_total{code=\"504\",function=\"echo\"} 1"));
  CHECK_THAT(t, Catch::Contains("unifn_invocations_total{code=\"429\",function=\"echo\"} 1"));
  CHECK_THAT(t, Catch::Contains("unifn_invocations_total{code=\"413\",function=\"echo\"} 1"));
  CHECK_THAT(t, Catch::Contains("# TYPE unifn_invocation_duration_seconds histogram"));
  CHECK_THAT(t, Catch::Contains("unifn_invocation_duration_seconds_count{function=\"echo\"} 4"));
  CHECK_THAT(t,
             Catch::Contains("unifn_invocation_duration_seconds_sum{function=\"echo\"} 2.00304"));
  // Buckets from 50 µs to 10 s, cumulative.
  CHECK_THAT(t, Catch::Contains(
                    "unifn_invocation_duration_seconds_bucket{function=\"echo\",le=\"5e-05\"} 2"));
  CHECK_THAT(t, Catch::Contains(
                    "unifn_invocation_duration_seconds_bucket{function=\"echo\",le=\"0.005\"} 3"));
  CHECK_THAT(t, Catch::Contains(
                    "unifn_invocation_duration_seconds_bucket{function=\"echo\",le=\"2.5\"} 4"));
  CHECK_THAT(t, Catch::Contains(
                    "unifn_invocation_duration_seconds_bucket{function=\"echo\",le=\"10\"} 4"));
  CHECK_THAT(t, Catch::Contains(
                    "unifn_invocation_duration_seconds_bucket{function=\"echo\",le=\"+Inf\"} 4"));
  CHECK_THAT(t, Catch::Contains("unifn_starts_total{function=\"echo\",kind=\"warm\"} 1"));
  CHECK_THAT(t, Catch::Contains("unifn_starts_total{function=\"echo\",kind=\"restored\"} 1"));
  CHECK_THAT(t, Catch::Contains("unifn_starts_total{function=\"echo\",kind=\"cold\"} 1"));
  CHECK(t.find("kind=\"\"") == std::string::npos);
}

TEST_CASE("gauges: queue depth and instances by state, a function's gauges can be dropped") {
  Metrics m;
  m.set_queue_depth("classify", 5);
  m.set_instances("classify", 2, 6);
  m.set_queue_depth("echo", 0);
  m.set_queue_depth("classify", 3);  // a gauge is set, not added to
  auto t = m.serialize();
  CHECK_THAT(t, Catch::Contains("# TYPE unifn_queue_depth gauge"));
  CHECK_THAT(t, Catch::Contains("unifn_queue_depth{function=\"classify\"} 3"));
  CHECK_THAT(t, Catch::Contains("unifn_queue_depth{function=\"echo\"} 0"));
  CHECK_THAT(t, Catch::Contains("unifn_instances{function=\"classify\",state=\"idle\"} 2"));
  CHECK_THAT(t, Catch::Contains("unifn_instances{function=\"classify\",state=\"busy\"} 6"));
  m.remove_function_gauges("classify");
  t = m.serialize();
  CHECK(t.find("function=\"classify\"") == std::string::npos);
  CHECK_THAT(t, Catch::Contains("unifn_queue_depth{function=\"echo\"} 0"));
}

TEST_CASE("snapshots and accelerators") {
  Metrics m;
  m.record_snapshot_build("classify");
  m.record_snapshot("classify", true);
  m.record_snapshot("classify", true);
  m.record_accel_op("cuda", "sgemm");
  m.record_accel_op("cuda", "sgemm");
  m.record_accel_op("cpu", "image_classification");
  m.record_accel_fallback("classify", "cuda", "cpu");
  m.set_backend_available("cuda", false);
  m.set_backend_available("cpu", true);
  auto t = m.serialize();
  CHECK_THAT(t, Catch::Contains(
                    "unifn_snapshot_builds_total{function=\"classify\",source=\"cold_boot\"} 1"));
  CHECK_THAT(
      t, Catch::Contains("unifn_snapshot_builds_total{function=\"classify\",source=\"disk\"} 2"));
  CHECK_THAT(t, Catch::Contains("unifn_accel_ops_total{backend=\"cuda\",op=\"sgemm\"} 2"));
  CHECK_THAT(
      t, Catch::Contains("unifn_accel_ops_total{backend=\"cpu\",op=\"image_classification\"} 1"));
  CHECK_THAT(t,
             Catch::Contains(
                 "unifn_accel_fallbacks_total{from=\"cuda\",function=\"classify\",to=\"cpu\"} 1"));
  CHECK_THAT(t, Catch::Contains("unifn_accel_backend_available{backend=\"cuda\"} 0"));
  CHECK_THAT(t, Catch::Contains("unifn_accel_backend_available{backend=\"cpu\"} 1"));
  CHECK_THAT(t, Catch::Contains("# HELP unifn_accel_backend_available "));
}

TEST_CASE("the platform in use is a gauge of 1 named by its label") {
  Metrics m;
  CHECK_THAT(m.serialize(), !Catch::Contains("unifn_platform{"));  // none until the daemon chose
  m.set_platform("sandbox");
  auto t = m.serialize();
  CHECK_THAT(t, Catch::Contains(
                    "# HELP unifn_platform The platform guests run on (1 for the one in use)\n"));
  CHECK_THAT(t, Catch::Contains("# TYPE unifn_platform gauge\n"));
  CHECK_THAT(t, Catch::Contains("unifn_platform{name=\"sandbox\"} 1\n"));
  CHECK_THAT(t, !Catch::Contains("unifn_platform{name=\"kvm\"}"));
}

TEST_CASE("label values are escaped in the exposition") {
  Metrics m;
  m.record_invocation("we\"ird\\fn\nname", 200, 0.001, "warm");
  CHECK_THAT(m.serialize(),
             Catch::Contains(
                 "unifn_invocations_total{code=\"200\",function=\"we\\\"ird\\\\fn\\nname\"} 1"));
}

TEST_CASE("recording from many threads at once loses nothing") {
  Metrics m;
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        m.record_invocation("echo", 200, 0.0001, "warm");
        m.set_queue_depth("echo", i);
        if (i % 100 == 0) (void)m.serialize();
      }
    });
  for (auto& t : ts) t.join();
  auto t = m.serialize();
  CHECK_THAT(t, Catch::Contains("unifn_invocations_total{code=\"200\",function=\"echo\"} 4000"));
  CHECK_THAT(t, Catch::Contains("unifn_starts_total{function=\"echo\",kind=\"warm\"} 4000"));
}
