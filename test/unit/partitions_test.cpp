// Source partitions: consumer names, filter subjects, the spread over replicas, and the
// {partition} token of the subject layout.

#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "cdc/core/config.hpp"
#include "cdc/core/partitions.hpp"
#include "cdc/core/transform.hpp"

using cdc::IngestConfig;

TEST_CASE("one partition keeps today's consumer and filter", "[partitions]") {
  IngestConfig in;
  CHECK(cdc::partition_consumer(in, 0) == "cdc_consumers");
  CHECK(cdc::partition_filter(in, 0).empty());
  in.filter_subject = "cdc.*.messages";
  CHECK(cdc::partition_filter(in, 0) == "cdc.*.messages");
}

TEST_CASE("partition p has its own consumer filtered on its token", "[partitions]") {
  IngestConfig in;
  in.partitions = 8;
  in.subject_layout = "cdc.{company}.{table}.{partition}";
  CHECK(cdc::partition_consumer(in, 0) == "cdc_consumers-0");
  CHECK(cdc::partition_consumer(in, 7) == "cdc_consumers-7");
  CHECK(cdc::partition_filter(in, 3) == "cdc.*.*.3");
  in.subject_layout = "sequin.{database}.{schema}.{table}.{partition}";
  CHECK(cdc::partition_filter(in, 5) == "sequin.*.*.*.5");
}

TEST_CASE("partitions are spread evenly over the live members, each to exactly one", "[partitions]") {
  const std::vector<std::string> members = {"a", "b", "c"};
  std::map<std::uint32_t, int> owners;
  std::vector<std::size_t> counts;
  for (const auto& m : members) {
    const auto mine = cdc::assign_partitions(members, m, 8);
    counts.push_back(mine.size());
    for (const auto p : mine) ++owners[p];
  }
  CHECK(counts == std::vector<std::size_t>{3, 3, 2});
  REQUIRE(owners.size() == 8);
  for (const auto& [p, n] : owners) CHECK(n == 1);
  CHECK(cdc::assign_partitions(members, "z", 8).empty());
  CHECK(cdc::assign_partitions(std::vector<std::string>{"solo"}, "solo", 1) == std::vector<std::uint32_t>{0});
  // More members than partitions: the extra ones stand by.
  CHECK(cdc::assign_partitions(members, "b", 1).empty());
  CHECK(cdc::assign_partitions(members, "a", 1) == std::vector<std::uint32_t>{0});
}

TEST_CASE("the {partition} token matches a canonical decimal below the partition count", "[partitions][transform]") {
  const cdc::SubjectLayout layout("cdc.{company}.{table}.{partition}", {}, 8);
  CHECK(layout.partitioned());
  CHECK(layout.filter_subject() == "cdc.*.*.*");
  CHECK(layout.partition_filter(2) == "cdc.*.*.2");
  std::string_view company, table;
  CHECK(layout.split("cdc.co1.messages.7", company, table));
  CHECK(company == "co1");
  CHECK(table == "messages");
  CHECK(layout.split("cdc.co1.messages.0", company, table));
  for (const char* bad : {"cdc.co1.messages.8", "cdc.co1.messages.07", "cdc.co1.messages.-1", "cdc.co1.messages.x",
                          "cdc.co1.messages", "cdc.co1.messages.1.2"}) {
    INFO(bad);
    CHECK_FALSE(layout.split(bad, company, table));
  }
  CHECK_FALSE(cdc::SubjectLayout("cdc.{company}.{table}").partitioned());
  CHECK_THROWS_WITH(cdc::SubjectLayout("cdc.{company}.{table}.{partition}.{partition}"),
                    "subject_layout \"cdc.{company}.{table}.{partition}.{partition}\" has more than one {partition}");
}

TEST_CASE("partition_takes says which stored subjects some partition consumer takes", "[partitions]") {
  IngestConfig in;
  // One partition, no filter: the one consumer takes everything.
  CHECK(cdc::partition_takes(in, "cdc.acme.messages.v2"));
  CHECK(cdc::partition_takes(in, "cdc.x"));
  in.filter_subject = "cdc.*.messages";
  CHECK(cdc::partition_takes(in, "cdc.acme.messages"));
  CHECK_FALSE(cdc::partition_takes(in, "cdc.acme.chats"));
  CHECK_FALSE(cdc::partition_takes(in, "cdc.acme.messages.v2"));
  in.filter_subject = "cdc.>";
  CHECK(cdc::partition_takes(in, "cdc.acme.messages.v2"));
  CHECK_FALSE(cdc::partition_takes(in, "cdc"));

  in.filter_subject.clear();
  in.partitions = 4;
  in.subject_layout = "cdc.{company}.{table}.{partition}";
  CHECK(cdc::partition_takes(in, "cdc.acme.messages.0"));
  CHECK(cdc::partition_takes(in, "cdc.acme.messages.3"));
  CHECK_FALSE(cdc::partition_takes(in, "cdc.acme.messages.4"));   // another mapping's partition
  CHECK_FALSE(cdc::partition_takes(in, "cdc.acme.messages.03"));  // not what the filter .3 matches
  CHECK_FALSE(cdc::partition_takes(in, "cdc.acme.messages.v2"));
  CHECK_FALSE(cdc::partition_takes(in, "cdc.acme.messages"));  // unmapped
  CHECK_FALSE(cdc::partition_takes(in, "cdc.x"));
  CHECK_FALSE(cdc::partition_takes(in, "cdc.a.b.1.extra"));
  CHECK_FALSE(cdc::partition_takes(in, "other.a.b.1"));
  // Exactly the partition filters' matches.
  for (std::uint32_t p = 0; p < 4; ++p) {
    const std::string s = std::string("cdc.c.t.").append(std::to_string(p));
    CHECK(cdc::partition_filter(in, p) == std::string("cdc.*.*.").append(std::to_string(p)));
    CHECK(cdc::partition_takes(in, s));
  }
}
