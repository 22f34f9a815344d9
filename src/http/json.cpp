// Writing the API's JSON documents (nlohmann/json), and base64.
#include "src/http/json.h"

#include <nlohmann/json.hpp>

namespace unifn::http {

std::string json_text(const Json& doc) {
  return doc.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string json_error_text(std::string_view message) {
  return json_text(Json{{"error", std::string(message)}});
}

std::string base64_encode(std::string_view in) {
  static constexpr char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  auto byte = [&](std::size_t k) {
    return static_cast<unsigned>(static_cast<unsigned char>(in[k]));
  };
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], t[v & 63]};
  }
  if (in.size() - i == 1) {
    unsigned v = byte(i) << 16;
    out += {t[v >> 18], t[(v >> 12) & 63], '=', '='};
  } else if (in.size() - i == 2) {
    unsigned v = byte(i) << 16 | byte(i + 1) << 8;
    out += {t[v >> 18], t[(v >> 12) & 63], t[(v >> 6) & 63], '='};
  }
  return out;
}

}  // namespace unifn::http
