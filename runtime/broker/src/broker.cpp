#include "brook/runtime/broker.hpp"

#include <mimalloc.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <system_error>
#include <thread>

#include "authenticator.hpp"
#include "broker_http.hpp"
#include "brook/runtime/credentials.hpp"
#include "brook/transport/shm_segment.hpp"
#include "brook/transport/tcp.hpp"
#include "brook/transport/unix_socket.hpp"
#include "journal_topics.hpp"
#include "journal_writer.hpp"
#include "shard.hpp"
#include "static_files.hpp"

namespace brook::runtime {

struct Broker::Impl {
  explicit Impl(BrokerOptions o) : options(std::move(o)) {}
  // What start() opened before it failed (stop() closes them after a run).
  ~Impl() {
    for (int fd : mesh.broadcast_read_only_fds) ::close(fd);
    if (listen_fd >= 0) ::close(listen_fd);
    if (shm_listen_fd >= 0) ::close(shm_listen_fd);
  }
  BrokerOptions options;
  Mesh mesh;
  std::optional<CredentialStore> credentials;
  std::unique_ptr<Authenticator> authenticator;  // only with a credentials file
  std::vector<std::unique_ptr<Shard>> shards;
  std::vector<std::thread> threads;
  int listen_fd = -1;
  int shm_listen_fd = -1;
  int tls_listen_fd = -1;
  int ws_listen_fd = -1;
  int wss_listen_fd = -1;
  std::string address;
  std::string tls_address;
  std::string ws_address;
  std::string wss_address;
  std::string storage_report;
  bool stopped = false;
  std::atomic<bool> stopping{false};  // /readyz: draining or stopped
  std::unique_ptr<BrokerHttp> http;
};

namespace {

// The WebSocket listeners' settings, with ws.static_dir's files read in; null and `error` set
// when they cannot be read.
std::shared_ptr<transport::WebSocketOptions> websocket_options(const BrokerOptions& o, std::string& error) {
  auto websocket = std::make_shared<transport::WebSocketOptions>();
  websocket->allowed_origins = o.ws_allowed_origins;
  // One message may carry the largest Brook frame and then some smaller ones.
  websocket->max_frame_payload = std::size_t{o.max_frame_bytes} + (64u << 10);
  if (!o.ws_static_dir.empty() && !load_static_files(o.ws_static_dir, websocket->static_files, error)) return nullptr;
  return websocket;
}

std::shared_ptr<transport::TlsContext> tls_server_context(const BrokerOptions& o, std::string& error) {
  transport::TlsOptions tls;
  tls.cert_file = o.tls_cert_file;
  tls.key_file = o.tls_key_file;
  tls.ca_file = o.tls_ca_file;
  tls.verify_peer = o.tls_verify_clients;
  tls.allow_tls12 = o.tls_min_version == "1.2";
  return transport::TlsContext::server(tls, error);
}

// Binds `address` (HOST:PORT) into `fd` and says where it listens; an error text otherwise.
std::string listen_on(const std::string& address, const char* key, int& fd, std::string& bound) {
  auto endpoint = transport::parse_endpoint(address);
  if (!endpoint) return std::string("cannot parse ") + key + " address '" + address + "' (want HOST:PORT)";
  fd = transport::listen_tcp(*endpoint);
  // A brookd killed a moment ago may still hold its port: the kernel tears an io_uring down
  // after the process has exited, and the ring's pending accept keeps the old listening
  // socket open until then. A restart (systemd's, after a crash) waits that out, briefly.
  for (int waited_ms = 0; fd == -EADDRINUSE && waited_ms < 3000; waited_ms += 10) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    fd = transport::listen_tcp(*endpoint);
  }
  if (fd < 0) return "cannot listen on " + address + ": " + std::strerror(-fd);
  bound = endpoint->host + ":" + std::to_string(transport::local_port(fd));
  return {};
}

}  // namespace

Broker::Broker(BrokerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

Broker::~Broker() { stop(); }

std::string Broker::start() {
  auto& o = impl_->options;
  if (auto error = o.validate(); !error.empty()) return error;
  unsigned count = o.shards ? o.shards : std::max(1u, std::thread::hardware_concurrency());
  if (!o.credentials_file.empty()) {
    std::string error;
    impl_->credentials = CredentialStore::load(o.credentials_file, error);
    if (!impl_->credentials) return error;
    impl_->authenticator = std::make_unique<Authenticator>(
        [store = &*impl_->credentials](std::string_view principal, std::span<const std::byte> password) {
          return store->verify(principal, password);
        },
        count, [impl = impl_.get()](unsigned shard) { impl->shards[shard]->wake(); });
  }
  if (!o.permissions_file.empty()) {
    std::string error;
    impl_->mesh.permissions = Permissions::load(o.permissions_file, error);
    if (!impl_->mesh.permissions) return "auth.permissions_file " + error;
    impl_->mesh.permissions_generation.store(1, std::memory_order_relaxed);
  }
  if (auto error = listen_on(o.listen, "listen", impl_->listen_fd, impl_->address); !error.empty()) return error;

  if (!o.tls_listen.empty() || !o.ws_tls_listen.empty()) {
    std::string error;
    impl_->mesh.tls = tls_server_context(o, error);
    if (!impl_->mesh.tls) return "tls: " + error;
  }
  if (!o.tls_listen.empty()) {
    if (auto error = listen_on(o.tls_listen, "tls.listen", impl_->tls_listen_fd, impl_->tls_address); !error.empty())
      return error;
  }
  if (!o.ws_listen.empty() || !o.ws_tls_listen.empty()) {
    std::string error;
    impl_->mesh.websocket = websocket_options(o, error);
    if (!impl_->mesh.websocket) return error;
  }
  if (!o.ws_listen.empty()) {
    if (auto error = listen_on(o.ws_listen, "ws.listen", impl_->ws_listen_fd, impl_->ws_address); !error.empty())
      return error;
  }
  if (!o.ws_tls_listen.empty()) {
    if (auto error = listen_on(o.ws_tls_listen, "ws.tls_listen", impl_->wss_listen_fd, impl_->wss_address);
        !error.empty())
      return error;
  }

  auto& mesh = impl_->mesh;
  mesh.shard_count = count;
  mesh.memory_budget = resolve_memory_budget(o);
  // The buffer pools' slabs are the broker's mimalloc memory, and a pool frees a slab only
  // when it means the memory to go (under pressure, or slack unused for a second). By default
  // mimalloc decommits freed memory after a delay, checked only when the freeing thread calls
  // into it again, which an idle shard never does: the memory stayed resident for good.
  mi_option_set(mi_option_decommit_delay, 0);
  mesh.memory_used = std::make_unique<MemoryGauge[]>(count);
  if (!o.shm_path.empty()) {
    try {
      for (unsigned i = 0; i < count; ++i) {
        mesh.broadcast.push_back(transport::SharedSegment::create(
            "brook-broadcast", transport::broadcast_segment_bytes(o.shm_broadcast_bytes)));
        mesh.broadcast_logs.push_back(
            transport::init_broadcast_segment(mesh.broadcast.back().bytes(), o.shm_broadcast_bytes));
        int read_only = mesh.broadcast.back().seal_and_open_read_only();
        if (read_only < 0) return std::string("cannot seal a broadcast segment: ") + std::strerror(-read_only);
        mesh.broadcast_read_only_fds.push_back(read_only);
        mesh.broadcast.back().close_fd();
      }
    } catch (const std::system_error& e) {
      return std::string("cannot create shared memory: ") + e.what();
    }
    impl_->shm_listen_fd = transport::listen_unix(o.shm_path);
    if (impl_->shm_listen_fd < 0)
      return "cannot listen on " + o.shm_path + ": " + std::strerror(-impl_->shm_listen_fd);
  }
  for (unsigned i = 0; i < count * count; ++i)
    mesh.rings.push_back(std::make_unique<transport::SpscRing<ShardMessage>>(o.mailbox_capacity));
  for (unsigned i = 0; i < count; ++i) {
    impl_->shards.push_back(std::make_unique<Shard>(i, o, mesh, impl_->authenticator.get()));
    mesh.shards.push_back(impl_->shards.back().get());
  }
  if (!o.data_dir.empty()) {
    if (auto error = open_journal(count); !error.empty()) return error;
  }
  // Shard 0 accepts and hands connections out round-robin; the others wait for them.
  for (unsigned i = 0; i < count; ++i) {
    Shard* shard = impl_->shards[i].get();
    Shard::Listeners listeners = Shard::no_listeners;
    if (i == 0)
      listeners = {impl_->listen_fd, impl_->shm_listen_fd, impl_->tls_listen_fd, impl_->ws_listen_fd,
                   impl_->wss_listen_fd};
    impl_->threads.emplace_back([shard, listeners] { shard->run(listeners); });
  }
  for (auto& shard : impl_->shards) shard->wait_ready();
  if (!o.http_listen.empty()) {
    impl_->http = std::make_unique<BrokerHttp>(
        o, mesh,
        BrokerFacts{.tcp = impl_->address, .tls = impl_->tls_address, .ws = impl_->ws_address,
                    .wss = impl_->wss_address, .shm = o.shm_path, .stopping = &impl_->stopping});
    if (auto error = impl_->http->start(); !error.empty()) {
      impl_->http.reset();
      return error;
    }
  }
  return {};
}

// Reads the journal back (repairing a torn tail), and gives each shard its writer and the
// topics it owns. Before any shard runs: a journal that cannot be read stops the start.
std::string Broker::open_journal(unsigned shard_count) {
  const auto& o = impl_->options;
  const auto started = std::chrono::steady_clock::now();
  auto restored = journal::restore_topics(o.data_dir, shard_count, o.history_depth, o.history_memory_bytes);
  if (!restored.error.empty()) return "journal in " + o.data_dir + ": " + restored.error;
  for (unsigned i = 0; i < shard_count; ++i) {
    std::string error;
    auto writer = journal::JournalWriter::open({.data_dir = o.data_dir, .shard = i, .sync = o.storage_sync,
                                                .sync_interval_ms = o.storage_sync_interval_ms,
                                                .segment_bytes = o.storage_segment_bytes},
                                               restored.scans[i], error);
    if (!writer) return "journal in " + o.data_dir + ": " + error;
    impl_->shards[i]->adopt_journal(std::move(writer), std::move(restored.topics_by_owner[i]),
                                    std::move(restored.sessions_by_home[i]));
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  impl_->storage_report = "journal " + o.data_dir + ": " + std::to_string(restored.topics) + " topic(s) and " +
                          std::to_string(restored.sessions) + " session(s) from " +
                          std::to_string(restored.records) + " record(s) in " + std::to_string(ms.count()) + " ms";
  if (!restored.repaired.empty()) impl_->storage_report += "; repaired:\n" + restored.repaired;
  return {};
}

std::string Broker::storage_report() const { return impl_->storage_report; }

void Broker::stop() {
  if (impl_->stopped || impl_->threads.empty()) return;
  impl_->stopped = true;
  impl_->stopping.store(true, std::memory_order_relaxed);
  // Out of LISTEN now: the io_uring's pending accept holds the socket until the ring is torn
  // down, which the kernel finishes after we exit; a broker restarted at once on the same
  // port would find it still listening.
  if (impl_->listen_fd >= 0) ::shutdown(impl_->listen_fd, SHUT_RDWR);
  if (impl_->shm_listen_fd >= 0) {
    ::shutdown(impl_->shm_listen_fd, SHUT_RDWR);
    ::unlink(impl_->options.shm_path.c_str());
  }
  // Drain: every shard sends what it queued and tells each client what it took, then closes.
  // All shards must be quiet at once: one may still hand another a delivery.
  for (auto& shard : impl_->shards) shard->request_drain();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(impl_->options.drain_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    bool all = true;
    for (auto& shard : impl_->shards) all &= shard->drained();
    if (all) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // The HTTP side reads the shards: it goes before they do.
  if (impl_->http) impl_->http->stop();
  for (auto& shard : impl_->shards) shard->request_stop();
  for (auto& t : impl_->threads) t.join();
  impl_->authenticator.reset();  // its worker may still wake a shard until here
  for (auto& shard : impl_->shards) shard->release_buffers();
  if (impl_->listen_fd >= 0) ::close(impl_->listen_fd);
  impl_->listen_fd = -1;
  if (impl_->shm_listen_fd >= 0) ::close(impl_->shm_listen_fd);
  impl_->shm_listen_fd = -1;
  for (int* fd : {&impl_->tls_listen_fd, &impl_->ws_listen_fd, &impl_->wss_listen_fd}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
  for (int fd : impl_->mesh.broadcast_read_only_fds) ::close(fd);
  impl_->mesh.broadcast_read_only_fds.clear();
}

std::vector<std::string> Broker::reload() {
  const auto& o = impl_->options;
  auto& mesh = impl_->mesh;
  std::vector<std::string> report;
  if (!o.permissions_file.empty()) {
    std::string error;
    if (auto permissions = Permissions::load(o.permissions_file, error)) {
      std::lock_guard lock(mesh.reload_mutex);
      mesh.permissions = std::move(permissions);
      mesh.permissions_generation.fetch_add(1, std::memory_order_relaxed);
      report.push_back("permissions reloaded from " + o.permissions_file);
    } else {
      report.push_back("auth.permissions_file " + error + " (the rules in force stay)");
    }
  }
  if (!o.tls_listen.empty() || !o.ws_tls_listen.empty()) {
    std::string error;
    if (auto tls = tls_server_context(o, error)) {
      std::lock_guard lock(mesh.reload_mutex);
      mesh.tls = std::move(tls);
      report.push_back("TLS certificates reloaded from " + o.tls_cert_file + " (new connections use them)");
    } else {
      report.push_back("tls: " + error + " (the certificates in force stay)");
    }
  }
  if (!o.ws_static_dir.empty() && (!o.ws_listen.empty() || !o.ws_tls_listen.empty())) {
    std::string error;
    if (auto websocket = websocket_options(o, error)) {
      const std::size_t files = websocket->static_files.size();
      std::lock_guard lock(mesh.reload_mutex);
      mesh.websocket = std::move(websocket);
      report.push_back("ws.static_dir reloaded from " + o.ws_static_dir + " (" + std::to_string(files) + " files)");
    } else {
      report.push_back(error + " (the files in force stay)");
    }
  }
  for (auto& shard : impl_->shards) shard->wake();
  return report;
}

std::string Broker::listen_address() const { return impl_->address; }
std::string Broker::tls_listen_address() const { return impl_->tls_address; }
std::string Broker::ws_listen_address() const { return impl_->ws_address; }
std::string Broker::wss_listen_address() const { return impl_->wss_address; }
std::string Broker::http_address() const { return impl_->http ? impl_->http->address() : std::string{}; }

unsigned Broker::shard_count() const { return impl_->mesh.shard_count; }
std::uint64_t Broker::memory_budget() const { return impl_->mesh.memory_budget; }

std::string Broker::describe_counters() const {
  std::string s;
  for (auto& shard : impl_->shards) s += shard->describe_counters() + "\n";
  return s;
}

}  // namespace brook::runtime
