// Micro-benchmarks of the wire codec: encoding and decoding control frames (FlatBuffers
// bodies), writing and decoding publish frames (fixed head + path + value), and splitting a
// received byte stream into frames. Baseline in the same run: a plain memcpy of the same
// bytes, the least any encoder or receive loop has to pay. Items are frames; bytes are wire
// bytes.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <variant>
#include <vector>

#include "brook/codec/frame.hpp"
#include "brook/codec/messages.hpp"

namespace {

using namespace brook::codec;

const std::string selector = "Distribution/Football/League 3//";
const std::string topic_path = "Distribution/Football/League 3/Match 17/Odds";
const std::string error_text = "topic 'Distribution/Football/League 3/Match 17/Odds' is int64, not string";

void set_counters(benchmark::State& state, std::uint64_t frames, std::uint64_t bytes) {
  state.SetItemsProcessed(static_cast<std::int64_t>(frames));
  state.SetBytesProcessed(static_cast<std::int64_t>(bytes));
}

// ---- control frames ----------------------------------------------------------------------

enum Control : int { subscribe = 0, topic_add = 1, error = 2 };
const char* const control_names[] = {"subscribe", "topic_add", "error"};

std::span<const std::byte> encode(FrameEncoder& encoder, int which, std::uint32_t i) {
  switch (which) {
    case subscribe: return encoder.subscribe(i, selector);
    case topic_add: return encoder.topic_add(i, topic_path, TopicType::json);
    default: return encoder.error(ErrorCode::type_mismatch, i, error_text);
  }
}

void BM_Codec_encode_control(benchmark::State& state) {
  FrameEncoder encoder;
  std::uint32_t i = 0;
  std::uint64_t bytes = 0;
  for (auto _ : state) {
    auto frame = encode(encoder, static_cast<int>(state.range(0)), ++i);
    benchmark::DoNotOptimize(frame.data());
    bytes += frame.size();
  }
  set_counters(state, state.iterations(), bytes);
  state.SetLabel(control_names[state.range(0)]);
}
BENCHMARK(BM_Codec_encode_control)->DenseRange(0, 2);

void BM_Codec_decode_control(benchmark::State& state) {
  FrameEncoder encoder;
  auto encoded = encode(encoder, static_cast<int>(state.range(0)), 42);
  // Frames arrive in a receive buffer at 8-byte aligned offsets in the common case.
  std::vector<std::uint64_t> storage((encoded.size() + 7) / 8);
  std::memcpy(storage.data(), encoded.data(), encoded.size());
  const std::span<const std::byte> frame(reinterpret_cast<const std::byte*>(storage.data()),
                                         encoded.size());
  FrameDecoder decoder;
  std::uint64_t failed = 0;
  for (auto _ : state) {
    Decoded d = decoder.decode(frame);
    failed += d.ok() ? 0 : 1;
    benchmark::DoNotOptimize(d.message);
  }
  if (failed) state.SkipWithError("decode failed");
  set_counters(state, state.iterations(), state.iterations() * frame.size());
  state.SetLabel(control_names[state.range(0)]);
}
BENCHMARK(BM_Codec_decode_control)->DenseRange(0, 2);

// ---- publish frames ----------------------------------------------------------------------

void BM_Codec_write_publish(benchmark::State& state) {
  const std::size_t value_bytes = static_cast<std::size_t>(state.range(0));
  std::vector<std::byte> value(value_bytes, std::byte{'x'});
  std::vector<std::byte> out(publish_frame_bytes(topic_path.size(), value_bytes));
  std::uint32_t i = 0;
  for (auto _ : state) {
    write_publish(out.data(), ++i, topic_path, TopicType::string, value);
    benchmark::ClobberMemory();
  }
  set_counters(state, state.iterations(), state.iterations() * out.size());
}
BENCHMARK(BM_Codec_write_publish)->Arg(64)->Arg(1024);

void BM_Codec_decode_publish(benchmark::State& state) {
  const std::size_t value_bytes = static_cast<std::size_t>(state.range(0));
  std::vector<std::byte> value(value_bytes, std::byte{'x'});
  std::vector<std::byte> frame(publish_frame_bytes(topic_path.size(), value_bytes));
  write_publish(frame.data(), 7, topic_path, TopicType::string, value);
  FrameDecoder decoder;
  std::uint64_t failed = 0;
  for (auto _ : state) {
    Decoded d = decoder.decode(frame);
    failed += std::holds_alternative<PublishMsg>(d.message) ? 0 : 1;
    benchmark::DoNotOptimize(d.message);
  }
  if (failed) state.SkipWithError("decode failed");
  set_counters(state, state.iterations(), state.iterations() * frame.size());
}
BENCHMARK(BM_Codec_decode_publish)->Arg(64)->Arg(1024);

// write_publish then decode, as a client's encode and a broker's decode of the same message.
void BM_Codec_publish_round_trip(benchmark::State& state) {
  const std::size_t value_bytes = static_cast<std::size_t>(state.range(0));
  std::vector<std::byte> value(value_bytes, std::byte{'x'});
  std::vector<std::byte> frame(publish_frame_bytes(topic_path.size(), value_bytes));
  FrameDecoder decoder;
  std::uint32_t i = 0;
  std::uint64_t failed = 0;
  for (auto _ : state) {
    write_publish(frame.data(), ++i, topic_path, TopicType::string, value);
    Decoded d = decoder.decode(frame);
    const auto* p = std::get_if<PublishMsg>(&d.message);
    failed += p && p->request_id == i ? 0 : 1;
    benchmark::DoNotOptimize(p);
  }
  if (failed) state.SkipWithError("round trip failed");
  set_counters(state, state.iterations(), state.iterations() * frame.size());
}
BENCHMARK(BM_Codec_publish_round_trip)->Arg(64)->Arg(1024);

// Baseline: copying the frame's bytes, what any encoder must at least do.
void BM_Baseline_memcpy_publish_frame(benchmark::State& state) {
  const std::size_t bytes = publish_frame_bytes(topic_path.size(), static_cast<std::size_t>(state.range(0)));
  std::vector<std::byte> in(bytes, std::byte{'x'}), out(bytes);
  for (auto _ : state) {
    std::memcpy(out.data(), in.data(), bytes);
    benchmark::ClobberMemory();
  }
  set_counters(state, state.iterations(), state.iterations() * bytes);
}
BENCHMARK(BM_Baseline_memcpy_publish_frame)->Arg(64)->Arg(1024);

// ---- splitting a stream ------------------------------------------------------------------

// A receive buffer of 64 KiB worth of frames: updates with small values, publishes and a
// control frame now and then, as a client's receive loop sees them.
std::vector<std::byte> mixed_stream(std::size_t& frames) {
  std::vector<std::byte> stream;
  FrameEncoder encoder;
  std::vector<std::byte> value(48, std::byte{'v'});
  frames = 0;
  for (std::uint32_t i = 0; stream.size() < 64 * 1024; ++i, ++frames) {
    const std::size_t at = stream.size();
    if (i % 16 == 15) {
      auto c = encoder.topic_add(i, topic_path, TopicType::string);
      stream.insert(stream.end(), c.begin(), c.end());
    } else if (i % 4 == 3) {
      stream.resize(at + publish_frame_bytes(topic_path.size(), value.size()));
      write_publish(stream.data() + at, i, topic_path, std::nullopt, value);
    } else {
      stream.resize(at + update_head_bytes + value.size());
      write_update_head(stream.data() + at, value.size(), i, i, i % 100);
      std::memcpy(stream.data() + at + update_head_bytes, value.data(), value.size());
    }
  }
  return stream;
}

void BM_Codec_split_frame_stream(benchmark::State& state) {
  std::size_t frames = 0;
  const auto stream = mixed_stream(frames);
  std::uint64_t wrong = 0;
  for (auto _ : state) {
    std::span<const std::byte> rest(stream);
    std::size_t n = 0;
    for (;;) {
      const FrameSplit s = split_frame(rest, default_max_frame_bytes);
      if (s.status != SplitStatus::frame) break;
      rest = rest.subspan(s.size);
      ++n;
    }
    wrong += n == frames && rest.empty() ? 0 : 1;
    benchmark::DoNotOptimize(rest.data());
  }
  if (wrong) state.SkipWithError("split did not find every frame");
  set_counters(state, state.iterations() * frames, state.iterations() * stream.size());
  state.counters["frames_per_buffer"] = static_cast<double>(frames);
}
BENCHMARK(BM_Codec_split_frame_stream);

// Split and decode every frame, as the receive loop does.
void BM_Codec_split_and_decode_stream(benchmark::State& state) {
  std::size_t frames = 0;
  const auto stream = mixed_stream(frames);
  FrameDecoder decoder;
  std::uint64_t wrong = 0;
  for (auto _ : state) {
    std::span<const std::byte> rest(stream);
    std::size_t n = 0;
    for (;;) {
      const FrameSplit s = split_frame(rest, default_max_frame_bytes);
      if (s.status != SplitStatus::frame) break;
      Decoded d = decoder.decode(rest.first(s.size));
      wrong += d.ok() ? 0 : 1;
      benchmark::DoNotOptimize(d.message);
      rest = rest.subspan(s.size);
      ++n;
    }
    wrong += n == frames ? 0 : 1;
  }
  if (wrong) state.SkipWithError("decode failed");
  set_counters(state, state.iterations() * frames, state.iterations() * stream.size());
}
BENCHMARK(BM_Codec_split_and_decode_stream);

}  // namespace
