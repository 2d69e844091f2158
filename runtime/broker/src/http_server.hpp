#pragma once
// A small HTTP/1.1 server on a thread of its own (libmicrohttpd, one epoll loop), apart from
// the shards: what it serves is read from them, and nothing it does waits on their loops
// except a report it asks for. GET and HEAD only; optional basic auth and TLS.
//
// The loop is ours, not libmicrohttpd's internal thread: its stop, in 0.9.75 (Debian 12),
// races a connection it is still processing (MHD_queue_response answers "yes" without a
// response once shutdown began, and an oversized request's error reply then reads through a
// null response: brookd crashed at stop). Here the loop has ended before the daemon stops.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

struct MHD_Daemon;

namespace brook::runtime {

struct HttpRequest {
  std::string path;
  std::map<std::string, std::string, std::less<>> query;
  std::string_view param(std::string_view name) const {
    auto it = query.find(name);
    return it == query.end() ? std::string_view{} : std::string_view(it->second);
  }
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::string cache_control = "no-store";
};

struct HttpServerOptions {
  std::string address;  // HOST:PORT; PORT alone or :PORT is 127.0.0.1:PORT
  std::string tls_cert_pem, tls_key_pem;  // both: HTTPS
  // Non-null: every request needs basic auth that this accepts.
  std::function<bool(std::string_view user, std::string_view password)> check_password;
  unsigned max_connections = 512;
  unsigned idle_timeout_s = 30;
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  HttpServer(HttpServerOptions options, Handler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;
  // Binds and starts the thread; an error text, or "".
  std::string start();
  void stop();
  std::string bound_address() const { return bound_; }

 private:
  struct Callbacks;
  void run(int epoll_fd);
  HttpServerOptions options_;
  Handler handler_;
  MHD_Daemon* daemon_ = nullptr;
  int wake_fd_ = -1;  // an eventfd: the loop ends when it is written
  std::thread loop_;
  std::string bound_;
};

}  // namespace brook::runtime
