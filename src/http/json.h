// A small JSON writer and string escaper for the API's answers (no JSON library is available).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace unifn::http {

// The text of s as the inside of a JSON string: quotes, backslashes and control characters are
// escaped, valid UTF-8 is kept as it is, and bytes that are not valid UTF-8 become U+FFFD, so
// that whatever a guest or a client sent, the document stays valid JSON.
std::string json_escape(std::string_view s);

// s quoted and escaped: "...".
std::string json_quote(std::string_view s);

// Builds one JSON document; commas and nesting are tracked, so callers only say what comes next.
class JsonWriter {
 public:
  JsonWriter& begin_object();
  JsonWriter& end_object();
  JsonWriter& begin_array();
  JsonWriter& end_array();
  JsonWriter& key(std::string_view k);
  JsonWriter& value(std::string_view v);
  JsonWriter& value(const char* v) { return value(std::string_view(v)); }
  JsonWriter& value(const std::string& v) { return value(std::string_view(v)); }
  JsonWriter& value(bool v);
  JsonWriter& value(std::int64_t v);
  JsonWriter& value(std::uint64_t v);
  JsonWriter& value(int v) { return value(static_cast<std::int64_t>(v)); }
  JsonWriter& value(unsigned v) { return value(static_cast<std::uint64_t>(v)); }
  JsonWriter& value(double v);  // NaN and infinities, which JSON lacks, are written as null
  JsonWriter& null();
  // A value already rendered as JSON by the caller.
  JsonWriter& raw(std::string_view json);

  const std::string& str() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void before_value();
  std::string out_;
  std::vector<bool> first_;  // per open container: nothing written in it yet
  bool after_key_ = false;
};

// Standard base64 (RFC 4648, with padding), for result bodies inside JSON.
std::string base64_encode(std::string_view in);

}  // namespace unifn::http
