#pragma once
// Certificates for TLS tests, made in the test with OpenSSL: a CA of its own, and leaf
// certificates it signs (or that sign themselves) for a host name, valid over any window of
// time (an expired one among them). PEM files in a directory the caller owns.
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <memory>
#include <string>

namespace brook::test {

class TestCertificates {
 public:
  // A CA ("Brook test CA") in DIR/NAME-ca.pem.
  TestCertificates(std::string dir, std::string name) : dir_(std::move(dir)), name_(std::move(name)) {
    ca_key_ = new_key();
    ca_ = new_certificate(ca_key_.get(), nullptr, nullptr, "Brook test CA " + name_, {}, -3600, 86400, true);
    write(ca_.get(), ca_file());
  }
  std::string ca_file() const { return dir_ + "/" + name_ + "-ca.pem"; }

  struct Issued {
    std::string cert_file, key_file;
  };
  // A certificate for common name `cn` (also its DNS name, with 127.0.0.1), valid from
  // now + not_before_s to now + not_after_s, signed by this CA or by itself.
  Issued issue(const std::string& file_name, const std::string& cn, long not_before_s = -3600,
               long not_after_s = 86400, bool self_signed = false) {
    return issue_with_names(file_name, cn, "DNS:" + cn + ",IP:127.0.0.1", not_before_s, not_after_s, self_signed);
  }
  // The same with subject alternative names of the caller's ("DNS:a.example,email:a@b.example").
  Issued issue_with_names(const std::string& file_name, const std::string& cn, const std::string& alt_names,
                          long not_before_s = -3600, long not_after_s = 86400, bool self_signed = false) {
    auto key = new_key();
    auto cert = self_signed
                    ? new_certificate(key.get(), nullptr, nullptr, cn, alt_names, not_before_s, not_after_s, false)
                    : new_certificate(key.get(), ca_key_.get(), ca_.get(), cn, alt_names, not_before_s, not_after_s, false);
    Issued issued{dir_ + "/" + file_name + ".pem", dir_ + "/" + file_name + ".key"};
    write(cert.get(), issued.cert_file);
    if (std::FILE* f = std::fopen(issued.key_file.c_str(), "w")) {
      PEM_write_PrivateKey(f, key.get(), nullptr, nullptr, 0, nullptr, nullptr);
      std::fclose(f);
    }
    return issued;
  }

 private:
  using Key = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
  using Cert = std::unique_ptr<X509, decltype(&X509_free)>;

  static Key new_key() { return Key(EVP_EC_gen("P-256"), &EVP_PKEY_free); }

  Cert new_certificate(EVP_PKEY* key, EVP_PKEY* signer_key, X509* signer, const std::string& cn,
                       const std::string& alt_names, long not_before_s, long not_after_s, bool ca) {
    Cert cert(X509_new(), &X509_free);
    X509_set_version(cert.get(), 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), ++serial_);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), not_before_s);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), not_after_s);
    X509_set_pubkey(cert.get(), key);
    X509_NAME* name = X509_get_subject_name(cert.get());
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(cert.get(), signer ? X509_get_subject_name(signer) : name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, signer ? signer : cert.get(), cert.get(), nullptr, nullptr, 0);
    auto add = [&](int nid, const std::string& value) {
      if (X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str())) {
        X509_add_ext(cert.get(), e, -1);
        X509_EXTENSION_free(e);
      }
    };
    add(NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
    if (ca) add(NID_key_usage, "critical,keyCertSign,cRLSign");
    if (!alt_names.empty()) add(NID_subject_alt_name, alt_names);
    X509_sign(cert.get(), signer_key ? signer_key : key, EVP_sha256());
    return cert;
  }

  static void write(X509* cert, const std::string& path) {
    if (std::FILE* f = std::fopen(path.c_str(), "w")) {
      PEM_write_X509(f, cert);
      std::fclose(f);
    }
  }

  std::string dir_, name_;
  Key ca_key_{nullptr, &EVP_PKEY_free};
  Cert ca_{nullptr, &X509_free};
  long serial_ = 0;
};

}  // namespace brook::test
