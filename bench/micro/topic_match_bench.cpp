// Micro-benchmarks: finding the subscriptions of a topic, and the topics of a selector,
// each beside the brute-force scan it replaces (the baseline).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "brook/runtime/selector_index.hpp"
#include "brook/runtime/topic_tree.hpp"

namespace {

using namespace brook::runtime;

// Distribution/<Sport>/<League>/<Match>/<Market>: 10 x 10 x 25 x 4 = 10,000 topics.
std::vector<std::string> sports_topics()
{
    static const char* const sports[] = {"Football", "Tennis", "Basketball", "Baseball",
                                         "Ice Hockey", "Cricket", "Rugby", "Golf", "Boxing",
                                         "Cycling"};
    static const char* const markets[] = {"Odds", "Score", "Pre Match", "Stats"};
    std::vector<std::string> topics;
    for (const auto* sport : sports) {
        for (int league = 0; league < 10; ++league) {
            for (int match = 0; match < 25; ++match) {
                for (const auto* market : markets) {
                    topics.push_back(std::string("Distribution/") + sport + "/League "
                                     + std::to_string(league) + "/Match "
                                     + std::to_string(match) + "/" + market);
                }
            }
        }
    }
    return topics;
}

// 10,000 subscriptions: 70% exact, 20% children of a match, 8% descendants of a league,
// 2% descendants of a sport.
std::vector<Selector> subscriptions(const std::vector<std::string>& topics)
{
    std::mt19937_64 rng(42);
    std::uniform_int_distribution<std::size_t> pick(0, topics.size() - 1);
    std::uniform_int_distribution<int> percent(0, 99);
    std::vector<Selector> selectors;
    for (int i = 0; i < 10'000; ++i) {
        const std::string_view topic = topics[pick(rng)];
        const auto match = parent_path(topic);
        const auto league = parent_path(match);
        const int p = percent(rng);
        const auto text = p < 70 ? std::string(topic)
            : p < 90             ? std::string(match) + "/*"
            : p < 98             ? std::string(league) + "//"
                                 : std::string(parent_path(league)) + "//";
        selectors.push_back(*Selector::parse(text));
    }
    return selectors;
}

void BM_SelectorIndex_match_one_topic(benchmark::State& state)
{
    const auto topics = sports_topics();
    SelectorIndex index;
    std::uint64_t key = 0;
    for (const auto& selector : subscriptions(topics)) {
        index.add(selector, key++);
    }
    std::size_t next = 0;
    std::uint64_t matched = 0;
    for (auto _ : state) {
        index.for_each_match(topics[next], [&](std::uint64_t k, const Selector&) { matched += k; });
        next = next + 1 == topics.size() ? 0 : next + 1;
    }
    benchmark::DoNotOptimize(matched);
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SelectorIndex_match_one_topic);

void BM_Baseline_scan_every_subscription(benchmark::State& state)
{
    const auto topics = sports_topics();
    const auto selectors = subscriptions(topics);
    std::size_t next = 0;
    std::uint64_t matched = 0;
    for (auto _ : state) {
        for (std::size_t k = 0; k < selectors.size(); ++k) {
            matched += selectors[k].matches(topics[next]) ? k : 0;
        }
        next = next + 1 == topics.size() ? 0 : next + 1;
    }
    benchmark::DoNotOptimize(matched);
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Baseline_scan_every_subscription);

const char* const descendant_selectors[] = {"Distribution//", "Distribution/Football//",
                                            "Distribution/Football/League 0//"};

void BM_TopicTree_descendants(benchmark::State& state)
{
    TopicTree<std::uint64_t> tree;
    std::uint64_t value = 0;
    for (const auto& topic : sports_topics()) {
        tree.try_emplace(topic, value++);
    }
    const auto selector = *Selector::parse(descendant_selectors[state.range(0)]);
    std::uint64_t visited = 0;
    std::uint64_t sum = 0;
    for (auto _ : state) {
        tree.for_each_match(selector, [&](std::string_view, std::uint64_t& v) {
            sum += v;
            ++visited;
        });
    }
    benchmark::DoNotOptimize(sum);
    state.SetItemsProcessed(static_cast<std::int64_t>(visited));
    state.SetLabel(selector.text());
}
BENCHMARK(BM_TopicTree_descendants)->DenseRange(0, 2);

void BM_Baseline_scan_every_topic(benchmark::State& state)
{
    TopicPathMap<std::uint64_t> flat;
    std::uint64_t value = 0;
    for (const auto& topic : sports_topics()) {
        flat.emplace(topic, value++);
    }
    const auto selector = *Selector::parse(descendant_selectors[state.range(0)]);
    std::uint64_t visited = 0;
    std::uint64_t sum = 0;
    for (auto _ : state) {
        for (const auto& [path, v] : flat) {
            if (selector.matches(path)) {
                sum += v;
                ++visited;
            }
        }
    }
    benchmark::DoNotOptimize(sum);
    state.SetItemsProcessed(static_cast<std::int64_t>(visited));
    state.SetLabel(selector.text());
}
BENCHMARK(BM_Baseline_scan_every_topic)->DenseRange(0, 2);

} // namespace
