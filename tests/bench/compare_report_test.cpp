// bench/compare's report logic: reading the drivers' lines, grouping them into cases, the
// min/median/max over runs, the ratios to the best peer, and what the table and plots show.
#include <gtest/gtest.h>

#include <sstream>

#include "render.hpp"
#include "results.hpp"

namespace brook::bench {
namespace {

using nlohmann::json;

ParsedResults parse(const std::string& text) {
  std::istringstream in(text);
  return parse_results(in);
}

const SystemSummary& system_of(const CaseSummary& c, const std::string& name) {
  for (const SystemSummary& s : c.systems)
    if (s.system == name) return s;
  throw std::runtime_error("no system " + name + " in case " + c.case_key);
}

const Ratio* ratio_of(const std::vector<Ratio>& ratios, const std::string& field) {
  for (const Ratio& r : ratios)
    if (r.field == field) return &r;
  return nullptr;
}

TEST(CompareReport, spread_is_min_median_max_with_the_mean_of_the_middle_two_for_even_counts) {
  Spread odd = spread_of({5, 1, 3});
  EXPECT_EQ(odd.min, 1);
  EXPECT_EQ(odd.median, 3);
  EXPECT_EQ(odd.max, 5);
  EXPECT_EQ(odd.runs, 3u);
  Spread even = spread_of({4, 1, 2, 10});
  EXPECT_EQ(even.median, 3);
  EXPECT_EQ(even.max, 10);
  Spread none = spread_of({});
  EXPECT_EQ(none.runs, 0u);
  EXPECT_EQ(none.median, 0);
}

TEST(CompareReport, malformed_lines_are_reported_with_their_number_and_the_rest_is_read) {
  auto parsed = parse(
      "{\"system\":\"brook\",\"scenario\":\"throughput\",\"payload_bytes\":64,\"msgs_per_sec\":100}\n"
      "\n"
      "not json at all\n"
      "{\"scenario\":\"rtt\"}\n"
      "[1,2]\n"
      "{\"system\":\"nats\",\"scenario\":\"throughput\",\"payload_bytes\":64,\"msgs_per_sec\":50}\n");
  ASSERT_EQ(parsed.lines.size(), 2u);
  ASSERT_EQ(parsed.errors.size(), 3u);
  EXPECT_EQ(parsed.errors[0].line, 3u);
  EXPECT_EQ(parsed.errors[1].line, 4u);
  EXPECT_NE(parsed.errors[1].reason.find("system"), std::string::npos);
  EXPECT_EQ(parsed.errors[2].line, 5u);
}

TEST(CompareReport, lines_differing_in_payload_or_rate_are_separate_cases_and_zero_means_not_measured) {
  auto parsed = parse(
      "{\"run\":1,\"system\":\"brook\",\"scenario\":\"rtt\",\"transport\":\"tcp\",\"payload_bytes\":64,"
      "\"rate_target\":10000,\"p50_us\":20,\"p99_us\":40,\"msgs_per_sec\":0,\"subscribers\":0}\n"
      "{\"run\":1,\"system\":\"brook\",\"scenario\":\"rtt\",\"transport\":\"tcp\",\"payload_bytes\":1024,"
      "\"rate_target\":10000,\"p50_us\":25,\"p99_us\":50}\n"
      "{\"run\":1,\"system\":\"redis\",\"scenario\":\"rtt\",\"transport\":\"tcp\",\"payload_bytes\":64,"
      "\"rate_target\":10000,\"p50_us\":60,\"p99_us\":90,\"subscribers\":1}\n"
      "{\"run\":1,\"system\":\"brook\",\"scenario\":\"rtt\",\"transport\":\"tcp\",\"payload_bytes\":64,"
      "\"rate_target\":20000,\"p50_us\":30,\"p99_us\":45}\n");
  ASSERT_TRUE(parsed.errors.empty());
  auto cases = summarize(parsed.lines);
  ASSERT_EQ(cases.size(), 3u);
  // Zero or one subscriber is the plain case: brook's 0 and redis's 1 meet.
  EXPECT_EQ(cases[0].systems.size(), 2u);
  EXPECT_EQ(cases[0].case_key, "scenario=rtt transport=tcp payload_bytes=64 rate_target=10000");
  EXPECT_EQ(system_of(cases[0], "brook").metrics.count("msgs_per_sec"), 0u);
  EXPECT_EQ(case_title(cases[0]), "rtt · tcp · 64 B · 10000/s");
  EXPECT_EQ(cases[1].systems.size(), 1u);
  EXPECT_TRUE(cases[1].ratios.empty()) << "no peer, no ratio";
}

TEST(CompareReport, ratios_compare_brooks_median_with_the_best_peers_in_the_metrics_direction) {
  std::string text;
  auto line = [&](const char* system, int run, double rate, double p50, double p99) {
    text += "{\"run\":" + std::to_string(run) + ",\"system\":\"" + system +
            "\",\"scenario\":\"throughput\",\"transport\":\"tcp\",\"payload_bytes\":64,\"msgs_per_sec\":" +
            std::to_string(rate) + ",\"p50_us\":" + std::to_string(p50) + ",\"p99_us\":" + std::to_string(p99) +
            ",\"sent\":100,\"received\":99,\"lost\":1,\"out_of_order\":2}\n";
  };
  line("nats", 1, 1000, 50, 100);
  line("brook", 1, 3000, 10, 30);
  line("brook", 2, 2000, 20, 40);
  line("brook", 3, 4000, 30, 50);
  line("redis", 1, 1500, 40, 60);
  line("raw-ring", 1, 8000, 5, 10);
  auto cases = summarize(parse(text).lines);
  ASSERT_EQ(cases.size(), 1u);
  const CaseSummary& c = cases[0];
  // Brook first, peers by name, the baseline last.
  ASSERT_EQ(c.systems.size(), 4u);
  EXPECT_EQ(c.systems[0].system, "brook");
  EXPECT_EQ(c.systems[1].system, "nats");
  EXPECT_EQ(c.systems[2].system, "redis");
  EXPECT_EQ(c.systems[3].system, "raw-ring");
  const SystemSummary& brook = c.systems[0];
  EXPECT_EQ(brook.metrics.at("msgs_per_sec").median, 3000);
  EXPECT_EQ(brook.metrics.at("msgs_per_sec").min, 2000);
  EXPECT_EQ(brook.metrics.at("msgs_per_sec").max, 4000);
  EXPECT_EQ(brook.sent, 300u);
  EXPECT_EQ(brook.lost, 3u);
  EXPECT_EQ(brook.disorder, 6u);

  const Ratio* throughput = ratio_of(c.ratios, "msgs_per_sec");
  ASSERT_NE(throughput, nullptr);
  EXPECT_EQ(throughput->against, "redis");  // the best peer, not the baseline
  EXPECT_DOUBLE_EQ(throughput->value, 2.0);
  const Ratio* p50 = ratio_of(c.ratios, "p50_us");
  ASSERT_NE(p50, nullptr);
  EXPECT_EQ(p50->against, "redis");  // lowest latency is best
  EXPECT_DOUBLE_EQ(p50->value, 0.5);
  const Ratio* hardware = ratio_of(c.baseline_ratios, "p50_us");
  ASSERT_NE(hardware, nullptr);
  EXPECT_EQ(hardware->against, "raw-ring");
  EXPECT_DOUBLE_EQ(hardware->value, 4.0);
}

TEST(CompareReport, whole_numbers_read_as_integers_and_averages_do_not_split_cases) {
  auto cases = summarize(parse(
      "{\"run\":1,\"system\":\"brook\",\"scenario\":\"topics\",\"payload_bytes\":64,\"topics\":100000.0,\"subscribers\":4}\n"
      "{\"run\":1,\"system\":\"brook\",\"scenario\":\"deltas\",\"payload_bytes\":135.68,\"bytes_ratio\":3.3}\n"
      "{\"run\":2,\"system\":\"brook\",\"scenario\":\"deltas\",\"payload_bytes\":135.91,\"bytes_ratio\":3.5}\n")
                             .lines);
  ASSERT_EQ(cases.size(), 2u);
  EXPECT_EQ(case_title(cases[0]), "topics · 64 B · 4 subscribers · 100000 topics");
  EXPECT_EQ(case_title(cases[1]), "deltas");
  EXPECT_EQ(cases[1].systems[0].metrics.at("bytes_ratio").runs, 2u);
}

TEST(CompareReport, the_plotted_curve_is_the_one_of_the_run_with_the_median_p99) {
  auto parsed = parse(
      "{\"run\":1,\"system\":\"brook\",\"scenario\":\"rtt\",\"rate_target\":1000,\"p99_us\":90,\"curve\":[[50,9],[100,99]]}\n"
      "{\"run\":2,\"system\":\"brook\",\"scenario\":\"rtt\",\"rate_target\":1000,\"p99_us\":10,\"curve\":[[50,1],[100,11]]}\n"
      "{\"run\":3,\"system\":\"brook\",\"scenario\":\"rtt\",\"rate_target\":1000,\"p99_us\":50,\"curve\":[[50,5],[100,55]]}\n");
  auto cases = summarize(parsed.lines);
  ASSERT_EQ(cases.size(), 1u);
  const auto& curve = cases[0].systems[0].curve;
  ASSERT_EQ(curve.size(), 2u);
  EXPECT_EQ(curve[0], (std::pair<double, double>{50, 5}));
}

TEST(CompareReport, resync_lines_count_their_updates_recovered_and_missed_as_sent_received_and_lost) {
  auto cases = summarize(parse("{\"system\":\"brook\",\"scenario\":\"resync\",\"payload_bytes\":64,\"updates\":"
                               "100000,\"recovered\":99990,\"missed\":10,\"catchup_ms\":42.5}\n")
                             .lines);
  ASSERT_EQ(cases.size(), 1u);
  const SystemSummary& s = cases[0].systems[0];
  EXPECT_EQ(s.sent, 100000u);
  EXPECT_EQ(s.received, 99990u);
  EXPECT_EQ(s.lost, 10u);
  EXPECT_EQ(s.metrics.at("catchup_ms").median, 42.5);
}

TEST(CompareReport, markdown_has_a_table_per_case_with_spreads_losses_and_ratios) {
  auto cases = summarize(parse(
      "{\"run\":1,\"system\":\"brook\",\"scenario\":\"throughput\",\"payload_bytes\":64,\"msgs_per_sec\":2500000,\"sent\":10,\"received\":10,\"lost\":0}\n"
      "{\"run\":2,\"system\":\"brook\",\"scenario\":\"throughput\",\"payload_bytes\":64,\"msgs_per_sec\":3500000,\"sent\":10,\"received\":10,\"lost\":0}\n"
      "{\"run\":1,\"system\":\"nats\",\"scenario\":\"throughput\",\"payload_bytes\":64,\"msgs_per_sec\":1000000,\"sent\":10,\"received\":9,\"lost\":1}\n")
                             .lines);
  const std::string md = markdown_report(cases, {{"date", "2026-11-22"}, {"machine", "2 cores"}});
  EXPECT_NE(md.find("Measured 2026-11-22 on 2 cores"), std::string::npos) << md;
  EXPECT_NE(md.find("#### throughput · 64 B"), std::string::npos) << md;
  EXPECT_NE(md.find("| brook | 3,000,000 (2,500,000–3,500,000) |"), std::string::npos) << md;
  EXPECT_NE(md.find("| nats | 1,000,000 | 10 | 90.00% | 1 | 0 |"), std::string::npos) << md;
  EXPECT_EQ(md.find("sessions closed"), std::string::npos) << "no driver watched for closed sessions";
  EXPECT_NE(md.find("Brook vs the best peer: msgs/s 3.00x nats."), std::string::npos) << md;
}

TEST(CompareReport, server_cpu_per_delivery_is_the_servers_cpu_over_all_deliveries_and_zero_ticks_stay_measured) {
  auto cases = summarize(parse(
      "{\"system\":\"brook\",\"scenario\":\"fanout\",\"rate_target\":100,\"subscribers\":1000,"
      "\"sent\":200000,\"received\":200000,\"server_cpu_s\":0.5}\n"
      "{\"system\":\"redis\",\"scenario\":\"fanout\",\"rate_target\":100,\"subscribers\":1000,"
      "\"sent\":200000,\"received\":100000,\"server_cpu_s\":0}\n"
      "{\"system\":\"brook\",\"scenario\":\"rtt\",\"rate_target\":10000,\"received\":1000,\"server_cpu_s\":0.1}\n")
                             .lines);
  ASSERT_EQ(cases.size(), 2u);
  // 0.5 s over 200,000 deliveries (received counts every subscriber's).
  EXPECT_DOUBLE_EQ(system_of(cases[0], "brook").metrics.at("server_cpu_us_per_delivery").median, 2.5);
  // Under one clock tick is a figure (0), not a missing one; it gives no ratio.
  EXPECT_EQ(system_of(cases[0], "redis").metrics.at("server_cpu_us_per_delivery").median, 0.0);
  EXPECT_EQ(ratio_of(cases[0].ratios, "server_cpu_us_per_delivery"), nullptr);
  // A pong stands for two deliveries: rtt gets no per-delivery figure.
  EXPECT_EQ(system_of(cases[1], "brook").metrics.count("server_cpu_us_per_delivery"), 0u);
}

TEST(CompareReport, no_window_throughput_is_its_own_case_held_to_delivery_sessions_and_twice_nats) {
  std::string text;
  auto line = [&](const char* system, const char* client_cpus, double rate, int received, int closed) {
    text += std::string("{\"system\":\"") + system + "\",\"scenario\":\"throughput\",\"transport\":\"tcp\"," +
            "\"payload_bytes\":64,\"window\":\"none\",\"client_cpus\":\"" + client_cpus +
            "\",\"msgs_per_sec\":" + std::to_string(rate) + ",\"sent\":100,\"received\":" + std::to_string(received) +
            ",\"lost\":" + std::to_string(100 - received) + ",\"sessions_closed\":" + std::to_string(closed) + "}\n";
  };
  line("brook", "all", 3000, 100, 0);
  line("nats", "all", 1000, 90, 1);
  line("brook", "1", 1500, 100, 0);
  line("nats", "1", 1000, 100, 0);
  text += "{\"system\":\"brook\",\"scenario\":\"throughput\",\"transport\":\"tcp\",\"payload_bytes\":64,"
          "\"window\":\"1 MiB\",\"msgs_per_sec\":2000,\"sent\":100,\"received\":100}\n";
  auto cases = summarize(parse(text).lines);
  ASSERT_EQ(cases.size(), 3u);
  EXPECT_EQ(case_title(cases[0]), "throughput · tcp · 64 B · no window · client unpinned");
  EXPECT_EQ(case_title(cases[1]), "throughput · tcp · 64 B · no window · client on CPU 1");
  EXPECT_EQ(case_title(cases[2]), "throughput · tcp · 64 B · window 1 MiB");
  EXPECT_EQ(system_of(cases[0], "nats").sessions_closed, 1u);

  auto unpinned = target_checks(cases[0]);
  ASSERT_EQ(unpinned.size(), 1u);
  EXPECT_EQ(unpinned[0].met, true);
  EXPECT_EQ(unpinned[0].measured, "100% delivered, 0 sessions closed, msgs/s 3.00x nats");
  auto pinned = target_checks(cases[1]);
  ASSERT_EQ(pinned.size(), 1u);
  EXPECT_EQ(pinned[0].met, false) << "1.5x nats is short of 2x";
  EXPECT_TRUE(target_checks(cases[2]).empty()) << "the windowed case has no such target";

  const std::string md = markdown_report(cases, json::object());
  EXPECT_NE(md.find("### Throughput with no application-level window"), std::string::npos) << md;
  EXPECT_NE(md.find("| nats | 1,000 | 100 | 90.00% | 10 | 0 | 1 |"), std::string::npos) << md;
  EXPECT_NE(md.find("Target: 100% delivered, no session closed, ≥2x nats-server msgs/s. Brook: 100% delivered, "
                    "0 sessions closed, msgs/s 3.00x nats: **met**."),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("### Throughput: one publisher flat out, one subscriber, the publisher at most 1 MiB ahead of it"),
            std::string::npos)
      << md;
}

TEST(CompareReport, fanout_target_wants_nothing_lost_and_p99_at_most_half_the_best_peers) {
  auto cases = summarize(parse(
      "{\"system\":\"brook\",\"scenario\":\"fanout\",\"rate_target\":1000,\"subscribers\":100,"
      "\"p99_us\":100,\"sent\":1000,\"received\":1000,\"lost\":0,\"server_cpu_s\":0.001}\n"
      "{\"system\":\"redis\",\"scenario\":\"fanout\",\"rate_target\":1000,\"subscribers\":100,"
      "\"p99_us\":1000,\"sent\":1000,\"received\":1000,\"lost\":0,\"server_cpu_s\":0.004}\n"
      "{\"system\":\"brook\",\"scenario\":\"fanout\",\"rate_target\":10000,\"subscribers\":100,"
      "\"p99_us\":100,\"sent\":1000,\"received\":999,\"lost\":1}\n"
      "{\"system\":\"nats\",\"scenario\":\"fanout\",\"rate_target\":10000,\"subscribers\":100,"
      "\"p99_us\":1000,\"sent\":1000,\"received\":1000,\"lost\":0}\n")
                             .lines);
  ASSERT_EQ(cases.size(), 2u);
  auto clean = target_checks(cases[0]);
  ASSERT_EQ(clean.size(), 2u);
  EXPECT_EQ(clean[0].measured, "0 lost, p99 0.10x redis");
  EXPECT_EQ(clean[0].met, true);
  EXPECT_EQ(clean[1].target, "server CPU per delivery ≤ half of redis-server's");
  EXPECT_EQ(clean[1].measured, "0.25x redis");
  EXPECT_EQ(clean[1].met, true);
  auto lossy = target_checks(cases[1]);
  ASSERT_EQ(lossy.size(), 1u) << "no CPU figures, no CPU target";
  EXPECT_EQ(lossy[0].met, false);
  // A loss never shows as 100% delivered.
  EXPECT_NE(markdown_report(cases, json::object()).find("| brook | 100 | 1,000 | 99.90% | 1 |"), std::string::npos);
}

TEST(CompareReport, the_header_says_brooks_shards_against_the_cores_and_how_server_cpu_was_read) {
  const json meta = {{"date", "2026-11-23"}, {"machine", "2 cores"}, {"brook_shards", 2}, {"server_cores", 2},
                     {"server_cpu", "utime+stime from /proc/PID/stat"}};
  const std::string md = markdown_report({}, meta);
  EXPECT_NE(md.find("- Brook: 2 shards = cores.\n"), std::string::npos) << md;
  EXPECT_NE(md.find("- Server CPU: utime+stime from /proc/PID/stat.\n"), std::string::npos) << md;
  const json pinned = {{"brook_shards", 1}, {"server_cores", 1}, {"cores", 2}};
  EXPECT_NE(markdown_report({}, pinned).find("- Brook: 1 shard = cores it may use (1 of 2).\n"), std::string::npos);
}

TEST(CompareReport, plots_draw_bars_for_flat_out_cases_and_a_curve_plot_per_latency_case) {
  auto cases = summarize(parse(
      "{\"system\":\"brook\",\"scenario\":\"throughput\",\"payload_bytes\":64,\"msgs_per_sec\":3000}\n"
      "{\"system\":\"mqtt\",\"scenario\":\"throughput\",\"payload_bytes\":1024,\"msgs_per_sec\":1000}\n"
      "{\"system\":\"brook\",\"scenario\":\"rtt\",\"payload_bytes\":64,\"rate_target\":10000,"
      "\"msgs_per_sec\":10000,\"p50_us\":20,\"curve\":[[0,10],[50,20],[100,90]]}\n"
      "{\"system\":\"nats\",\"scenario\":\"rtt\",\"payload_bytes\":64,\"rate_target\":10000,"
      "\"p50_us\":60,\"curve\":[[0,30],[50,60],[100,300]]}\n")
                             .lines);
  auto drawn = plots(cases);
  ASSERT_EQ(drawn.size(), 2u);
  const Plot& bars = drawn[0];
  EXPECT_EQ(bars.name, "throughput");
  // The fixed-rate rtt case is not a throughput bar, though it has a msgs/s.
  EXPECT_EQ(bars.data.find("rtt"), std::string::npos) << bars.data;
  // One row per case, a median/min/max triple per system; a system absent from a case is '?'.
  EXPECT_NE(bars.data.find("\"throughput · 64 B\" 3000 3000 3000 ? ? ?"), std::string::npos) << bars.data;
  EXPECT_NE(bars.data.find("\"throughput · 1024 B\" ? ? ? 1000 1000 1000"), std::string::npos) << bars.data;
  EXPECT_NE(bars.script.find("set output 'throughput.png'"), std::string::npos);

  const Plot& curves = drawn[1];
  EXPECT_EQ(curves.name, "latency-1-rtt-64-B-10000-s");
  EXPECT_NE(curves.script.find("index 1"), std::string::npos) << "one data block per system";
  // 50% sits at x = 1/(1-0.5) = 2 and the maximum at 1e6 on the 1/(1-p) axis.
  EXPECT_NE(curves.data.find("2.000 20.000 50.000"), std::string::npos) << curves.data;
  EXPECT_NE(curves.data.find("1000000.000 300.000 100.000"), std::string::npos) << curves.data;
}

// The durable publish (bench/compare's durable group): one acked case per payload, a Brook row
// per storage.sync beside JetStream.
std::string acked_line(const char* system, const char* variant, int run, double rate, double p99, int lost = 0) {
  return std::string("{\"run\":") + std::to_string(run) + ",\"window\":\"1024 unacknowledged\",\"variant\":\"" +
         variant + "\",\"system\":\"" + system +
         "\",\"scenario\":\"acked\",\"transport\":\"tcp\",\"payload_bytes\":64,\"rate_target\":10000,"
         "\"msgs_per_sec\":" + std::to_string(rate) + ",\"p50_us\":50,\"p99_us\":" + std::to_string(p99) +
         ",\"sent\":1000,\"received\":" + std::to_string(1000 - lost) + ",\"lost\":" + std::to_string(lost) + "}\n";
}

TEST(CompareReport, variants_of_a_system_are_rows_of_one_case_in_the_order_they_ran_each_with_its_ratios) {
  const std::string text = acked_line("nats", "JetStream", 1, 100000, 800) +
                           acked_line("brook", "sync never", 1, 400000, 100) +
                           acked_line("brook", "sync always", 1, 300000, 300) +
                           acked_line("brook", "sync always", 2, 200000, 500) +
                           acked_line("brook", "sync never", 2, 600000, 120);
  auto cases = summarize(parse(text).lines);
  ASSERT_EQ(cases.size(), 1u) << "a variant is a row, never a case of its own";
  const CaseSummary& c = cases[0];
  EXPECT_EQ(case_title(c), "acked · tcp · 64 B · 10000/s · window 1024 unacknowledged");
  ASSERT_EQ(c.systems.size(), 3u);
  EXPECT_EQ(c.systems[0].row(), "brook (sync never)");  // Brook first, its variants as they ran
  EXPECT_EQ(c.systems[1].row(), "brook (sync always)");
  EXPECT_EQ(c.systems[2].row(), "nats (JetStream)");
  EXPECT_EQ(c.systems[1].metrics.at("msgs_per_sec").median, 250000);
  EXPECT_EQ(c.systems[1].sent, 2000u);

  // One ratio per Brook row and metric, each against the best peer.
  ASSERT_EQ(c.ratios.size(), 6u);
  EXPECT_EQ(c.ratios[0].variant, "sync never");
  EXPECT_EQ(c.ratios[0].field, "msgs_per_sec");
  EXPECT_EQ(c.ratios[0].against, "nats") << "its one row: the system's name says which";
  EXPECT_DOUBLE_EQ(c.ratios[0].value, 5.0);
  EXPECT_EQ(c.ratios[3].variant, "sync always");
  EXPECT_DOUBLE_EQ(c.ratios[3].value, 2.5);
  EXPECT_DOUBLE_EQ(*ratio_to(c, "p99_us", "nats", "sync always"), 0.5);
  EXPECT_DOUBLE_EQ(*ratio_to(c, "p99_us", "nats", "sync never"), 110.0 / 800.0);
  EXPECT_FALSE(ratio_to(c, "p99_us", "nats").has_value()) << "no Brook row without a variant";

  const std::string md = markdown_report(cases, {{"durable", "nats-server 2.9.10 fsyncs every 60 s"}});
  EXPECT_NE(md.find("### Durable publish with acknowledgement"), std::string::npos) << md;
  EXPECT_NE(md.find("- Durable publish: nats-server 2.9.10 fsyncs every 60 s.\n"), std::string::npos) << md;
  EXPECT_NE(md.find("| brook (sync always) | 250,000 (200,000–300,000) | 50.0 (50.0–50.0) | 400 (300–500) |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| nats (JetStream) | 100,000 | 50.0 | 800 | 1,000 | 100% | 0 | 0 |"), std::string::npos) << md;
  EXPECT_NE(md.find("Brook (sync never) vs the best peer: msgs/s 5.00x nats; p50 us 1.00x nats; p99 us 0.14x nats.\n"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("Brook (sync always) vs the best peer: msgs/s 2.50x nats;"), std::string::npos) << md;

  const json doc = results_document(cases, json::array(), {}, json::object());
  const json& summary = doc["summary"][0];
  EXPECT_EQ(summary["systems"][1]["variant"], "sync always");
  EXPECT_DOUBLE_EQ(summary["brook_vs_best_peer_by_variant"]["sync always"]["msgs_per_sec"]["ratio"].get<double>(), 2.5);
  EXPECT_FALSE(summary.contains("brook_vs_best_peer")) << "the plain keys would collide between variants";
}

TEST(CompareReport, durable_target_holds_brook_with_sync_always_to_twice_jetstreams_rate_and_half_its_p99) {
  const auto check = [](const std::string& text) {
    auto cases = summarize(parse(text).lines);
    EXPECT_EQ(cases.size(), 1u);
    auto checks = target_checks(cases.at(0));
    EXPECT_EQ(checks.size(), 1u);
    return checks.at(0);
  };
  const TargetCheck met = check(acked_line("brook", "sync always", 1, 250000, 400) +
                                acked_line("brook", "sync never", 1, 50000, 9000) +
                                acked_line("nats", "JetStream", 1, 100000, 800));
  EXPECT_EQ(met.measured, "0 lost, msgs/s 2.50x nats, p99 0.50x nats");
  EXPECT_EQ(met.met, true) << "only sync always is held to it";

  const TargetCheck slow = check(acked_line("brook", "sync always", 1, 150000, 100) +
                                 acked_line("nats", "JetStream", 1, 100000, 800));
  EXPECT_EQ(slow.met, false) << "1.5x JetStream's rate is short of 2x";
  const TargetCheck late = check(acked_line("brook", "sync always", 1, 300000, 500) +
                                 acked_line("nats", "JetStream", 1, 100000, 800));
  EXPECT_EQ(late.met, false) << "p99 0.62x JetStream's is more than half";
  const TargetCheck lossy = check(acked_line("brook", "sync always", 1, 300000, 100, 1) +
                                  acked_line("nats", "JetStream", 1, 100000, 800));
  EXPECT_EQ(lossy.met, false);
  EXPECT_EQ(lossy.measured, "1 lost, msgs/s 3.00x nats, p99 0.12x nats");

  const TargetCheck alone = check(acked_line("brook", "sync always", 1, 300000, 100));
  EXPECT_FALSE(alone.met.has_value()) << "no JetStream, no verdict";
  EXPECT_EQ(alone.measured, "0 lost, msgs/s (no JetStream result), p99 (no JetStream result)");
  const TargetCheck no_strict = check(acked_line("brook", "sync never", 1, 300000, 100) +
                                      acked_line("nats", "JetStream", 1, 100000, 800));
  EXPECT_FALSE(no_strict.met.has_value());
  EXPECT_EQ(no_strict.measured, "no Brook result with sync always");
}

TEST(CompareReport, tls_throughput_is_held_to_twice_nats_over_tls_and_to_its_cost_against_plain_tcp) {
  std::string text;
  auto line = [&](const char* system, const char* transport, double rate) {
    text += std::string("{\"system\":\"") + system + "\",\"scenario\":\"throughput\",\"transport\":\"" + transport +
            "\",\"payload_bytes\":64,\"part\":\"TLS group\",\"window\":\"1 MiB\",\"msgs_per_sec\":" +
            std::to_string(rate) + ",\"sent\":100,\"received\":100,\"lost\":0,\"server_cpu_s\":0.01}\n";
  };
  line("brook", "tls", 4000);
  line("nats", "tls", 1600);
  line("brook", "tcp", 5000);
  auto cases = summarize(parse(text).lines);
  ASSERT_EQ(cases.size(), 2u);
  const CaseSummary& tls = identity_of(cases[0], "transport") == "tls" ? cases[0] : cases[1];
  const CaseSummary& plain = &tls == &cases[0] ? cases[1] : cases[0];
  auto checks = target_checks(tls, cases);
  ASSERT_EQ(checks.size(), 1u) << "no redis-server CPU target in the TLS group";
  EXPECT_EQ(checks[0].measured, "msgs/s 2.50x nats, TLS / plain TCP 0.80x");
  EXPECT_EQ(checks[0].met, false) << "TLS cost 20% of the plain rate";
  EXPECT_TRUE(target_checks(plain, cases).empty());
  EXPECT_EQ(target_checks(tls)[0].measured, "msgs/s 2.50x nats, TLS / plain TCP (no plain result)");
  EXPECT_EQ(section_title(tls).rfind("TLS: ", 0), 0u) << section_title(tls);
}

TEST(CompareReport, a_peer_with_several_rows_is_named_by_the_row_its_ratio_is_against) {
  auto cases = summarize(parse(acked_line("brook", "sync always", 1, 300000, 100) +
                               acked_line("nats", "JetStream, fsync every 60 s", 1, 100000, 800) +
                               acked_line("nats", "JetStream, sync always", 1, 50000, 1600))
                             .lines);
  ASSERT_EQ(cases.size(), 1u);
  const Ratio* rate = ratio_of(cases[0].ratios, "msgs_per_sec");
  ASSERT_NE(rate, nullptr);
  EXPECT_EQ(rate->against, "nats (JetStream, fsync every 60 s)");
  EXPECT_DOUBLE_EQ(rate->value, 3.0);
}

}  // namespace
}  // namespace brook::bench
