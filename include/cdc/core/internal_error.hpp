#pragma once
/// The one way the service reacts to a broken invariant of its own (a bug: a ring that cannot
/// be full is full, an index out of its pool, a writer past a buffer sized for it). Bad input
/// and failed dependencies are never internal errors: they have error codes, dead letters and
/// retries. An internal error writes one log line (level error, msg "internal error", the
/// invariant and the file:line) straight to stderr, bypassing the asynchronous log queue that
/// would die with the process, and aborts: the core dump and the supervisor's restart follow,
/// and JetStream redelivers what was not acked.

namespace cdc {

/// Never returns. `what` names the invariant, e.g. "ring full while pushing an event"; the
/// compiler fills in the call site. (Not std::source_location: clang 14, which builds the fuzzer
/// and runs clang-tidy, has no std::source_location with GCC 12's library; the builtins behind
/// it work in both compilers.)
[[noreturn]] void on_internal_error(const char* what, const char* file = __builtin_FILE(),
                                    unsigned line = __builtin_LINE(),
                                    const char* function = __builtin_FUNCTION()) noexcept;

}  // namespace cdc
