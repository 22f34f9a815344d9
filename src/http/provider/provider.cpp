// The provider API's routes: drop-ins written by the API, checked as a file is, then a reload.
#include "src/http/provider/provider.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <variant>
#include <cctype>
#include <charconv>
#include <cstdio>

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "src/config/checks.h"
#include "src/config/provider_state.h"
#include "src/http/header.h"
#include "src/http/provider/deployment.h"
#include "vmm/guest/function_image.h"

namespace unifn::http::provider {

namespace fs = std::filesystem;

namespace {

// A file's text without one trailing newline (as `echo` leaves it); nullopt when it is missing.
std::optional<std::string> read_secret(const fs::path& file) {
  std::error_code ec;
  if (!fs::exists(file, ec)) return std::nullopt;
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("{} cannot be read", file.string()));
  std::string text((std::istreambuf_iterator<char>(in)), {});
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return text;
}

bool loopback(const std::string& host) { return host.starts_with("127.") || host == "::1"; }

// Constant time in the length of want: a wrong password's prefix is not told by the timing.
bool same(std::string_view got, std::string_view want) {
  unsigned char diff = got.size() == want.size() ? 0 : 1;
  for (std::size_t i = 0; i < want.size(); ++i)
    diff |= static_cast<unsigned char>(want[i] ^ (i < got.size() ? got[i] : 0));
  return diff == 0;
}

// The body as JSON, or the 400 that says it is not.
std::variant<Json, Response> parse_body(const Request& req) {
  try {
    return Json::parse(req.body());
  } catch (const std::exception& e) {
    return json_error(400, fmt::format("the body is not JSON: {}", e.what()), req.version());
  }
}

// {"error": first, "errors": [all]}: a drop-in's sentences, as check-config prints them.
Response config_errors(unsigned status, const std::vector<std::string>& errors, unsigned version) {
  Json doc = {{"error", errors.empty() ? std::string() : errors.front()}, {"errors", errors}};
  return json_response(status, doc, version);
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
  return text;
}

Response accepted(const std::string& name, std::string_view what, unsigned version) {
  return json_response(202, Json{{"name", name}, {"namespace", kNamespace}, {"status", what}},
                       version);
}

// %XX and '+' of a query value decoded (Go's url.Values encodes since's ':' as %3A).
std::string url_decode(std::string_view in) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '+') {
      out += ' ';
    } else if (in[i] == '%' && i + 2 < in.size()) {
      unsigned v = 0;
      auto [p, ec] = std::from_chars(in.data() + i + 1, in.data() + i + 3, v, 16);
      if (ec == std::errc() && p == in.data() + i + 3) {
        out += static_cast<char>(v);
        i += 2;
      } else {
        out += in[i];
      }
    } else {
      out += in[i];
    }
  }
  return out;
}

// "2026-12-02T05:00:00Z" or with a fraction of a second or a +HH:MM offset: RFC 3339.
std::optional<std::chrono::system_clock::time_point> parse_rfc3339(const std::string& t) {
  int y, mo, d, h, mi, s, n = 0;
  if (std::sscanf(t.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &n) != 6 ||
      n != 19)
    return std::nullopt;
  std::size_t at = 19;
  std::chrono::nanoseconds frac{0};
  if (at < t.size() && t[at] == '.') {
    std::int64_t scale = 100000000;
    for (++at; at < t.size() && std::isdigit(static_cast<unsigned char>(t[at])); ++at) {
      frac += std::chrono::nanoseconds((t[at] - '0') * scale);
      scale /= 10;
    }
  }
  std::chrono::minutes offset{0};
  if (at < t.size() && (t[at] == '+' || t[at] == '-')) {
    int oh, om;
    if (std::sscanf(t.c_str() + at + 1, "%2d:%2d", &oh, &om) != 2 || t.size() != at + 6)
      return std::nullopt;
    offset = std::chrono::minutes((t[at] == '-' ? -1 : 1) * (oh * 60 + om));
  } else if (at + 1 != t.size() || (t[at] != 'Z' && t[at] != 'z')) {
    return std::nullopt;
  }
  const std::chrono::year_month_day ymd{std::chrono::year(y), std::chrono::month(mo),
                                        std::chrono::day(d)};
  if (!ymd.ok() || h > 23 || mi > 59 || s > 60) return std::nullopt;
  const auto secs = std::chrono::sys_seconds(std::chrono::sys_days(ymd)) + std::chrono::hours(h) +
                    std::chrono::minutes(mi) + std::chrono::seconds(s) - offset;
  // The clock counts nanoseconds in 64 bits (1677 to 2262): a time past its range is its end.
  using Clock = std::chrono::system_clock;
  if (secs >= std::chrono::time_point_cast<std::chrono::seconds>(Clock::time_point::max()))
    return Clock::time_point::max();
  if (secs <= std::chrono::time_point_cast<std::chrono::seconds>(Clock::time_point::min()) +
                  std::chrono::seconds(1))
    return Clock::time_point::min();
  return std::chrono::time_point_cast<Clock::duration>(secs) + frac;
}

std::string ndjson(const std::vector<LogLine>& lines) {
  std::string out;
  for (const auto& l : lines) {
    const auto ns = std::chrono::time_point_cast<std::chrono::nanoseconds>(l.at);
    const auto secs = std::chrono::time_point_cast<std::chrono::seconds>(ns);
    out += json_text(
        Json{{"name", l.name},
             {"namespace", kNamespace},
             {"instance", l.instance},
             {"timestamp", fmt::format("{:%Y-%m-%dT%H:%M:%S}.{:09d}Z", secs, (ns - secs).count())},
             {"text", l.text}});
    out += '\n';
  }
  return out;
}

Response ndjson_response(const std::vector<LogLine>& lines, unsigned version) {
  Response r{bhttp::status::ok, version};
  set_field(r, bhttp::field::content_type, "application/x-ndjson");
  r.body() = ndjson(lines);
  r.prepare_payload();
  return r;
}

// RFC 3339 in UTC, as Go's time.Time marshals.
std::string rfc3339(fs::file_time_type t) {
  const auto sys =
      std::chrono::time_point_cast<std::chrono::seconds>(std::chrono::file_clock::to_sys(t));
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", sys);
}

}  // namespace

std::optional<Credentials> load_credentials(const config::ProviderSettings& settings) {
  std::string dir = settings.credentials_dir;
  if (dir.empty())
    if (const char* c = std::getenv("CREDENTIALS_DIRECTORY")) dir = c;
  if (dir.empty()) return std::nullopt;
  auto user = read_secret(fs::path(dir) / "basic-auth-user");
  auto password = read_secret(fs::path(dir) / "basic-auth-password");
  if (!user && !password) return std::nullopt;
  if (!user || !password || user->empty() || password->empty())
    throw std::runtime_error(fmt::format(
        "{}: basic-auth-user and basic-auth-password must both be there, not empty", dir));
  return Credentials{*user, *password};
}

std::optional<std::string> exposure_problem(const config::DaemonConfig& d, bool has_credentials) {
  if (has_credentials || loopback(d.host) || d.provider.allow_unauthenticated) return std::nullopt;
  return fmt::format(
      "{}: listen: {} is not a loopback address and no credentials are configured for /system/* "
      "(basic-auth-user and basic-auth-password in provider.credentials_dir or "
      "$CREDENTIALS_DIRECTORY); give them, or set provider.allow_unauthenticated: true",
      d.source, d.listen());
}

Provider::Provider(config::DaemonConfig daemon, std::optional<Credentials> credentials,
                   std::function<void()> reload, LogRing* logs)
    : daemon_(std::move(daemon)),
      managed_dir_(config::provider_functions_dir(daemon_)),
      images_dir_(config::images_directory(daemon_)),
      credentials_(std::move(credentials)),
      reload_(std::move(reload)),
      logs_(logs) {}

bool Provider::authorized(const Request& req) const {
  if (!credentials_) return true;
  const auto want = "Basic " + base64_encode(credentials_->user + ":" + credentials_->password);
  const auto got = req[bhttp::field::authorization];
  return same(std::string_view(got.data(), got.size()), want);
}

Response Provider::unauthorized(unsigned version) {
  auto r =
      json_error(401, "/system/* needs HTTP basic auth with the provider's credentials", version);
  set_field(r, bhttp::field::www_authenticate, "Basic realm=\"unifn\"");
  return r;
}

std::optional<Response> Provider::route(Request& req, std::string_view path,
                                        std::string_view query) {
  const unsigned version = req.version();
  const auto method = req.method();
  auto refuse = [&](std::string_view allow) {
    auto r = json_error(
        405, fmt::format("{} is not allowed on {}", std::string(req.method_string()), path),
        version);
    set_field(r, bhttp::field::allow, allow);
    return r;
  };
  if (path == "/system/functions" || path == "/system/functions/") {
    if (auto ns = query_param(query, "namespace"); ns && !ns->empty() && *ns != kNamespace)
      return json_error(404, fmt::format("no namespace '{}' (there is {})", *ns, kNamespace),
                        version);
    if (method == bhttp::verb::post) return deploy(req, false);
    if (method == bhttp::verb::put) return deploy(req, true);
    if (method == bhttp::verb::delete_) return remove(req);
    if (method == bhttp::verb::get || method == bhttp::verb::head) return std::nullopt;
    return refuse("GET, HEAD, POST, PUT, DELETE");
  }
  if (path.starts_with("/system/function/")) {
    if (auto ns = query_param(query, "namespace"); ns && !ns->empty() && *ns != kNamespace)
      return json_error(404, fmt::format("no namespace '{}' (there is {})", *ns, kNamespace),
                        version);
    return std::nullopt;
  }
  if (auto name = segment(path, "/system/scale-function/")) {
    if (method != bhttp::verb::post) return refuse("POST");
    return scale(req, *name);
  }
  if (path.starts_with("/system/images/")) {
    if (method != bhttp::verb::put) return refuse("PUT");
    return put_image(req, std::string(path.substr(std::string_view("/system/images/").size())));
  }
  if (path == "/system/namespaces") {
    if (method != bhttp::verb::get && method != bhttp::verb::head) return refuse("GET, HEAD");
    return json_response(200, Json::array({kNamespace}), version);
  }
  return std::nullopt;
}

config::DropinSet Provider::current() const { return config::load_dropins(daemon_.functions_dirs); }

std::string Provider::managed_file(const std::string& name) const {
  return (fs::path(managed_dir_) / (name + ".yaml")).string();
}

bool Provider::managed(const config::FunctionConfig& f) const {
  return fs::path(f.source).parent_path() == fs::path(managed_dir_);
}

Response Provider::deploy(const Request& req, bool update) {
  const unsigned version = req.version();
  auto body = parse_body(req);
  if (auto* r = std::get_if<Response>(&body)) return std::move(*r);
  auto read = read_deployment(std::get<Json>(body), images_dir_);
  if (auto* bad = std::get_if<std::string>(&read)) return json_error(400, *bad, version);
  auto d = std::get<Deployment>(std::move(read));
  if (!d.nspace.empty() && d.nspace != kNamespace)
    return json_error(404, fmt::format("no namespace '{}' (there is {})", d.nspace, kNamespace),
                      version);
  const auto image_path = (fs::path(images_dir_) / d.image).string();
  if (auto bad = config::checks::image_file(image_path))
    return json_error(400, fmt::format("image: {}", *bad), version);

  std::lock_guard lock(write_mu_);
  const auto file = managed_file(d.name);
  auto set = current();
  for (const auto& f : set.functions)
    if (f.name == d.name && !managed(f))
      return json_error(409,
                        fmt::format("function '{}' is defined by {}, written by hand: the API "
                                    "does not change it",
                                    d.name, f.source),
                        version);
  // A hand-written file of the same file name would be replaced by ours (later directory wins).
  for (const auto& dir : daemon_.functions_dirs) {
    std::error_code ec;
    const auto other = fs::path(dir) / (d.name + ".yaml");
    if (dir != managed_dir_ && fs::exists(other, ec))
      return json_error(409,
                        fmt::format("{} is a hand-written drop-in of the same file name; the API "
                                    "does not replace it",
                                    other.string()),
                        version);
  }
  std::error_code ec;
  const bool exists = fs::exists(file, ec);
  if (update && !exists)
    return json_error(404, fmt::format("no function named '{}' deployed through the API", d.name),
                      version);
  if (!update && exists)
    return json_error(
        409,
        fmt::format("function '{}' is already deployed; PUT /system/functions updates it", d.name),
        version);

  // Checked as a file: written beside its final name as a dotfile (ignored by the drop-in rules),
  // loaded, then the whole set with it checked as a reload checks it.
  const auto check = (fs::path(managed_dir_) / ("." + d.name + ".yaml.check")).string();
  config::write_file_atomically(check, d.yaml);
  struct Unlink {
    std::string path;
    ~Unlink() { ::unlink(path.c_str()); }
  } cleanup{check};
  config::FunctionConfig f;
  try {
    f = config::load_function(check);
  } catch (const config::ConfigError& e) {
    std::vector<std::string> errors;
    for (const auto& line : e.errors()) errors.push_back(replace_all(line, check, file));
    return config_errors(400, errors, version);
  }
  f.source = file;
  auto& fns = set.functions;
  fns.erase(std::remove_if(fns.begin(), fns.end(),
                           [&](const config::FunctionConfig& g) { return g.source == file; }),
            fns.end());
  fns.push_back(f);
  auto errors = config::validate_strict(config::FullConfig{daemon_, set});
  if (!errors.empty()) return config_errors(400, errors, version);
  config::write_file_atomically(file, d.yaml);
  reload_();
  return accepted(d.name, update ? "updating" : "deploying", version);
}

Response Provider::remove(const Request& req) {
  const unsigned version = req.version();
  auto body = parse_body(req);
  if (auto* r = std::get_if<Response>(&body)) return std::move(*r);
  const auto& doc = std::get<Json>(body);
  if (!doc.is_object() || !doc.contains("functionName") || !doc["functionName"].is_string())
    return json_error(400, "the body must be {\"functionName\": \"...\"}", version);
  const auto name = doc["functionName"].get<std::string>();
  if (doc.contains("namespace") && doc["namespace"].is_string() &&
      !doc["namespace"].get<std::string>().empty() && doc["namespace"] != kNamespace)
    return json_error(404,
                      fmt::format("no namespace '{}' (there is {})",
                                  doc["namespace"].get<std::string>(), kNamespace),
                      version);
  std::lock_guard lock(write_mu_);
  for (const auto& f : current().functions)
    if (f.name == name && !managed(f))
      return json_error(409,
                        fmt::format("function '{}' is defined by {}, written by hand: the API "
                                    "does not remove it",
                                    name, f.source),
                        version);
  if (dns_label_problem(name) || ::unlink(managed_file(name).c_str()) != 0)
    return json_error(404, fmt::format("no function named '{}' deployed through the API", name),
                      version);
  auto scales = config::load_scales(daemon_);
  if (scales.erase(name)) config::save_scales(daemon_, scales);
  reload_();
  return accepted(name, "deleting", version);
}

Response Provider::scale(const Request& req, const std::string& name) {
  const unsigned version = req.version();
  auto body = parse_body(req);
  if (auto* r = std::get_if<Response>(&body)) return std::move(*r);
  const auto& doc = std::get<Json>(body);
  if (!doc.is_object() || !doc.contains("replicas") || !doc["replicas"].is_number_integer() ||
      doc["replicas"].get<std::int64_t>() < 0)
    return json_error(400, "replicas must be a whole number, 0 or more", version);
  if (doc.contains("serviceName") && !doc["serviceName"].is_null() &&
      (!doc["serviceName"].is_string() ||
       (!doc["serviceName"].get<std::string>().empty() && doc["serviceName"] != name)))
    return json_error(400, fmt::format("serviceName must be '{}', as in the path", name), version);
  const auto replicas = doc["replicas"].get<std::uint64_t>();
  std::lock_guard lock(write_mu_);
  for (const auto& f : current().functions) {
    if (f.name != name) continue;
    if (replicas > f.pool.max_instances)
      return json_error(400,
                        fmt::format("replicas {} is more than the function's max_instances ({})",
                                    replicas, f.pool.max_instances),
                        version);
    auto scales = config::load_scales(daemon_);
    scales[name] = replicas;
    config::save_scales(daemon_, scales);
    reload_();
    return accepted(name, fmt::format("scaling to {}", replicas), version);
  }
  return json_error(404, fmt::format("no function named '{}'", name), version);
}

Response Provider::put_image(const Request& req, const std::string& name) {
  const unsigned version = req.version();
  if (auto bad = image_name_problem(name)) return json_error(400, *bad, version);
  const auto& bytes = req.body();
  // Checked as `unifnd run` checks an image before it is accepted: a function ELF it can load.
  try {
    vmm::FunctionImage::from_bytes(name, std::vector<std::uint8_t>(bytes.begin(), bytes.end()));
  } catch (const std::exception& e) {
    return json_error(400, fmt::format("image '{}' is refused: {}", name, e.what()), version);
  }
  const auto path = (fs::path(images_dir_) / name).string();
  std::lock_guard lock(write_mu_);
  config::write_file_atomically(path, bytes, 0600);
  return json_response(201, Json{{"image", name}, {"bytes", bytes.size()}}, version);
}

void Provider::logs(const Request& req, std::string_view query, Reply reply,
                    const std::shared_ptr<runtime::CancelToken>& cancelled, bool may_hold) {
  const unsigned version = req.version();
  if (req.method() != bhttp::verb::get && req.method() != bhttp::verb::head) {
    auto r = json_error(
        405, fmt::format("{} is not allowed on /system/logs", std::string(req.method_string())),
        version);
    set_field(r, bhttp::field::allow, "GET, HEAD");
    return reply(std::move(r));
  }
  const auto name = url_decode(query_param(query, "name").value_or(""));
  if (name.empty()) return reply(json_error(400, "/system/logs needs ?name=FUNCTION", version));
  if (auto ns = query_param(query, "namespace"); ns && !ns->empty() && *ns != kNamespace)
    return reply(json_error(
        404, fmt::format("no namespace '{}' (there is {})", url_decode(*ns), kNamespace), version));
  std::optional<std::chrono::system_clock::time_point> since;
  if (auto v = query_param(query, "since"); v && !v->empty()) {
    since = parse_rfc3339(url_decode(*v));
    if (!since)
      return reply(json_error(
          400, fmt::format("since '{}' is not an RFC 3339 time", url_decode(*v)), version));
  }
  std::optional<std::size_t> tail;
  if (auto v = query_param(query, "tail"); v && !v->empty()) {
    long long n = 0;
    auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
    if (ec != std::errc() || p != v->data() + v->size())
      return reply(json_error(400, fmt::format("tail '{}' is not a whole number", *v), version));
    if (n >= 0) tail = static_cast<std::size_t>(n);  // negative: all, as faas-cli's -1
  }
  const auto follow_v = query_param(query, "follow").value_or("");
  const bool follow = may_hold && (follow_v == "true" || follow_v == "1");
  const auto set = current();
  const bool known = std::any_of(set.functions.begin(), set.functions.end(),
                                 [&](const config::FunctionConfig& f) { return f.name == name; });
  if (!logs_ || (!known && logs_->lines(name, std::nullopt, std::nullopt).empty()))
    return reply(json_error(404, fmt::format("no function named '{}'", name), version));
  const auto mark = logs_->last_seq();
  auto lines = logs_->lines(name, since, tail);
  if (!follow || !lines.empty()) return reply(ndjson_response(lines, version));
  // Held open until the function writes its next lines (or its client goes away).
  auto shared = std::make_shared<Reply>(std::move(reply));
  auto id = logs_->follow(name, mark, [shared, version](std::vector<LogLine> next) {
    (*shared)(ndjson_response(next, version));
  });
  if (!id)
    return (*shared)(json_error(429, "too many clients follow logs now; try again later", version));
  if (cancelled && *id) cancelled->on_cancel([logs = logs_, n = *id] { logs->forget(n); });
}

void Provider::decorate(Json& doc, const config::DropinSet& set) const {
  doc["namespace"] = kNamespace;
  const auto name = doc.value("name", std::string());
  for (const auto& f : set.functions) {
    if (f.name != name) continue;
    for (const auto& [k, v] : f.meta.labels) doc["labels"][k] = v;
    for (const auto& [k, v] : f.meta.annotations) doc["annotations"][k] = v;
    if (managed(f)) doc["image"] = fs::path(f.vm.image).filename().string();
    std::error_code ec;
    const auto t = fs::last_write_time(f.source, ec);
    if (!ec) doc["createdAt"] = rfc3339(t);
    doc["limits"] = {{"memory", fmt::format("{}Mi", f.vm.memory_mb)}};
  }
}

}  // namespace unifn::http::provider
