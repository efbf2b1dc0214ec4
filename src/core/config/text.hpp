#pragma once
// Private to the configuration units (src/core/config/, src/core/dlq_worker_config.cpp): string
// helpers for parsing and for the messages of ConfigError.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "cdc/core/config.hpp"

namespace cdc::config_detail {

constexpr std::size_t kKiB = 1024;
constexpr std::size_t kMiB = 1024 * kKiB;
constexpr std::size_t kGiB = 1024 * kMiB;

std::string_view trim(std::string_view s) noexcept;
std::string lower(std::string_view s);
std::string upper(std::string_view s);
/// 'text', as error messages quote values.
std::string quoted(std::string_view s);
/// Every piece between `sep`s, empty ones included ("a,,b" -> a, "", b).
std::vector<std::string_view> split(std::string_view s, char sep);
std::string join(const std::vector<std::string_view>& items, std::string_view sep);
bool has_whitespace(std::string_view s) noexcept;
/// Non-overlapping occurrences of `needle`.
std::size_t count_of(std::string_view haystack, std::string_view needle) noexcept;
/// " (did you mean 'x'?)" for the closest candidate within two edits (case-insensitive), else "".
std::string suggestion(std::string_view wrong, const std::vector<std::string>& candidates);
/// The shortest exact form: "0", "2h", "5m", "30s" or "250ms".
std::string format_duration(Millis d);
/// "1MiB", "512KiB" or plain bytes.
std::string format_bytes(std::size_t n);
/// The whole file at `path`; throws ConfigError(key, "cannot read <path>: <errno text>").
std::string read_file(const std::string& key, const std::string& path);

}  // namespace cdc::config_detail
