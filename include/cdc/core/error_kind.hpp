#pragma once
/// Why a message is dead-lettered (CONTRACT.md section 6): the transform decides most kinds,
/// the stages the rest; dead-letter records, logs and metrics name them.

#include <cstdint>
#include <string_view>

namespace cdc {

/// Why a message is dead-lettered (CONTRACT.md section 6). Names via to_string().
enum class ErrorKind : std::uint8_t {
  kNone,
  kInvalidJson,
  kInvalidShape,
  kMissingField,
  kInvalidToken,
  kTableMismatch,
  kOversized,
  kMaxDeliveries,
  kPublishRejected,
  kInvalidSubject,  ///< the subject does not fit ingest.subject_layout (too few or too many tokens)
};
/// "invalid_json", "invalid_shape", ... ; "none" for kNone. Defined in src/core/dead_letter.cpp.
std::string_view to_string(ErrorKind kind) noexcept;

}  // namespace cdc
