// The provider API without a socket: deploy, update, delete, scale, images, namespaces, basic auth.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>

#include <nlohmann/json.hpp>

#include "src/config/provider_state.h"
#include "src/http/json.h"
#include "src/http/provider/deployment.h"
#include "src/http/provider/provider.h"
#include "test/support/temp_dir.h"
#include "test/unit/http/fakes.h"

using namespace unifn;
using namespace unifn::test;
using http::Json;
using http::bhttp::verb;
namespace fs = std::filesystem;

namespace {

std::string file_text(const fs::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// A daemon's directories in a temporary folder: a hand-written drop-in folder, then the API's;
// images/ under the state directory holding an ELF image and a file that is not one.
struct ProviderFixture : ApiFixture {
  TempDir dir{"unifn-provider"};
  config::DaemonConfig daemon = [this] {
    config::DaemonConfig d;
    d.state_dir = (dir / "state").string();
    d.functions_dirs = {(dir / "hand").string(), config::provider_functions_dir(d)};
    return d;
  }();
  std::atomic<int> reloads{0};
  std::optional<http::provider::Provider> provider;

  http::provider::LogRing ring{3};

  explicit ProviderFixture(std::optional<http::provider::Credentials> creds = std::nullopt) {
    fs::create_directories(dir / "hand");
    fs::create_directories(config::images_directory(daemon));
    fs::copy_file(fs::path(UNIFN_FUNCTIONS_DIR) / "echo.elf", image("echo.elf"));
    std::ofstream(image("text.elf")) << "#!/bin/sh\necho not an ELF\n";
    provider.emplace(
        daemon, std::move(creds), [this] { ++reloads; }, &ring);
    api.set_provider(&*provider);
  }
  fs::path image(const std::string& name) const {
    return fs::path(config::images_directory(daemon)) / name;
  }
  fs::path managed(const std::string& name) const {
    return fs::path(config::provider_functions_dir(daemon)) / (name + ".yaml");
  }
  void hand_written(const std::string& file, const std::string& name) {
    std::ofstream(dir / "hand" / file)
        << "name: " << name << "\nimage: " << image("echo.elf").string() << "\n";
  }
  http::Response send(verb method, const std::string& target, const Json& body) {
    return call(method, target, body.dump());
  }
  // Every file the API may have written, with its text: "nothing half-written" is this unchanged.
  std::map<std::string, std::string> written() const {
    std::map<std::string, std::string> out;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(daemon.state_dir, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
      if (it->is_regular_file()) out[it->path().string()] = file_text(it->path());
    return out;
  }
};

Json body_of(const http::Response& r) { return Json::parse(r.body()); }

Json echo_deployment(const std::string& name = "greeter") {
  return {{"service", name}, {"image", "echo.elf"}};
}

}  // namespace

TEST_CASE("a deployment with every field maps onto a drop-in, and unknown fields are ignored") {
  ProviderFixture f;
  const Json body = {
      {"service", "greeter"},
      {"image", "echo.elf"},
      {"namespace", "openfaas-fn"},
      {"envProcess", "node index.js"},
      {"envVars", {{"GREETING", "hello"}, {"LEVEL", "2"}}},
      {"constraints", {"node.platform.os == linux"}},
      {"secrets", {"api-key"}},
      {"labels",
       {{"com.openfaas.scale.min", "2"}, {"com.openfaas.scale.max", "5"}, {"team", "edge"}}},
      {"annotations",
       {{"unifn.isolation", "reuse"}, {"unifn.timeout_ms", "1234"}, {"topic", "greetings"}}},
      {"limits", {{"memory", "96Mi"}, {"cpu", "500m"}, {"nvidia.com/gpu", 1}}},
      {"requests", {{"memory", "32Mi"}, {"cpu", "100m"}}},
      {"readOnlyRootFilesystem", true},
      {"somethingNew", {{"nested", 1}}}};
  auto r = f.send(verb::post, "/system/functions", body);
  INFO(r.body());
  REQUIRE(r.result_int() == 202);
  CHECK(body_of(r)["name"] == "greeter");
  CHECK(f.reloads == 1);

  const auto fn = config::load_function(f.managed("greeter"));
  CHECK(fn.name == "greeter");
  CHECK(fn.vm.image == f.image("echo.elf").string());
  CHECK(fn.vm.memory_mb == 96);
  CHECK(fn.vm.accel == std::vector<std::string>{"cuda", "cpu"});
  CHECK(fn.vm.env ==
        std::vector<std::pair<std::string, std::string>>{{"GREETING", "hello"}, {"LEVEL", "2"}});
  CHECK(fn.pool.min_warm == 2);
  CHECK(fn.pool.max_instances == 5);
  CHECK(fn.pool.isolation == "reuse");
  CHECK(fn.pool.timeout_ms == 1234);
  CHECK(fn.meta.labels ==
        std::vector<std::pair<std::string, std::string>>{
            {"com.openfaas.scale.min", "2"}, {"com.openfaas.scale.max", "5"}, {"team", "edge"}});
  CHECK(fn.meta.annotations.size() == 3);
  // The file is what check-config checks: the whole set passes.
  CHECK(config::validate_strict(config::load_full(f.daemon)).empty());

  // unifn.accel names the backends itself, over a GPU key.
  auto a = echo_deployment("cpu-only");
  a["annotations"] = {{"unifn.accel", "cpu"}};
  a["limits"] = {{"nvidia.com/gpu", "1"}};
  REQUIRE(f.send(verb::post, "/system/functions", a).result_int() == 202);
  CHECK(config::load_function(f.managed("cpu-only")).vm.accel == std::vector<std::string>{"cpu"});
}

TEST_CASE("Kubernetes memory quantities become MiB, rounded up") {
  using http::provider::quantity_mib;
  CHECK(quantity_mib("64Mi") == 64u);
  CHECK(quantity_mib("1Gi") == 1024u);
  CHECK(quantity_mib("128M") == 123u);  // 128e6 bytes
  CHECK(quantity_mib("67108864") == 64u);
  CHECK(quantity_mib("1Ki") == 1u);
  CHECK_FALSE(quantity_mib("64MB"));
  CHECK_FALSE(quantity_mib("lots"));
  CHECK_FALSE(quantity_mib(""));
  CHECK_FALSE(quantity_mib("-1Mi"));
}

TEST_CASE("bad deployments get a clear 400 (or 404 for a namespace) and nothing is written") {
  ProviderFixture f;
  const auto before = f.written();
  struct Case {
    Json body;
    unsigned status;
    std::string says;
  };
  auto with = [](Json j, const std::string& key, Json v) {
    j[key] = std::move(v);
    return j;
  };
  const Case cases[] = {
      {with(echo_deployment(), "service", 7), 400, "service must be a string"},
      {Json{{"image", "echo.elf"}}, 400, "service is required"},
      {Json{{"service", "greeter"}}, 400, "image is required"},
      {with(echo_deployment(), "envVars", Json::array({"A=b"})), 400,
       "envVars must be an object of strings"},
      {with(echo_deployment(), "labels", {{"com.openfaas.scale.min", 2}}), 400,
       "labels.com.openfaas.scale.min must be a string"},
      {with(echo_deployment(), "secrets", "api-key"), 400, "secrets must be an array of strings"},
      {with(echo_deployment(), "readOnlyRootFilesystem", "yes"), 400,
       "readOnlyRootFilesystem must be true or false"},
      {echo_deployment("Greeter"), 400, "is not a DNS label"},
      {echo_deployment("under_score"), 400, "is not a DNS label"},
      {echo_deployment("-dash"), 400, "is not a DNS label"},
      {echo_deployment(std::string(64, 'a')), 400, "is not a DNS label"},
      {with(echo_deployment(), "image", "../images/echo.elf"), 400, "without '/' or '..'"},
      {with(echo_deployment(), "image", "/bin/true"), 400, "without '/' or '..'"},
      {with(echo_deployment(), "image", ".."), 400, "without '/' or '..'"},
      {with(echo_deployment(), "image", "missing.elf"), 400, "does not exist"},
      {with(echo_deployment(), "image", "text.elf"), 400, "is not an ELF image"},
      {with(echo_deployment(), "limits", {{"memory", "lots"}}), 400,
       "limits.memory 'lots' is not a Kubernetes quantity"},
      {with(echo_deployment(), "namespace", "kube-system"), 404, "no namespace 'kube-system'"},
  };
  for (const auto& c : cases) {
    INFO(c.body.dump());
    auto r = f.send(verb::post, "/system/functions", c.body);
    CHECK(r.result_int() == c.status);
    CHECK_THAT(body_of(r)["error"].get<std::string>(), Catch::Contains(c.says));
  }
  // Not JSON at all.
  auto r = f.call(verb::post, "/system/functions", "{service: greeter");
  CHECK(r.result_int() == 400);
  CHECK_THAT(body_of(r)["error"].get<std::string>(), Catch::Contains("the body is not JSON"));
  CHECK(f.reloads == 0);
  CHECK(f.written() == before);
}

TEST_CASE("a deployment is validated as a file is: the file's own sentences, naming its file") {
  ProviderFixture f;
  auto body = echo_deployment();
  body["labels"] = {{"com.openfaas.scale.min", "many"}, {"com.openfaas.scale.max", "9999"}};
  body["annotations"] = {{"unifn.isolation", "maybe"}};
  body["limits"] = {{"memory", "1Mi"}};
  auto r = f.send(verb::post, "/system/functions", body);
  REQUIRE(r.result_int() == 400);
  const auto errors = body_of(r)["errors"];
  const auto file = f.managed("greeter").string();
  std::string all;
  for (const auto& e : errors) all += e.get<std::string>() + "\n";
  INFO(all);
  CHECK(errors.size() == 4);
  CHECK_THAT(all, Catch::Contains(file + ":4: memory_mb: 1 is out of range (8 to 3072)"));
  CHECK_THAT(all, Catch::Contains("min_warm: 'many' is not a whole number (0 to 256)"));
  CHECK_THAT(all, Catch::Contains("max_instances: 9999 is out of range (1 to 256)"));
  CHECK_THAT(all, Catch::Contains("isolation: 'maybe' is not an isolation mode"));
  CHECK(body_of(r)["error"] == errors[0]);
  CHECK_FALSE(fs::exists(f.managed("greeter")));
  CHECK(f.reloads == 0);
  // No check file is left behind either.
  CHECK(fs::directory_iterator(config::provider_functions_dir(f.daemon)) ==
        fs::directory_iterator());
}

TEST_CASE("POST deploys once, PUT updates, DELETE removes, and each reloads") {
  ProviderFixture f;
  CHECK(f.send(verb::put, "/system/functions", echo_deployment()).result_int() == 404);
  REQUIRE(f.send(verb::post, "/system/functions", echo_deployment()).result_int() == 202);
  auto again = f.send(verb::post, "/system/functions", echo_deployment());
  CHECK(again.result_int() == 409);
  CHECK_THAT(body_of(again)["error"].get<std::string>(), Catch::Contains("PUT"));

  auto changed = echo_deployment();
  changed["limits"] = {{"memory", "128Mi"}};
  CHECK(f.send(verb::put, "/system/functions", changed).result_int() == 202);
  CHECK(config::load_function(f.managed("greeter")).vm.memory_mb == 128);
  CHECK(f.reloads == 2);

  CHECK(
      f.send(verb::delete_, "/system/functions", Json{{"functionName", "greeter"}}).result_int() ==
      202);
  CHECK_FALSE(fs::exists(f.managed("greeter")));
  CHECK(f.reloads == 3);
  CHECK(
      f.send(verb::delete_, "/system/functions", Json{{"functionName", "greeter"}}).result_int() ==
      404);
  CHECK(f.send(verb::delete_, "/system/functions", Json{{"name", "greeter"}}).result_int() == 400);
  CHECK(f.send(verb::delete_, "/system/functions",
               Json{{"functionName", "greeter"}, {"namespace", "other"}})
            .result_int() == 404);
  CHECK(f.reloads == 3);
}

TEST_CASE("functions written by hand are never changed by the API: 409 with the reason") {
  ProviderFixture f;
  f.hand_written("10-hand.yaml", "hand");
  f.hand_written("greeter.yaml", "other-name");
  const auto before = f.written();

  auto r = f.send(verb::post, "/system/functions", echo_deployment("hand"));
  CHECK(r.result_int() == 409);
  CHECK_THAT(body_of(r)["error"].get<std::string>(),
             Catch::Contains("10-hand.yaml, written by hand"));
  CHECK(f.send(verb::put, "/system/functions", echo_deployment("hand")).result_int() == 409);
  r = f.send(verb::delete_, "/system/functions", Json{{"functionName", "hand"}});
  CHECK(r.result_int() == 409);
  CHECK_THAT(body_of(r)["error"].get<std::string>(), Catch::Contains("does not remove it"));
  // Our greeter.yaml would replace the hand-written file of that name in the later directory.
  r = f.send(verb::post, "/system/functions", echo_deployment("greeter"));
  CHECK(r.result_int() == 409);
  CHECK_THAT(body_of(r)["error"].get<std::string>(), Catch::Contains("same file name"));
  CHECK(f.written() == before);
  CHECK(f.reloads == 0);
}

TEST_CASE("a deployment that would break the set is refused, the set left as it was") {
  ProviderFixture f;
  // A hand-written file broken since the last reload: a reload would be refused, so is the deploy.
  std::ofstream(f.dir / "hand" / "20-broken.yaml") << "name: broken\nimage: /nonexistent.elf\n";
  auto r = f.send(verb::post, "/system/functions", echo_deployment());
  CHECK(r.result_int() == 400);
  CHECK_THAT(body_of(r)["error"].get<std::string>(), Catch::Contains("/nonexistent.elf"));
  CHECK_FALSE(fs::exists(f.managed("greeter")));
  CHECK(f.reloads == 0);
}

TEST_CASE("racing deploys of one name: one wins, the other gets 409, and files stay whole") {
  ProviderFixture f;
  std::vector<std::future<unsigned>> same, different;
  for (int i = 0; i < 8; ++i) {
    same.push_back(std::async(std::launch::async, [&] {
      return f.send(verb::post, "/system/functions", echo_deployment("racer")).result_int();
    }));
    different.push_back(std::async(std::launch::async, [&, i] {
      auto b = echo_deployment("fn-" + std::to_string(i));
      b["envVars"] = {{"I", std::to_string(i)}};
      return f.send(verb::post, "/system/functions", b).result_int();
    }));
  }
  int won = 0, refused = 0;
  for (auto& s : same) (s.get() == 202 ? won : refused)++;
  CHECK(won == 1);
  CHECK(refused == 7);
  for (int i = 0; i < 8; ++i) {
    CHECK(different[i].get() == 202);
    const auto fn = config::load_function(f.managed("fn-" + std::to_string(i)));
    CHECK(fn.vm.env == std::vector<std::pair<std::string, std::string>>{{"I", std::to_string(i)}});
  }
  CHECK(f.reloads == 9);
  CHECK(config::validate_strict(config::load_full(f.daemon)).empty());
}

TEST_CASE("scale-function keeps warm instances in the state directory, 0 included") {
  ProviderFixture f;
  f.hand_written("10-hand.yaml", "hand");  // max_instances 4 by default
  auto r = f.send(verb::post, "/system/scale-function/hand",
                  Json{{"serviceName", "hand"}, {"replicas", 3}});
  CHECK(r.result_int() == 202);
  CHECK(config::load_scales(f.daemon) == std::map<std::string, std::uint64_t>{{"hand", 3}});
  CHECK(f.send(verb::post, "/system/scale-function/hand", Json{{"replicas", 0}}).result_int() ==
        202);
  CHECK(config::load_scales(f.daemon) == std::map<std::string, std::uint64_t>{{"hand", 0}});
  CHECK(f.reloads == 2);

  auto fn = config::load_function(f.dir / "hand" / "10-hand.yaml");
  config::apply_scale(fn, config::load_scales(f.daemon));
  CHECK(fn.pool.min_warm == 0);

  CHECK(f.send(verb::post, "/system/scale-function/hand", Json{{"replicas", 5}}).result_int() ==
        400);
  CHECK(f.send(verb::post, "/system/scale-function/hand", Json{{"replicas", -1}}).result_int() ==
        400);
  CHECK(f.send(verb::post, "/system/scale-function/hand", Json{{"replicas", "2"}}).result_int() ==
        400);
  CHECK(f.send(verb::post, "/system/scale-function/hand",
               Json{{"serviceName", "other"}, {"replicas", 1}})
            .result_int() == 400);
  CHECK(f.send(verb::post, "/system/scale-function/nobody", Json{{"replicas", 1}}).result_int() ==
        404);
  CHECK(f.call(verb::get, "/system/scale-function/hand").result_int() == 405);
  CHECK(config::load_scales(f.daemon) == std::map<std::string, std::uint64_t>{{"hand", 0}});
  CHECK(f.reloads == 2);

  // Deleting a deployed function forgets its scale.
  REQUIRE(f.send(verb::post, "/system/functions", echo_deployment()).result_int() == 202);
  CHECK(f.send(verb::post, "/system/scale-function/greeter", Json{{"replicas", 2}}).result_int() ==
        202);
  CHECK(
      f.send(verb::delete_, "/system/functions", Json{{"functionName", "greeter"}}).result_int() ==
      202);
  CHECK(config::load_scales(f.daemon) == std::map<std::string, std::uint64_t>{{"hand", 0}});
}

TEST_CASE("PUT /system/images/{name} takes a function ELF, whole, and refuses the rest") {
  ProviderFixture f;
  const auto elf = file_text(fs::path(UNIFN_FUNCTIONS_DIR) / "hello.elf");
  auto r = f.call(verb::put, "/system/images/hello.elf", elf);
  INFO(r.body());
  CHECK(r.result_int() == 201);
  CHECK(file_text(f.image("hello.elf")) == elf);
  // Deployable at once.
  auto b = echo_deployment();
  b["image"] = "hello.elf";
  CHECK(f.send(verb::post, "/system/functions", b).result_int() == 202);

  const auto before = f.written();
  CHECK(f.call(verb::put, "/system/images/notes.elf", "just text").result_int() == 400);
  CHECK(f.call(verb::put, "/system/images/half.elf", elf.substr(0, 100)).result_int() == 400);
  CHECK(f.call(verb::put, "/system/images/a/b.elf", elf).result_int() == 400);
  CHECK(f.call(verb::put, "/system/images/..", elf).result_int() == 400);
  CHECK(f.call(verb::put, "/system/images/x..elf", elf).result_int() == 400);
  CHECK(f.call(verb::put, "/system/images/", elf).result_int() == 400);
  CHECK(f.call(verb::post, "/system/images/hello.elf", elf).result_int() == 405);
  CHECK(f.written() == before);
  CHECK_FALSE(fs::exists(f.dir / "b.elf"));
}

TEST_CASE("status documents show the deployment back: namespace, labels, annotations, createdAt") {
  ProviderFixture f;
  f.dispatcher.add("greeter");
  auto body = echo_deployment();
  body["labels"] = {{"team", "edge"}};
  body["annotations"] = {{"topic", "greetings"}};
  body["limits"] = {{"memory", "96Mi"}};
  REQUIRE(f.send(verb::post, "/system/functions", body).result_int() == 202);
  auto doc = body_of(f.call(verb::get, "/system/function/greeter"));
  INFO(doc.dump());
  CHECK(doc["name"] == "greeter");
  CHECK(doc["namespace"] == "openfaas-fn");
  CHECK(doc["image"] == "echo.elf");
  CHECK(doc["labels"]["team"] == "edge");
  CHECK(doc["annotations"]["topic"] == "greetings");
  CHECK(doc["limits"]["memory"] == "96Mi");
  CHECK(doc["createdAt"].get<std::string>().size() == 20);
  for (const char* count : {"invocationCount", "replicas", "availableReplicas"})
    CHECK(doc[count].is_number());
  auto list = body_of(f.call(verb::get, "/system/functions?namespace=openfaas-fn"));
  CHECK(std::any_of(list.begin(), list.end(), [](const Json& d) {
    return d["name"] == "greeter" && d["labels"]["team"] == "edge";
  }));
  CHECK(f.call(verb::get, "/system/functions?namespace=kube-system").result_int() == 404);
  CHECK(f.call(verb::get, "/system/function/greeter?namespace=other").result_int() == 404);
  CHECK(body_of(f.call(verb::get, "/system/namespaces")) == Json::array({"openfaas-fn"}));
  CHECK(f.call(verb::patch, "/system/functions").result_int() == 405);
}

TEST_CASE("basic auth guards /system/* when credentials exist, and /function/* stays open") {
  SECTION("credentials") {
    ProviderFixture f(http::provider::Credentials{"admin", "s3cret"});
    auto r = f.call(verb::get, "/system/functions");
    CHECK(r.result_int() == 401);
    CHECK(header(r, "WWW-Authenticate") == "Basic realm=\"unifn\"");
    const auto good = "Basic " + http::base64_encode("admin:s3cret");
    const auto bad = "Basic " + http::base64_encode("admin:s3cre");
    CHECK(f.call(verb::get, "/system/functions", {}, {{"Authorization", good}}).result_int() ==
          200);
    CHECK(f.call(verb::get, "/system/functions", {}, {{"Authorization", bad}}).result_int() == 401);
    CHECK(f.call(verb::get, "/system/info").result_int() == 401);
    CHECK(f.send(verb::post, "/system/functions", echo_deployment()).result_int() == 401);
    CHECK_FALSE(fs::exists(f.managed("greeter")));
    CHECK(
        f.call(verb::post, "/system/functions", echo_deployment().dump(), {{"Authorization", good}})
            .result_int() == 202);
    CHECK(f.call(verb::post, "/function/echo", "hi").result_int() == 200);
    CHECK(f.call(verb::get, "/healthz").result_int() == 200);
  }
  SECTION("none") {
    ProviderFixture f;
    CHECK(f.call(verb::get, "/system/functions").result_int() == 200);
    CHECK(f.call(verb::get, "/system/info").result_int() == 200);
  }
}

TEST_CASE(
    "credentials are read from files as OpenFaaS reads them, and an open remote listener is "
    "refused") {
  TempDir d;
  config::ProviderSettings s;
  s.credentials_dir = d.str();
  CHECK_FALSE(http::provider::load_credentials(s));
  d.write("basic-auth-user", "admin\n");
  CHECK_THROWS_WITH(http::provider::load_credentials(s), Catch::Contains("basic-auth-password"));
  d.write("basic-auth-password", "s3cret\n");
  auto c = http::provider::load_credentials(s);
  REQUIRE(c);
  CHECK(c->user == "admin");
  CHECK(c->password == "s3cret");

  config::DaemonConfig daemon;
  daemon.host = "127.0.0.1";
  CHECK_FALSE(http::provider::exposure_problem(daemon, false));
  daemon.host = "0.0.0.0";
  auto why = http::provider::exposure_problem(daemon, false);
  REQUIRE(why);
  CHECK_THAT(*why, Catch::Contains("allow_unauthenticated"));
  CHECK_FALSE(http::provider::exposure_problem(daemon, true));
  daemon.provider.allow_unauthenticated = true;
  CHECK_FALSE(http::provider::exposure_problem(daemon, false));
}

namespace {

std::vector<Json> ndjson_lines(const std::string& body) {
  std::vector<Json> out;
  std::size_t at = 0;
  while (at < body.size()) {
    auto end = body.find('\n', at);
    REQUIRE(end != std::string::npos);  // every message ends with a newline
    out.push_back(Json::parse(body.substr(at, end - at)));
    at = end + 1;
  }
  return out;
}

}  // namespace

TEST_CASE("GET /system/logs answers a function's recent lines as NDJSON log messages") {
  ProviderFixture f;
  f.hand_written("10-hand.yaml", "hand");
  for (const char* text : {"one", "two", "three", "four"}) f.ring.add("hand", "call-1", text);
  f.ring.add("other", "-", "not hand's");

  auto r = f.call(verb::get, "/system/logs?name=hand");
  REQUIRE(r.result_int() == 200);
  CHECK(header(r, "Content-Type") == "application/x-ndjson");
  auto lines = ndjson_lines(r.body());
  REQUIRE(lines.size() == 3);  // the ring keeps 3 a function: "one" was dropped
  CHECK(lines[0]["text"] == "two");
  CHECK(lines[2]["text"] == "four");
  CHECK(lines[0]["name"] == "hand");
  CHECK(lines[0]["namespace"] == "openfaas-fn");
  CHECK(lines[0]["instance"] == "call-1");
  CHECK(lines[0]["timestamp"].get<std::string>().size() == 30);  // 2026-12-02T05:00:00.123456789Z

  lines = ndjson_lines(f.call(verb::get, "/system/logs?name=hand&tail=1").body());
  REQUIRE(lines.size() == 1);
  CHECK(lines[0]["text"] == "four");
  CHECK(ndjson_lines(f.call(verb::get, "/system/logs?name=hand&tail=-1").body()).size() == 3);
  // since, as Go's url.Values encodes it.
  CHECK(f.call(verb::get, "/system/logs?name=hand&since=2999-01-01T00%3A00%3A00Z").body().empty());
  CHECK(ndjson_lines(
            f.call(verb::get, "/system/logs?name=hand&since=2000-01-01T00:00:00.5%2B01:00").body())
            .size() == 3);

  CHECK(f.call(verb::get, "/system/logs").result_int() == 400);
  CHECK(f.call(verb::get, "/system/logs?name=hand&since=yesterday").result_int() == 400);
  CHECK(f.call(verb::get, "/system/logs?name=hand&tail=some").result_int() == 400);
  CHECK(f.call(verb::get, "/system/logs?name=nobody").result_int() == 404);
  CHECK(f.call(verb::get, "/system/logs?name=hand&namespace=other").result_int() == 404);
  CHECK(f.call(verb::post, "/system/logs?name=hand").result_int() == 405);
}

TEST_CASE("GET /system/logs with follow is held open until the function writes, then answered") {
  ProviderFixture f;
  f.hand_written("10-hand.yaml", "hand");
  f.ring.add("hand", "-", "before");
  auto p = std::make_shared<std::promise<http::Response>>();
  auto answer = p->get_future();
  auto cancelled = std::make_shared<runtime::CancelToken>();
  f.api.handle(
      http::Request{verb::get, "/system/logs?name=hand&tail=0&follow=true", 11},
      [p](http::Response r) { p->set_value(std::move(r)); }, cancelled);
  CHECK(answer.wait_for(200ms) == std::future_status::timeout);
  f.ring.add("other", "-", "someone else's line");
  CHECK(answer.wait_for(100ms) == std::future_status::timeout);
  f.ring.add("hand", "call-9", "after");
  REQUIRE(answer.wait_for(2s) == std::future_status::ready);
  auto lines = ndjson_lines(answer.get().body());
  REQUIRE(lines.size() == 1);
  CHECK(lines[0]["text"] == "after");
  CHECK(lines[0]["instance"] == "call-9");

  // A follower whose client went away is forgotten: the next line answers nobody.
  bool called = false;
  auto gone = std::make_shared<runtime::CancelToken>();
  f.api.handle(
      http::Request{verb::get, "/system/logs?name=hand&tail=0&follow=1", 11},
      [&](http::Response) { called = true; }, gone);
  gone->cancel();
  f.ring.add("hand", "-", "late");
  CHECK_FALSE(called);

  // Stopping answers a held follower at once, with no lines, and holds no new one.
  auto held = std::make_shared<std::promise<http::Response>>();
  auto released = held->get_future();
  f.api.handle(http::Request{verb::get, "/system/logs?name=hand&tail=0&follow=true", 11},
               [held](http::Response r) { held->set_value(std::move(r)); });
  CHECK(released.wait_for(100ms) == std::future_status::timeout);
  f.api.set_shutting_down();
  REQUIRE(released.wait_for(2s) == std::future_status::ready);
  auto r = released.get();
  CHECK(r.result_int() == 200);
  CHECK(r.body().empty());
  CHECK(f.call(verb::get, "/system/logs?name=hand&tail=0&follow=true").body().empty());
}

namespace {
// What the server's stream would send: the head, each piece pushed, whether it ended.
struct RecordedStream : http::BodyStream {
  std::mutex mu;
  std::vector<std::string> pieces;
  bool ended = false;
  bool push(std::string piece) override {
    std::lock_guard lock(mu);
    pieces.push_back(std::move(piece));
    return true;
  }
  void end() override {
    std::lock_guard lock(mu);
    ended = true;
  }
};
}  // namespace

TEST_CASE("GET /system/logs with follow and a stream: the selected lines, then each new one") {
  ProviderFixture f;
  f.hand_written("10-hand.yaml", "hand");
  for (const char* text : {"one", "two"}) f.ring.add("hand", "-", text);
  auto stream = std::make_shared<RecordedStream>();
  std::optional<http::Response> head;
  bool replied = false;
  auto cancelled = std::make_shared<runtime::CancelToken>();
  auto follow = [&](const std::string& target, std::shared_ptr<RecordedStream> into,
                    std::shared_ptr<runtime::CancelToken> token) {
    f.api.handle(
        http::Request{verb::get, target, 11}, [&](http::Response) { replied = true; },
        std::move(token),
        [&, into](http::Response h) -> std::shared_ptr<http::BodyStream> {
          head = std::move(h);
          return into;
        });
  };
  follow("/system/logs?name=hand&tail=1&follow=true", stream, cancelled);
  CHECK_FALSE(replied);
  REQUIRE(head);
  CHECK(head->result_int() == 200);
  CHECK(header(*head, "Content-Type") == "application/x-ndjson");
  REQUIRE(stream->pieces.size() == 1);
  CHECK(ndjson_lines(stream->pieces[0])[0]["text"] == "two");  // tail=1 of what was there

  f.ring.add("other", "-", "someone else's");
  for (const char* text : {"three", "four", "five"}) f.ring.add("hand", "call-7", text);
  REQUIRE(stream->pieces.size() == 4);  // each line its own piece, as it came, in order
  CHECK(ndjson_lines(stream->pieces[1])[0]["text"] == "three");
  CHECK(ndjson_lines(stream->pieces[3])[0]["text"] == "five");
  CHECK(ndjson_lines(stream->pieces[3])[0]["instance"] == "call-7");
  CHECK_FALSE(stream->ended);

  // The client goes away: forgotten, nothing more pushed.
  cancelled->cancel();
  f.ring.add("hand", "-", "six");
  CHECK(stream->pieces.size() == 4);

  // Stopping ends a stream at once.
  auto second = std::make_shared<RecordedStream>();
  follow("/system/logs?name=hand&tail=0&follow=true", second,
         std::make_shared<runtime::CancelToken>());
  CHECK(second->pieces.empty());
  CHECK_FALSE(second->ended);
  f.api.set_shutting_down();
  CHECK(second->ended);
  CHECK_FALSE(replied);
}

TEST_CASE("LogRing streams are bounded with the followers: past the bound, none is opened") {
  http::provider::LogRing ring{10, 1};
  int pushes = 0;
  auto push = [&](std::optional<std::vector<http::provider::LogLine>>) {
    ++pushes;
    return true;
  };
  auto first = ring.stream("fn", std::nullopt, std::nullopt, push);
  REQUIRE(first);
  CHECK(*first != 0);
  CHECK_FALSE(ring.stream("fn", std::nullopt, std::nullopt, push));  // the 429
  CHECK(pushes == 1);
  ring.forget(*first);
  CHECK(ring.stream("fn", std::nullopt, std::nullopt, push));
}
