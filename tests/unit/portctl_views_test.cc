// portctl's views without a daemon: table layout, top's ranking, monitor
// lines.
#include <gtest/gtest.h>

#include "tools/portctl/table.h"
#include "tools/portctl/top.h"
#include "tools/portctl/views.h"

namespace portctl {
namespace {

TEST(TableTest, ColumnsAlignAndTheLastIsNotPadded) {
  Table t({{"ID", Align::kRight},
           {"NAME", Align::kLeft},
           {"N", Align::kRight},
           {"NOTE", Align::kLeft}});
  t.add_row({"1", "alpha", "100", "x"});
  t.add_row({"22", "b", "7", ""});
  EXPECT_EQ(t.render(true),
            "ID  NAME     N  NOTE\n"
            " 1  alpha  100  x\n"
            "22  b        7\n");
  EXPECT_EQ(t.render(false),
            " 1  alpha  100  x\n"
            "22  b        7\n");
}

TEST(TableTest, HeadersWiderThanCellsSetTheWidthOnlyWithTheLegend) {
  Table t({{"LONGHEADER", Align::kLeft}, {"X", Align::kLeft}});
  t.add_row({"a", "b"});
  EXPECT_EQ(t.render(true), "LONGHEADER  X\na           b\n");
  EXPECT_EQ(t.render(false), "a  b\n");
  EXPECT_EQ(Table({{"A", Align::kLeft}}).render(false), "");
}

TEST(FormatTest, CellsNamesAndDurations) {
  EXPECT_EQ(cell(nullptr), "-");
  EXPECT_EQ(cell(Json(12)), "12");
  EXPECT_EQ(cell(Json(-3)), "-3");
  EXPECT_EQ(cell(Json(true)), "yes");
  EXPECT_EQ(cell(Json(2.25)), "2.2");
  EXPECT_EQ(hex_name(Json(0x103)), "0x00000103");
  EXPECT_EQ(hex_name(nullptr), "-");
  EXPECT_EQ(rights_label(Json::array({"receive", "send", "dead_name"})), "recv,send,dead");
  // A time in a table is one cell (no space), for awk.
  const std::string when = time_cell(1700000000123);
  EXPECT_EQ(when.find(' '), std::string::npos) << when;
  EXPECT_EQ(when.size(), 19u);
  EXPECT_EQ(when[10], 'T');
  EXPECT_EQ(when.substr(11), local_time(1700000000123).substr(11));
  EXPECT_EQ(duration(0), "0s");
  EXPECT_EQ(duration(61000), "1m 1s");
  EXPECT_EQ(duration((86400 + 3600 + 60 + 1) * 1000LL), "1d 1h 1m 1s");
  EXPECT_EQ(task_label(Json{{"task", 3}, {"pid", 9}, {"uid", 0}, {"command", "srv"}}),
            "3 (pid 9 srv)");
}

TEST(TasksViewTest, ShowsTheNearestQuota) {
  auto q = [](uint64_t used, uint64_t limit) { return Json{{"used", used}, {"limit", limit}}; };
  const Json task = {{"task", 4},
                     {"pid", 40},
                     {"uid", 1000},
                     {"gid", 1000},
                     {"command", "svc"},
                     {"connected_unix_ms", 0},
                     {"names",
                      {{"total", 3},
                       {"receive", 2},
                       {"send", 1},
                       {"send_once", 0},
                       {"port_set", 0},
                       {"dead_name", 0}}},
                     {"quota",
                      {{"names", q(3, 100)},
                       {"ports", q(2, 4)},
                       {"queued_messages", q(1, 10)},
                       {"queued_bytes", q(7, 1000)},
                       {"parked_requests", q(0, 8)}}},
                     {"uid_quota", Json::object()}};
  const std::string out = tasks_view(Json::array({task}), ViewOptions{false});
  EXPECT_EQ(out, "4  40  1000  svc  3  2  1  0  0  0  1  7  0  ports:50.0%\n");
}

Json port(uint64_t id, uint64_t in, uint64_t out) {
  return Json{{"port", id},      {"receiver", nullptr}, {"msgs_in", in},
              {"msgs_out", out}, {"queued", 0},         {"qlimit", 5}};
}

TEST(TopTest, BusiestDuringTheIntervalFirstThenTotalsThenId) {
  const Json before = Json::array({port(1, 100, 100), port(2, 5, 5), port(3, 0, 0), port(4, 9, 9)});
  const Json after = Json::array(
      {port(1, 100, 100), port(2, 15, 10), port(3, 0, 0), port(4, 9, 9), port(5, 4, 0)});
  const Json frame = top_frame(before, after, 500, 1234, 4);
  EXPECT_EQ(frame["ports_total"], 5);
  EXPECT_EQ(frame["interval_ms"], 500);
  ASSERT_EQ(frame["ports"].size(), 4u);
  // 2 moved 15, new port 5 moved 4, then the idle ones by totals: 1, 4.
  EXPECT_EQ(frame["ports"][0]["port"], 2);
  EXPECT_EQ(frame["ports"][0]["delta_in"], 10);
  EXPECT_EQ(frame["ports"][0]["delta_out"], 5);
  EXPECT_EQ(frame["ports"][0]["in_per_s"], 20.0);
  EXPECT_EQ(frame["ports"][1]["port"], 5);
  EXPECT_EQ(frame["ports"][2]["port"], 1);
  EXPECT_EQ(frame["ports"][3]["port"], 4);
  EXPECT_NE(top_view(frame, ViewOptions{true}).find("IN/S"), std::string::npos);
  EXPECT_EQ(top_view(frame, ViewOptions{false}).find("IN/S"), std::string::npos);
}

TEST(MonitorViewTest, EventAndLostLines) {
  const Json e = Json::parse(R"({"seq":1,"time_unix_us":1000000,"event":"receive","port":7,
    "receiver":{"task":2,"pid":20,"uid":0,"command":"srv"},
    "sender":{"task":1,"pid":10,"uid":0,"command":"cli"},"id":42,"size":40,"body_bytes":4,
    "reply_port":null,"seqno":3,"descriptor_count":18,
    "descriptors":[{"type":"port","right":"send","port":9},{"type":"ool","size":4096,"volatile":true}]})");
  const std::string line = monitor_line(e);
  EXPECT_NE(line.find("receive #3"), std::string::npos) << line;
  EXPECT_NE(line.find("1 (pid 10 cli)"), std::string::npos) << line;
  EXPECT_NE(line.find("2 (pid 20 srv)"), std::string::npos) << line;
  EXPECT_NE(line.find("port send 9, ool 4096 volatile, +16 more"), std::string::npos) << line;
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(monitor_line(Json{{"event", "lost"}, {"lost", 3}}),
            "-- lost 3 events (the monitor buffer was full) --\n");
  // The header's columns start where the line's do.
  const std::string header = monitor_header();
  EXPECT_EQ(header.find("EVENT"), line.find("receive"));
}

}  // namespace
}  // namespace portctl
