// Integration: the CLI's HTTP GET client (tools/cli/http_get and broker_http, not the tests'
// own http_get.hpp beside this file) against a tiny HTTP server written here on 127.0.0.1:
// how bodies are framed (Content-Length, chunked, end of stream), what is sent (Host,
// Connection: close, basic auth) and what every failure says.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <string>
#include <thread>

#include "cli/broker_http.hpp"
#include "cli/http_get.hpp"

namespace brook::cli {
namespace {

using namespace std::chrono_literals;

// Listens on 127.0.0.1 at a port the kernel picks and serves one connection on its own thread:
// reads the request head, then runs `answer` on the connected socket and closes it. Joined by
// the destructor; `request()` is read after that or after the client's call returned.
class OneShotServer {
 public:
  explicit OneShotServer(std::function<void(int fd)> answer) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&address), length) != 0 || ::listen(listener_, 4) != 0 ||
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) != 0)
      ADD_FAILURE() << "cannot listen on 127.0.0.1: " << std::strerror(errno);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this, answer = std::move(answer)] {
      int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) return;
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // each write its own segment
      char buffer[4096];
      while (request_.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) break;
        request_.append(buffer, static_cast<std::size_t>(n));
      }
      answer(fd);
      ::close(fd);
    });
  }
  ~OneShotServer() {
    ::shutdown(listener_, SHUT_RDWR);  // wakes an accept that never got a client
    thread_.join();
    ::close(listener_);
  }

  HttpAddress address() const { return {"127.0.0.1", std::to_string(port_)}; }
  std::string text() const { return "127.0.0.1:" + std::to_string(port_); }
  const std::string& request() const { return request_; }

 private:
  int listener_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
  std::string request_;
};

// An answer written as the given pieces, one write each.
std::function<void(int)> writes(std::vector<std::string> pieces) {
  return [pieces = std::move(pieces)](int fd) {
    for (const auto& piece : pieces) ::send(fd, piece.data(), piece.size(), MSG_NOSIGNAL);
  };
}

HttpGetResult get(const OneShotServer& server, const std::string& path = "/api/broker",
                  HttpGetOptions options = {.user_password = "", .timeout = 10s}) {
  return http_get(server.address(), path, options);
}

TEST(HttpGet, reads_a_content_length_body_and_sends_host_and_connection_close) {
  OneShotServer server(writes({"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n",
                               "{\"a\":", "[1,2]}", "this is after the body"}));
  auto result = get(server, "/api/sessions?sort=queue&limit=5");
  ASSERT_TRUE(result.response) << result.error;
  EXPECT_EQ(result.response->status, 200);
  EXPECT_EQ(result.response->reason, "OK");
  EXPECT_EQ(result.response->header("content-type"), "application/json");
  EXPECT_EQ(result.response->body, "{\"a\":[1,2]}");
  EXPECT_EQ(server.request().rfind("GET /api/sessions?sort=queue&limit=5 HTTP/1.1\r\n", 0), 0u) << server.request();
  EXPECT_NE(server.request().find("\r\nHost: " + server.text() + "\r\n"), std::string::npos) << server.request();
  EXPECT_NE(server.request().find("\r\nConnection: close\r\n"), std::string::npos) << server.request();
  EXPECT_EQ(server.request().find("Authorization"), std::string::npos) << server.request();
}

TEST(HttpGet, joins_a_chunked_body_split_across_writes_with_extensions_and_a_trailer) {
  OneShotServer server(writes({"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", "lo\r\n",
                               "1", "0;name=value\r\n0123456789abcdef\r\n", "0\r\nX-Trailer: 1\r\n", "\r\n"}));
  auto result = get(server);
  ASSERT_TRUE(result.response) << result.error;
  EXPECT_EQ(result.response->body, "hello0123456789abcdef");
}

TEST(HttpGet, reads_a_body_without_length_to_the_end_of_the_stream) {
  OneShotServer server(writes({"HTTP/1.0 200 OK\r\n\r\nok\n", "and more\n"}));
  auto result = get(server);
  ASSERT_TRUE(result.response) << result.error;
  EXPECT_EQ(result.response->body, "ok\nand more\n");
}

TEST(HttpGet, skips_an_interim_100_continue_and_reads_the_answer_after_it) {
  OneShotServer server(writes({"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"}));
  auto result = get(server);
  ASSERT_TRUE(result.response) << result.error;
  EXPECT_EQ(result.response->status, 204);
  EXPECT_EQ(result.response->body, "");
}

TEST(HttpGet, sends_basic_authorization_as_base64_of_user_colon_password) {
  OneShotServer server(writes({"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"}));
  auto result = get(server, "/api/broker", {.user_password = "alice:s3cret", .timeout = 10s});
  ASSERT_TRUE(result.response) << result.error;
  EXPECT_NE(server.request().find("\r\nAuthorization: Basic YWxpY2U6czNjcmV0\r\n"), std::string::npos)
      << server.request();
}

TEST(HttpGet, names_the_address_and_the_reason_when_nobody_listens) {
  // A port bound but not listening: held for the test, and every connect to it is refused.
  int held = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in bound{};
  bound.sin_family = AF_INET;
  bound.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof bound;
  ASSERT_EQ(::bind(held, reinterpret_cast<sockaddr*>(&bound), length), 0) << std::strerror(errno);
  ASSERT_EQ(::getsockname(held, reinterpret_cast<sockaddr*>(&bound), &length), 0);
  HttpAddress address{"127.0.0.1", std::to_string(ntohs(bound.sin_port))};
  auto result = http_get(address, "/", {.user_password = "", .timeout = 10s});
  ::close(held);
  ASSERT_FALSE(result.response);
  EXPECT_EQ(result.error, "cannot connect to " + address.text() + ": Connection refused");
}

TEST(HttpGet, gives_up_on_a_server_that_never_answers_after_the_timeout) {
  OneShotServer server([](int fd) {
    char byte;
    ::recv(fd, &byte, 1, 0);  // until the client gives up and closes
  });
  auto started = std::chrono::steady_clock::now();
  auto result = get(server, "/", {.user_password = "", .timeout = 200ms});
  ASSERT_FALSE(result.response);
  EXPECT_EQ(result.error, "no complete answer from " + server.address().text() + " within 0.2 s");
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
}

TEST(HttpGet, reports_a_connection_closed_inside_the_body) {
  OneShotServer server(writes({"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b"}));
  auto result = get(server);
  ASSERT_FALSE(result.response);
  EXPECT_EQ(result.error, "malformed response from " + server.address().text() + ": connection closed inside the body");
}

TEST(HttpGet, reports_a_connection_closed_without_an_answer) {
  OneShotServer server(writes({}));
  auto result = get(server);
  ASSERT_FALSE(result.response);
  EXPECT_NE(result.error.find("connection closed without an answer"), std::string::npos) << result.error;
}

TEST(HttpGet, reports_what_is_not_http) {
  OneShotServer server(writes({"SSH-2.0-OpenSSH_9.6\r\n\r\n"}));
  auto result = get(server);
  ASSERT_FALSE(result.response);
  EXPECT_NE(result.error.find("bad status line 'SSH-2.0-OpenSSH_9.6'"), std::string::npos) << result.error;
}

TEST(HttpGet, reports_a_bad_chunk_size) {
  OneShotServer server(writes({"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"}));
  auto result = get(server);
  ASSERT_FALSE(result.response);
  EXPECT_NE(result.error.find("bad chunk size 'zz'"), std::string::npos) << result.error;
}

TEST(HttpResponseReader, reads_a_chunked_answer_fed_one_byte_at_a_time) {
  const std::string wire =
      "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
  HttpResponseReader reader;
  for (char ch : wire) ASSERT_TRUE(reader.feed(std::string_view(&ch, 1))) << reader.error();
  ASSERT_TRUE(reader.done());
  EXPECT_EQ(reader.response().body, "abcde");
  EXPECT_EQ(reader.response().header("content-type"), "text/plain");
}

TEST(HttpAddress, accepts_host_port_with_or_without_http_or_a_port_alone_and_refuses_https) {
  std::string error;
  auto plain = parse_http_address("127.0.0.1:9090", error);
  ASSERT_TRUE(plain) << error;
  EXPECT_EQ(plain->text(), "http://127.0.0.1:9090");
  auto with_scheme = parse_http_address("http://localhost:80/", error);
  ASSERT_TRUE(with_scheme) << error;
  EXPECT_EQ(with_scheme->host, "localhost");
  auto v6 = parse_http_address("[::1]:9090", error);
  ASSERT_TRUE(v6) << error;
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->text(), "http://[::1]:9090");

  EXPECT_FALSE(parse_http_address("https://127.0.0.1:9443", error));
  EXPECT_NE(error.find("https is not supported"), std::string::npos) << error;
  for (const char* port_alone : {"9090", ":9090"}) {
    auto local = parse_http_address(port_alone, error);
    ASSERT_TRUE(local) << port_alone << ": " << error;
    EXPECT_EQ(local->text(), "http://127.0.0.1:9090");
  }
  for (const char* bad : {"127.0.0.1", "127.0.0.1:", "h:0", "h:65536", "h:90x", "::1:9090", "0", "99999"})
    EXPECT_FALSE(parse_http_address(bad, error)) << bad;
}

TEST(BrokerHttp, turns_a_401_into_the_status_the_address_the_path_and_the_body) {
  OneShotServer server(writes({"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"brookd\"\r\n"
                               "Content-Length: 20\r\n\r\nbad user or password"}));
  HttpArgs args{.address = server.text(), .user = "alice:wrong", .timeout_s = 10};
  std::string error;
  auto http = BrokerHttp::open(args, error);
  ASSERT_TRUE(http) << error;
  EXPECT_FALSE(http->get_json("/api/topics", error));
  EXPECT_EQ(error, "HTTP 401 from " + server.address().text() + "/api/topics: bad user or password");
}

TEST(BrokerHttp, quotes_the_error_field_of_a_json_failure) {
  OneShotServer server(writes({"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                               "Content-Length: 27\r\n\r\n{\"error\":\"bad sort: speed\"}"}));
  std::string error;
  auto http = BrokerHttp::open({.address = server.text(), .user = "", .timeout_s = 10}, error);
  ASSERT_TRUE(http) << error;
  EXPECT_FALSE(http->get_json("/api/topics?sort=speed", error));
  EXPECT_EQ(error, "HTTP 400 from " + server.address().text() + "/api/topics?sort=speed: bad sort: speed");
}

TEST(BrokerHttp, reports_a_body_that_is_not_json) {
  OneShotServer server(writes({"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"}));
  std::string error;
  auto http = BrokerHttp::open({.address = server.text(), .user = "", .timeout_s = 10}, error);
  ASSERT_TRUE(http) << error;
  EXPECT_FALSE(http->get_json("/healthz", error));
  EXPECT_EQ(error.rfind("not JSON from " + server.address().text() + "/healthz", 0), 0u) << error;
}

}  // namespace
}  // namespace brook::cli
