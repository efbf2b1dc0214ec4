#include "micro/sample_bodies.hpp"

#include <cstdlib>
#include <fstream>
#include <string_view>

#include "cdc/core/capture.hpp"

namespace cdc::bench {
namespace {

constexpr const char* kSmallBody =
    R"({"record":{"agent_id":"agent-7","company_id":"co1","name":"Ana Putri","status":"online",)"
    R"("updated_at":"2026-11-22T10:40:04.758237Z"},"changes":{"status":"away"},"action":"update",)"
    R"("metadata":{"table_name":"agents","commit_timestamp":"2026-11-22T10:56:41.738171Z",)"
    R"("commit_lsn":9000003938,"commit_idx":0,"record_pks":["agent-7"]}})";

// Used when the sample file is missing: a messages insert of ~1 KiB like the sample's.
constexpr const char* kMediumBody =
    R"({"record":{"message_id":"msg-100000","chat_id":"chat-33","agent_id":"agent-11","company_id":"co1",)"
    R"("jid":"628121721960@s.whatsapp.net","flow":"IN","message_type":"text","message_text":"Halo kak, )"
    R"(pesanan saya kapan dikirim? Sudah transfer kemarin sore \"lunas\" ya \ud83d\ude4f Terima kasih banyak )"
    R"(atas bantuannya, ditunggu kabarnya secepatnya. Oh iya, alamat pengiriman berubah ke Jl. Merdeka No. 17, )"
    R"(RT 04/RW 02, Kel. Sukamaju, Kec. Cibeunying, Bandung 40123. Mohon dicatat.",)"
    R"("status":"read","key":{"id":"3EB08E7AA6E9","from_me":false,"remote_jid":"628129190751@s.whatsapp.net"},)"
    R"("message_timestamp":1798051283,"created_at":"2026-11-22T10:49:49.514750Z",)"
    R"("updated_at":"2026-11-22T10:48:49.615011Z"},"changes":null,"action":"insert",)"
    R"("metadata":{"table_schema":"public","table_name":"messages","commit_timestamp":"2026-11-22T10:56:41.738171Z",)"
    R"("commit_lsn":9000003938,"commit_idx":0,"database_name":"daisi","transaction_annotations":null,)"
    R"("idempotency_key":"OTAwMDAwMzkzODow","enrichment":null,"consumer":{"id":"0b6f6c2e-7d1a-4c55-9b1e-2f0c9a1d5e77",)"
    R"("name":"daisi-cdc","annotations":{}},"record_pks":["msg-100000"]}})";

// One chunk of a long message text: ASCII, JSON escapes, emoji, CJK, accents (JSON string content).
constexpr std::string_view kTextChunk =
    R"(Pesanan #12345 sudah dikirim \ud83d\ude9a \u2014 配送中です、明日届きます。 Café crème \"spécial\" )"
    R"(à emporter \\ total: Rp 125.000\n🙂 terima kasih! )";

SampleBodies build() {
  SampleBodies b;
  b.small = {"cdc.co1.agents", kSmallBody, "OTAwMDAwMzkzODow"};
  const char* dir = CDC_SOURCE_DIR;
  const std::string path = std::string(dir) + "/tools/samples/sequin-mixed-2k.jsonl";
  std::ifstream in(path);
  std::string line, error;
  std::size_t best = std::string::npos;
  while (in && std::getline(in, line)) {
    CaptureRecord rec;
    if (!parse_capture_line(line, rec, error)) continue;
    SampleMessage m{rec.subject, rec.data, std::string(rec.header("Nats-Msg-Id"))};
    const bool messages = std::string_view(m.subject).ends_with(".messages");
    const std::size_t distance = m.body.size() > 1024 ? m.body.size() - 1024 : 1024 - m.body.size();
    if (messages && (best == std::string::npos || distance < best)) {
      best = distance;
      b.medium = m;
    }
    b.mix.push_back(std::move(m));
  }
  if (best == std::string::npos) {
    b.medium = {"cdc.co1.messages", kMediumBody, "OTAwMDAwMzkzODow"};
    b.mix = {b.small, b.medium};
    b.source = "synthesized (sample file not found: " + path + ")";
  } else {
    b.source = path;
  }
  // Large: the medium body with its message_text replaced by ~7.2 KB of text.
  b.large = b.medium;
  const std::string key = "\"message_text\":\"";
  const std::size_t at = b.large.body.find(key);
  if (at != std::string::npos) {
    const std::size_t start = at + key.size();
    std::size_t end = start;
    while (end < b.large.body.size() && b.large.body[end] != '"') end += b.large.body[end] == '\\' ? 2 : 1;
    std::string text;
    while (b.large.body.size() - (end - start) + text.size() < 8192 - kTextChunk.size()) text += kTextChunk;
    b.large.body.replace(start, end - start, text);
  }
  return b;
}

}  // namespace

const SampleBodies& sample_bodies() {
  static const SampleBodies bodies = build();
  return bodies;
}

}  // namespace cdc::bench
