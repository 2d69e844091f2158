// Integration: TLS on brookd's second listener (--tls-listen, [tls]) with certificates made in
// the test (test_certificates.hpp). Plain and TLS clients share topics; a client refuses a
// broker whose certificate it cannot trust (unknown CA, another host's name, expired) and
// says why; with tls.verify_clients only clients with a certificate from the CA get in; bad
// input at either port (plain text to the TLS port, TLS to the plain port, a handshake that
// never ends, random bytes) is closed, and every other session carries on; SIGHUP loads new
// certificates without dropping a connection; a verified certificate's common name or subject
// alternative name is the principal; a TLS 1.2 renegotiation is refused. Every wait is bounded.
#include <gtest/gtest.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <future>
#include <memory>
#include <random>
#include <thread>
#include <string>
#include <vector>

#include "broker_process.hpp"
#include "brook/client/client.hpp"
#include "brook/codec/messages.hpp"
#include "raw_connection.hpp"
#include "test_certificates.hpp"
#include "update_log.hpp"

namespace brook::test {
namespace {

constexpr auto wait_time = std::chrono::seconds(15);

class Tls : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_temp_dir("tls");
    pki_ = std::make_unique<TestCertificates>(dir_, "brook");
    server_ = pki_->issue("server", "localhost");
  }
  void TearDown() override {
    broker_.reset();
    remove_temp_dir(dir_);
  }
  // A broker with a TLS listener beside its plain one; `extra` goes in its [tls] table.
  void start(const std::string& extra = "", const std::string& cert = "", const std::string& key = "") {
    BrokerConfig config = with_shards(2);
    config.tls = true;
    config.config_toml = "[tls]\ncert_file = \"" + (cert.empty() ? server_.cert_file : cert) + "\"\nkey_file = \"" +
                         (key.empty() ? server_.key_file : key) + "\"\n" + extra +
                         "[session]\nconnect_timeout_ms = 1000\n";
    broker_ = std::make_unique<BrokerProcess>(config);
  }
  ClientOptions tls_options(const std::string& host = "localhost") {
    ClientOptions o;
    o.url = "tls://" + host + ":" + std::to_string(broker_->tls_port());
    o.tls_ca_file = pki_->ca_file();
    o.client_name = "tls-test";
    o.connect_timeout = std::chrono::seconds(10);
    o.reconnect_timeout = std::chrono::seconds(0);
    o.retries = 0;
    return o;
  }
  // The reason a connect failed, "" when it did not.
  std::string refusal(const ClientOptions& o) {
    Client c;
    Status s = c.connect(o);
    return s ? std::string() : s.message.empty() ? "failed" : s.message;
  }

  std::string dir_;
  std::unique_ptr<TestCertificates> pki_;
  TestCertificates::Issued server_;
  std::unique_ptr<BrokerProcess> broker_;
};

TEST_F(Tls, plain_and_tls_clients_share_topics_in_order) {
  start();
  BROOK_ASSERT_STARTED(*broker_);
  Client tls_subscriber, plain_publisher, tls_publisher, plain_subscriber;
  ASSERT_TRUE(tls_subscriber.connect(tls_options()));
  ASSERT_TRUE(tls_publisher.connect(tls_options()));
  ASSERT_TRUE(connect_client_once(plain_publisher, broker_->url(), "plain"));
  ASSERT_TRUE(connect_client_once(plain_subscriber, broker_->url(), "plain"));
  UpdateLog over_tls, over_plain;
  ASSERT_TRUE(subscribe_and_wait(tls_subscriber, "Odds//", over_tls));
  ASSERT_TRUE(subscribe_and_wait(plain_subscriber, "Odds//", over_plain));
  constexpr int updates = 2000;  // values of up to 40 KiB: records split across sends
  for (int i = 1; i <= updates; ++i) {
    const std::string value = std::to_string(i) + std::string(static_cast<std::size_t>(i % 5 == 0 ? 40000 : 20), '.');
    ASSERT_TRUE((i % 2 ? plain_publisher : tls_publisher).publish(i % 2 ? "Odds/plain" : "Odds/tls", value));
  }
  ASSERT_TRUE(over_tls.wait_for(updates, wait_time)) << over_tls.size();
  ASSERT_TRUE(over_plain.wait_for(updates, wait_time)) << over_plain.size();
  for (const auto* log : {&over_tls, &over_plain}) {
    std::uint64_t last_plain = 0, last_tls = 0;
    for (const auto& r : log->entries()) {
      auto& last = r.path == "Odds/plain" ? last_plain : last_tls;
      EXPECT_EQ(r.topic_seq, last + 1) << r.path;
      last = r.topic_seq;
    }
    EXPECT_EQ(last_plain, updates / 2u);
    EXPECT_EQ(last_tls, updates / 2u);
  }
  // The last TLS publish (a 40 KiB value) came through whole.
  for (const auto& r : over_tls.entries())
    if (r.path == "Odds/tls" && r.topic_seq == updates / 2u) EXPECT_EQ(r.value, std::to_string(updates) + std::string(40000, '.'));
}

TEST_F(Tls, a_client_refuses_a_broker_it_cannot_trust_and_says_why) {
  start();
  BROOK_ASSERT_STARTED(*broker_);
  ClientOptions unknown_ca = tls_options();
  unknown_ca.tls_ca_file.clear();  // the system's store does not know the test CA
  EXPECT_NE(refusal(unknown_ca).find("certificate verification failed"), std::string::npos) << refusal(unknown_ca);
  ClientOptions another_ca = tls_options();
  TestCertificates other(dir_, "other");
  another_ca.tls_ca_file = other.ca_file();
  EXPECT_NE(refusal(another_ca).find("unable to get local issuer certificate"), std::string::npos);
  // Refused at once, though retries are allowed: a certificate does not change by waiting.
  ClientOptions retrying = another_ca;
  retrying.retries = -1;
  retrying.reconnect_timeout = std::chrono::seconds(30);
  const auto before = std::chrono::steady_clock::now();
  EXPECT_FALSE(refusal(retrying).empty());
  EXPECT_LT(std::chrono::steady_clock::now() - before, std::chrono::seconds(5));
  // The broker's name is localhost: 127.0.0.1 is in it too, "broker.example" is not.
  EXPECT_EQ(refusal(tls_options("127.0.0.1")), "");
  broker_.reset();
  auto elsewhere = pki_->issue("elsewhere", "broker.example");
  start("", elsewhere.cert_file, elsewhere.key_file);
  BROOK_ASSERT_STARTED(*broker_);
  const std::string mismatch = refusal(tls_options("localhost"));
  EXPECT_NE(mismatch.find("hostname mismatch"), std::string::npos) << mismatch;
  broker_.reset();
  auto expired = pki_->issue("expired", "localhost", -2 * 86400, -86400);
  start("", expired.cert_file, expired.key_file);
  BROOK_ASSERT_STARTED(*broker_);
  const std::string stale = refusal(tls_options());
  EXPECT_NE(stale.find("certificate has expired"), std::string::npos) << stale;
  // Without verification (tests only), the same broker is reached.
  ClientOptions unverified = tls_options();
  unverified.tls_verify = false;
  EXPECT_EQ(refusal(unverified), "");
}

TEST_F(Tls, with_verify_clients_only_a_certificate_from_the_ca_gets_in) {
  start("ca_file = \"" + pki_->ca_file() + "\"\nverify_clients = true\n");
  BROOK_ASSERT_STARTED(*broker_);
  EXPECT_FALSE(refusal(tls_options()).empty()) << "no client certificate";
  auto client = pki_->issue("client", "alice");
  ClientOptions with_cert = tls_options();
  with_cert.tls_cert_file = client.cert_file;
  with_cert.tls_key_file = client.key_file;
  Client alice;
  ASSERT_TRUE(alice.connect(with_cert));
  UpdateLog log;
  ASSERT_TRUE(subscribe_and_wait(alice, "Odds//", log));
  TestCertificates other(dir_, "other");
  auto stranger = other.issue("stranger", "mallory");
  ClientOptions foreign = tls_options();
  foreign.tls_cert_file = stranger.cert_file;
  foreign.tls_key_file = stranger.key_file;
  EXPECT_FALSE(refusal(foreign).empty()) << "a certificate from another CA";
  ASSERT_TRUE(alice.publish_acked("Odds/a", std::as_bytes(std::span(std::string_view("1.5")))).get());
  EXPECT_TRUE(log.wait_for(1, wait_time)) << "the admitted client carries on";
}

TEST_F(Tls, a_verified_client_certificate_names_the_principal) {
  start("ca_file = \"" + pki_->ca_file() + "\"\nverify_clients = true\nprincipal_from_certificate = true\n");
  BROOK_ASSERT_STARTED(*broker_);
  auto alice_cert = pki_->issue("alice", "alice");
  ClientOptions as_alice = tls_options();
  as_alice.tls_cert_file = alice_cert.cert_file;
  as_alice.tls_key_file = alice_cert.key_file;
  Client alice;
  ASSERT_TRUE(alice.connect(as_alice));
  EXPECT_TRUE(alice.session_id().starts_with("alice/")) << alice.session_id();
  ClientOptions claims_bob = as_alice;
  claims_bob.principal = "bob";
  const std::string refused = refusal(claims_bob);
  EXPECT_NE(refused.find("the client certificate is for 'alice', not 'bob'"), std::string::npos) << refused;
  ClientOptions names_alice = as_alice;
  names_alice.principal = "alice";
  EXPECT_EQ(refusal(names_alice), "") << "naming the certificate's principal is fine";
}

TEST_F(Tls, a_subject_alternative_name_can_name_the_principal) {
  start("ca_file = \"" + pki_->ca_file() +
        "\"\nverify_clients = true\nprincipal_from_certificate = true\nprincipal_name = \"email\"\n");
  BROOK_ASSERT_STARTED(*broker_);
  // A common name that could never be a principal: the email name is the one used.
  auto trader = pki_->issue_with_names("trader", "Alice Smith (desk 4)", "DNS:desk4.example,email:alice@desk4.example");
  ClientOptions as_trader = tls_options();
  as_trader.tls_cert_file = trader.cert_file;
  as_trader.tls_key_file = trader.key_file;
  Client alice;
  ASSERT_TRUE(alice.connect(as_trader));
  EXPECT_TRUE(alice.session_id().starts_with("alice@desk4.example/")) << alice.session_id();

  auto no_email = pki_->issue("no-email", "bob");
  ClientOptions as_bob = tls_options();
  as_bob.tls_cert_file = no_email.cert_file;
  as_bob.tls_key_file = no_email.key_file;
  const std::string refused = refusal(as_bob);
  EXPECT_NE(refused.find("the client certificate has no email name"), std::string::npos) << refused;
}

TEST_F(Tls, a_renegotiation_is_refused_and_counted_and_nobody_else_notices) {
  start("min_version = \"1.2\"\n");
  BROOK_ASSERT_STARTED(*broker_);
  Client tls_client;
  ASSERT_TRUE(tls_client.connect(tls_options()));
  UpdateLog log;
  ASSERT_TRUE(subscribe_and_wait(tls_client, "Odds//", log));

  // A TLS 1.2 client (OpenSSL over a blocking socket with deadlines) that completes its
  // handshake and then asks to renegotiate.
  RawConnection raw(broker_->tls_port());
  ASSERT_TRUE(raw.connected());
  const ::timeval five_seconds{5, 0};
  ::setsockopt(raw.fd(), SOL_SOCKET, SO_RCVTIMEO, &five_seconds, sizeof five_seconds);
  ::setsockopt(raw.fd(), SOL_SOCKET, SO_SNDTIMEO, &five_seconds, sizeof five_seconds);
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()), &SSL_CTX_free);
  SSL_CTX_set_max_proto_version(ctx.get(), TLS1_2_VERSION);
  ASSERT_EQ(SSL_CTX_load_verify_locations(ctx.get(), pki_->ca_file().c_str(), nullptr), 1);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(SSL_new(ctx.get()), &SSL_free);
  SSL_set_fd(ssl.get(), raw.fd());
  ASSERT_EQ(SSL_connect(ssl.get()), 1) << "the first handshake";
  EXPECT_STREQ(SSL_get_version(ssl.get()), "TLSv1.2");
  ASSERT_EQ(SSL_renegotiate(ssl.get()), 1);
  EXPECT_NE(SSL_do_handshake(ssl.get()), 1) << "the broker must not renegotiate";
  EXPECT_TRUE(raw.wait_for_close(std::chrono::seconds(5)));

  ASSERT_TRUE(tls_client.publish_acked("Odds/a", std::as_bytes(std::span(std::string_view("1.5")))).get());
  EXPECT_TRUE(log.wait_for(1, wait_time));
  EXPECT_TRUE(tls_client.is_connected());
  broker_->stop();
  EXPECT_GE(broker_->counter_total("tls_failures"), 1u) << broker_->log_tail();
}

TEST_F(Tls, bad_input_at_either_port_is_closed_and_nobody_else_notices) {
  start();
  BROOK_ASSERT_STARTED(*broker_);
  Client tls_client, plain_client;
  ASSERT_TRUE(tls_client.connect(tls_options()));
  ASSERT_TRUE(connect_client_once(plain_client, broker_->url(), "plain"));
  UpdateLog log;
  ASSERT_TRUE(subscribe_and_wait(tls_client, "Odds//", log));

  // Plain Brook frames to the TLS port.
  RawConnection plain_to_tls(broker_->tls_port());
  ASSERT_TRUE(plain_to_tls.connected());
  codec::FrameEncoder encoder;
  plain_to_tls.send_bytes(encoder.subscribe(1, "Odds//"));
  EXPECT_TRUE(plain_to_tls.wait_for_close(std::chrono::seconds(5)));
  // A handshake that never ends (half a ClientHello, then nothing): the connect timeout.
  RawConnection stalled(broker_->tls_port());
  const std::byte half_hello[] = {std::byte{0x16}, std::byte{0x03}, std::byte{0x01}, std::byte{0x02}, std::byte{0x00}};
  stalled.send_bytes(half_hello);
  EXPECT_TRUE(stalled.wait_for_close(std::chrono::seconds(10)));
  // TLS to the plain port: the client says the handshake failed.
  ClientOptions to_plain = tls_options();
  to_plain.url = "tls://localhost:" + std::to_string(broker_->port());
  EXPECT_NE(refusal(to_plain).find("TLS handshake"), std::string::npos);

  ASSERT_TRUE(plain_client.publish_acked("Odds/a", std::as_bytes(std::span(std::string_view("1.5")))).get());
  EXPECT_TRUE(log.wait_for(1, wait_time));
  EXPECT_TRUE(tls_client.is_connected());
  broker_->stop();
  EXPECT_GE(broker_->counter_total("tls_failures"), 1u) << broker_->log_tail();
  EXPECT_GE(broker_->counter_total("tls_handshakes"), 1u);
}

TEST_F(Tls, random_bytes_to_the_tls_port_are_closed_and_counted) {
  start();
  BROOK_ASSERT_STARTED(*broker_);
  Client tls_client;
  ASSERT_TRUE(tls_client.connect(tls_options()));
  UpdateLog log;
  ASSERT_TRUE(subscribe_and_wait(tls_client, "Odds//", log));
  std::mt19937 random(20261205);
  constexpr int connections = 50;
  std::vector<std::unique_ptr<RawConnection>> garbage;
  for (int i = 0; i < connections; ++i) {
    garbage.push_back(std::make_unique<RawConnection>(broker_->tls_port()));
    ASSERT_TRUE(garbage.back()->connected());
    std::vector<std::byte> bytes(1 + random() % 4096);
    for (auto& b : bytes) b = static_cast<std::byte>(random());
    // Half of them look like a TLS handshake record at first (those that then wait for the
    // rest of a record meet the connect timeout).
    if (i % 2 == 0 && bytes.size() > 3) bytes[0] = std::byte{0x16}, bytes[1] = std::byte{0x03}, bytes[2] = std::byte{0x03};
    garbage.back()->send_bytes(bytes);
  }
  for (int i = 0; i < connections; ++i)
    EXPECT_TRUE(garbage[static_cast<std::size_t>(i)]->wait_for_close(std::chrono::seconds(5))) << "connection " << i;
  ASSERT_TRUE(tls_client.publish_acked("Odds/a", std::as_bytes(std::span(std::string_view("1.5")))).get());
  EXPECT_TRUE(log.wait_for(1, wait_time));
  broker_->stop();
  EXPECT_GE(broker_->counter_total("tls_failures"), static_cast<std::uint64_t>(connections) / 2);
}

TEST_F(Tls, sighup_loads_new_certificates_for_new_connections_and_drops_none) {
  start();
  BROOK_ASSERT_STARTED(*broker_);
  Client subscriber, publisher;
  std::atomic<int> drops{0};
  subscriber.on_disconnect([&](const std::string&) { ++drops; });
  ASSERT_TRUE(subscriber.connect(tls_options()));
  ASSERT_TRUE(publisher.connect(tls_options()));
  UpdateLog log;
  ASSERT_TRUE(subscribe_and_wait(subscriber, "Odds//", log));
  std::atomic<bool> stop{false};
  std::atomic<int> published{0};
  std::thread feed([&] {
    for (int i = 1; i <= 100000 && !stop.load(); ++i) {
      if (!publisher.publish("Odds/live", std::to_string(i))) break;
      published.store(i);
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });

  // The same files, now a certificate from another CA.
  TestCertificates renewed(dir_, "renewed");
  renewed.issue("server", "localhost");
  ASSERT_EQ(::kill(broker_->pid(), SIGHUP), 0);
  ASSERT_TRUE(eventually([&] { return broker_->log_tail().find("TLS certificates reloaded") != std::string::npos; },
                         wait_time))
      << broker_->log_tail();
  ClientOptions renewed_ca = tls_options();
  renewed_ca.tls_ca_file = renewed.ca_file();
  EXPECT_EQ(refusal(renewed_ca), "") << "a new connection gets the new certificate";
  EXPECT_NE(refusal(tls_options()), "") << "the old CA does not sign it";
  // A certificate file that cannot be read: reported, and the certificates in force stay.
  std::ofstream(server_.cert_file) << "not a certificate";
  ASSERT_EQ(::kill(broker_->pid(), SIGHUP), 0);
  ASSERT_TRUE(eventually([&] { return broker_->log_tail().find("the certificates in force stay") != std::string::npos; },
                         wait_time));
  EXPECT_EQ(refusal(renewed_ca), "");

  stop.store(true);
  feed.join();
  const int last = published.load();
  ASSERT_GT(last, 0);
  ASSERT_TRUE(log.wait_until(
      [&](const std::vector<Received>& got) { return !got.empty() && got.back().value == std::to_string(last); },
      wait_time));
  std::uint64_t seq = 0;
  for (const auto& r : log.entries()) EXPECT_EQ(r.topic_seq, ++seq) << "a gap";
  EXPECT_EQ(drops.load(), 0) << "the reload dropped a connection";
}

}  // namespace
}  // namespace brook::test
