// Micro-benchmarks of the binary delta codec on the updates it is meant for: JSON-ish records
// (odds, spreads, totals) and binary records of 8-byte fields, 64 B, 200 B, 1 KiB and 4 KiB, each
// update changing three fields. Every run walks a fixed chain of 64 versions, so that neither
// the branch predictor nor the caches see the same pair twice in a row. Items are updates;
// `delta_bytes` is the mean delta size. Baseline in the same run: a memcpy of the value and
// its checksum, what sending the whole value costs at least.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "brook/codec/delta.hpp"

namespace {

using namespace brook::codec;
using Bytes = std::vector<std::byte>;

constexpr std::size_t chain_length = 64;
constexpr std::size_t fields_changed = 3;

enum Kind : int { json = 0, binary = 1 };
const char* const kind_names[] = {"json", "binary"};

// An odds price (+120), a spread (-3.5) or a total (45.5).
std::string odds_value(std::mt19937_64& rng) {
  std::string v;
  switch (rng() % 3) {
    case 0: v.append(rng() % 2 ? "+" : "-").append(std::to_string(100 + rng() % 400)); break;
    case 1: v.append(rng() % 2 ? "+" : "-").append(std::to_string(rng() % 20)).append(".5"); break;
    default: v.append(std::to_string(30 + rng() % 40)).append(".5"); break;
  }
  return v;
}

// {"Market_00":"+120","Market_01":"-3.5",...} up to about `bytes`, fields changed in place
// (their length may change by a character or two).
std::vector<Bytes> json_chain(std::size_t bytes, std::mt19937_64& rng) {
  std::vector<std::string> values;
  auto render = [&] {
    std::string s = "{";
    for (std::size_t i = 0; i < values.size(); ++i) {
      if (i) s += ',';
      s.append("\"Market_").append(std::to_string(100 + i), 1, 2).append("\":\"");
      s.append(values[i]).append("\"");
    }
    s += '}';
    auto b = std::as_bytes(std::span(s));
    return Bytes(b.begin(), b.end());
  };
  while (render().size() < bytes) values.push_back(odds_value(rng));
  std::vector<Bytes> chain{render()};
  while (chain.size() < chain_length) {
    for (std::size_t k = 0; k < fields_changed; ++k)
      values[rng() % values.size()] = odds_value(rng);
    chain.push_back(render());
  }
  return chain;
}

// Random 8-byte fields; each version overwrites three of them.
std::vector<Bytes> binary_chain(std::size_t bytes, std::mt19937_64& rng) {
  Bytes value(bytes);
  for (auto& b : value) b = static_cast<std::byte>(rng());
  std::vector<Bytes> chain{value};
  while (chain.size() < chain_length) {
    for (std::size_t k = 0; k < fields_changed; ++k) {
      const std::uint64_t field = rng();
      std::memcpy(value.data() + 8 * (rng() % (bytes / 8)), &field, sizeof field);
    }
    chain.push_back(value);
  }
  return chain;
}

std::vector<Bytes> chain_for(const benchmark::State& state) {
  std::mt19937_64 rng(42);
  const auto bytes = static_cast<std::size_t>(state.range(0));
  return state.range(1) == json ? json_chain(bytes, rng) : binary_chain(bytes, rng);
}

// Deltas from each version to the next, as encode sends them (room: the value less one byte).
std::vector<Bytes> deltas_of(const std::vector<Bytes>& chain, std::size_t& total_bytes) {
  DeltaEncoder encoder;
  std::vector<Bytes> deltas;
  total_bytes = 0;
  for (std::size_t k = 0; k + 1 < chain.size(); ++k) {
    Bytes d(chain[k + 1].size() - 1);
    d.resize(encoder.encode(chain[k], chain[k + 1], d));
    total_bytes += d.size();
    deltas.push_back(std::move(d));
  }
  return deltas;
}

void label(benchmark::State& state, const std::vector<Bytes>& chain) {
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetLabel(std::string(kind_names[state.range(1)]) + " " +
                 std::to_string(chain.front().size()) + " B");
}

void BM_Delta_encode(benchmark::State& state) {
  const auto chain = chain_for(state);
  DeltaEncoder encoder;
  Bytes out(chain.front().size() + 64);
  std::size_t k = 0, failed = 0, bytes = 0;
  for (auto _ : state) {
    const std::size_t size = encoder.encode(chain[k], chain[k + 1], out);
    failed += size == 0;
    bytes += size;
    if (++k + 1 == chain.size()) k = 0;
  }
  if (failed) state.SkipWithError("encode gave up");
  state.counters["delta_bytes"] =
      benchmark::Counter(static_cast<double>(bytes), benchmark::Counter::kAvgIterations);
  label(state, chain);
}

void BM_Delta_apply(benchmark::State& state) {
  const auto chain = chain_for(state);
  std::size_t total = 0;
  const auto deltas = deltas_of(chain, total);
  Bytes out;
  std::size_t k = 0, failed = 0;
  for (auto _ : state) {
    failed += apply_delta(chain[k], deltas[k], out, 8u << 20) != DeltaError::none;
    benchmark::DoNotOptimize(out.data());
    if (++k == deltas.size()) k = 0;
  }
  if (failed) state.SkipWithError("apply refused a delta");
  state.counters["delta_bytes"] =
      static_cast<double>(total) / static_cast<double>(deltas.size());
  label(state, chain);
}

// Baselines: the whole value copied, and its checksum (which apply computes over the result).
void BM_Delta_baseline_memcpy(benchmark::State& state) {
  const auto chain = chain_for(state);
  Bytes out(chain.front().size() + 64);
  std::size_t k = 0;
  for (auto _ : state) {
    std::memcpy(out.data(), chain[k].data(), chain[k].size());
    benchmark::ClobberMemory();
    if (++k == chain.size()) k = 0;
  }
  label(state, chain);
}

void BM_Delta_baseline_checksum(benchmark::State& state) {
  const auto chain = chain_for(state);
  std::size_t k = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(value_checksum(chain[k]));
    if (++k == chain.size()) k = 0;
  }
  label(state, chain);
}

void sizes(benchmark::internal::Benchmark* b) {
  for (int kind : {json, binary})
    for (int bytes : {64, 200, 1024, 4096}) b->Args({bytes, kind});
}
BENCHMARK(BM_Delta_encode)->Apply(sizes);
BENCHMARK(BM_Delta_apply)->Apply(sizes);
BENCHMARK(BM_Delta_baseline_memcpy)->Apply(sizes);
BENCHMARK(BM_Delta_baseline_checksum)->Apply(sizes);

}  // namespace
