// cdc-replay: the operator tool for capture files (CONTRACT.md section 9).
//
//   gen      writes a synthetic Sequin capture and the counts the service must produce from it
//   publish  replays a capture into JetStream, waiting for every PubAck
//   capture  copies a stream's messages into a capture file without touching durable consumers
//   transform  dry run of the service's transform over a capture (no server)
//   dlq      lists, counts and redrives dead letters of cdc_dlq_stream
//   exhausted  lists and requeues the dead letters daisi-dlq-worker kept in PostgreSQL

#include <iostream>

#include "commands.hpp"
#include "nats_helper.hpp"

int main(int argc, char** argv) {  // NOLINT(bugprone-exception-escape): an escaping error ends the tool
  CLI::App app{
      "cdc-replay: generate, publish, capture and transform Sequin CDC captures; inspect and redrive dead letters"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("cdc-replay ") + CDC_VERSION);
  int exit_code = cdc::replay::kExitOk;
  cdc::replay::add_gen_command(app, exit_code);
  cdc::replay::add_publish_command(app, exit_code);
  cdc::replay::add_capture_command(app, exit_code);
  cdc::replay::add_transform_command(app, exit_code);
  cdc::replay::add_dlq_command(app, exit_code);
  cdc::replay::add_exhausted_command(app, exit_code);
  cdc::replay::install_stop_handler();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints the usage error (or --help / --version) itself
    return code == 0 ? cdc::replay::kExitOk : cdc::replay::kExitUsage;
  } catch (const std::exception& e) {
    std::cerr << "cdc-replay: " << e.what() << "\n";
    return cdc::replay::kExitFailed;
  }
  return exit_code;
}
