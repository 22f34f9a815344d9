// The one place where the daemon checks a header before it writes it (responses, callback
// requests).
#pragma once

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/fields.hpp>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace unifn::http {

// RFC 9110 section 5.5: field-value = *field-content, made of VCHAR, obs-text (0x80-0xFF), SP and
// HTAB. So: no CTL byte (0x00-0x1F but HTAB, and 0x7F), hence no CR, LF or NUL that could end the
// header early and inject another one or a second message. Leading and trailing SP/HTAB are not
// part of a field value (the grammar excludes them and every recipient strips them): set_field
// trims them rather than refuse, so "text/plain " is written as "text/plain".
bool valid_field_value(std::string_view value);
// RFC 9110 section 5.1: field-name = token, 1 or more tchar.
bool valid_field_name(std::string_view name);

// Why value cannot be written, as a sentence fragment naming the first bad byte and its offset
// ("byte 0x0d at offset 10"); nullopt when it can.
std::optional<std::string> field_value_problem(std::string_view value);

// value without its leading and trailing SP/HTAB.
std::string_view trim_ows(std::string_view value);

// Every header the daemon emits goes through these: value is trimmed (trim_ows), checked, and
// written only when valid. Returns false, writing nothing (an earlier value of the field stays),
// when it is not; callers that pass a value a guest or a client chose check it first with
// field_value_problem and answer with the reason.
bool set_field(boost::beast::http::fields& fields, boost::beast::http::field name,
               std::string_view value);
bool set_field(boost::beast::http::fields& fields, std::string_view name, std::string_view value);

}  // namespace unifn::http
