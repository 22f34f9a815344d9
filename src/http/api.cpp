// Routes of the OpenFaaS-compatible API: /function/{name}, /system/*, /healthz.
#include "http/api.h"

#include <sys/random.h>

#include <fmt/format.h>

namespace unifn::http {

namespace {

std::string new_call_id() {
  unsigned char b[16];
  if (getrandom(b, sizeof b, 0) != sizeof b) return "0";
  std::string id;
  for (auto c : b) id += fmt::format("{:02x}", c);
  return id;
}

Response text(unsigned status, std::string body, unsigned version, std::string type = "text/plain") {
  Response r{static_cast<bhttp::status>(status), version};
  r.set(bhttp::field::content_type, type);
  r.body() = std::move(body);
  r.prepare_payload();
  return r;
}

std::string status_json(const runtime::FunctionStatus& f) {
  std::string env;
  for (const auto& [k, v] : f.env) env += fmt::format("{}\"{}\":\"{}\"", env.empty() ? "" : ",", json_escape(k), json_escape(v));
  return fmt::format(
      "{{\"name\":\"{}\",\"image\":\"{}\",\"invocationCount\":{},\"replicas\":{},\"availableReplicas\":{},"
      "\"maxReplicas\":{},\"queued\":{},\"envVars\":{{{}}},\"labels\":{{\"unifn.isolation\":\"{}\"}}}}",
      json_escape(f.name), json_escape(f.image), f.invocations, f.instances, f.idle_instances, f.max_instances,
      f.queued, env, f.isolation);
}

}  // namespace

std::string json_escape(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) out += fmt::format("\\u{:04x}", c);
        else out += static_cast<char>(c);
    }
  }
  return out;
}

Response json_error(unsigned status, const std::string& message, unsigned version) {
  return text(status, fmt::format("{{\"error\":\"{}\"}}\n", json_escape(message)), version, "application/json");
}

void Api::handle(Request req, Reply reply, std::shared_ptr<std::atomic<bool>> cancelled) {
  std::string target(req.target());
  if (auto q = target.find('?'); q != std::string::npos) target.resize(q);
  const auto method = req.method();
  auto only = [&](bhttp::verb v, const char* allow) {
    if (method == v) return true;
    auto r = json_error(405, fmt::format("{} is not allowed on {}", std::string(req.method_string()), target), req.version());
    r.set(bhttp::field::allow, allow);
    reply(std::move(r));
    return false;
  };
  if (target.starts_with("/function/")) {
    std::string name = target.substr(10);
    if (!name.empty() && name.back() == '/') name.pop_back();
    if (!only(bhttp::verb::post, "POST")) return;
    return invoke(req, name, std::move(reply), std::move(cancelled));
  }
  if (target.starts_with("/async-function/")) {
    std::string name = target.substr(16);
    if (!name.empty() && name.back() == '/') name.pop_back();
    if (!only(bhttp::verb::post, "POST")) return;
    return invoke_async(req, name, std::move(reply));
  }
  if (target.starts_with("/v1/calls/")) {
    if (!only(bhttp::verb::get, "GET")) return;
    std::string full(req.target());
    return reply(call_status(req, target.substr(10), full.find("result=raw") != std::string::npos));
  }
  if (target == "/metrics") {
    if (!only(bhttp::verb::get, "GET")) return;
    return reply(metrics_text(req));
  }
  if (target == "/healthz") {
    if (!only(bhttp::verb::get, "GET")) return;
    return reply(shutting_down_ ? text(503, "shutting down\n", req.version()) : text(200, "OK\n", req.version()));
  }
  if (target == "/system/functions") {
    if (!only(bhttp::verb::get, "GET")) return;
    return reply(functions(req));
  }
  if (target.starts_with("/system/function/")) {
    if (!only(bhttp::verb::get, "GET")) return;
    return reply(function(req, target.substr(17)));
  }
  if (target == "/system/info") {
    if (!only(bhttp::verb::get, "GET")) return;
    return reply(text(200,
                      fmt::format("{{\"provider\":{{\"provider\":\"unifn\",\"orchestration\":\"kvm\",\"version\":"
                                  "{{\"release\":\"{}\"}}}},\"arch\":\"x86_64\"}}\n", UNIFN_VERSION),
                      req.version(), "application/json"));
  }
  reply(json_error(404, fmt::format("no route for {}", target), req.version()));
}

runtime::Invocation Api::make_call(Request& req, const std::string& name) {
  runtime::Invocation call;
  call.function = name;
  call.body = std::move(req.body());
  call.content_type = std::string(req[bhttp::field::content_type]);
  call.call_id = req["X-Call-Id"].empty() ? new_call_id() : std::string(req["X-Call-Id"]);
  return call;
}

void Api::invoke(Request& req, const std::string& name, Reply reply, std::shared_ptr<std::atomic<bool>> cancelled) {
  if (shutting_down_) return reply(json_error(503, "unifnd is shutting down", req.version()));
  auto call = make_call(req, name);
  if (cancelled) call.cancelled = std::move(cancelled);
  const unsigned version = req.version();
  const bool keep_alive = req.keep_alive();
  std::string id = call.call_id;
  auto* metrics = &metrics_;
  dispatcher_.invoke(std::move(call), [reply = std::move(reply), version, keep_alive, id, metrics, name](runtime::InvocationResult r) {
    metrics->record_invocation(name, r.status, std::chrono::duration<double>(r.duration).count(),
                               std::string(runtime::to_string(r.start)));
    Response res = r.error.empty() ? text(static_cast<unsigned>(r.status), std::move(r.body), version,
                                          r.content_type.empty() ? "application/octet-stream" : r.content_type)
                                   : json_error(static_cast<unsigned>(r.status), r.error, version);
    res.set("X-Call-Id", id);
    res.set("X-Duration-Seconds", fmt::format("{:.6f}", std::chrono::duration<double>(r.duration).count()));
    res.set("X-Unifn-Start", std::string(runtime::to_string(r.start)));
    res.keep_alive(keep_alive);
    reply(std::move(res));
  });
}

void Api::invoke_async(Request& req, const std::string& name, Reply reply) {
  if (shutting_down_) return reply(json_error(503, "unifnd is shutting down", req.version()));
  if (!dispatcher_.function(name)) return reply(json_error(404, fmt::format("no function named '{}'", name), req.version()));
  std::string callback(req["X-Callback-Url"]);
  if (!callback.empty() && !Callbacks::valid_url(callback))
    return reply(json_error(400, fmt::format("X-Callback-Url '{}' is not an http://host:port/path URL", callback), req.version()));
  auto call = make_call(req, name);
  const std::string id = call.call_id;
  calls_.add(id, name);
  auto* calls = &calls_;
  auto* callbacks = &callbacks_;
  auto* metrics = &metrics_;
  dispatcher_.invoke(std::move(call), [calls, callbacks, metrics, id, name, callback](runtime::InvocationResult r) {
    metrics->record_invocation(name, r.status, std::chrono::duration<double>(r.duration).count(),
                               std::string(runtime::to_string(r.start)));
    if (!callback.empty()) callbacks->post(callback, id, r);
    calls->finish(id, std::move(r));
  });
  Response res = text(202, fmt::format("{{\"id\":\"{}\"}}\n", id), req.version(), "application/json");
  res.set("X-Call-Id", id);
  reply(std::move(res));
}

Response Api::call_status(const Request& req, const std::string& id, bool raw) {
  auto rec = calls_.get(id);
  if (!rec) return json_error(404, fmt::format("no call with id '{}' (unknown or expired)", id), req.version());
  const auto& r = rec->result;
  if (raw && rec->done) {
    if (!r.error.empty()) return json_error(static_cast<unsigned>(r.status), r.error, req.version());
    return text(static_cast<unsigned>(r.status), r.body, req.version(), r.content_type.empty() ? "application/octet-stream" : r.content_type);
  }
  std::string body = fmt::format("{{\"id\":\"{}\",\"function\":\"{}\",\"state\":\"{}\"", json_escape(rec->id),
                                 json_escape(rec->function), rec->done ? "done" : "queued");
  if (rec->done) {
    body += fmt::format(",\"status\":{},\"duration_seconds\":{:.6f},\"start\":\"{}\",\"content_type\":\"{}\"", r.status,
                        std::chrono::duration<double>(r.duration).count(), runtime::to_string(r.start), json_escape(r.content_type));
    body += r.error.empty() ? fmt::format(",\"body_base64\":\"{}\"", base64(r.body)) : fmt::format(",\"error\":\"{}\"", json_escape(r.error));
  }
  return text(200, body + "}\n", req.version(), "application/json");
}

Response Api::metrics_text(const Request& req) {
  for (const auto& f : dispatcher_.functions()) {
    metrics_.set_queue_depth(f.name, f.queued);
    metrics_.set_instances(f.name, f.idle_instances, f.instances - f.idle_instances);
  }
  return text(200, metrics_.serialize(), req.version(), "text/plain; version=0.0.4");
}

Response Api::functions(const Request& req) const {
  std::string body = "[";
  for (const auto& f : dispatcher_.functions()) body += (body.size() > 1 ? "," : "") + status_json(f);
  return text(200, body + "]\n", req.version(), "application/json");
}

Response Api::function(const Request& req, const std::string& name) const {
  auto f = dispatcher_.function(name);
  if (!f) return json_error(404, fmt::format("no function named '{}'", name), req.version());
  return text(200, status_json(*f) + "\n", req.version(), "application/json");
}

}  // namespace unifn::http
