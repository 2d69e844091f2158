#pragma once
// TLS over memory: OpenSSL's record layer between the socket's bytes (which io_uring reads
// and writes as for plain TCP) and the application's. A TlsStream never touches a socket and
// never blocks: ciphertext goes in with receive(), plaintext comes out; plaintext goes in
// with send(), ciphertext waits in output() for the caller's next socket write. So a
// handshake is just bytes on a connection, and never holds up the thread's other ones.
//
// Threads: a TlsContext is shared (OpenSSL's SSL_CTX is safe to share once set up); a
// TlsStream is used by one thread at a time, and may move to another between uses.
#include <sys/uio.h>

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <vector>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace brook::transport {

struct TlsOptions {
  std::string cert_file;  // PEM certificate chain: the server's, or a client's own (mutual TLS)
  std::string key_file;   // its private key
  std::string ca_file;    // PEM CAs to verify the peer; empty: the system store (clients)
  // Server: ask clients for a certificate and refuse one that ca_file does not verify.
  // Client: verify the server's chain and host name (on unless turned off for tests).
  bool verify_peer = true;
  bool allow_tls12 = true;  // false: TLS 1.3 only
};

// Whether this kernel offers kernel TLS (the "tls" upper-layer protocol for TCP sockets).
bool kernel_tls_available();

class TlsContext {
 public:
  // Null and `error` set when a file cannot be read or the key does not match.
  static std::shared_ptr<TlsContext> server(const TlsOptions& options, std::string& error);
  static std::shared_ptr<TlsContext> client(const TlsOptions& options, std::string& error);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  SSL_CTX* native() const noexcept { return ctx_; }
  bool is_server() const noexcept { return server_; }

 private:
  TlsContext(SSL_CTX* ctx, bool server) : ctx_(ctx), server_(server) {}
  SSL_CTX* ctx_;
  bool server_;
};

class TlsStream {
 public:
  // `host`: a client's server name (SNI, and the name its certificate must carry).
  explicit TlsStream(std::shared_ptr<const TlsContext> context, const std::string& host = {});
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  // A client's first flight (ClientHello) into output().
  bool start();
  // Ciphertext from the peer: handshake progress, then plaintext appended to `plain`. False
  // on a fatal error (error() says which; an alert for the peer may wait in output()).
  bool receive(std::span<const std::byte> cipher, std::vector<std::byte>& plain);
  // Plaintext to send: its records appended to output(). False once the stream failed.
  bool send(std::span<const ::iovec> plain);
  bool send(std::span<const std::byte> plain);

  // Ciphertext for the socket; the caller erases what it wrote.
  std::vector<std::byte>& output() noexcept { return output_; }
  bool handshake_done() const noexcept { return handshake_done_; }
  bool failed() const noexcept { return failed_; }
  // The peer ended the stream in order (close_notify): an end, not an error.
  bool closed_by_peer() const noexcept { return closed_by_peer_; }
  const std::string& error() const noexcept { return error_; }
  // After the handshake: "TLSv1.3 TLS_AES_256_GCM_SHA384".
  std::string describe() const;
  // A name from the peer's certificate (mutual TLS): its subject's common name, or the first
  // subject alternative name of a kind; empty without a certificate or such a name.
  enum class PeerName { common_name, dns, email };
  std::string peer_name(PeerName which) const;

 private:
  bool advance();  // the handshake, then reads, as far as the input allows
  void take_output();
  bool fail(const char* what, int ssl_error);

  std::shared_ptr<const TlsContext> context_;
  SSL* ssl_ = nullptr;
  std::vector<std::byte> output_;
  std::vector<std::byte> staging_;
  bool handshake_done_ = false;
  bool failed_ = false;
  bool closed_by_peer_ = false;
  std::string error_;
};

}  // namespace brook::transport
