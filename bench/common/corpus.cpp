#include "common/corpus.hpp"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <limits>
#include <stdexcept>

#include "cdc/core/capture.hpp"

namespace cdc::bench {
namespace {

bool is_ws(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/// Position of the value after `"key":` (whitespace skipped), or npos.
std::size_t value_of(std::string_view body, std::string_view quoted_key) noexcept {
  std::size_t at = body.find(quoted_key);
  while (at != std::string_view::npos) {
    std::size_t p = at + quoted_key.size();
    while (p < body.size() && is_ws(body[p])) ++p;
    if (p < body.size() && body[p] == ':') {
      ++p;
      while (p < body.size() && is_ws(body[p])) ++p;
      return p;
    }
    at = body.find(quoted_key, at + 1);
  }
  return std::string_view::npos;
}

void append_uint(std::uint64_t v, std::string& out) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, static_cast<std::size_t>(r.ptr - buf));
}

}  // namespace

std::int64_t find_stamp(std::string_view text) noexcept {
  const std::size_t at = text.find(kStampKey);
  if (at == std::string_view::npos) return -1;
  const char* b = text.data() + at + kStampKey.size();
  std::int64_t v = -1;
  const auto r = std::from_chars(b, text.data() + text.size(), v);
  return r.ec == std::errc() ? v : -1;
}

Corpus Corpus::load(const std::string& path, std::size_t max_body) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open capture " + path);
  Corpus c;
  c.path_ = path;
  std::string line, error;
  std::size_t line_no = 0;
  std::uint64_t min_lsn = std::numeric_limits<std::uint64_t>::max(), max_lsn = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    CaptureRecord rec;
    if (!parse_capture_line(line, rec, error))
      throw std::runtime_error(path + ":" + std::to_string(line_no) + ": " + error);
    if (rec.data.size() > max_body) {
      ++c.dropped_;
      continue;
    }
    Entry e;
    e.subject = std::move(rec.subject);
    e.msg_id = std::string(rec.header("Nats-Msg-Id"));
    e.body = std::move(rec.data);
    const std::size_t dot = e.subject.rfind('.');
    e.table_pos = dot == std::string::npos ? 0 : dot + 1;
    e.table_len = e.subject.size() - e.table_pos;
    const std::string_view table(e.subject.data() + e.table_pos, e.table_len);
    e.allowed = table == "messages" || table == "chats" || table == "agents";
    const std::string_view body(e.body);
    if (const std::size_t p = value_of(body, "\"commit_lsn\""); p != std::string_view::npos) {
      std::size_t end = p;
      while (end < body.size() && body[end] >= '0' && body[end] <= '9') ++end;
      if (end > p && std::from_chars(body.data() + p, body.data() + end, e.lsn).ec == std::errc()) {
        e.lsn_pos = p;
        e.lsn_len = end - p;
        min_lsn = std::min(min_lsn, e.lsn);
        max_lsn = std::max(max_lsn, e.lsn);
      }
    }
    if (const std::size_t p = value_of(body, "\"record\""); p != std::string_view::npos && body[p] == '{') {
      e.record_pos = p + 1;
      std::size_t q = e.record_pos;
      while (q < body.size() && is_ws(body[q])) ++q;
      e.record_empty = q < body.size() && body[q] == '}';
    }
    c.entries_.push_back(std::move(e));
  }
  if (c.entries_.empty()) throw std::runtime_error("capture " + path + " holds no usable message");
  if (max_lsn >= min_lsn) c.lsn_span_ = max_lsn - min_lsn + 1;
  return c;
}

double Corpus::mean_body_bytes() const noexcept {
  double sum = 0;
  for (const auto& e : entries_) sum += static_cast<double>(e.body.size());
  return entries_.empty() ? 0 : sum / static_cast<double>(entries_.size());
}

double Corpus::allowed_fraction() const noexcept {
  std::size_t n = 0;
  for (const auto& e : entries_) n += e.allowed ? 1 : 0;
  return entries_.empty() ? 0 : static_cast<double>(n) / static_cast<double>(entries_.size());
}

void Corpus::materialize(std::uint64_t i, std::uint64_t first_pass, std::int64_t stamp_ns, Message& out) const {
  const Entry& e = entries_[i % entries_.size()];
  const std::uint64_t pass = first_pass + i / entries_.size();
  out.subject = e.subject;
  out.table = std::string_view(e.subject).substr(e.table_pos, e.table_len);
  out.allowed = e.allowed;
  out.body.clear();
  const std::string_view body(e.body);
  // Splice points in body order: the commit_lsn digits and the stamp position.
  std::size_t from = 0;
  const auto put_stamp = [&] {
    out.body.append(body.substr(from, e.record_pos - from));
    out.body += kStampKey;
    append_uint(static_cast<std::uint64_t>(stamp_ns), out.body);
    if (!e.record_empty) out.body += ',';
    from = e.record_pos;
  };
  const bool stamp = stamp_ns >= 0 && e.record_pos != std::string::npos;
  if (stamp && (e.lsn_pos == std::string::npos || e.record_pos < e.lsn_pos)) put_stamp();
  if (e.lsn_pos != std::string::npos) {
    out.body.append(body.substr(from, e.lsn_pos - from));
    append_uint(e.lsn + pass * lsn_span_, out.body);
    from = e.lsn_pos + e.lsn_len;
  }
  if (stamp && e.lsn_pos != std::string::npos && e.record_pos > e.lsn_pos) put_stamp();
  out.body.append(body.substr(from));
  out.msg_id.clear();
  if (!e.msg_id.empty()) {
    out.msg_id = e.msg_id;
    if (pass != 0) {
      out.msg_id += '~';
      append_uint(pass, out.msg_id);
    }
  }
}

}  // namespace cdc::bench
