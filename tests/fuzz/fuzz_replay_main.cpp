// The driver for fuzz targets in builds without libFuzzer (gcc): `NAME_replay COUNT [FILE...]`
// first replays each FILE (a crash input saved by libFuzzer, say), then feeds the target COUNT
// inputs generated from a fixed seed, so that every run sees the same inputs: random bytes,
// and valid frame streams built with FrameEncoder / write_publish / write_update_head, then
// mutated by bit flips, truncation, edits of the length, kind and offset fields, splices and
// insertions. Each input is copied into a buffer of exactly its size, so that ASan builds
// catch a read one byte past it.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "brook/codec/frame.hpp"
#include "brook/codec/messages.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

using namespace brook::codec;
using Bytes = std::vector<std::byte>;

// splitmix64: small, fast and the same on every platform (std distributions are not).
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform enough in [0, n) for n > 0.
  std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }
  bool one_in(std::size_t n) { return below(n) == 0; }

 private:
  std::uint64_t state_;
};

std::string random_text(Rng& rng, std::size_t max_len) {
  static constexpr char alphabet[] = "abcXYZ019/ */_-\xc3\xa9\t";
  std::string s(rng.below(max_len + 1), ' ');
  for (auto& c : s) c = alphabet[rng.below(sizeof alphabet - 1)];
  return s;
}

Bytes random_bytes(Rng& rng, std::size_t max_len) {
  Bytes b(rng.below(max_len + 1));
  for (auto& x : b) x = static_cast<std::byte>(rng.next());
  return b;
}

std::uint32_t edge_u32(Rng& rng, std::uint32_t near) {
  const std::uint32_t edges[] = {0,
                                 1,
                                 4,
                                 7,
                                 8,
                                 9,
                                 near - 1,
                                 near,
                                 near + 1,
                                 0x7fffffff,
                                 0xffffffff,
                                 default_max_frame_bytes,
                                 default_max_frame_bytes + 1,
                                 0x10000,
                                 0xfffffff0};
  if (rng.one_in(4)) return static_cast<std::uint32_t>(rng.next());
  return edges[rng.below(std::size(edges))];
}

Bytes copy(std::span<const std::byte> s) { return {s.begin(), s.end()}; }

// One valid frame of any kind.
Bytes valid_frame(Rng& rng, FrameEncoder& encoder) {
  auto type = static_cast<TopicType>(rng.below(topic_type_count));
  auto request = static_cast<std::uint32_t>(rng.next());
  switch (rng.below(21)) {
    case 0: {
      Bytes creds = random_bytes(rng, 40);
      return copy(encoder.connect(random_text(rng, 30), random_text(rng, 20), creds));
    }
    case 1:
      return copy(encoder.connected(random_text(rng, 30), static_cast<std::uint32_t>(rng.next())));
    case 2:
      return copy(encoder.subscribe(request, random_text(rng, 60)));
    case 3:
      return copy(encoder.subscribed(request, random_text(rng, 60)));
    case 4:
      return copy(encoder.unsubscribe(request, random_text(rng, 60)));
    case 5:
      return copy(encoder.unsubscribed(request, random_text(rng, 60)));
    case 6:
      return copy(encoder.create_topic(request, random_text(rng, 60), {.type = type}));
    case 7:
      return copy(encoder.ack(request));
    case 8:
      return copy(encoder.topic_add(request, random_text(rng, 60), type));
    case 9:
      return copy(encoder.ping(rng.next(), rng.next()));
    case 10:
      return copy(encoder.pong(rng.next(), rng.next()));
    case 11:
      return copy(encoder.close(random_text(rng, 80)));
    case 12:
      return copy(
          encoder.error(static_cast<ErrorCode>(rng.below(12)), request, random_text(rng, 80)));
    case 15:
      return copy(encoder.refresh(static_cast<std::uint32_t>(rng.next())));
    case 16:
      return copy(encoder.add_handler(request, random_text(rng, 60), rng.one_in(2)));
    case 17: {
      Bytes payload = random_bytes(rng, 200);
      return copy(encoder.request({request, random_text(rng, 60), type, payload,
                                   static_cast<std::uint32_t>(rng.next())}));
    }
    case 18: {
      Bytes payload = random_bytes(rng, 200);
      std::string path = random_text(rng, 60), who = random_text(rng, 30);
      return copy(encoder.handle_request({rng.next(), path, who, type, payload}));
    }
    case 19: {
      Bytes payload = random_bytes(rng, 200);
      std::string why = random_text(rng, 40);
      return copy(encoder.response({rng.next(), rng.one_in(2), why, type, payload}));
    }
    case 20: {
      Bytes payload = random_bytes(rng, 200);
      std::string why = random_text(rng, 40);
      return copy(encoder.request_result(
          {request, static_cast<ErrorCode>(rng.below(21)), why, type, payload}));
    }
    case 13: {
      // Now and then a path longer than the limit, which decode must refuse.
      std::string path = random_text(rng, rng.one_in(20) ? 1100 : 60);
      Bytes value = random_bytes(rng, rng.one_in(10) ? 5000 : 100);
      Bytes frame(publish_frame_bytes(path.size(), value.size()));
      write_publish(frame.data(), request, path, rng.one_in(3) ? std::nullopt : std::optional(type),
                    value);
      return frame;
    }
    default: {
      Bytes value = random_bytes(rng, 200);
      Bytes frame(update_head_bytes + value.size());
      write_update_head(frame.data(), value.size(), rng.next(), rng.next(),
                        static_cast<std::uint32_t>(rng.next()),
                        static_cast<UpdateEncoding>(rng.next() % 3));  // 2: an unknown encoding
      if (!value.empty()) std::memcpy(frame.data() + update_head_bytes, value.data(), value.size());
      return frame;
    }
  }
}

// A stream of 1 to 4 valid frames; `starts` gets each frame's offset.
Bytes valid_stream(Rng& rng, FrameEncoder& encoder, std::vector<std::size_t>& starts) {
  Bytes stream;
  starts.clear();
  for (std::size_t n = 1 + rng.below(4); n > 0; --n) {
    starts.push_back(stream.size());
    Bytes frame = valid_frame(rng, encoder);
    stream.insert(stream.end(), frame.begin(), frame.end());
  }
  return stream;
}

void mutate(Rng& rng, FrameEncoder& encoder, Bytes& b, const std::vector<std::size_t>& starts) {
  auto frame_start = [&] { return starts[rng.below(starts.size())]; };
  switch (rng.below(9)) {
    case 0:  // bit flips
      for (std::size_t k = 1 + rng.below(8); k > 0 && !b.empty(); --k)
        b[rng.below(b.size())] ^= static_cast<std::byte>(1u << rng.below(8));
      break;
    case 1:  // truncation
      b.resize(rng.below(b.size() + 1));
      break;
    case 2: {  // a frame's length field
      std::size_t at = frame_start();
      if (at + 4 <= b.size()) {
        std::uint32_t size = load_le<std::uint32_t>(b.data() + at);
        store_le(b.data() + at, edge_u32(rng, size));
      }
      break;
    }
    case 3: {  // a frame's kind
      std::size_t at = frame_start() + 4;
      const std::uint16_t kinds[] = {0, 1, 2, 3, 4, 0x00ff, 0xffff};
      if (at + 2 <= b.size()) store_le(b.data() + at, kinds[rng.below(std::size(kinds))]);
      break;
    }
    case 4: {  // a 32-bit word inside a body: FlatBuffers offsets, vtable entries, lengths
      std::size_t at = frame_start() + frame_header_bytes + 4 * rng.below(16);
      if (at + 4 <= b.size())
        store_le(b.data() + at, edge_u32(rng, load_le<std::uint32_t>(b.data() + at)));
      break;
    }
    case 5: {  // a 16-bit word: vtable sizes and field offsets, the publish path length
      std::size_t at = frame_start() + frame_header_bytes + 2 * rng.below(24);
      const std::uint16_t words[] = {0, 1, 3, 4, 0x7fff, 0xffff, 1024, 1025};
      if (at + 2 <= b.size()) store_le(b.data() + at, words[rng.below(std::size(words))]);
      break;
    }
    case 6: {  // splice: the head of this stream and the tail of another
      std::vector<std::size_t> other_starts;
      Bytes other = valid_stream(rng, encoder, other_starts);
      b.resize(rng.below(b.size() + 1));
      std::size_t from = rng.below(other.size() + 1);
      b.insert(b.end(), other.begin() + static_cast<std::ptrdiff_t>(from), other.end());
      break;
    }
    case 7: {  // random bytes inserted somewhere
      Bytes noise = random_bytes(rng, 16);
      std::size_t at = rng.below(b.size() + 1);
      b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), noise.begin(), noise.end());
      break;
    }
    default: {  // bytes removed from somewhere
      if (b.empty()) break;
      std::size_t at = rng.below(b.size());
      std::size_t n = std::min(b.size() - at, 1 + rng.below(16));
      b.erase(b.begin() + static_cast<std::ptrdiff_t>(at),
              b.begin() + static_cast<std::ptrdiff_t>(at + n));
      break;
    }
  }
}

void run(const Bytes& input) {
  // Exactly sized heap copy: the target must not read past it.
  std::unique_ptr<std::uint8_t[]> exact(new std::uint8_t[input.size()]);
  if (!input.empty()) std::memcpy(exact.get(), input.data(), input.size());
  LLVMFuzzerTestOneInput(exact.get(), input.size());
}

}  // namespace

int main(int argc, char** argv) {
  std::size_t count = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 10000;
  for (int i = 2; i < argc; ++i) {
    std::ifstream file(argv[i], std::ios::binary);
    if (!file) {
      std::fprintf(stderr, "cannot read %s\n", argv[i]);
      return 2;
    }
    std::vector<char> text((std::istreambuf_iterator<char>(file)),
                           std::istreambuf_iterator<char>());
    auto bytes = std::as_bytes(std::span(text));
    run(Bytes(bytes.begin(), bytes.end()));
  }

  Rng rng(0xb200c0dec0ffeeull);
  FrameEncoder encoder;
  std::vector<std::size_t> starts;
  for (std::size_t i = 0; i < count; ++i) {
    Bytes input;
    switch (rng.below(10)) {
      case 0:
        input = random_bytes(rng, 512);
        break;
      case 1:
        input = valid_stream(rng, encoder, starts);
        break;
      default:
        input = valid_stream(rng, encoder, starts);
        for (std::size_t m = 1 + rng.below(3); m > 0; --m) mutate(rng, encoder, input, starts);
        break;
    }
    run(input);
  }
  std::printf("%zu generated and %d given inputs: no invariant broken\n", count,
              argc > 2 ? argc - 2 : 0);
  return 0;
}
