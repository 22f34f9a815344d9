// The API's JSON documents: text the daemon did not write (a guest's error and content type, a
// client's path and header, an operator's names) always comes out as valid JSON, read back intact.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "test/unit/http/fakes.h"
#include "src/http/json.h"

using namespace unifn;
using namespace unifn::test;
using http::bhttp::verb;

namespace {

// The document in text; nlohmann's parser throws on anything that is not JSON, invalid UTF-8
// included.
nlohmann::json parsed(const std::string& text) { return nlohmann::json::parse(text); }

}  // namespace

TEST_CASE(
    "json_text escapes quotes, backslashes and control bytes, keeps UTF-8, and writes U+FFFD for "
    "the rest") {
  CHECK(http::json_text(kForeignText) ==
        "\"say \\\"hi\\\"\\\\ \\n\\r\\t\\u0001\\u001f\x7f nul\\u0000 caf\xc3\xa9 \xef\xbf\xbd "
        "\xef\xbf\xbd "
        "\xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd end\"");
  CHECK(parsed(http::json_text(kForeignText)) == kForeignTextRead);
  // Bytes that are not UTF-8 as a key, too.
  CHECK(parsed(http::json_text({{kForeignText, 1}})).at(kForeignTextRead) == 1);
  CHECK(http::json_error_text("no \"x\"") == R"({"error":"no \"x\""})");
  // Keys in the order they were set, as OpenFaaS's examples show them.
  CHECK(http::json_text({{"b", 1}, {"a", {{"d", true}, {"c", nullptr}}}}) ==
        R"({"b":1,"a":{"d":true,"c":null}})");
}

TEST_CASE(
    "a guest's error with foreign bytes is valid JSON in the answer, the async call's status and "
    "its raw result") {
  ApiFixture f;
  f.dispatcher.results["fail"] = failed(runtime::CallOutcome::Failed, kForeignText);
  auto r = f.call(verb::post, "/function/fail");
  CHECK(r.result_int() == 502);
  CHECK(header(r, "Content-Type") == "application/json");
  CHECK(parsed(r.body()) == nlohmann::json{{"error", kForeignTextRead}});

  auto a = f.call(verb::post, "/async-function/fail", "", {{"X-Call-Id", "foreign-1"}});
  CHECK(a.result_int() == 202);
  auto st = f.call(verb::get, "/v1/calls/foreign-1");
  CHECK(st.result_int() == 200);
  auto doc = parsed(st.body());
  CHECK(doc.at("state") == "done");
  CHECK(doc.at("status") == 502);
  CHECK(doc.at("error") == kForeignTextRead);
  auto raw = f.call(verb::get, "/v1/calls/foreign-1?result=raw");
  CHECK(raw.result_int() == 502);
  CHECK(parsed(raw.body()) == nlohmann::json{{"error", kForeignTextRead}});
}

TEST_CASE(
    "a guest's content type with bytes that are not UTF-8 is valid JSON in the async call's "
    "status") {
  ApiFixture f;
  // A field value may hold obs-text (0x80-0xFF), so this content type is a valid header and is
  // kept.
  const std::string type = "text/\"plain\"; charset=\xff\xfe";
  CHECK(f.call(verb::post, "/async-function/echo", "hi",
               {{"X-Call-Id", "typed"}, {"Content-Type", type}})
            .result_int() == 202);
  auto doc = parsed(f.call(verb::get, "/v1/calls/typed").body());
  CHECK(doc.at("status") == 200);
  CHECK(doc.at("content_type") == "text/\"plain\"; charset=\xef\xbf\xbd\xef\xbf\xbd");
  CHECK(doc.at("body_base64") == "aGk=");
  // The duration, a number to the microsecond (the fake's calls take 1.5 ms).
  CHECK(doc.at("duration_seconds") == 0.0015);
}

TEST_CASE(
    "a client's function name, call id and callback URL are valid JSON in the errors that quote "
    "them") {
  ApiFixture f;
  auto name = f.call(verb::post, "/function/" + kForeignText);
  CHECK(name.result_int() == 404);
  CHECK(parsed(name.body()) ==
        nlohmann::json{{"error", "no function named '" + kForeignTextRead + "'"}});

  auto id = f.call(verb::get, "/v1/calls/" + kForeignText);
  CHECK(id.result_int() == 404);
  CHECK(parsed(id.body()).at("error") ==
        "no call with id '" + kForeignTextRead + "' (unknown, or its result expired)");

  // A header value: no CR or LF, which Beast's parser refuses from a socket.
  auto cb = f.call(verb::post, "/async-function/echo", "", {{"X-Callback-Url", "\"\\\x01\xff"}});
  CHECK(cb.result_int() == 400);
  CHECK(parsed(cb.body()).at("error") ==
        "X-Callback-Url '\"\\\x01\xef\xbf\xbd' is not an http://host[:port]/path URL");
}

TEST_CASE(
    "an operator's function name and image with foreign bytes are valid JSON in "
    "/system/functions") {
  ApiFixture f;
  f.dispatcher.add(kForeignText);
  auto list = parsed(f.call(verb::get, "/system/functions").body());
  REQUIRE(list.is_array());
  REQUIRE(list.size() == 5);
  CHECK(list.back().at("name") == kForeignTextRead);
  CHECK(list.back().at("image") == "/usr/lib/unifn/functions/" + kForeignTextRead + ".elf");
  CHECK(list.back().at("envVars") == nlohmann::json{{"MODEL", "(hidden)"}, {"QUOTE", "(hidden)"}});
  CHECK(list.back().at("replicas") == 3);
}
