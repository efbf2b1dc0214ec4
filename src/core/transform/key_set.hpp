#pragma once
// Private to the transform (src/core/transform/): see transform.cpp for the map of its parts.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace cdc::transform_detail {

/// KeySet: the keys of one object, to find a key given twice. Allocation-free once the table
/// has grown to the largest object seen (it starts at 64 slots; an object's keys are bounded by
/// its bytes).

class KeySet {
 public:
  explicit KeySet(std::uint64_t seed)
      : seed_(seed), seed2_((seed * 0x9E3779B97F4A7C15ULL) ^ 0xA0761D6478BD642FULL), slots_(kInitialSlots) {}

  /// Starts a new object: forgets every key (O(1): the generation moves on).
  void reset() noexcept {
    count_ = 0;
    if (++generation_ == 0) {  // wrapped: old stamps could look current
      for (Slot& s : slots_) s.generation = 0;
      generation_ = 1;
    }
  }

  /// Adds `key` (a view that stays valid for the walk); false when the object already has it.
  [[gnu::always_inline]] bool insert(std::string_view key) {
    if ((count_ + 1) * 2 > slots_.size()) grow();
    const std::uint64_t h = hash(key);
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = static_cast<std::size_t>(h) & mask;; i = (i + 1) & mask) {
      Slot& s = slots_[i];
      if (s.generation != generation_) {
        s = Slot{generation_, static_cast<std::uint32_t>(h >> 32), key};
        ++count_;
        return true;
      }
      if (s.tag == static_cast<std::uint32_t>(h >> 32) && s.key.size() == key.size() &&
          std::memcmp(s.key.data(), key.data(), key.size()) == 0) {
        return false;
      }
    }
  }

 private:
  static constexpr std::size_t kInitialSlots = 64;
  struct Slot {
    std::uint32_t generation = 0;
    std::uint32_t tag = 0;  ///< high half of the hash: most mismatches end here
    std::string_view key;
  };

  /// wyhash-style: 16 bytes per 64x64->128-bit multiply, folded, with two per-Transformer
  /// secrets. A key of up to 16 bytes (nearly all column names) is one multiply, read with
  /// overlapping loads inside the key (assembling the tail byte by byte stalled store
  /// forwarding: a third of the check's time when measured).
  [[nodiscard]] std::uint64_t hash(std::string_view key) const noexcept {
    __extension__ using U128 = unsigned __int128;
    const auto mum = [](std::uint64_t a, std::uint64_t b) {
      const U128 r = static_cast<U128>(a) * b;
      return static_cast<std::uint64_t>(r) ^ static_cast<std::uint64_t>(r >> 64);
    };
    const auto r8 = [](const char* at) {
      std::uint64_t v;
      std::memcpy(&v, at, 8);
      return v;
    };
    const auto r4 = [](const char* at) {
      std::uint32_t v;
      std::memcpy(&v, at, 4);
      return std::uint64_t{v};
    };
    const char* p = key.data();
    std::size_t n = key.size();
    std::uint64_t h = seed_ ^ key.size();
    while (n > 16) {
      h = mum(r8(p) ^ seed2_, r8(p + 8) ^ h);
      p += 16;
      n -= 16;
    }
    std::uint64_t a = 0, b = 0;
    if (n >= 8) {
      a = r8(p);
      b = r8(p + n - 8);
    } else if (n >= 4) {
      a = r4(p);
      b = r4(p + n - 4);
    } else if (n > 0) {
      const auto u = [&](std::size_t i) { return std::uint64_t{static_cast<unsigned char>(p[i])}; };
      a = u(0) << 16 | u(n >> 1) << 8 | u(n - 1);
    }
    return mum(a ^ seed2_, b ^ h);
  }

  [[gnu::noinline]] void grow() {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    const std::size_t mask = slots_.size() - 1;
    for (const Slot& s : old) {
      if (s.generation != generation_) continue;
      std::size_t i = static_cast<std::size_t>(hash(s.key)) & mask;
      while (slots_[i].generation == generation_) i = (i + 1) & mask;
      slots_[i] = s;
    }
  }

  std::uint64_t seed_;
  std::uint64_t seed2_;
  std::uint32_t generation_ = 1;
  std::size_t count_ = 0;
  std::vector<Slot> slots_;
};

}  // namespace cdc::transform_detail
