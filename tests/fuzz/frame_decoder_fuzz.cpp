// Fuzz target: whatever bytes a peer sends, split_frame and FrameDecoder::decode stay inside
// them. The input is split into frames as a receive loop would, every frame is decoded (and
// the whole input once more as a single frame), and every field of every decoded view is read
// byte by byte, so that a length the decoder failed to check shows up as an ASan report
// rather than a silently wrong value. Invariants that hold for any input abort on violation.
//
// Built with libFuzzer under clang (-DBROOK_FUZZ=ON); the gcc build links it with
// fuzz_replay_main.cpp, which feeds it generated inputs.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>
#include <variant>

#include "brook/codec/frame.hpp"
#include "brook/codec/messages.hpp"

namespace {

using namespace brook::codec;

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "frame_decoder_fuzz: invariant violated: %s\n", what);
  std::abort();
}

template <class... F>
struct overloaded : F... {
  using F::operator()...;
};
template <class... F>
overloaded(F...) -> overloaded<F...>;

// Reads every byte it is given; the sum goes to a sink the optimiser cannot drop.
struct Toucher {
  std::uint64_t sum = 0;
  void bytes(std::span<const std::byte> b) {
    for (std::byte x : b) sum = sum * 131 + static_cast<std::uint8_t>(x);
  }
  void text(std::string_view s) { bytes(std::as_bytes(std::span(s.data(), s.size()))); }
  void number(std::uint64_t v) { sum ^= v + 0x9e3779b97f4a7c15ull + (sum << 6); }
};

// Keeps the bytes read observable without printing anything.
volatile std::uint64_t sink;

bool inside(std::span<const std::byte> view, std::span<const std::byte> frame) {
  if (view.empty()) return true;
  auto* begin = frame.data();
  return view.data() >= begin && view.data() + view.size() <= begin + frame.size();
}
bool inside(std::string_view view, std::span<const std::byte> frame) {
  return inside(std::as_bytes(std::span(view.data(), view.size())), frame);
}

// Reads every field of `decoded`, checking what must hold for a decoded `frame`.
void touch(const Decoded& decoded, std::span<const std::byte> frame, Toucher& t) {
  t.number(static_cast<std::uint64_t>(decoded.error));
  if (!decoded.ok()) return;
  // No control field can be longer than the frame that carried it. (Each on its own: the
  // Verifier lets two fields share bytes, so their sum may be longer.)
  auto bounded = [&](std::size_t n) {
    if (n > frame.size()) violated("a control field is longer than its frame");
  };
  std::visit(overloaded{
                 [&](const ConnectMsg& m) {
                   t.number(m.protocol_version);
                   bounded(m.client_name.size());
                   bounded(m.principal.size());
                   bounded(m.credentials.size());
                   t.text(m.client_name);
                   t.text(m.principal);
                   t.bytes(m.credentials);
                 },
                 [&](const ConnectedMsg& m) {
                   bounded(m.session_id.size());
                   t.text(m.session_id);
                   t.number(m.max_frame_bytes);
                 },
                 [&](const SubscribeMsg& m) {
                   bounded(m.selector.size());
                   t.number(m.request_id);
                   t.text(m.selector);
                 },
                 [&](const SubscribedMsg& m) {
                   bounded(m.selector.size());
                   t.number(m.request_id);
                   t.text(m.selector);
                 },
                 [&](const UnsubscribeMsg& m) {
                   bounded(m.selector.size());
                   t.number(m.request_id);
                   t.text(m.selector);
                 },
                 [&](const UnsubscribedMsg& m) {
                   bounded(m.selector.size());
                   t.number(m.request_id);
                   t.text(m.selector);
                 },
                 [&](const CreateTopicMsg& m) {
                   bounded(m.path.size());
                   if (static_cast<std::uint8_t>(m.properties.type) >= topic_type_count)
                     violated("create_topic type");
                   t.number(m.request_id);
                   t.text(m.path);
                 },
                 [&](const AckMsg& m) { t.number(m.request_id); },
                 [&](const TopicAddMsg& m) {
                   bounded(m.path.size());
                   if (static_cast<std::uint8_t>(m.type) >= topic_type_count)
                     violated("topic_add type");
                   t.number(m.alias);
                   t.text(m.path);
                 },
                 [&](const PingMsg& m) { t.number(m.id ^ m.sent_ns); },
                 [&](const PongMsg& m) { t.number(m.id ^ m.sent_ns); },
                 [&](const CloseMsg& m) {
                   bounded(m.reason.size());
                   t.text(m.reason);
                 },
                 [&](const ErrorMsg& m) {
                   bounded(m.message.size());
                   t.number(static_cast<std::uint64_t>(m.code) ^ m.request_id);
                   t.text(m.message);
                 },
                 [&](const PublishMsg& m) {
                   if (!inside(m.path, frame) || !inside(m.value, frame))
                     violated("publish view outside the frame");
                   if (publish_head_bytes + m.path.size() + m.value.size() != frame.size())
                     violated("publish path and value do not add up to the frame");
                   if (m.path.size() > max_path_bytes)
                     violated("publish path longer than the limit");
                   if (m.type && static_cast<std::uint8_t>(*m.type) >= topic_type_count)
                     violated("publish type");
                   t.number(m.request_id);
                   t.text(m.path);
                   t.bytes(m.value);
                 },
                 [&](const UpdateMsg& m) {
                   if (!inside(m.value, frame)) violated("update value outside the frame");
                   if (update_head_bytes + m.value.size() != frame.size())
                     violated("update value does not fill the frame");
                   t.number(m.session_seq ^ m.topic_seq ^ m.alias ^ static_cast<std::uint8_t>(m.encoding));
                   t.bytes(m.value);
                 },
                 [&](const SharedUpdateMsg& m) {
                   if (frame.size() != shared_update_bytes) violated("shared update of the wrong size");
                   if (!m.update.value.empty()) violated("shared update with an inline value");
                   t.number(m.position ^ m.value_bytes ^ m.segment ^ m.update.session_seq);
                 },
                 [&](const ResyncMsg& m) {
                   bounded(m.reason.size());
                   t.text(m.reason);
                 },
                 [&](const RefreshMsg& m) { t.number(m.alias); },
                 [&](const ReceivedMsg& m) { t.number(m.last_received); },
                 [&](const FlowControlMsg& m) { t.number(m.held); },
                 [&](const ResumeSubscriptionsMsg& m) {
                   for (const TopicPosition& p : m.positions) {
                     bounded(p.path.size());
                     t.number(p.epoch ^ p.seq);
                     t.text(p.path);
                   }
                 },
                 [&](const AddHandlerMsg& m) {
                   bounded(m.path.size());
                   t.number(m.request_id ^ m.sticky);
                   t.text(m.path);
                 },
                 [&](const RemoveHandlerMsg& m) {
                   bounded(m.path.size());
                   t.number(m.request_id);
                   t.text(m.path);
                 },
                 [&](const RequestMsg& m) {
                   bounded(m.path.size());
                   bounded(m.payload.size());
                   if (static_cast<std::uint8_t>(m.type) >= topic_type_count) violated("request type");
                   t.number(m.request_id ^ m.timeout_ms);
                   t.text(m.path);
                   t.bytes(m.payload);
                 },
                 [&](const HandleRequestMsg& m) {
                   bounded(m.path.size());
                   bounded(m.requester.size());
                   bounded(m.payload.size());
                   if (static_cast<std::uint8_t>(m.type) >= topic_type_count) violated("handle_request type");
                   t.number(m.id);
                   t.text(m.path);
                   t.text(m.requester);
                   t.bytes(m.payload);
                 },
                 [&](const ResponseMsg& m) {
                   bounded(m.message.size());
                   bounded(m.payload.size());
                   if (static_cast<std::uint8_t>(m.type) >= topic_type_count) violated("response type");
                   t.number(m.id ^ m.failed);
                   t.text(m.message);
                   t.bytes(m.payload);
                 },
                 [&](const RequestResultMsg& m) {
                   bounded(m.message.size());
                   bounded(m.payload.size());
                   if (static_cast<std::uint8_t>(m.type) >= topic_type_count) violated("result type");
                   t.number(m.request_id ^ static_cast<std::uint16_t>(m.code));
                   t.text(m.message);
                   t.bytes(m.payload);
                 },
             },
             decoded.message);
}

// Decodes `frame` in place and from a copy at an odd address (the decoder's aligned scratch
// path); both must agree.
void decode_both_ways(FrameDecoder& in_place, FrameDecoder& shifted,
                      std::span<const std::byte> frame, Toucher& t) {
  Decoded a = in_place.decode(frame);
  touch(a, frame, t);
  // Exactly sized, so that ASan sees a read one past the end of the copy too.
  std::unique_ptr<std::byte[]> copy(new std::byte[frame.size() + 1]);
  if (!frame.empty()) std::memcpy(copy.get() + 1, frame.data(), frame.size());
  std::span<const std::byte> odd(copy.get() + 1, frame.size());
  Decoded b = shifted.decode(odd);
  touch(b, odd, t);
  if (a.error != b.error || (a.ok() && a.message.index() != b.message.index()))
    violated("decoding depends on the frame's address");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static FrameDecoder in_place, shifted;  // reused across inputs, as a session's decoder is
  Toucher t;
  std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data), size);

  // The whole input as one frame.
  decode_both_ways(in_place, shifted, input, t);

  // As a receive loop sees it: frame after frame until the bytes run out or stop making sense.
  for (std::uint32_t limit : {default_max_frame_bytes, std::uint32_t{64}}) {
    std::size_t offset = 0;
    while (offset < input.size()) {  // bounded: each frame is at least a header long
      auto rest = input.subspan(offset);
      FrameSplit split = split_frame(rest, limit);
      t.number(static_cast<std::uint64_t>(split.status) ^ split.size);
      if (split.status == SplitStatus::too_large && split.size <= limit)
        violated("too_large for a frame within the limit");
      if (split.status != SplitStatus::frame) break;
      if (split.size < frame_header_bytes || split.size > rest.size() || split.size > limit)
        violated("split_frame returned a frame outside the bytes or the limit");
      decode_both_ways(in_place, shifted, rest.first(split.size), t);
      offset += split.size;
    }
  }

  sink = t.sum;
  return 0;
}
