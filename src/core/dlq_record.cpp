// Decisions of daisi-dlq-worker about one dead-letter record (docs/dlq-worker.md).

#include "cdc/core/dlq_record.hpp"

#include <simdjson.h>

#include <algorithm>
#include <charconv>

#include "cdc/core/json_writer.hpp"

namespace cdc {
namespace {

bool digits(std::string_view text, std::size_t& pos, std::size_t n, int& out) noexcept {
  if (pos + n > text.size()) return false;
  out = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const char c = text[pos + i];
    if (c < '0' || c > '9') return false;
    out = out * 10 + (c - '0');
  }
  pos += n;
  return true;
}

/// Howard Hinnant's days_from_civil.
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool is_header(const std::string& name, std::string_view wanted) noexcept { return name == wanted; }

}  // namespace

std::optional<std::int64_t> parse_rfc3339_utc(std::string_view text) noexcept {
  std::size_t pos = 0;
  int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
  const auto sep = [&](char c) {
    if (pos >= text.size() || text[pos] != c) return false;
    ++pos;
    return true;
  };
  if (!digits(text, pos, 4, year) || !sep('-') || !digits(text, pos, 2, month) || !sep('-') ||
      !digits(text, pos, 2, day) || !sep('T') || !digits(text, pos, 2, hour) || !sep(':') ||
      !digits(text, pos, 2, minute) || !sep(':') || !digits(text, pos, 2, second)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return std::nullopt;
  std::int64_t nanos = 0;
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    int n = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      if (n < 9) {
        nanos = nanos * 10 + (text[pos] - '0');
        ++n;
      }
      ++pos;
    }
    if (n == 0) return std::nullopt;
    for (; n < 9; ++n) nanos *= 10;
  }
  if (!sep('Z') || pos != text.size()) return std::nullopt;
  const std::int64_t days = days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  return ((days * 86400 + hour * 3600 + minute * 60 + second) * 1'000'000'000) + nanos;
}

bool read_dlq_record(std::string_view json, DlqRecord& out) {
  out = DlqRecord{};
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (parser.parse(json.data(), json.size()).get(root) != simdjson::SUCCESS) {
    out.problem = "record is not JSON";
    return false;
  }
  simdjson::dom::object object;
  if (root.get_object().get(object) != simdjson::SUCCESS) {
    out.problem = "record is not a JSON object";
    return false;
  }
  const auto text = [&](const char* key, std::string& to) {
    std::string_view v;
    if (object[key].get_string().get(v) == simdjson::SUCCESS) to.assign(v);
  };
  text("source_subject", out.source_subject);
  text("source_stream", out.source_stream);
  text("error_kind", out.error_kind);
  text("error", out.error);
  text("failed_at", out.failed_at);
  if (object["source_seq"].get_uint64().get(out.source_seq) != simdjson::SUCCESS) out.source_seq = 0;
  if (object["delivery_attempts"].get_uint64().get(out.delivery_attempts) != simdjson::SUCCESS)
    out.delivery_attempts = 0;
  std::string_view event_id;
  if (object["event_id"].get_string().get(event_id) == simdjson::SUCCESS) out.event_id = std::string(event_id);
  bool truncated = false;
  if (object["data_truncated"].get_bool().get(truncated) == simdjson::SUCCESS) out.truncated = truncated;
  simdjson::dom::object headers;
  if (object["headers"].get_object().get(headers) == simdjson::SUCCESS) {
    for (const auto field : headers) {
      std::string_view value;
      if (field.value.get_string().get(value) == simdjson::SUCCESS) out.headers.emplace_back(field.key, value);
    }
  }
  out.failed_at_ns = parse_rfc3339_utc(out.failed_at).value_or(0);
  std::string_view base64;
  if (object["data_base64"].get_string().get(base64) != simdjson::SUCCESS) {
    out.problem = "record has no data_base64";
    return false;
  }
  if (!decode_base64(base64, out.body)) {
    out.problem = "data_base64 is not valid base64";
    return false;
  }
  if (out.source_subject.empty()) {
    out.problem = "record has no source_subject";
    return false;
  }
  out.parsed = true;
  return true;
}

bool parse_dlq_record(std::string_view json, DlqRecord& out) {
  if (!read_dlq_record(json, out)) return false;
  if (out.error_kind.empty()) {
    out.parsed = false;
    out.problem = "record has no error_kind";
    return false;
  }
  out.parsed = true;
  return true;
}

const std::string* find_header(const HeaderList& headers, std::string_view name) noexcept {
  for (const auto& [k, v] : headers) {
    if (k == name) return &v;
  }
  return nullptr;
}

std::uint32_t dlq_attempts_done(const DlqRecord& record) noexcept {
  const std::string* v = find_header(record.headers, kDlqAttemptHeader);
  if (v == nullptr) return 0;
  std::uint32_t n = 0;
  const auto [ptr, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
  return ec == std::errc() && ptr == v->data() + v->size() ? n : 0;
}

std::string_view to_string(DlqAction action) noexcept {
  switch (action) {
    case DlqAction::kRetry: return "retry";
    case DlqAction::kExhausted: return "exhausted";
    case DlqAction::kPermanent: return "permanent";
  }
  return "unknown";
}

DlqAction classify_dlq_record(const DlqRecord& record, const DlqWorkerConfig& config) noexcept {
  const auto& kinds = config.retry_kinds;
  if (std::find(kinds.begin(), kinds.end(), record.error_kind) == kinds.end()) return DlqAction::kPermanent;
  if (record.error_kind == "publish_rejected") {
    // The service's own text for an output over max_payload, and JetStream's for one over the
    // stream's max_msg_size (error 10054): the same body gives the same output every time.
    const std::string& e = record.error;
    if (e.find("max_payload") != std::string::npos || e.find("message size exceeds maximum") != std::string::npos) {
      return DlqAction::kPermanent;
    }
  }
  return dlq_attempts_done(record) >= static_cast<std::uint32_t>(config.max_attempts) ? DlqAction::kExhausted
                                                                                      : DlqAction::kRetry;
}

Millis dlq_backoff(std::uint32_t attempt, Millis base, Millis max) noexcept {
  if (attempt == 0) return Millis{0};
  const std::uint32_t shift = std::min<std::uint32_t>(attempt - 1, 40);
  const auto b = static_cast<std::uint64_t>(base.count());
  // base * 2^shift without overflow: once it passes max, max it is.
  if (shift >= 63 || b > (static_cast<std::uint64_t>(max.count()) >> shift)) return max;
  return std::min(Millis{static_cast<Millis::rep>(b << shift)}, max);
}

std::string dlq_retry_msg_id(std::string_view dlq_stream, std::uint64_t dlq_seq, std::uint32_t attempt) {
  std::string id = "dlq-retry:";
  id += dlq_stream;
  id += ':';
  id += std::to_string(dlq_seq);
  id += ':';
  id += std::to_string(attempt);
  return id;
}

HeaderList dlq_retry_headers(const DlqRecord& record, std::uint32_t attempt, std::string_view msg_id) {
  HeaderList out;
  const std::string* original = find_header(record.headers, "Nats-Msg-Id");
  for (const auto& h : record.headers) {
    if (is_header(h.first, "Nats-Msg-Id") || is_header(h.first, kDlqAttemptHeader)) continue;
    out.push_back(h);
  }
  out.emplace_back("Nats-Msg-Id", std::string(msg_id));
  out.emplace_back(std::string(kDlqAttemptHeader), std::to_string(attempt));
  if (find_header(record.headers, kDlqFirstFailedHeader) == nullptr) {
    out.emplace_back(std::string(kDlqFirstFailedHeader), record.failed_at);
  }
  if (find_header(record.headers, kDlqOriginalMsgIdHeader) == nullptr && original != nullptr) {
    out.emplace_back(std::string(kDlqOriginalMsgIdHeader), *original);
  }
  return out;
}

HeaderList dlq_requeue_headers(const HeaderList& headers, std::string_view msg_id) {
  HeaderList out;
  const std::string* original = find_header(headers, "Nats-Msg-Id");
  for (const auto& h : headers) {
    if (is_header(h.first, "Nats-Msg-Id") || is_header(h.first, kDlqAttemptHeader) ||
        is_header(h.first, kDlqFirstFailedHeader)) {
      continue;
    }
    out.push_back(h);
  }
  out.emplace_back("Nats-Msg-Id", std::string(msg_id));
  if (find_header(headers, kDlqOriginalMsgIdHeader) == nullptr && original != nullptr) {
    out.emplace_back(std::string(kDlqOriginalMsgIdHeader), *original);
  }
  return out;
}

std::string headers_to_json(const HeaderList& headers) {
  std::string out;
  append_json_headers(headers, out);
  return out;
}

}  // namespace cdc
