// Unit tests of the wire format: every frame type survives FrameEncoder -> split_frame ->
// FrameDecoder with its fields intact; short, long and inconsistent inputs are refused with
// the right status; and a bounded loop of mutated frames never crashes the decoder nor gets a
// view back that points outside the bytes it was given.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "brook/codec/frame.hpp"
#include "brook/codec/messages.hpp"

namespace brook::codec {
namespace {

using Bytes = std::vector<std::byte>;

Bytes copy(std::span<const std::byte> s) { return {s.begin(), s.end()}; }

std::span<const std::byte> as_bytes(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}
std::string text(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// Splits `frame` as a receive loop would (it must be exactly one frame) and decodes it.
template <class T>
T round_trip(FrameDecoder& decoder, std::span<const std::byte> frame) {
  FrameSplit split = split_frame(frame, default_max_frame_bytes);
  EXPECT_EQ(split.status, SplitStatus::frame);
  EXPECT_EQ(split.size, frame.size());
  Decoded decoded = decoder.decode(frame.first(split.size));
  EXPECT_TRUE(decoded.ok()) << to_string(decoded.error);
  const T* message = std::get_if<T>(&decoded.message);
  EXPECT_NE(message, nullptr) << "decoded as variant #" << decoded.message.index();
  return message ? *message : T{};
}

Bytes publish_frame(std::uint32_t request_id, std::string_view path, std::optional<TopicType> type,
                    std::string_view value) {
  Bytes frame(publish_frame_bytes(path.size(), value.size()));
  write_publish(frame.data(), request_id, path, type, as_bytes(value));
  return frame;
}

Bytes update_frame(std::uint64_t session_seq, std::uint64_t topic_seq, std::uint32_t alias,
                   std::string_view value) {
  Bytes frame(update_head_bytes + value.size());
  write_update_head(frame.data(), value.size(), session_seq, topic_seq, alias);
  std::memcpy(frame.data() + update_head_bytes, value.data(), value.size());
  return frame;
}

// ---- round trips ------------------------------------------------------------------------

TEST(WireCodec, every_control_frame_round_trips_with_equal_fields) {
  FrameEncoder encoder;
  FrameDecoder decoder;
  const std::string creds = "s3cr3t\0bytes";
  {
    auto m = round_trip<ConnectMsg>(decoder, encoder.connect("feed-7", "alice", as_bytes(creds)));
    EXPECT_EQ(m.protocol_version, wire_version);
    EXPECT_EQ(m.client_name, "feed-7");
    EXPECT_EQ(m.principal, "alice");
    EXPECT_EQ(text(m.credentials), creds);
  }
  {
    auto m = round_trip<ConnectedMsg>(decoder, encoder.connected("alice/-3", 123456));
    EXPECT_EQ(m.session_id, "alice/-3");
    EXPECT_EQ(m.max_frame_bytes, 123456u);
  }
  {
    auto m = round_trip<SubscribeMsg>(decoder, encoder.subscribe(7, "a/b//"));
    EXPECT_EQ(m.request_id, 7u);
    EXPECT_EQ(m.selector, "a/b//");
  }
  {
    auto m = round_trip<SubscribedMsg>(decoder, encoder.subscribed(8, "a/*"));
    EXPECT_EQ(m.request_id, 8u);
    EXPECT_EQ(m.selector, "a/*");
  }
  {
    auto m = round_trip<UnsubscribeMsg>(decoder, encoder.unsubscribe(9, "x"));
    EXPECT_EQ(m.request_id, 9u);
    EXPECT_EQ(m.selector, "x");
  }
  {
    auto m = round_trip<UnsubscribedMsg>(decoder, encoder.unsubscribed(10, "//"));
    EXPECT_EQ(m.request_id, 10u);
    EXPECT_EQ(m.selector, "//");
  }
  for (std::uint8_t t = 0; t < topic_type_count; ++t) {
    auto type = static_cast<TopicType>(t);
    TopicProperties properties{.type = type, .conflate = t % 2 == 1, .deltas = t % 3 != 0,
                               .retain = t != 2};
    auto m = round_trip<CreateTopicMsg>(decoder, encoder.create_topic(11, "Odds/Home", properties));
    EXPECT_EQ(m.request_id, 11u);
    EXPECT_EQ(m.path, "Odds/Home");
    EXPECT_EQ(m.properties.type, type);
    EXPECT_EQ(m.properties.conflate, properties.conflate);
    EXPECT_EQ(m.properties.deltas, properties.deltas);
    EXPECT_EQ(m.properties.retain, properties.retain);
    auto add = round_trip<TopicAddMsg>(decoder, encoder.topic_add(3, "Odds/Away", type));
    EXPECT_EQ(add.alias, 3u);
    EXPECT_EQ(add.path, "Odds/Away");
    EXPECT_EQ(add.type, type);
  }
  EXPECT_EQ(round_trip<AckMsg>(decoder, encoder.ack(0xfffffffeu)).request_id, 0xfffffffeu);
  {
    auto m = round_trip<PingMsg>(decoder, encoder.ping(1ull << 40, 99));
    EXPECT_EQ(m.id, 1ull << 40);
    EXPECT_EQ(m.sent_ns, 99u);
  }
  {
    auto m = round_trip<PongMsg>(decoder, encoder.pong(5, ~0ull));
    EXPECT_EQ(m.id, 5u);
    EXPECT_EQ(m.sent_ns, ~0ull);
  }
  EXPECT_EQ(round_trip<CloseMsg>(decoder, encoder.close("bye now")).reason, "bye now");
  EXPECT_EQ(round_trip<ReceivedMsg>(decoder, encoder.received(1ull << 50)).last_received, 1ull << 50);
  for (std::uint16_t c = 0; c <= static_cast<std::uint16_t>(ErrorCode::internal); ++c) {
    auto code = static_cast<ErrorCode>(c);
    auto m = round_trip<ErrorMsg>(decoder, encoder.error(code, 12, "what went wrong"));
    EXPECT_EQ(m.code, code);
    EXPECT_EQ(m.request_id, 12u);
    EXPECT_EQ(m.message, "what went wrong");
  }
  // Empty strings and vectors are empty, not missing.
  {
    auto m = round_trip<ConnectMsg>(decoder, encoder.connect("", "", {}));
    EXPECT_EQ(m.client_name, "");
    EXPECT_TRUE(m.credentials.empty());
  }
}

TEST(WireCodec, control_frames_decode_the_same_at_any_alignment) {
  FrameEncoder encoder;
  FrameDecoder decoder;
  auto frame = copy(encoder.subscribe(77, "Distribution/Football//"));
  for (std::size_t shift = 0; shift < 8; ++shift) {
    Bytes buffer(shift + frame.size());
    std::memcpy(buffer.data() + shift, frame.data(), frame.size());
    auto m = round_trip<SubscribeMsg>(decoder, std::span(buffer).subspan(shift));
    EXPECT_EQ(m.request_id, 77u) << "shift " << shift;
    EXPECT_EQ(m.selector, "Distribution/Football//") << "shift " << shift;
  }
}

TEST(WireCodec, publish_head_round_trips_with_and_without_a_type) {
  FrameDecoder decoder;
  auto typed = publish_frame(42, "Odds/Home", TopicType::json, R"({"p":1.5})");
  auto m = round_trip<PublishMsg>(decoder, typed);
  EXPECT_EQ(m.request_id, 42u);
  EXPECT_EQ(m.path, "Odds/Home");
  EXPECT_EQ(m.type, TopicType::json);
  EXPECT_EQ(text(m.value), R"({"p":1.5})");

  auto untyped = publish_frame(0, "a", std::nullopt, "");
  auto u = round_trip<PublishMsg>(decoder, untyped);
  EXPECT_EQ(u.path, "a");
  EXPECT_FALSE(u.type.has_value());
  EXPECT_TRUE(u.value.empty());

  // What the broker reads back from a frame it has validated, and the type it records there.
  auto trusted = read_trusted_publish(typed.data(), static_cast<std::uint32_t>(typed.size()));
  EXPECT_EQ(trusted.path, "Odds/Home");
  EXPECT_EQ(trusted.type, TopicType::json);
  EXPECT_EQ(trusted.value_offset, publish_head_bytes + 9);
  EXPECT_EQ(trusted.value_bytes, 9u);
  set_publish_type(untyped.data(), TopicType::int64);
  EXPECT_EQ(round_trip<PublishMsg>(decoder, untyped).type, TopicType::int64);
}

TEST(WireCodec, update_head_round_trips) {
  FrameDecoder decoder;
  auto frame = update_frame(1ull << 33, 77, 0xabcdef, "value bytes");
  auto m = round_trip<UpdateMsg>(decoder, frame);
  EXPECT_EQ(m.session_seq, 1ull << 33);
  EXPECT_EQ(m.topic_seq, 77u);
  EXPECT_EQ(m.alias, 0xabcdefu);
  EXPECT_EQ(m.encoding, UpdateEncoding::full);
  EXPECT_EQ(text(m.value), "value bytes");
  EXPECT_TRUE(round_trip<UpdateMsg>(decoder, update_frame(1, 1, 1, "")).value.empty());
}

TEST(WireCodec, a_stream_of_frames_splits_at_every_boundary) {
  FrameEncoder encoder;
  FrameDecoder decoder;
  Bytes stream;
  auto append = [&](std::span<const std::byte> f) {
    stream.insert(stream.end(), f.begin(), f.end());
  };
  append(encoder.ping(1, 2));
  append(publish_frame(3, "p/q", TopicType::string, "hello"));
  append(update_frame(4, 5, 6, "world"));
  append(encoder.close("done"));
  std::vector<std::size_t> kinds;
  std::span<const std::byte> rest(stream);
  for (int guard = 0; guard < 10 && !rest.empty(); ++guard) {
    FrameSplit split = split_frame(rest, default_max_frame_bytes);
    ASSERT_EQ(split.status, SplitStatus::frame);
    Decoded d = decoder.decode(rest.first(split.size));
    ASSERT_TRUE(d.ok()) << to_string(d.error);
    kinds.push_back(d.message.index());
    rest = rest.subspan(split.size);
  }
  EXPECT_EQ(kinds, (std::vector<std::size_t>{9, 13, 14, 11}));  // Ping, Publish, Update, Close
}

// ---- refusals ---------------------------------------------------------------------------

TEST(WireCodec, truncated_input_needs_more_and_does_not_decode) {
  FrameEncoder encoder;
  FrameDecoder decoder;
  auto frame = copy(encoder.subscribe(1, "a/b"));
  for (std::size_t n = 0; n < frame.size(); ++n) {
    auto prefix = std::span(frame).first(n);
    FrameSplit split = split_frame(prefix, default_max_frame_bytes);
    EXPECT_EQ(split.status, SplitStatus::need_more) << n << " bytes";
    // Once the header is there, the split says how many bytes the whole frame needs.
    EXPECT_EQ(split.size, n < frame_header_bytes ? 0u : frame.size()) << n << " bytes";
    EXPECT_EQ(decoder.decode(prefix).error, DecodeError::truncated) << n << " bytes";
  }
  auto publish = publish_frame(1, "a", std::nullopt, "v");
  EXPECT_EQ(decoder.decode(std::span(publish).first(publish.size() - 1)).error,
            DecodeError::truncated);
}

TEST(WireCodec, oversize_and_malformed_headers_are_refused_by_split_frame) {
  Bytes h(frame_header_bytes + 8);
  write_frame_header(h.data(), 1025, FrameKind::publish);
  FrameSplit split = split_frame(h, 1024);
  EXPECT_EQ(split.status, SplitStatus::too_large);
  EXPECT_EQ(split.size, 1025u);
  EXPECT_EQ(split_frame(h, 1025).status, SplitStatus::need_more);

  write_frame_header(h.data(), 0xffffffffu, FrameKind::control);
  EXPECT_EQ(split_frame(h, default_max_frame_bytes).status, SplitStatus::too_large);

  for (std::uint32_t size : {0u, 1u, 7u}) {
    write_frame_header(h.data(), size, FrameKind::control);
    EXPECT_EQ(split_frame(h, default_max_frame_bytes).status, SplitStatus::malformed) << size;
  }
  for (std::uint16_t kind : {0, 5, 0xffff}) {
    write_frame_header(h.data(), 16, static_cast<FrameKind>(kind));
    EXPECT_EQ(split_frame(h, default_max_frame_bytes).status, SplitStatus::malformed) << kind;
  }
}

TEST(WireCodec, shared_update_round_trips_and_must_be_exactly_its_size) {
  std::array<std::byte, update_head_bytes> head{};
  write_update_head(head.data(), 1000, 42, 7, 3, UpdateEncoding::delta);
  Bytes frame(shared_update_bytes);
  write_shared_update(frame.data(), head.data(), 123456789012ull, 1000, 1);
  FrameDecoder decoder;
  auto decoded = decoder.decode(frame);
  ASSERT_TRUE(decoded.ok()) << to_string(decoded.error);
  auto& m = std::get<SharedUpdateMsg>(decoded.message);
  EXPECT_EQ(m.update.session_seq, 42u);
  EXPECT_EQ(m.update.topic_seq, 7u);
  EXPECT_EQ(m.update.alias, 3u);
  EXPECT_EQ(m.update.encoding, UpdateEncoding::delta);
  EXPECT_TRUE(m.update.value.empty());
  EXPECT_EQ(m.position, 123456789012ull);
  EXPECT_EQ(m.value_bytes, 1000u);
  EXPECT_EQ(m.segment, 1u);
  EXPECT_EQ(frame_flags(frame.data()), frame_flag_sequenced);

  Bytes longer = frame;
  longer.resize(shared_update_bytes + 8);
  store_le(longer.data(), static_cast<std::uint32_t>(longer.size()));
  EXPECT_EQ(decoder.decode(longer).error, DecodeError::bad_header);
}

TEST(WireCodec, inconsistent_frames_are_refused_by_the_decoder) {
  FrameDecoder decoder;
  // A header whose size disagrees with the bytes given: more bytes than it says.
  auto ping = publish_frame(1, "a/b", std::nullopt, "v");
  Bytes longer = ping;
  longer.push_back(std::byte{0});
  EXPECT_EQ(decoder.decode(longer).error, DecodeError::bad_header);

  // Unknown kind.
  Bytes unknown(16);
  write_frame_header(unknown.data(), 16, static_cast<FrameKind>(9));
  EXPECT_EQ(decoder.decode(unknown).error, DecodeError::unknown_kind);

  // Publish and update frames shorter than their heads.
  Bytes short_publish(publish_head_bytes - 1);
  write_frame_header(short_publish.data(), static_cast<std::uint32_t>(short_publish.size()),
                     FrameKind::publish);
  EXPECT_EQ(decoder.decode(short_publish).error, DecodeError::bad_header);
  Bytes short_update(update_head_bytes - 1);
  write_frame_header(short_update.data(), static_cast<std::uint32_t>(short_update.size()),
                     FrameKind::update);
  EXPECT_EQ(decoder.decode(short_update).error, DecodeError::bad_header);

  // A publish path running past the end of the frame.
  auto publish = publish_frame(1, "a/b", std::nullopt, "v");
  store_le<std::uint16_t>(publish.data() + 12, 100);
  EXPECT_EQ(decoder.decode(publish).error, DecodeError::bad_header);

  // Field values out of range: a topic type that does not exist, a path over the limit.
  auto bad_type = publish_frame(1, "a/b", std::nullopt, "v");
  bad_type[14] = std::byte{topic_type_count};
  EXPECT_EQ(decoder.decode(bad_type).error, DecodeError::bad_value);
  auto long_path = publish_frame(1, std::string(max_path_bytes + 1, 'p'), std::nullopt, "");
  EXPECT_EQ(decoder.decode(long_path).error, DecodeError::bad_value);
  auto longest_path = publish_frame(1, std::string(max_path_bytes, 'p'), std::nullopt, "");
  EXPECT_TRUE(decoder.decode(longest_path).ok());
}

TEST(WireCodec, control_frames_failing_verification_are_refused) {
  FrameEncoder encoder;
  FrameDecoder decoder;
  Bytes empty_body(frame_header_bytes);
  write_frame_header(empty_body.data(), frame_header_bytes, FrameKind::control);
  EXPECT_EQ(decoder.decode(empty_body).error, DecodeError::verify_failed);

  auto wrong_identifier = copy(encoder.ping(1, 2));
  std::memcpy(wrong_identifier.data() + frame_header_bytes + 4, "BRK0", 4);
  EXPECT_EQ(decoder.decode(wrong_identifier).error, DecodeError::verify_failed);

  auto root_past_end = copy(encoder.subscribe(1, "a"));
  store_le<std::uint32_t>(root_past_end.data() + frame_header_bytes, 0x10000);
  EXPECT_EQ(decoder.decode(root_past_end).error, DecodeError::verify_failed);

  auto string_past_end = copy(encoder.close("reason"));
  auto at = std::search(string_past_end.begin(), string_past_end.end(), as_bytes("reason").begin(),
                        as_bytes("reason").end());
  ASSERT_NE(at, string_past_end.end());
  store_le<std::uint32_t>(&*(at - 4), 1000);
  EXPECT_EQ(decoder.decode(string_past_end).error, DecodeError::verify_failed);
}

// FlatBuffers' Verifier accepts a union whose type is set and whose value is absent (it
// verifies as a null table); the decoder must refuse such a frame instead of reading it.
TEST(WireCodec, control_frame_naming_a_body_it_does_not_carry_is_refused) {
  FrameEncoder encoder;
  FrameDecoder decoder;
  auto frame = copy(encoder.ack(5));
  std::size_t table =
      frame_header_bytes + load_le<std::uint32_t>(frame.data() + frame_header_bytes);
  std::size_t vtable =
      table - static_cast<std::size_t>(load_le<std::int32_t>(frame.data() + table));
  ASSERT_EQ(load_le<std::uint16_t>(frame.data() + vtable), 8u);  // Message: body_type, body
  store_le<std::uint16_t>(frame.data() + vtable + 6, 0);         // body: absent
  Decoded decoded = decoder.decode(frame);
  EXPECT_FALSE(decoded.ok());
}

// ---- mutated frames ---------------------------------------------------------------------

// Every view a decoded message holds, as bytes.
std::vector<std::span<const std::byte>> views_of(const Message& message) {
  auto s = [](std::string_view v) { return as_bytes(v); };
  return std::visit(
      [&](const auto& m) -> std::vector<std::span<const std::byte>> {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, ConnectMsg>)
          return {s(m.client_name), s(m.principal), m.credentials};
        else if constexpr (std::is_same_v<T, ConnectedMsg>)
          return {s(m.session_id)};
        else if constexpr (requires { m.selector; })
          return {s(m.selector)};
        else if constexpr (std::is_same_v<T, CreateTopicMsg> || std::is_same_v<T, TopicAddMsg>)
          return {s(m.path)};
        else if constexpr (std::is_same_v<T, CloseMsg>)
          return {s(m.reason)};
        else if constexpr (std::is_same_v<T, ErrorMsg>)
          return {s(m.message)};
        else if constexpr (std::is_same_v<T, PublishMsg>)
          return {s(m.path), m.value};
        else if constexpr (std::is_same_v<T, UpdateMsg>)
          return {m.value};
        else
          return {};
      },
      message);
}

TEST(WireCodec, mutated_frames_never_crash_nor_yield_views_outside_the_input) {
  FrameEncoder encoder;
  FrameDecoder decoder;
  std::vector<Bytes> seeds{
      copy(encoder.connect("client", "principal", as_bytes("credentials"))),
      copy(encoder.connected("principal/-1", 1u << 20)),
      copy(encoder.subscribe(1, "a/b//")),
      copy(encoder.unsubscribed(2, "a/*")),
      copy(encoder.create_topic(3, "a/b/c", {.type = TopicType::binary})),
      copy(encoder.topic_add(4, "a/b/c", TopicType::int64)),
      copy(encoder.ping(5, 6)),
      copy(encoder.close("because")),
      copy(encoder.error(ErrorCode::queue_full, 7, "slow")),
      publish_frame(8, "a/b", TopicType::string, "value"),
      update_frame(9, 10, 11, "update value"),
  };
  std::mt19937_64 rng(12345);
  std::size_t decoded_ok = 0;
  for (int i = 0; i < 20000; ++i) {
    // Each input lives in its own vector (16-byte aligned), so control bodies are decoded in
    // place and every view must point into these very bytes.
    Bytes input = seeds[rng() % seeds.size()];
    switch (rng() % 4) {
      case 0:  // flip a few bits
        for (int k = 0; k < 1 + static_cast<int>(rng() % 4); ++k)
          input[rng() % input.size()] ^= static_cast<std::byte>(1u << (rng() % 8));
        break;
      case 1:  // overwrite a byte past the header with an extreme value
        input[frame_header_bytes + rng() % (input.size() - frame_header_bytes)] =
            static_cast<std::byte>(rng() % 2 ? 0xff : 0x00);
        break;
      case 2:  // truncate, keeping the header consistent with the new size
        input.resize(frame_header_bytes + rng() % (input.size() - frame_header_bytes + 1));
        store_le<std::uint32_t>(input.data(), static_cast<std::uint32_t>(input.size()));
        break;
      default:  // a random 32-bit word in the body
        if (input.size() >= frame_header_bytes + 4)
          store_le<std::uint32_t>(input.data() + frame_header_bytes +
                                      4 * (rng() % ((input.size() - frame_header_bytes) / 4)),
                                  static_cast<std::uint32_t>(rng()));
        break;
    }
    FrameSplit split = split_frame(input, default_max_frame_bytes);
    if (split.status == SplitStatus::frame) {
      ASSERT_GE(split.size, frame_header_bytes);
      ASSERT_LE(split.size, input.size());
    }
    std::span<const std::byte> frame(input);
    Decoded d = decoder.decode(frame);
    if (!d.ok()) continue;
    ++decoded_ok;
    for (auto view : views_of(d.message)) {
      if (view.empty()) continue;
      ASSERT_GE(view.data(), frame.data()) << "iteration " << i;
      ASSERT_LE(view.data() + view.size(), frame.data() + frame.size()) << "iteration " << i;
    }
  }
  EXPECT_GT(decoded_ok, 0u);  // the loop exercised the success path too
}

}  // namespace
}  // namespace brook::codec
