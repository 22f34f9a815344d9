// Header values and names checked against RFC 9110's grammar before they are written.
#include "src/http/header.h"

#include <fmt/format.h>

namespace unifn::http {

namespace {

bool is_ctl(unsigned char c) { return (c < 0x20 && c != '\t') || c == 0x7F; }

bool is_tchar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  for (char t : std::string_view("!#$%&'*+-.^_`|~"))
    if (c == static_cast<unsigned char>(t)) return true;
  return false;
}

std::size_t first_ctl(std::string_view v) {
  for (std::size_t i = 0; i < v.size(); ++i)
    if (is_ctl(static_cast<unsigned char>(v[i]))) return i;
  return std::string_view::npos;
}

// Beast 1.74 takes boost::string_view.
boost::beast::string_view bsv(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace

bool valid_field_value(std::string_view value) {
  return first_ctl(value) == std::string_view::npos;
}

bool valid_field_name(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name)
    if (!is_tchar(static_cast<unsigned char>(c))) return false;
  return true;
}

std::optional<std::string> field_value_problem(std::string_view value) {
  auto at = first_ctl(value);
  if (at == std::string_view::npos) return std::nullopt;
  return fmt::format("byte {:#04x} at offset {}", static_cast<unsigned char>(value[at]), at);
}

std::string_view trim_ows(std::string_view value) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  return value;
}

bool set_field(boost::beast::http::fields& fields, boost::beast::http::field name,
               std::string_view value) {
  value = trim_ows(value);
  if (name == boost::beast::http::field::unknown || !valid_field_value(value)) return false;
  fields.set(name, bsv(value));
  return true;
}

bool set_field(boost::beast::http::fields& fields, std::string_view name, std::string_view value) {
  value = trim_ows(value);
  if (!valid_field_name(name) || !valid_field_value(value)) return false;
  fields.set(bsv(name), bsv(value));
  return true;
}

}  // namespace unifn::http
