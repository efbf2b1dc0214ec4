#pragma once
// Private to the transform (src/core/transform/): see transform.cpp for the map of its parts.

#include <cstddef>
#include <cstring>
#include <string>
#include <string_view>

#include "cdc/core/internal_error.hpp"

namespace cdc::transform_detail {

/// Writes pieces into a string sized once up front: the hot path's outputs are a dozen short
/// pieces, and per-piece std::string::append (capacity check, length update, terminator) costs
/// more than the copies themselves. A size computed wrong is a broken invariant, not a bad
/// event: cdc::on_internal_error.
class ExactWriter {
 public:
  ExactWriter(std::string& out, std::size_t size) : out_(out) {
    out_.resize(size);  // within the capacity kept from earlier events: no allocation
    p_ = out_.data();
    end_ = p_ + size;
  }
  ExactWriter(const ExactWriter&) = delete;
  ExactWriter& operator=(const ExactWriter&) = delete;
  ~ExactWriter() {
    if (p_ != end_) [[unlikely]] {
      on_internal_error("ExactWriter: fewer bytes written than the size computed");
    }
  }

  [[gnu::always_inline]] void put(std::string_view s) noexcept {
    if (s.size() > static_cast<std::size_t>(end_ - p_)) [[unlikely]] {
      on_internal_error("ExactWriter: more bytes written than the size computed");
    }
    std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  }
  [[gnu::always_inline]] void put(char c) noexcept {
    if (p_ == end_) [[unlikely]] {
      on_internal_error("ExactWriter: more bytes written than the size computed");
    }
    *p_++ = c;
  }
  [[gnu::always_inline]] void quoted(std::string_view s) noexcept {
    put('"');
    put(s);
    put('"');
  }

 private:
  std::string& out_;
  char* p_;
  char* end_;
};

}  // namespace cdc::transform_detail
