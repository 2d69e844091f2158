#include "brook/transport/tls.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>
#include <fstream>

namespace brook::transport {

namespace {

// OpenSSL's error queue as one line (and emptied: it is per thread, and the next caller on
// this thread must not read our errors).
std::string openssl_errors() {
  std::string text;
  while (unsigned long e = ERR_get_error()) {
    char line[256];
    ERR_error_string_n(e, line, sizeof line);
    if (!text.empty()) text += "; ";
    text += line;
  }
  return text;
}

constexpr std::size_t max_record_plain = 16384;

SSL_CTX* new_context(const TlsOptions& options, bool server, std::string& error) {
  SSL_CTX* ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (!ctx) {
    error = "cannot create a TLS context: " + openssl_errors();
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx, options.allow_tls12 ? TLS1_2_VERSION : TLS1_3_VERSION);
  // No renegotiation (TLS 1.2): a client that asks is refused by the record layer.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  // Reconnecting clients make a full handshake: no tickets to write after it.
  if (server) SSL_CTX_set_num_tickets(ctx, 0);
  auto fail = [&](const std::string& what) {
    error = what + ": " + openssl_errors();
    SSL_CTX_free(ctx);
    return nullptr;
  };
  if (!options.cert_file.empty() &&
      SSL_CTX_use_certificate_chain_file(ctx, options.cert_file.c_str()) != 1)
    return fail("cannot use the certificate " + options.cert_file);
  if (!options.key_file.empty() &&
      SSL_CTX_use_PrivateKey_file(ctx, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
    return fail("cannot use the private key " + options.key_file);
  if (!options.cert_file.empty() && !options.key_file.empty() && SSL_CTX_check_private_key(ctx) != 1)
    return fail("the private key " + options.key_file + " does not match " + options.cert_file);
  if (!options.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx, options.ca_file.c_str(), nullptr) != 1)
      return fail("cannot read the CA file " + options.ca_file);
  } else if (!server && SSL_CTX_set_default_verify_paths(ctx) != 1) {
    return fail("cannot read the system's CA store");
  }
  if (options.verify_peer)
    SSL_CTX_set_verify(ctx, server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER, nullptr);
  return ctx;
}

}  // namespace

bool kernel_tls_available() {
  std::ifstream ulps("/proc/sys/net/ipv4/tcp_available_ulp");
  std::string ulp;
  while (ulps >> ulp)
    if (ulp == "tls") return true;
  return false;
}

std::shared_ptr<TlsContext> TlsContext::server(const TlsOptions& options, std::string& error) {
  if (options.cert_file.empty() || options.key_file.empty()) {
    error = "a TLS listener needs a certificate and its key (tls.cert_file, tls.key_file)";
    return nullptr;
  }
  if (options.verify_peer && options.ca_file.empty()) {
    error = "verifying clients needs the CA that signs their certificates (tls.ca_file)";
    return nullptr;
  }
  SSL_CTX* ctx = new_context(options, true, error);
  return ctx ? std::shared_ptr<TlsContext>(new TlsContext(ctx, true)) : nullptr;
}

std::shared_ptr<TlsContext> TlsContext::client(const TlsOptions& options, std::string& error) {
  SSL_CTX* ctx = new_context(options, false, error);
  return ctx ? std::shared_ptr<TlsContext>(new TlsContext(ctx, false)) : nullptr;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

TlsStream::TlsStream(std::shared_ptr<const TlsContext> context, const std::string& host)
    : context_(std::move(context)) {
  ssl_ = SSL_new(context_->native());
  if (!ssl_) {
    fail("cannot create a TLS session", 0);
    return;
  }
  // Memory BIOs: the socket is the caller's.
  SSL_set_bio(ssl_, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
  if (context_->is_server()) {
    SSL_set_accept_state(ssl_);
  } else {
    SSL_set_connect_state(ssl_);
    if (!host.empty()) {
      SSL_set_tlsext_host_name(ssl_, host.c_str());
      // The certificate must name the host (checked when verification is on).
      SSL_set1_host(ssl_, host.c_str());
    }
  }
}

TlsStream::~TlsStream() {
  if (ssl_) SSL_free(ssl_);
}

bool TlsStream::fail(const char* what, int ssl_error) {
  failed_ = true;
  std::string detail = openssl_errors();
  if (ssl_ && SSL_get_verify_result(ssl_) != X509_V_OK)
    detail = std::string("certificate verification failed: ") +
             X509_verify_cert_error_string(SSL_get_verify_result(ssl_));
  if (detail.empty() && ssl_error == SSL_ERROR_SYSCALL) detail = "unexpected end of the stream";
  if (detail.empty()) detail = "error " + std::to_string(ssl_error);
  error_ = std::string(what) + ": " + detail;
  take_output();  // an alert for the peer
  return false;
}

void TlsStream::take_output() {
  if (!ssl_) return;
  BIO* wbio = SSL_get_wbio(ssl_);
  const std::size_t pending = BIO_ctrl_pending(wbio);
  if (pending == 0) return;
  const std::size_t at = output_.size();
  output_.resize(at + pending);
  const int n = BIO_read(wbio, output_.data() + at, static_cast<int>(pending));
  output_.resize(at + static_cast<std::size_t>(std::max(n, 0)));
}

bool TlsStream::start() {
  if (failed_) return false;
  return advance();
}

bool TlsStream::advance() {
  if (!handshake_done_) {
    ERR_clear_error();
    const int rc = SSL_do_handshake(ssl_);
    if (rc != 1) {
      const int e = SSL_get_error(ssl_, rc);
      take_output();
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return true;
      return fail("TLS handshake failed", e);
    }
    handshake_done_ = true;
  }
  take_output();
  return true;
}

bool TlsStream::receive(std::span<const std::byte> cipher, std::vector<std::byte>& plain) {
  if (failed_) return false;
  if (!cipher.empty() && BIO_write(SSL_get_rbio(ssl_), cipher.data(), static_cast<int>(cipher.size())) <= 0)
    return fail("TLS input refused", 0);
  if (!advance() || !handshake_done_) return !failed_;
  for (;;) {
    const std::size_t at = plain.size();
    plain.resize(at + max_record_plain);
    ERR_clear_error();
    const int n = SSL_read(ssl_, plain.data() + at, static_cast<int>(max_record_plain));
    if (n > 0) {
      plain.resize(at + static_cast<std::size_t>(n));
      continue;
    }
    plain.resize(at);
    const int e = SSL_get_error(ssl_, n);
    take_output();
    if (e == SSL_ERROR_WANT_READ) return true;
    if (e == SSL_ERROR_ZERO_RETURN) {
      closed_by_peer_ = true;
      failed_ = true;
      error_ = "the peer closed the TLS stream";
      return false;
    }
    return fail("TLS read failed", e);
  }
}

bool TlsStream::send(std::span<const std::byte> plain) {
  if (failed_ || !handshake_done_) return false;
  while (!plain.empty()) {
    const std::size_t n = std::min(plain.size(), max_record_plain);
    ERR_clear_error();
    const int rc = SSL_write(ssl_, plain.data(), static_cast<int>(n));
    if (rc <= 0) return fail("TLS write failed", SSL_get_error(ssl_, rc));
    plain = plain.subspan(static_cast<std::size_t>(rc));
  }
  take_output();
  return true;
}

bool TlsStream::send(std::span<const ::iovec> plain) {
  // Small frames are gathered into full records: one AEAD pass and one header per 16 KiB.
  staging_.clear();
  for (const ::iovec& v : plain) {
    const auto* bytes = static_cast<const std::byte*>(v.iov_base);
    staging_.insert(staging_.end(), bytes, bytes + v.iov_len);
  }
  return send(std::span<const std::byte>(staging_));
}

std::string TlsStream::describe() const {
  if (!ssl_ || !handshake_done_) return "TLS (handshake not done)";
  return std::string(SSL_get_version(ssl_)) + " " + SSL_get_cipher_name(ssl_);
}

std::string TlsStream::peer_name(PeerName which) const {
  if (!ssl_) return {};
  X509* peer = SSL_get1_peer_certificate(ssl_);
  if (!peer) return {};
  std::string name;
  if (which == PeerName::common_name) {
    char text[256] = {};
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, text, sizeof text) > 0) name = text;
  } else {
    const int type = which == PeerName::dns ? GEN_DNS : GEN_EMAIL;
    auto* names = static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(peer, NID_subject_alt_name, nullptr, nullptr));
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names) && name.empty(); ++i) {
      const GENERAL_NAME* g = sk_GENERAL_NAME_value(names, i);
      if (g->type != type) continue;
      // DNS names and email addresses are IA5 strings.
      const ASN1_IA5STRING* text = g->d.ia5;
      name.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(text)),
                  static_cast<std::size_t>(ASN1_STRING_length(text)));
    }
    GENERAL_NAMES_free(names);
  }
  X509_free(peer);
  // A name with a NUL inside is a forgery attempt, not a principal.
  if (name.find('\0') != std::string::npos) return {};
  return name;
}

}  // namespace brook::transport
