// The provider API's writes and extras (faas-provider): deploy, update, delete, scale, images,
// namespaces, and basic auth over /system/*.
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "src/config/config.h"
#include "src/http/api.h"
#include "src/http/json.h"
#include "src/http/provider/log_ring.h"
#include "src/runtime/cancel_token.h"

namespace unifn::http::provider {

struct Credentials {
  std::string user, password;
};
// basic-auth-user and basic-auth-password in settings.credentials_dir, else in
// $CREDENTIALS_DIRECTORY: nullopt when neither has them; throws std::runtime_error naming the file
// when only one is there or one cannot be read. A trailing newline is not part of the value.
std::optional<Credentials> load_credentials(const config::ProviderSettings& settings);

// Why the daemon must not start: a non-loopback address, no credentials, and no
// provider.allow_unauthenticated; nullopt when it may.
std::optional<std::string> exposure_problem(const config::DaemonConfig& d, bool has_credentials);

class Provider {
 public:
  // daemon: its functions_dirs end with provider_functions_dir(daemon). reload: what SIGHUP does
  // (the daemon raises it; tests count), called after every change written.
  // logs: the ring GET /system/logs reads (none: the route answers 404 for every function).
  Provider(config::DaemonConfig daemon, std::optional<Credentials> credentials,
           std::function<void()> reload, LogRing* logs = nullptr);

  // False when credentials are set and the request's Authorization is not them.
  bool authorized(const Request& req) const;
  // 401 with WWW-Authenticate.
  static Response unauthorized(unsigned version);

  // The answer for a /system/* route this class serves; nullopt for the others (Api's).
  std::optional<Response> route(Request& req, std::string_view path, std::string_view query);

  // The drop-ins as the daemon would load them now.
  config::DropinSet current() const;
  // GET /system/logs?name=&since=&tail=&follow=: NDJSON log messages (name, namespace, instance,
  // timestamp, text) from the ring. follow: held open until the function has lines after those
  // selected (when none are), then answered; the client's going away forgets it.
  // may_hold false (the daemon is stopping): follow answers at once.
  void logs(const Request& req, std::string_view query, Reply reply,
            const std::shared_ptr<runtime::CancelToken>& cancelled, bool may_hold = true);

  // Answers the held follow requests (with no lines): the daemon is stopping.
  void stop_following() {
    if (logs_) logs_->release_all();
  }

  // What the drop-ins (set: current()) add to a FunctionStatus document: namespace, labels,
  // annotations, createdAt (the drop-in's time), limits, and the image as deployed.
  void decorate(Json& doc, const config::DropinSet& set) const;

 private:
  Response deploy(const Request& req, bool update);
  Response remove(const Request& req);
  Response scale(const Request& req, const std::string& name);
  Response put_image(const Request& req, const std::string& name);
  // The file the API writes for a function.
  std::string managed_file(const std::string& name) const;
  bool managed(const config::FunctionConfig& f) const;

  const config::DaemonConfig daemon_;
  const std::string managed_dir_, images_dir_;
  const std::optional<Credentials> credentials_;
  const std::function<void()> reload_;
  LogRing* const logs_;
  std::mutex write_mu_;  // one change at a time: check, write, reload
};

}  // namespace unifn::http::provider
