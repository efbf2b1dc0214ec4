#pragma once
/// The cdc-replay subcommands. Each add_*_command() registers its options on `app`; when the
/// subcommand is selected, its callback runs it and stores the process exit code in `exit_code`
/// (0 success, 1 some messages failed, 2 usage or file error).

#include <CLI/CLI.hpp>

namespace cdc::replay {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;

void add_publish_command(CLI::App& app, int& exit_code);
void add_capture_command(CLI::App& app, int& exit_code);
void add_gen_command(CLI::App& app, int& exit_code);
void add_transform_command(CLI::App& app, int& exit_code);
void add_dlq_command(CLI::App& app, int& exit_code);
void add_exhausted_command(CLI::App& app, int& exit_code);

}  // namespace cdc::replay
