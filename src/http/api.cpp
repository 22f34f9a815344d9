// Routes of the OpenFaaS-compatible API: invocations, async calls, /system/*, /healthz, /metrics.
#include "src/http/api.h"

#include <sys/random.h>

#include <array>
#include <cmath>
#include <optional>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "src/http/header.h"
#include "src/http/json.h"
#include "src/http/outcome_status.h"
#include "src/http/provider/provider.h"

namespace unifn::http {

namespace {

#ifdef UNIFN_VERSION
constexpr const char* kVersion = UNIFN_VERSION;
#else
constexpr const char* kVersion = "dev";
#endif
#ifdef UNIFN_GIT_SHA
constexpr const char* kSha = UNIFN_GIT_SHA;
#else
constexpr const char* kSha = "";
#endif
#if defined(__x86_64__)
constexpr const char* kArch = "x86_64";
#elif defined(__aarch64__)
constexpr const char* kArch = "arm64";
#else
constexpr const char* kArch = "unknown";
#endif

// What /system/functions shows for the value of each environment variable.
constexpr std::string_view kHiddenEnvValue = "(hidden)";

// Content-Length set, and no body where HTTP forbids one (Beast refuses to frame those).
void finish(Response& r) {
  auto s = r.result_int();
  if (s < 200 || s == 204 || s == 304) r.body().clear();
  r.prepare_payload();
}

Response make(unsigned status, std::string body, std::string_view type, unsigned version) {
  Response r{static_cast<bhttp::status>(status), version};
  if (!type.empty()) set_field(r, bhttp::field::content_type, type);
  r.body() = std::move(body);
  finish(r);
  return r;
}

// An answer to HEAD (RFC 9110 9.3.2): the header of the answer to GET, its Content-Length
// included, and no content, which a client would read as the start of the next response.
void strip_for_head(Response& r) {
  const auto n = r.body().size();
  r.body().clear();
  if (r.count(bhttp::field::content_length) == 0 && n > 0) r.content_length(n);
}

Response json(unsigned status, std::string body, unsigned version) {
  return make(status, std::move(body) + "\n", "application/json", version);
}

struct Target {
  std::string_view path, query;
};

Target split(std::string_view target) {
  auto q = target.find('?');
  if (q == std::string_view::npos) return {target, {}};
  return {target.substr(0, q), target.substr(q + 1)};
}

double seconds(std::chrono::nanoseconds d) { return std::chrono::duration<double>(d).count(); }

// The function's own answer, or {"error": ...} with the outcome's status.
Response result_response(const runtime::InvocationResult& r, unsigned version) {
  if (!r.answered()) return json_error(status_of(r), r.error, version);
  if (auto why = content_type_problem(r)) return json_error(502, *why, version);
  if (r.status < 200 || r.status > 599)
    return json_error(502,
                      fmt::format("the function answered with an invalid HTTP status {}", r.status),
                      version);
  auto type = !r.content_type.empty() ? std::string_view(r.content_type)
              : r.body.empty()        ? std::string_view()
                                      : std::string_view("application/octet-stream");
  return make(static_cast<unsigned>(r.status), r.body, type, version);
}

void invocation_headers(Response& res, const std::string& id, const runtime::InvocationResult& r) {
  set_field(res, "X-Call-Id", id);
  set_field(res, "X-Duration-Seconds", fmt::format("{:.6f}", seconds(r.duration)));
  if (r.instance_ran()) set_field(res, "X-Unifn-Start", runtime::to_string(r.start));
}

void record(metrics::Metrics& m, const std::string& name, const runtime::InvocationResult& r) {
  // A function that does not exist gets no series, or any client could grow the registry without
  // bound by inventing names.
  if (r.outcome == runtime::CallOutcome::NoSuchFunction) return;
  m.record_invocation(name, static_cast<int>(status_of(r)), seconds(r.duration),
                      r.instance_ran() ? runtime::to_string(r.start) : "");
}

Json status_document(const runtime::FunctionStatus& f) {
  // The names only: values hold model paths, keys and tokens, and this route is not authenticated
  // (that comes with the provider API). OpenFaaS's shape stays an object of strings; "(hidden)"
  // says that a value exists and is withheld, where "" would read as an empty setting.
  Json env = Json::object();
  for (const auto& kv : f.env) env[kv.first] = std::string(kHiddenEnvValue);
  Json annotations = {{"unifn.accel", fmt::format("{}", fmt::join(f.accel, ","))}};
  if (!f.accel_backend.empty()) annotations["unifn.accel.backend"] = f.accel_backend;
  if (!f.unavailable.empty()) annotations["unifn.unavailable"] = f.unavailable;
  return {
      {"name", f.name},
      {"image", f.image},
      {"invocationCount", f.invocations},
      {"replicas", f.instances},
      {"availableReplicas", f.idle_instances},
      {"maxReplicas", f.max_instances},
      {"queued", f.queued},
      // faas-provider's FunctionUsage; cpu is not measured (always 0).
      {"usage", {{"cpu", 0.0}, {"totalMemoryBytes", static_cast<double>(f.private_memory_bytes)}}},
      {"envVars", std::move(env)},
      {"labels", {{"unifn.isolation", f.isolation}}},
      {"annotations", std::move(annotations)}};
}

// The call's id: the client's X-Call-Id, or a new one when it sent none; nullopt when it is
// malformed.
std::optional<std::string> call_id(const Request& req) {
  std::string id(req["X-Call-Id"]);
  if (id.empty()) return new_call_id();
  if (!valid_call_id(id)) return std::nullopt;
  return id;
}

}  // namespace

std::optional<std::string_view> query_param(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    auto amp = query.find('&');
    auto part = query.substr(0, amp);
    auto eq = part.find('=');
    if (part.substr(0, eq) == key)
      return eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1);
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

std::optional<std::string> segment(std::string_view path, std::string_view prefix) {
  if (!path.starts_with(prefix)) return std::nullopt;
  path.remove_prefix(prefix.size());
  if (path.ends_with('/')) path.remove_suffix(1);
  if (path.empty() || path.find('/') != std::string_view::npos) return std::nullopt;
  return std::string(path);
}

Response json_response(unsigned status, const Json& doc, unsigned version) {
  return json(status, json_text(doc), version);
}

Response json_error(unsigned status, std::string_view message, unsigned version) {
  return json(status, json_error_text(message), version);
}

std::string new_call_id() {
  std::array<unsigned char, 16> b{};
  std::size_t got = 0;
  while (got < b.size()) {
    auto n = getrandom(b.data() + got, b.size() - got, 0);
    if (n > 0) got += static_cast<std::size_t>(n);
  }
  return fmt::format("{:02x}", fmt::join(b, ""));
}

bool valid_call_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
          c == '_' || c == '.' || c == '~' || c == ':'))
      return false;
  return true;
}

void Api::handle(Request req, Reply reply, std::shared_ptr<runtime::CancelToken> cancelled,
                 OpenStream open_stream) {
  const unsigned version = req.version();
  const std::string target(req.target());
  const Target t = split(target);
  const std::string_view path = t.path;
  const auto method = req.method();
  const bool head = method == bhttp::verb::head;
  bool handed =
      false;  // reply was called or handed on: exceptions past that point must not answer again
  // Every answer to HEAD passes here, whatever its route or status (a 404, a 405, a 500).
  if (head)
    reply = [inner = std::move(reply)](Response r) {
      strip_for_head(r);
      inner(std::move(r));
    };

  // Only these methods on a known path; otherwise 405 and Allow.
  auto allow = [&](bool post) {
    if (post ? method == bhttp::verb::post : (method == bhttp::verb::get || head)) return true;
    auto r = json_error(
        405, fmt::format("{} is not allowed on {}", std::string(req.method_string()), path),
        version);
    set_field(r, bhttp::field::allow, post ? "POST" : "GET, HEAD");
    handed = true;
    reply(std::move(r));
    return false;
  };
  // A GET route's answer (for HEAD, reply strips it).
  auto get = [&](Response r) {
    handed = true;
    reply(std::move(r));
  };

  try {
    if (auto name = segment(path, "/function/")) {
      if (allow(true)) {
        handed = true;
        invoke(req, std::move(*name), std::move(reply), std::move(cancelled));
      }
      return;
    }
    if (auto name = segment(path, "/async-function/")) {
      if (allow(true)) {
        handed = true;
        invoke_async(req, std::move(*name), std::move(reply));
      }
      return;
    }
    if (auto id = segment(path, "/v1/calls/")) {
      if (allow(false)) get(call_status(req, *id, query_param(t.query, "result") == "raw"));
      return;
    }
    if (provider_ && path.starts_with("/system/")) {
      if (!provider_->authorized(req)) {
        handed = true;
        reply(provider::Provider::unauthorized(version));
        return;
      }
      if (path == "/system/logs") {
        handed = true;
        provider_->logs(req, t.query, std::move(reply), cancelled, !shutting_down_,
                        std::move(open_stream));
        return;
      }
      if (auto r = provider_->route(req, path, t.query)) {
        handed = true;
        reply(std::move(*r));
        return;
      }
    }
    if (auto name = segment(path, "/system/function/")) {
      if (allow(false)) get(function(req, *name));
      return;
    }
    if (path == "/system/functions") {
      if (allow(false)) get(functions(req));
      return;
    }
    if (path == "/system/info") {
      if (allow(false)) get(info(req));
      return;
    }
    if (path == "/healthz") {
      if (allow(false))
        get(shutting_down_ ? make(503, "shutting down\n", "text/plain", version)
                           : make(200, "OK\n", "text/plain", version));
      return;
    }
    if (path == "/metrics") {
      if (allow(false)) get(metrics_text(req));
      return;
    }
    handed = true;
    reply(json_error(404, fmt::format("no route for {}", path), version));
  } catch (const std::exception& e) {
    if (!handed) reply(json_error(500, fmt::format("internal error: {}", e.what()), version));
  }
}

void Api::set_shutting_down() {
  shutting_down_ = true;
  if (provider_) provider_->stop_following();
}

void Api::record_refused(std::string_view target, unsigned status) {
  auto path = split(target).path;
  auto name = segment(path, "/function/");
  if (!name) name = segment(path, "/async-function/");
  if (name && known(*name)) metrics_.record_rejection(*name, static_cast<int>(status));
}

bool Api::known(std::string_view function) const {
  return dispatcher_.function(function).has_value();
}

void Api::invoke(Request& req, std::string name, Reply reply,
                 std::shared_ptr<runtime::CancelToken> cancelled) {
  const unsigned version = req.version();
  auto given = call_id(req);
  if (!given)
    return reply(json_error(400, "X-Call-Id must be 1 to 128 of A-Z a-z 0-9 - _ . ~ :", version));
  const std::string id = std::move(*given);
  runtime::Invocation call;
  call.function = name;
  call.body = std::move(req.body());
  call.content_type = std::string(req[bhttp::field::content_type]);
  call.call_id = id;
  if (cancelled) call.cancelled = std::move(cancelled);

  // reply is shared with the completion; whichever of it and a throwing invoke() comes first
  // answers.
  auto once = std::make_shared<std::atomic<bool>>(false);
  auto shared_reply = std::make_shared<Reply>(std::move(reply));
  try {
    dispatcher_.invoke(std::move(call), [shared_reply, once, version, id, name,
                                         m = &metrics_](runtime::InvocationResult r) {
      if (once->exchange(true)) return;
      refuse_bad_content_type(r);
      record(*m, name, r);
      auto res = result_response(r, version);
      invocation_headers(res, id, r);
      (*shared_reply)(std::move(res));
    });
  } catch (const std::exception& e) {
    if (once->exchange(true)) return;
    auto res = json_error(status_of(runtime::CallOutcome::HostError),
                          fmt::format("cannot dispatch the call: {}", e.what()), version);
    set_field(res, "X-Call-Id", id);
    (*shared_reply)(std::move(res));
  }
}

void Api::invoke_async(Request& req, std::string name, Reply reply) {
  const unsigned version = req.version();
  auto given = call_id(req);
  if (!given)
    return reply(json_error(400, "X-Call-Id must be 1 to 128 of A-Z a-z 0-9 - _ . ~ :", version));
  const std::string id = std::move(*given);
  if (!known(name))
    return reply(json_error(404, fmt::format("no function named '{}'", name), version));
  std::string callback(req["X-Callback-Url"]);
  if (!callback.empty() && !Callbacks::valid_url(callback))
    return reply(json_error(
        400, fmt::format("X-Callback-Url '{}' is not an http://host[:port]/path URL", callback),
        version));
  // An address literal is checked here (callbacks.allow); a host name once it is resolved, when the
  // result is delivered, and a refusal then shows in GET /v1/calls/{id} as "callback".
  if (!callback.empty())
    if (auto why = callbacks_.refused_literal(callback))
      return reply(json_error(
          400, fmt::format("X-Callback-Url '{}' is refused: {}", callback, *why), version));
  switch (calls_.add(id, name)) {
    case CallStore::Added::Ok:
      if (!callback.empty()) calls_.set_callback(id, "pending");
      break;
    case CallStore::Added::Duplicate:
      return reply(json_error(409, fmt::format("a call with id '{}' already exists", id), version));
    case CallStore::Added::Full:
      return reply(
          json_error(429, "too many async calls are unfinished; try again later", version));
    case CallStore::Added::NoRoom:
      return reply(json_error(
          429,
          fmt::format("async calls not yet finished hold the async results' whole budget of {} "
                      "bytes (limits.async_results_max_bytes); try again later",
                      calls_.max_bytes()),
          version));
  }

  runtime::Invocation call;
  call.function = name;
  call.body = std::move(req.body());
  call.content_type = std::string(req[bhttp::field::content_type]);
  call.call_id = id;
  call.on_start = [calls = &calls_, id] { calls->set_running(id); };
  auto done = [calls = &calls_, callbacks = &callbacks_, m = &metrics_, id, name,
               callback](runtime::InvocationResult r) {
    refuse_bad_content_type(r);
    record(*m, name, r);
    if (!callback.empty())
      callbacks->post(callback, id, r, [calls, id](std::string outcome) {
        calls->set_callback(id, std::move(outcome));
      });
    calls->finish(id, std::move(r));
  };
  try {
    dispatcher_.invoke(std::move(call), std::move(done));
  } catch (const std::exception& e) {
    calls_.finish(id, runtime::failure(runtime::CallOutcome::HostError,
                                       fmt::format("cannot dispatch the call: {}", e.what())));
    if (!callback.empty())
      calls_.set_callback(id, "failed: not sent, the call could not be dispatched");
  }
  auto res = json(
      202, json_text({{"id", id}, {"function", name}, {"status_url", "/v1/calls/" + id}}), version);
  set_field(res, "X-Call-Id", id);
  reply(std::move(res));
}

Response Api::call_status(const Request& req, const std::string& id, bool raw) {
  const unsigned version = req.version();
  auto rec = calls_.get(id);
  if (!rec)
    return json_error(404, fmt::format("no call with id '{}' (unknown, or its result expired)", id),
                      version);
  const auto& r = rec->result;
  const bool done = rec->state == CallState::Done;
  if (raw && done) {
    auto res = result_response(r, version);
    invocation_headers(res, rec->id, r);
    return res;
  }
  Json doc = {
      {"id", rec->id}, {"function", rec->function}, {"state", std::string(to_string(rec->state))}};
  if (done) {
    doc["status"] = status_of(r);
    // To the microsecond, as X-Duration-Seconds.
    doc["duration_seconds"] = std::round(seconds(r.duration) * 1e6) / 1e6;
    if (r.instance_ran()) doc["start"] = std::string(runtime::to_string(r.start));
    if (r.answered()) {
      doc["content_type"] = r.content_type;
      doc["body_base64"] = base64_encode(r.body);
    } else {
      doc["error"] = r.error;
    }
  }
  if (!rec->callback.empty()) doc["callback"] = rec->callback;
  // A raw result asked for too early: 202 says "not yet" to a script that only looks at the code.
  auto res = json(raw ? 202 : 200, json_text(doc), version);
  set_field(res, "X-Call-Id", rec->id);
  return res;
}

Response Api::metrics_text(const Request& req) {
  // Gauges are sampled at scrape time; functions gone since the last scrape lose theirs. The whole
  // sampling is one critical section: prometheus-cpp's Family::Add hands out a reference to the
  // series and Set writes through it after the family's lock is released, so a concurrent scrape
  // that saw a reload retire the function (remove_function_gauges frees the series) must not run
  // between them. Under the lock, the list of functions and the gauges also change together: an
  // older scrape cannot set the gauges of a function a newer one has already removed.
  {
    std::lock_guard lock(gauges_mu_);
    std::set<std::string, std::less<>> now;
    for (const auto& f : dispatcher_.functions()) {
      metrics_.set_queue_depth(f.name, f.queued);
      metrics_.set_instances(f.name, f.idle_instances,
                             f.instances > f.idle_instances ? f.instances - f.idle_instances : 0);
      now.insert(f.name);
    }
    for (const auto& old : gauged_)
      if (!now.contains(old)) metrics_.remove_function_gauges(old);
    gauged_ = std::move(now);
  }
  return make(200, metrics_.serialize(), metrics::Metrics::content_type, req.version());
}

Response Api::functions(const Request& req) const {
  Json list = Json::array();
  const auto set = provider_ ? provider_->current() : config::DropinSet{};
  for (const auto& f : dispatcher_.functions()) {
    list.push_back(status_document(f));
    if (provider_) provider_->decorate(list.back(), set);
  }
  return json(200, json_text(list), req.version());
}

Response Api::function(const Request& req, const std::string& name) const {
  auto f = dispatcher_.function(name);
  if (!f) return json_error(404, fmt::format("no function named '{}'", name), req.version());
  auto doc = status_document(*f);
  if (provider_) provider_->decorate(doc, provider_->current());
  return json(200, json_text(doc), req.version());
}

Response Api::info(const Request& req) const {
  const Json version = {{"release", kVersion}, {"sha", kSha}};
  // The platform has its own field: the orchestration is unifn's on every platform.
  const Json doc = {
      {"provider", {{"provider", "unifn"}, {"orchestration", "unifn"}, {"version", version}}},
      {"version", version},
      {"arch", kArch},
      {"platform", platform_}};
  return json(200, json_text(doc), req.version());
}

}  // namespace unifn::http
