#pragma once
// brookd's HTTP side (http.*): Prometheus metrics, health, JSON introspection and the web
// console's files, served on a thread of its own (HttpServer), plus a sampler thread that
// keeps each shard's levels and rates over the last ten minutes. Reads the shards' counters
// (shard_metrics.hpp) directly and asks them for detail (Shard::report).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "brook/runtime/broker_options.hpp"
#include "brook/transport/websocket.hpp"
#include "http_server.hpp"
#include "shard_report.hpp"

namespace brook::runtime {

struct Mesh;

// What the HTTP side shows about the broker besides its shards.
struct BrokerFacts {
  std::string tcp, tls, ws, wss, shm;  // listener addresses ("" without one)
  const std::atomic<bool>* stopping = nullptr;  // draining or stopped: not ready
};

struct ShardSample {
  std::int64_t t_ms = 0;  // Unix time
  double busy_ratio = 0, publishes_per_s = 0, deliveries_per_s = 0, bytes_in_per_s = 0, bytes_out_per_s = 0;
  std::uint64_t connections = 0, mailbox_depth = 0, memory_bytes = 0;
};

class BrokerHttp {
 public:
  BrokerHttp(const BrokerOptions& options, Mesh& mesh, BrokerFacts facts);
  ~BrokerHttp();
  std::string start();  // an error text, or ""
  void stop();
  std::string address() const { return server_ ? server_->bound_address() : std::string{}; }

 private:
  HttpResponse handle(const HttpRequest& request);
  HttpResponse healthz() const;
  HttpResponse readyz() const;
  HttpResponse metrics() const;
  HttpResponse api_broker() const;
  HttpResponse api_sessions(const HttpRequest& request);
  HttpResponse api_topics(const HttpRequest& request);
  HttpResponse api_subscriptions(const HttpRequest& request);
  HttpResponse api_history(const HttpRequest& request) const;
  HttpResponse console_file(const HttpRequest& request) const;
  // Every shard's report (those that answer within a second); the shards are asked one at a
  // time, one request at a time.
  std::vector<ShardReport> collect(const ReportRequest& request, std::vector<unsigned>& silent);
  void sample_every_second(std::stop_token stop);

  const BrokerOptions& options_;
  Mesh& mesh_;
  BrokerFacts facts_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  const std::int64_t started_unix_ms_;
  std::map<std::string, transport::StaticFile, std::less<>> console_;
  std::unique_ptr<HttpServer> server_;
  std::mutex report_mutex_;  // one report in flight

  // Topic rates: each topic's sequence when last looked at, and the rate then worked out.
  struct RateMark {
    std::uint64_t sequence = 0;
    std::chrono::steady_clock::time_point at;
    double rate = 0;
  };
  std::unordered_map<std::string, RateMark> topic_rates_;  // under report_mutex_

  mutable std::mutex samples_mutex_;
  std::vector<std::deque<ShardSample>> samples_;  // per shard, oldest first
  std::jthread sampler_;
};

}  // namespace brook::runtime
