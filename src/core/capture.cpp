#include "cdc/core/capture.hpp"

#include <simdjson.h>

#include <cstddef>

#include "cdc/core/json_writer.hpp"

namespace cdc {
namespace {

/// A subject or header: JSON text cannot carry bytes that are not UTF-8 as they are, so such a
/// value is read as Latin-1 (lossy, but the line stays parseable; bodies use data_base64 instead).
void append_text(std::string_view s, std::string& out) {
  if (simdjson::validate_utf8(s.data(), s.size())) {
    append_json_string(s, out);
  } else {
    append_json_string_latin1(s, out);
  }
}

std::string quoted(std::string_view key) {
  // Not `"\"" + std::string(key) + "\""`: GCC 12 at -O3 reports a false -Wrestrict in it (PR 105329).
  std::string s;
  s.reserve(key.size() + 2);
  s += '"';
  s += key;
  s += '"';
  return s;
}

bool parse_headers(simdjson::dom::element value, CaptureRecord& out, std::string& error) {
  simdjson::dom::object object;
  if (value.get_object().get(object) != simdjson::SUCCESS) {
    error = "\"headers\" is not an object";
    return false;
  }
  for (const auto field : object) {
    const std::string name(field.key);
    std::string_view text;
    if (field.value.get_string().get(text) == simdjson::SUCCESS) {
      out.headers.emplace_back(name, std::string(text));
      continue;
    }
    simdjson::dom::array values;
    if (field.value.get_array().get(values) != simdjson::SUCCESS) {
      error = "header \"" + name + "\" is not a string or an array of strings";
      return false;
    }
    for (const auto item : values) {
      if (item.get_string().get(text) != simdjson::SUCCESS) {
        error = "header \"" + name + "\" has a value that is not a string";
        return false;
      }
      out.headers.emplace_back(name, std::string(text));
    }
  }
  return true;
}

/// Which of the keys that may appear once a line has had so far.
struct CaptureKeys {
  bool subject = false;
  bool headers = false;
  bool data = false;
  bool data_base64 = false;
};

/// One member of a capture line into `out`; false (with `error`) when it is invalid.
bool read_capture_field(std::string_view key, simdjson::dom::element value, CaptureKeys& seen, CaptureRecord& out,
                        std::string& error) {
  const auto once = [&](bool& was_seen) {
    if (was_seen) error = "duplicate " + quoted(key);
    was_seen = true;
    return error.empty();
  };
  std::string_view text;
  if (key == "subject") {
    if (!once(seen.subject)) return false;
    if (value.get_string().get(text) != simdjson::SUCCESS) {
      error = "\"subject\" is not a string";
      return false;
    }
    if (text.empty()) {
      error = "\"subject\" is empty";
      return false;
    }
    out.subject = text;
  } else if (key == "headers") {
    if (!once(seen.headers)) return false;
    if (value.is_null()) return true;
    if (!parse_headers(value, out, error)) return false;
  } else if (key == "data") {
    if (!once(seen.data)) return false;
    if (value.get_string().get(text) != simdjson::SUCCESS) {
      error = "\"data\" is not a string";
      return false;
    }
    out.data = text;
  } else if (key == "data_base64") {
    if (!once(seen.data_base64)) return false;
    if (value.get_string().get(text) != simdjson::SUCCESS) {
      error = "\"data_base64\" is not a string";
      return false;
    }
    // Capture files pad every quad (what format_capture_line writes); decode_base64 alone
    // would also take unpadded text.
    if (text.size() % 4 != 0 || !decode_base64(text, out.data)) {
      error = "data_base64 is not valid base64";
      return false;
    }
  } else if (key == "stream_seq") {
    if (value.is_null()) return true;
    std::uint64_t seq = 0;
    if (value.get_uint64().get(seq) != simdjson::SUCCESS) {
      error = "\"stream_seq\" is not an unsigned integer";
      return false;
    }
    out.stream_seq = seq;
  } else if (key == "time") {
    if (value.is_null()) return true;
    if (value.get_string().get(text) != simdjson::SUCCESS) {
      error = "\"time\" is not a string";
      return false;
    }
    out.time = std::string(text);
  }
  // Unknown keys are ignored, like unknown keys of the body (CONTRACT.md section 1).
  return true;
}

}  // namespace

std::string_view CaptureRecord::header(std::string_view name) const noexcept {
  for (const auto& [key, value] : headers) {
    if (key == name) return value;
  }
  return {};
}

bool parse_capture_line(std::string_view line, CaptureRecord& out, std::string& error) {
  // One DOM parser per thread: it keeps its buffers between lines.
  thread_local simdjson::dom::parser parser;
  out = CaptureRecord{};
  error.clear();

  simdjson::dom::element root;
  if (const auto code = parser.parse(line.data(), line.size()).get(root); code != simdjson::SUCCESS) {
    error = std::string("not valid JSON: ") + simdjson::error_message(code);
    return false;
  }
  simdjson::dom::object object;
  if (root.get_object().get(object) != simdjson::SUCCESS) {
    error = "line is not a JSON object";
    return false;
  }

  CaptureKeys seen;
  for (const auto field : object) {
    if (!read_capture_field(field.key, field.value, seen, out, error)) return false;
  }

  if (!seen.subject) {
    error = "missing \"subject\"";
    return false;
  }
  if (seen.data && seen.data_base64) {
    error = "both \"data\" and \"data_base64\" are present";
    return false;
  }
  if (!seen.data && !seen.data_base64) {
    error = "missing \"data\" (or \"data_base64\")";
    return false;
  }
  return true;
}

std::string format_capture_line(const CaptureRecord& record) {
  std::string out;
  out.reserve(record.subject.size() + record.data.size() * 4 / 3 + 64);
  out += "{\"subject\":";
  append_text(record.subject, out);

  // A header repeated in `headers` becomes one key with an array of its values, at the place of
  // its first occurrence (NATS headers are a multimap; the file format has one key per name).
  out += ",\"headers\":{";
  const auto& headers = record.headers;
  bool first_key = true;
  for (std::size_t i = 0; i < headers.size(); ++i) {
    const std::string& name = headers[i].first;
    bool seen_before = false;
    std::size_t count = 0;
    for (std::size_t j = 0; j < headers.size(); ++j) {
      if (headers[j].first != name) continue;
      if (j < i) seen_before = true;
      ++count;
    }
    if (seen_before) continue;
    if (!first_key) out += ',';
    first_key = false;
    append_text(name, out);
    out += ':';
    if (count == 1) {
      append_text(headers[i].second, out);
      continue;
    }
    out += '[';
    for (std::size_t j = i, written = 0; j < headers.size(); ++j) {
      if (headers[j].first != name) continue;
      if (written++ > 0) out += ',';
      append_text(headers[j].second, out);
    }
    out += ']';
  }
  out += '}';

  if (simdjson::validate_utf8(record.data.data(), record.data.size())) {
    out += ",\"data\":";
    append_json_string(record.data, out);
  } else {
    out += ",\"data_base64\":\"";
    append_base64(record.data, out);
    out += '"';
  }
  if (record.stream_seq) {
    out += ",\"stream_seq\":";
    out += std::to_string(*record.stream_seq);
  }
  if (record.time) {
    out += ",\"time\":";
    append_text(*record.time, out);
  }
  out += '}';
  return out;
}

}  // namespace cdc
