#include "http_server.hpp"

#include <fcntl.h>
#include <microhttpd.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>

#include <algorithm>

#include "brook/transport/tcp.hpp"

namespace brook::runtime {

namespace {

// A request's first call only allocates its context; the answer comes on the second, when
// MHD has read the whole request.
int request_marker;

MHD_Result queue(MHD_Connection* connection, const HttpResponse& answer) {
  MHD_Response* response = MHD_create_response_from_buffer(answer.body.size(), const_cast<char*>(answer.body.data()),
                                                            MHD_RESPMEM_MUST_COPY);
  if (!response) return MHD_NO;
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, answer.content_type.c_str());
  MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, answer.cache_control.c_str());
  MHD_add_response_header(response, "X-Content-Type-Options", "nosniff");
  const MHD_Result queued = MHD_queue_response(connection, static_cast<unsigned>(answer.status), response);
  MHD_destroy_response(response);
  return queued;
}

MHD_Result collect_query(void* cls, MHD_ValueKind, const char* key, const char* value) {
  auto& query = *static_cast<HttpRequest*>(cls);
  if (key) query.query.emplace(key, value ? value : "");
  return MHD_YES;
}

// Whether the request carries basic auth that the check accepts.
bool authorized(MHD_Connection* connection, const HttpServerOptions& options) {
  char* password = nullptr;
  char* user = MHD_basic_auth_get_username_password(connection, &password);
  const bool ok = user && password && options.check_password(user, password);
  if (password) {
    std::memset(password, 0, std::strlen(password));
    MHD_free(password);
  }
  if (user) MHD_free(user);
  return ok;
}

}  // namespace

struct HttpServer::Callbacks {
  static MHD_Result on_request(void* cls, MHD_Connection* connection, const char* url, const char* method,
                               const char*, const char*, std::size_t* upload_bytes, void** context) {
    auto& server = *static_cast<HttpServer*>(cls);
    if (*context == nullptr) {
      *context = &request_marker;
      return MHD_YES;
    }
    // A body nobody asked for is read and ignored; the answer comes once it has all arrived.
    if (*upload_bytes != 0) {
      *upload_bytes = 0;
      return MHD_YES;
    }
    if (std::strcmp(method, MHD_HTTP_METHOD_GET) != 0 && std::strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
      return queue(connection, {.status = 405, .body = "only GET and HEAD\n"});
    if (server.options_.check_password && !authorized(connection, server.options_)) {
      const std::string body = "authentication required\n";
      MHD_Response* response =
          MHD_create_response_from_buffer(body.size(), const_cast<char*>(body.data()), MHD_RESPMEM_MUST_COPY);
      if (!response) return MHD_NO;
      const MHD_Result queued = MHD_queue_basic_auth_fail_response(connection, "brookd", response);
      MHD_destroy_response(response);
      return queued;
    }
    HttpRequest request;
    request.path = url ? url : "/";
    MHD_get_connection_values(connection, MHD_GET_ARGUMENT_KIND, collect_query, &request);
    HttpResponse answer;
    try {
      answer = server.handler_(request);
    } catch (const std::exception& e) {
      answer = {.status = 500, .body = std::string("internal error: ") + e.what() + "\n"};
    }
    return queue(connection, answer);
  }
  static void on_log(void*, const char* format, va_list arguments) {
    std::fputs("brookd: http: ", stderr);
    std::vfprintf(stderr, format, arguments);
  }
};

HttpServer::HttpServer(HttpServerOptions options, Handler handler)
    : options_(std::move(options)), handler_(std::move(handler)) {}

HttpServer::~HttpServer() { stop(); }

std::string HttpServer::start() {
  std::string address = options_.address;
  if (address.find(':') == std::string::npos) address = ":" + address;
  if (address.front() == ':') address = "127.0.0.1" + address;
  auto endpoint = transport::parse_endpoint(address);
  if (!endpoint) return "cannot parse http.listen address '" + options_.address + "' (want HOST:PORT)";
  int fd = transport::listen_tcp(*endpoint, 128);
  if (fd < 0) return "cannot listen on " + address + " (http.listen): " + std::strerror(-fd);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  bound_ = endpoint->host + ":" + std::to_string(transport::local_port(fd));

  unsigned flags = MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
  const bool tls = !options_.tls_cert_pem.empty() && !options_.tls_key_pem.empty();
  if (tls) {
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
      ::close(fd);
      return "http.tls: this libmicrohttpd was built without TLS";
    }
    flags |= MHD_USE_TLS;
  }
  // The TLS options only when they apply.
  MHD_OptionItem tls_items[] = {
      {tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, const_cast<char*>(options_.tls_key_pem.c_str())},
      {MHD_OPTION_HTTPS_MEM_CERT, 0, const_cast<char*>(options_.tls_cert_pem.c_str())},
      {MHD_OPTION_END, 0, nullptr},
  };
  daemon_ = MHD_start_daemon(flags, 0, nullptr, nullptr, &Callbacks::on_request, this,
                             MHD_OPTION_EXTERNAL_LOGGER, &Callbacks::on_log, nullptr,
                             MHD_OPTION_LISTEN_SOCKET, fd,
                             MHD_OPTION_CONNECTION_LIMIT, options_.max_connections,
                             MHD_OPTION_CONNECTION_TIMEOUT, options_.idle_timeout_s,
                             MHD_OPTION_CONNECTION_MEMORY_LIMIT, std::size_t{64 * 1024},
                             MHD_OPTION_ARRAY, tls_items,
                             MHD_OPTION_END);
  if (!daemon_) {
    ::close(fd);
    return "cannot start the HTTP server on " + bound_;
  }
  const MHD_DaemonInfo* info = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_EPOLL_FD);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (!info || info->epoll_fd < 0 || wake_fd_ < 0) {
    stop();
    return "cannot start the HTTP server's loop on " + bound_;
  }
  loop_ = std::thread([this, epoll_fd = info->epoll_fd] { run(epoll_fd); });
  return {};
}

void HttpServer::run(int epoll_fd) {
  for (;;) {
    // MHD's own deadline (an idle connection's timeout, or 0 when it has work buffered),
    // at most a second.
    MHD_UNSIGNED_LONG_LONG mhd_ms = 1000;
    const int wait_ms = MHD_get_timeout(daemon_, &mhd_ms) == MHD_YES
                            ? static_cast<int>(std::min<MHD_UNSIGNED_LONG_LONG>(mhd_ms, 1000))
                            : 1000;
    pollfd fds[2] = {{.fd = epoll_fd, .events = POLLIN, .revents = 0}, {.fd = wake_fd_, .events = POLLIN, .revents = 0}};
    if (::poll(fds, 2, wait_ms) < 0 && errno != EINTR) break;
    if (fds[1].revents != 0) break;
    MHD_run(daemon_);
  }
}

void HttpServer::stop() {
  if (loop_.joinable()) {
    const std::uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(wake_fd_, &one, sizeof one);
    loop_.join();
  }
  if (wake_fd_ >= 0) ::close(wake_fd_);
  wake_fd_ = -1;
  if (!daemon_) return;
  // The loop has ended: the daemon stops with nothing in flight. It closes the listening
  // socket it was given.
  MHD_stop_daemon(daemon_);
  daemon_ = nullptr;
}

}  // namespace brook::runtime
