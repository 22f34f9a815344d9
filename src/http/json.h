// The API's JSON documents: nlohmann/json, with keys in the order they are set, written one way.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace unifn::http {

// A document whose object keys keep the order they were set in, as OpenFaaS's examples show them.
using Json = nlohmann::ordered_json;

// doc as compact text. Valid UTF-8 is kept as it is and bytes that are not valid UTF-8 (a guest's
// error, a client's name) become U+FFFD instead of throwing, so no document can fail to be written.
std::string json_text(const Json& doc);

// {"error":"..."}: every error the daemon answers or POSTs to a callback.
std::string json_error_text(std::string_view message);

// Standard base64 (RFC 4648, with padding), for result bodies inside JSON.
std::string base64_encode(std::string_view in);

}  // namespace unifn::http
